import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type Store } from "../../storage/open-store.js";
import { BashManager } from "./bash-manager.js";
import type { BashCommandEvent, BashCommandInfo, BashOutputEvent } from "./bash-types.js";
import { LevelDbBashStore } from "./leveldb-bash-store.js";

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentd-bash-ldb-"));
  store = await openStore(path.join(dir, "data"));
});

afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const hex = (n: number): string => n.toString(16).padStart(32, "0");
const cmdEvent = (id: string, ms: number): BashCommandEvent => ({ kind: "BashCommand", id, timestamp: new Date(ms).toISOString(), command: "true", cwd: "/", timeout: 300 });
const outEvent = (id: string, commandId: string, order: number, ms: number, extra: Partial<BashOutputEvent> = {}): BashOutputEvent => ({
  kind: "BashOutput",
  id,
  timestamp: new Date(ms).toISOString(),
  command_id: commandId,
  order,
  exit_code: null,
  stdout: "x",
  stderr: null,
  ...extra,
});

function info(id: string, overrides: Partial<BashCommandInfo> = {}): BashCommandInfo {
  return {
    id,
    command: "echo hi",
    cwd: "/work",
    mode: "pty",
    status: "running",
    exitCode: null,
    signal: null,
    timedOut: false,
    timeoutSeconds: 300,
    startTime: 1_700_000_000_123,
    endTime: null,
    pid: null,
    cols: 200,
    rows: 50,
    outputBytes: 0,
    outputTruncated: false,
    endReason: null,
    ...overrides,
  };
}

