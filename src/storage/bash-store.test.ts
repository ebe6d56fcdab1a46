import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BashEventEntry, StoredBashEvent } from "./bash-store.js";
import { openStore } from "./open-store.js";
import type { Store } from "./open-store.js";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("BashStore", () => {
  let dir: string;
  let store: Store;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "agentd-bash-"));
    store = await openStore(dir);
  });

  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("stores command records", async () => {
    await store.bash.putCommand("cmd-1", bytes("ls"));
    await store.bash.putCommand("cmd-1", bytes("ls -la"));
    await store.bash.putCommand("cmd-0", bytes("pwd"));
    expect((await store.bash.listCommands()).map((c) => [c.commandId, text(c.record)])).toEqual([
      ["cmd-0", "pwd"],
      ["cmd-1", "ls -la"],
    ]);
    expect(text((await store.bash.getCommand("cmd-1"))!)).toBe("ls -la");
    expect((await store.bash.getCommands(["cmd-1", "nope", "bad id"])).map((r) => (r === null ? null : text(r)))).toEqual(["ls -la", null, null]);
  });

  it("writes a command's record and output chunk in the same atomic batch as an event, or none of them", async () => {
    const entry = (id: string): BashEventEntry => ({ id, kind: "BashOutput", commandId: "cmd-1", timestampMs: 1000, body: bytes(id) });
    const [a] = await store.bash.appendEvents([entry("ev-1")], {
      with: { command: { commandId: "cmd-1", record: bytes("final") }, output: { commandId: "cmd-1", offset: 0, data: bytes("hi\n") } },
    });
    expect(a!.seq).toBe(1);
    expect(text((await store.bash.getCommand("cmd-1"))!)).toBe("final");
    expect(text((await store.bash.readOutput("cmd-1", 0, 100)).data)).toBe("hi\n");
    // An attached write that cannot be stored fails the whole call: no event, no record.
    await expect(
      store.bash.appendEvents([entry("ev-2")], {
        with: { command: { commandId: "cmd-2", record: bytes("x") }, output: { commandId: "bad id", offset: 0, data: bytes("y") } },
      }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    expect(await store.bash.getEventById("ev-2")).toBeNull();
    expect(await store.bash.getCommand("cmd-2")).toBeNull();
    expect((await store.bash.eventHead()).lastSeq).toBe(1);
  });

  it("serves any byte range of a command's output, across chunk boundaries", async () => {
    const full = "0123456789abcdefghijklmnopqrstuvwxyz";
    // Chunks of uneven sizes, appended with contiguous offsets.
    let offset = 0;
    for (const size of [5, 1, 10, 7, 13]) {
      await store.bash.appendOutput("cmd-1", offset, bytes(full.slice(offset, offset + size)));
      offset += size;
    }
    await store.bash.appendOutput("cmd-10", 0, bytes("other command"));
    expect(await store.bash.outputLength("cmd-1")).toBe(36);
    expect(await store.bash.outputLength("cmd-2")).toBe(0);
    for (let from = 0; from <= 36; from++) {
      for (const max of [1, 3, 8, 100]) {
        const slice = await store.bash.readOutput("cmd-1", from, max);
        const expected = full.slice(from, from + max);
        expect(text(slice.data), `${from}+${max}`).toBe(expected);
        expect(slice.offset).toBe(from);
        expect(slice.nextOffset).toBe(from + expected.length);
      }
    }
    expect((await store.bash.readOutput("cmd-1", 99)).data.byteLength).toBe(0);
    expect((await store.bash.readOutput("cmd-1", 99)).nextOffset).toBe(99);
    await expect(store.bash.appendOutput("cmd-1", 36, new Uint8Array(0))).rejects.toMatchObject({ code: "invalid_argument" });
    expect(await store.bash.deleteCommand("cmd-1")).toBe(false); // no record was put, output goes anyway
    expect(await store.bash.outputLength("cmd-1")).toBe(0);
    expect(await store.bash.outputLength("cmd-10")).toBe(13);
  });

  it("keeps a global event log with dense seqs, filters by command and kind, and clears without reusing seqs", async () => {
    const entries: BashEventEntry[] = [];
    for (let c = 0; c < 5; c++) {
      entries.push({ id: `ev-${c}-cmd`, kind: "BashCommand", commandId: `cmd-${c}`, timestampMs: 1000 + c, body: bytes(`command ${c}`) });
      for (let o = 0; o < 3; o++) entries.push({ id: `ev-${c}-out-${o}`, kind: "BashOutput", commandId: `cmd-${c}`, timestampMs: 1000 + c, body: bytes(`out ${c}.${o}`) });
    }
    // Interleave commands like concurrent processes would.
    const shuffled = [...entries].sort((a, b) => (a.id.length * 7 + a.id.charCodeAt(3)) % 5 - (b.id.length * 7 + b.id.charCodeAt(3)) % 5);
    const appended = await Promise.all(shuffled.map((e) => store.bash.appendEvents([e])));
    expect(appended.flat().map((a) => a.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const all = await collect(store.bash.scanEvents());
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const forCmd2 = await collect(store.bash.scanEvents({ commandId: "cmd-2", kind: "BashOutput" }));
    expect(forCmd2.map((e) => e.id).sort()).toEqual(["ev-2-out-0", "ev-2-out-1", "ev-2-out-2"]);
    expect(await store.bash.countEvents({ commandId: "cmd-2" })).toBe(4);
    expect(await store.bash.countEvents({ kind: "BashCommand" })).toBe(5);
    expect(await store.bash.countEvents({ commandId: "cmd-2", kind: "BashCommand" })).toBe(1);
    const desc: StoredBashEvent[] = await collect(store.bash.scanEvents({ kind: "BashCommand", order: "desc" }));
    expect(desc.map((e) => e.seq)).toEqual([...desc.map((e) => e.seq)].sort((a, b) => b - a));
    expect((await store.bash.getEventById("ev-3-cmd"))?.commandId).toBe("cmd-3");
    expect(await store.bash.getEventById("nope")).toBeNull();
    expect((await store.bash.seqRangeForTime({ gteMs: 1004 })).fromSeq).toBeGreaterThan(1);

    expect(await store.bash.clearEvents()).toBe(20);
    expect(await store.bash.countEvents()).toBe(0);
    expect(await collect(store.bash.scanEvents())).toEqual([]);
    expect(await store.bash.getEventById("ev-3-cmd")).toBeNull();
    expect(await store.bash.getEvent(3)).toBeNull();
    const [next] = await store.bash.appendEvents([{ id: "ev-3-cmd", kind: "BashCommand", commandId: "cmd-9", timestampMs: 1, body: bytes("again") }]);
    expect(next!.seq).toBe(21);
    expect(next!.timestampMs).toBe(1004); // never before the last stored timestamp
    expect(await store.bash.eventHead()).toMatchObject({ firstSeq: 21, lastSeq: 21, count: 1 });
    const range = await store.bash.seqRangeForTime({ gteMs: 0 });
    expect(range).toEqual({ fromSeq: 21, toSeq: 21 });
    // The seq counter survives a restart.
    await store.close();
    store = await openStore(dir);
    const [after] = await store.bash.appendEvents([{ id: "ev-after", kind: "BashOutput", commandId: "cmd-9", timestampMs: 2000, body: bytes("x") }]);
    expect(after!.seq).toBe(22);
    expect((await collect(store.bash.scanEvents())).map((e) => e.id)).toEqual(["ev-3-cmd", "ev-after"]);
  });
});
