import { describe, expect, it } from "vitest";
import type { BashCommandEvent, BashCommandInfo, BashOutputEvent } from "./bash-types.js";
import { MemoryBashStore } from "./memory-bash-store.js";

const cmdEvent = (id: string, ms: number): BashCommandEvent => ({
  kind: "BashCommand",
  id,
  timestamp: new Date(ms).toISOString(),
  command: "true",
  cwd: "/",
  timeout: 300,
});
const outEvent = (id: string, commandId: string, order: number, ms: number): BashOutputEvent => ({
  kind: "BashOutput",
  id,
  timestamp: new Date(ms).toISOString(),
  command_id: commandId,
  order,
  exit_code: null,
  stdout: "x",
  stderr: null,
});

describe("MemoryBashStore", () => {
  it("reads any byte range of contiguous output chunks", async () => {
    const s = new MemoryBashStore();
    await s.appendOutput("c1", 0, Buffer.from("hello "));
    await s.appendOutput("c1", 6, Buffer.from("world"));
    await expect(s.appendOutput("c1", 5, Buffer.from("x"))).rejects.toMatchObject({ code: "invalid_argument" });
    expect(await s.outputLength("c1")).toBe(11);
    expect(Buffer.from(await s.readOutput("c1", 0, 100)).toString()).toBe("hello world");
    expect(Buffer.from(await s.readOutput("c1", 4, 4)).toString()).toBe("o wo");
    expect(Buffer.from(await s.readOutput("c1", 6, 100)).toString()).toBe("world");
    expect((await s.readOutput("c1", 11, 100)).byteLength).toBe(0);
    expect((await s.readOutput("nope", 0, 100)).byteLength).toBe(0);
  });

  it("stores an event's attached record and output with it, or nothing when one is refused", async () => {
    const s = new MemoryBashStore();
    const record: BashCommandInfo = {
      id: "c1", command: "echo hi", cwd: "/", mode: "pty", status: "exited", exitCode: 0, signal: null, timedOut: false,
      timeoutSeconds: 300, startTime: 1, endTime: 2, pid: 7, cols: 80, rows: 24, outputBytes: 3, outputTruncated: false, endReason: "exited with code 0",
    };
    expect(await s.appendEvent(outEvent("e1", "c1", 0, 1), { command: record, output: { offset: 0, data: Buffer.from("hi\n") } })).toBe(1);
    expect(await s.getCommand("c1")).toEqual(record);
    expect(Buffer.from(await s.readOutput("c1", 0, 100)).toString()).toBe("hi\n");
    // Output at the wrong offset: the event and the record are not stored either.
    const later = { ...record, outputBytes: 99 };
    await expect(s.appendEvent(outEvent("e2", "c1", 1, 2), { command: later, output: { offset: 1, data: Buffer.from("x") } })).rejects.toMatchObject({ code: "invalid_argument" });
    expect(await s.getEvent("e2")).toBeNull();
    expect(await s.getCommand("c1")).toEqual(record);
  });

  it("searches events by kind, command, time and order, with paging both ways", async () => {
    const s = new MemoryBashStore();
    expect(await s.appendEvent(cmdEvent("a", 1000))).toBe(1);
    await s.appendEvent(outEvent("a0", "a", 0, 2000));
    await s.appendEvent(cmdEvent("b", 3000));
    await s.appendEvent(outEvent("a1", "a", 1, 4000));
    expect(await s.appendEvent(outEvent("b0", "b", 0, 5000))).toBe(5);

    const ids = async (q: Parameters<MemoryBashStore["searchEvents"]>[0]): Promise<string[]> =>
      (await s.searchEvents(q)).items.map((e) => e.id);
    expect(await ids({ limit: 100, kind: "BashOutput" })).toEqual(["a0", "a1", "b0"]);
    expect(await ids({ limit: 100, commandId: "a" })).toEqual(["a", "a0", "a1"]);
    expect(await ids({ limit: 100, commandId: "a", orderGt: 0 })).toEqual(["a", "a1"]);
    expect(await ids({ limit: 100, timestampGteMs: 2000, timestampLtMs: 5000 })).toEqual(["a0", "b", "a1"]);

    const p1 = await s.searchEvents({ limit: 2 });
    expect(p1.items.map((e) => e.id)).toEqual(["a", "a0"]);
    const p2 = await s.searchEvents({ limit: 2, pageToken: p1.nextPageToken! });
    expect(p2.items.map((e) => e.id)).toEqual(["b", "a1"]);
    const p3 = await s.searchEvents({ limit: 2, pageToken: p2.nextPageToken! });
    expect(p3).toEqual({ items: [expect.objectContaining({ id: "b0" })], nextPageToken: null });

    const d1 = await s.searchEvents({ limit: 3, sortDesc: true });
    expect(d1.items.map((e) => e.id)).toEqual(["b0", "a1", "b"]);
    expect((await s.searchEvents({ limit: 3, sortDesc: true, pageToken: d1.nextPageToken! })).items.map((e) => e.id)).toEqual(["a0", "a"]);
    await expect(s.searchEvents({ limit: 2, pageToken: "bogus" })).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("replays by seq, and clearing keeps seqs counting", async () => {
    const s = new MemoryBashStore();
    for (let i = 0; i < 5; i++) await s.appendEvent(cmdEvent(`e${i}`, i));
    expect((await s.readEvents(2, 2)).map((r) => [r.seq, r.event.id])).toEqual([
      [3, "e2"],
      [4, "e3"],
    ]);
    expect(await s.getEvent("e4")).toMatchObject({ id: "e4" });
    expect(await s.clearEvents()).toBe(5);
    expect(await s.getEvent("e4")).toBeNull();
    expect(await s.appendEvent(cmdEvent("e5", 9))).toBe(6);
    expect((await s.readEvents(0, 10)).map((r) => r.seq)).toEqual([6]);
  });
});