describe("LevelDbBashStore", () => {
  it("round-trips command records, null and non-null fields alike, and lists them", async () => {
    const s = new LevelDbBashStore(store.bash);
    const running = info(hex(1));
    const ended = info(hex(2), {
      mode: "pipe",
      status: "timed_out",
      exitCode: -1,
      signal: "SIGKILL",
      timedOut: true,
      timeoutSeconds: 0.5,
      endTime: 1_700_000_001_000.5,
      pid: 4242,
      cols: 0,
      rows: 0,
      outputBytes: 2 ** 40,
      outputTruncated: true,
      endReason: "",
    });
    await Promise.all([s.saveCommand(running), s.saveCommand(ended)]);
    expect(await s.getCommand(hex(1))).toEqual(running);
    expect(await s.getCommand(hex(2))).toEqual(ended);
    expect(await s.getCommand(hex(3))).toBeNull();
    expect(await s.getCommand("not a valid id!")).toBeNull();
    expect((await s.listCommands()).map((c) => c.id).sort()).toEqual([hex(1), hex(2)]);
    // A later save replaces the record.
    await s.saveCommand({ ...running, status: "exited", exitCode: 0, endTime: 1, endReason: "exited with code 0" });
    expect(await s.getCommand(hex(1))).toMatchObject({ status: "exited", exitCode: 0 });
  });

  it("makes a record durable with the paired event append, or on its own when none follows", async () => {
    const s = new LevelDbBashStore(store.bash);
    // Paired, as the engine writes them: both resolve.
    const [, seq] = await Promise.all([s.saveCommand(info(hex(1))), s.appendEvent(cmdEvent(hex(1), 1000))]);
    expect(seq).toBe(1);
    // Alone (no event follows): resolves after its own synced rewrite.
    await s.saveCommand(info(hex(2)));
    expect(await s.getCommand(hex(2))).not.toBeNull();
    // Reversed order within one block (the engine's end: event first, then record).
    await Promise.all([s.appendEvent(outEvent(hex(10), hex(1), 0, 2000, { exit_code: 0 })), s.saveCommand(info(hex(1), { status: "exited", exitCode: 0 }))]);
    expect(await s.getCommand(hex(1))).toMatchObject({ status: "exited" });
  });

  it("round-trips events, keeping null apart from the empty string", async () => {
    const s = new LevelDbBashStore(store.bash);
    const c = { ...cmdEvent(hex(1), 1000), command: "ls -la", cwd: "/tmp", timeout: 12.5 };
    const o1 = outEvent(hex(2), hex(1), 0, 1001, { stdout: "", stderr: null });
    const o2 = outEvent(hex(3), hex(1), 7, 1002, { stdout: null, stderr: "err ünïcode\n", exit_code: -1 });
    for (const e of [c, o1, o2]) await s.appendEvent(e);
    expect(await s.getEvent(hex(1))).toEqual(c);
    expect(await s.getEvent(hex(2))).toEqual(o1);
    expect(await s.getEvent(hex(3))).toEqual(o2);
    expect(await s.getEvent(hex(4))).toBeNull();
    expect(await s.getEvent("../etc")).toBeNull();
  });

  it("searches by kind, command, time and order, pages both ways with tokens bound to the query", async () => {
    const s = new LevelDbBashStore(store.bash);
    const [a, b] = [hex(0xa), hex(0xb)];
    await s.appendEvent(cmdEvent(a, 1000));
    await s.appendEvent(outEvent(hex(1), a, 0, 2000));
    await s.appendEvent(cmdEvent(b, 3000));
    await s.appendEvent(outEvent(hex(2), a, 1, 4000));
    await s.appendEvent(outEvent(hex(3), b, 0, 5000));
    const ids = async (q: Parameters<LevelDbBashStore["searchEvents"]>[0]): Promise<string[]> => (await s.searchEvents(q)).items.map((e) => e.id);
    expect(await ids({ limit: 100, kind: "BashOutput" })).toEqual([hex(1), hex(2), hex(3)]);
    expect(await ids({ limit: 100, commandId: a })).toEqual([a, hex(1), hex(2)]);
    expect(await ids({ limit: 100, commandId: a, orderGt: 0 })).toEqual([a, hex(2)]);
    expect(await ids({ limit: 100, timestampGteMs: 2000, timestampLtMs: 5000 })).toEqual([hex(1), b, hex(2)]);
    // Fractional bounds: ≥ 1999.5 includes 2000; < 4000.5 includes 4000.
    expect(await ids({ limit: 100, timestampGteMs: 1999.5, timestampLtMs: 4000.5 })).toEqual([hex(1), b, hex(2)]);
    expect(await ids({ limit: 100, timestampLtMs: -5 })).toEqual([]);
    expect(await ids({ limit: 100, commandId: "no such id!" })).toEqual([]);

    const p1 = await s.searchEvents({ limit: 2 });
    expect(p1.items.map((e) => e.id)).toEqual([a, hex(1)]);
    const p2 = await s.searchEvents({ limit: 2, pageToken: p1.nextPageToken! });
    expect(p2.items.map((e) => e.id)).toEqual([b, hex(2)]);
    const p3 = await s.searchEvents({ limit: 2, pageToken: p2.nextPageToken! });
    expect(p3).toEqual({ items: [expect.objectContaining({ id: hex(3) })], nextPageToken: null });
    const d1 = await s.searchEvents({ limit: 3, sortDesc: true });
    expect(d1.items.map((e) => e.id)).toEqual([hex(3), hex(2), b]);
    expect((await s.searchEvents({ limit: 3, sortDesc: true, pageToken: d1.nextPageToken! })).items.map((e) => e.id)).toEqual([hex(1), a]);
    await expect(s.searchEvents({ limit: 2, pageToken: "bogus" })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(s.searchEvents({ limit: 2, kind: "BashOutput", pageToken: p1.nextPageToken! })).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("replays by seq, and clearing keeps seqs counting", async () => {
    const s = new LevelDbBashStore(store.bash);
    for (let i = 0; i < 5; i++) await s.appendEvent(cmdEvent(hex(i + 1), i));
    expect((await s.readEvents(2, 2)).map((r) => [r.seq, r.event.id])).toEqual([
      [3, hex(3)],
      [4, hex(4)],
    ]);
    expect(await s.lastEventSeq()).toBe(5);
    expect(await s.clearEvents()).toBe(5);
    expect(await s.getEvent(hex(5))).toBeNull();
    expect(await s.lastEventSeq()).toBe(5);
    expect(await s.appendEvent(cmdEvent(hex(6), 9))).toBe(6);
    expect((await s.readEvents(0, 10)).map((r) => r.seq)).toEqual([6]);
  });

  it("reads any byte range of the output, across chunks and from its read-ahead", async () => {
    const s = new LevelDbBashStore(store.bash, { outputSync: false });
    const id = hex(1);
    const bytes = Buffer.alloc(600 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    // Chunks of uneven sizes, as the engine's pump writes them.
    let at = 0;
    for (const size of [1, 300 * 1024 - 1, 100 * 1024, 200 * 1024]) {
      await s.appendOutput(id, at, bytes.subarray(at, at + size));
      at += size;
    }
    expect(await s.outputLength(id)).toBe(bytes.length);
    for (const [offset, max] of [
      [0, 64 * 1024],
      [64 * 1024, 64 * 1024],
      [300 * 1024 - 10, 64 * 1024],
      [0, 600 * 1024],
      [599 * 1024, 64 * 1024],
      [12345, 1],
    ] as const) {
      expect(Buffer.from(await s.readOutput(id, offset, max)).equals(bytes.subarray(offset, offset + max))).toBe(true);
    }
    // Sequential 64 KiB reads (a watcher) return every byte exactly once.
    const parts: Buffer[] = [];
    for (let off = 0; off < bytes.length; ) {
      const d = await s.readOutput(id, off, 64 * 1024);
      parts.push(Buffer.from(d));
      off += d.byteLength;
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true);
    expect((await s.readOutput(id, bytes.length, 100)).byteLength).toBe(0);
    expect((await s.readOutput(hex(2), 0, 100)).byteLength).toBe(0);
  });

  it("reports unreadable records as data loss", async () => {
    const s = new LevelDbBashStore(store.bash);
    await store.bash.putCommand(hex(1), new Uint8Array([0xff, 0xff, 0xff]));
    await expect(s.getCommand(hex(1))).rejects.toMatchObject({ code: "data_loss" });
    await store.bash.putCommand(hex(2), new Uint8Array([]));
    await expect(s.getCommand(hex(2))).rejects.toMatchObject({ code: "data_loss" });
  });

  it("carries the engine: a command's events, record and output survive reopening the store", async () => {
    const s = new LevelDbBashStore(store.bash, { outputSync: false });
    const m = new BashManager({ store: s, baseEnv: { PATH: process.env.PATH }, defaultCwd: dir, poolSize: 0 });
    const r = await m.execute({ command: "printf 'a\\nb\\n'", mode: "pipe" });
    await m.close();
    await store.close();
    store = await openStore(path.join(dir, "data"));
    const again = new LevelDbBashStore(store.bash);
    expect(await again.getCommand(r.info.id)).toEqual(r.info);
    expect(await again.getEvent(r.output.id)).toEqual(r.output);
    expect(Buffer.from(await again.readOutput(r.info.id, 0, 100)).toString()).toBe("a\nb\n");
    expect((await again.searchEvents({ limit: 10, commandId: r.info.id })).items).toEqual([r.command, r.output]);
  });
});
