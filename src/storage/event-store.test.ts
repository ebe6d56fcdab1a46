import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ClassicLevel } from "classic-level";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentdError } from "../errors.js";
import { WriteBatch } from "./db.js";
import type { EventEntry, StoredEvent } from "./event-store.js";
import { SUBLEVELS } from "./keys.js";
import { openStore } from "./open-store.js";
import type { Store } from "./open-store.js";

const KINDS = ["MessageEvent", "ActionEvent", "ObservationEvent", "AgentErrorEvent", "PauseEvent", "ConversationStateUpdateEvent"];
const SOURCES = ["agent", "user", "environment", "hook"];

/** A deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function entry(id: string, kind = "MessageEvent", source = "user", timestampMs = Date.now(), body = new TextEncoder().encode(id)): EventEntry {
  return { id, kind, source, timestampMs, body };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<AgentdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentdError);
  expect((err as AgentdError).code).toBe(code);
  return err as AgentdError;
}

describe("EventStore", () => {
  let dir: string;
  let store: Store;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "agentd-events-"));
    store = await openStore(dir);
  });

  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("assigns dense seqs from 1 under concurrent appends from many callers", async () => {
    await store.events.createLog("c1");
    const callers = 40;
    const rounds = 10;
    const results = await Promise.all(
      Array.from({ length: callers }, async (_, c) => {
        const mine: { ids: string[]; seqs: number[] }[] = [];
        for (let r = 0; r < rounds; r++) {
          const n = 1 + ((c + r) % 3);
          const ids = Array.from({ length: n }, (_, i) => `e-${c}-${r}-${i}`);
          const appended = await store.events.append("c1", ids.map((id) => entry(id)));
          mine.push({ ids, seqs: appended.map((a) => a.seq) });
        }
        return mine;
      }),
    );
    const all = results.flat();
    const seqs = all.flatMap((a) => a.seqs).sort((a, b) => a - b);
    const total = seqs.length;
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // The entries of one call are consecutive.
    for (const a of all) expect(a.seqs).toEqual(a.seqs.map((_, i) => a.seqs[0]! + i));
    expect((await store.events.head("c1")).lastSeq).toBe(total);
    // Every event is stored under its seq with its id.
    const stored = await collect(store.events.scan("c1"));
    const idBySeq = new Map(all.flatMap((a) => a.seqs.map((s, i) => [s, a.ids[i]!] as const)));
    expect(stored.map((e) => e.seq)).toEqual(seqs);
    for (const e of stored) expect(e.id).toBe(idBySeq.get(e.seq));
  });

  it("coalesces appends that arrive during a write into one batch (group commit)", async () => {
    await store.events.createLog("c1");
    const original = WriteBatch.prototype.write;
    let writes = 0;
    WriteBatch.prototype.write = function (this: WriteBatch, ...args: Parameters<WriteBatch["write"]>) {
      writes++;
      return original.apply(this, args);
    };
    try {
      await Promise.all(Array.from({ length: 200 }, (_, i) => store.events.append("c1", [entry(`g${i}`)])));
    } finally {
      WriteBatch.prototype.write = original;
    }
    expect((await store.events.head("c1")).lastSeq).toBe(200);
    // The first append is written alone; everything that queued meanwhile shares the next batch.
    expect(writes).toBeLessThanOrEqual(4);
  });

  it("never lets a reader cache a head it read before a commit that finished first", async () => {
    await store.events.createLog("c1");
    await store.events.append("c1", [entry("h1")]);
    // A fresh store has no cached heads: the next read of the head goes to LevelDB.
    await store.close();
    store = await openStore(dir);
    const ctx = (store.events as unknown as { log: { ctx: { sub: Record<string, { get(key: string): Promise<Uint8Array | undefined> }> } } }).log.ctx;
    const heads = ctx.sub["log-head"]!;
    const realGet = heads.get.bind(heads);
    // The reader's read sees the head before the commit below, and returns only after it.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let delayed = false;
    heads.get = async (key: string) => {
      const bytes = await realGet(key);
      if (!delayed) {
        delayed = true;
        await released;
      }
      return bytes;
    };
    const write = WriteBatch.prototype.write;
    try {
      const reading = store.events.head("c1"); // the delayed read: lastSeq 1
      const [second] = await store.events.append("c1", [entry("h2")]); // commits and caches lastSeq 2
      expect(second!.seq).toBe(2);
      // A failed write drops the cached head (the next writer re-reads the durable one), so the
      // cache is empty when the stale read returns.
      WriteBatch.prototype.write = () => Promise.reject(new Error("injected write failure"));
      await expect(store.events.append("c1", [entry("lost")])).rejects.toThrow("injected write failure");
      WriteBatch.prototype.write = write;
      release();
      expect((await reading).lastSeq).toBe(1); // the reader gets what it read...
    } finally {
      heads.get = realGet;
      WriteBatch.prototype.write = write;
    }
    // ...but must not have put it in the cache: the next append continues after seq 2.
    const [third] = await store.events.append("c1", [entry("h3")]);
    expect(third!.seq).toBe(3);
    expect((await store.events.head("c1")).lastSeq).toBe(3);
    const seqs: number[] = [];
    for await (const e of store.events.scan("c1")) seqs.push(e.seq);
    expect(seqs).toEqual([1, 2, 3]);
  });

  it("writes an append atomically: a call with a taken id writes nothing, its neighbours succeed", async () => {
    await store.events.createLog("c1");
    await store.events.append("c1", [entry("taken")]);
    const [ok1, bad, ok2, repeated] = await Promise.allSettled([
      store.events.append("c1", [entry("a1"), entry("a2")]),
      store.events.append("c1", [entry("b1"), entry("taken"), entry("b3")]),
      store.events.append("c1", [entry("c1")]),
      store.events.append("c1", [entry("d1"), entry("d1")]),
    ]);
    expect(ok1.status).toBe("fulfilled");
    expect(ok2.status).toBe("fulfilled");
    expect(bad.status === "rejected" && (bad.reason as AgentdError).code).toBe("already_exists");
    expect(repeated.status === "rejected" && (repeated.reason as AgentdError).code).toBe("already_exists");
    expect(await store.events.getById("c1", "b1")).toBeNull();
    expect(await store.events.getById("c1", "d1")).toBeNull();
    const all = await collect(store.events.scan("c1"));
    expect(all.map((e) => e.id)).toEqual(["taken", "a1", "a2", "c1"]);
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(await store.events.count("c1", { kind: "MessageEvent" })).toBe(4);
  });

  it("refuses appends and reads on a conversation without a log, and malformed ids", async () => {
    await expectCode(store.events.append("nope", [entry("x")]), "not_found");
    await expectCode(store.events.get("nope", 1), "not_found");
    await expectCode(store.events.count("nope"), "not_found");
    await expectCode(collect(store.events.scan("nope")), "not_found");
    expect(await store.events.exists("nope")).toBe(false);
    await store.events.createLog("c1");
    await expectCode(store.events.createLog("c1"), "already_exists");
    await expectCode(store.events.append("c1", [entry("bad!id")]), "invalid_argument");
    expect((await expectCode(store.events.append("c1", [entry("ok", "Bad Kind")]), "invalid_argument")).message).toMatch(/^invalid kind "Bad Kind"/);
    await expectCode(store.events.append("bad id", []), "invalid_argument");
    await expectCode(store.events.append("c1", [entry("neg", "MessageEvent", "user", -1)]), "invalid_argument");
    expect(await store.events.get("c1", 1)).toBeNull();
  });

  it("clamps timestamps so they never decrease, and maps time ranges to seq ranges", async () => {
    await store.events.createLog("c1");
    const appended = await store.events.append("c1", [
      entry("t1", "MessageEvent", "user", 1000),
      entry("t2", "MessageEvent", "user", 1000),
      entry("t3", "MessageEvent", "user", 900), // clamped to 1000
      entry("t4", "MessageEvent", "user", 2000),
      entry("t5", "MessageEvent", "user", 3000),
    ]);
    expect(appended.map((a) => a.timestampMs)).toEqual([1000, 1000, 1000, 2000, 3000]);
    expect((await store.events.getById("c1", "t3"))?.timestampMs).toBe(1000);
    expect(await store.events.seqRangeForTime("c1", { gteMs: 1000 })).toEqual({ fromSeq: 1, toSeq: 5 });
    expect(await store.events.seqRangeForTime("c1", { gteMs: 1001 })).toEqual({ fromSeq: 4, toSeq: 5 });
    expect(await store.events.seqRangeForTime("c1", { ltMs: 2000 })).toEqual({ fromSeq: 1, toSeq: 3 });
    expect(await store.events.seqRangeForTime("c1", { gteMs: 1500, ltMs: 2500 })).toEqual({ fromSeq: 4, toSeq: 4 });
    const empty = await store.events.seqRangeForTime("c1", { gteMs: 5000 });
    expect(empty.fromSeq).toBeGreaterThan(empty.toSeq);
    // Later appends are clamped against the stored last timestamp too.
    const [late] = await store.events.append("c1", [entry("t6", "MessageEvent", "user", 10)]);
    expect(late!.timestampMs).toBe(3000);
  });

  it("answers every filter combination exactly like a brute-force filter over random data", async () => {
    const random = rng(42);
    await store.events.createLog("c1");
    const truth: StoredEvent[] = [];
    let ts = 1_700_000_000_000;
    for (let batch = 0; batch < 60; batch++) {
      const entries: EventEntry[] = [];
      for (let i = 0; i < 1 + Math.floor(random() * 30); i++) {
        ts += Math.floor(random() * 4) - 1; // sometimes decreasing: the store clamps
        const kind = KINDS[Math.floor(random() * random() * KINDS.length)]!; // skewed
        const source = SOURCES[Math.floor(random() * SOURCES.length)]!;
        entries.push(entry(`r${batch}-${i}`, kind, source, ts));
      }
      const appended = await store.events.append("c1", entries);
      entries.forEach((e, i) => truth.push({ ...e, seq: appended[i]!.seq, timestampMs: appended[i]!.timestampMs }));
    }
    for (let i = 1; i < truth.length; i++) expect(truth[i]!.timestampMs).toBeGreaterThanOrEqual(truth[i - 1]!.timestampMs);
    const minTs = truth[0]!.timestampMs;
    const maxTs = truth[truth.length - 1]!.timestampMs;
    for (let q = 0; q < 150; q++) {
      const kind = random() < 0.5 ? KINDS[Math.floor(random() * KINDS.length)] : undefined;
      const source = random() < 0.5 ? SOURCES[Math.floor(random() * SOURCES.length)] : undefined;
      const gteMs = random() < 0.4 ? minTs + Math.floor(random() * (maxTs - minTs + 2)) : undefined;
      const ltMs = random() < 0.4 ? minTs + Math.floor(random() * (maxTs - minTs + 2)) : undefined;
      const order = random() < 0.5 ? ("asc" as const) : ("desc" as const);
      const cursor = random() < 0.5 ? 1 + Math.floor(random() * truth.length) : undefined;
      const limit = 1 + Math.floor(random() * 120);
      const range = await store.events.seqRangeForTime("c1", { gteMs, ltMs });
      const fromSeq = order === "asc" && cursor !== undefined ? Math.max(range.fromSeq, cursor) : range.fromSeq;
      const toSeq = order === "desc" && cursor !== undefined ? Math.min(range.toSeq, cursor) : range.toSeq;
      let expected = truth.filter(
        (e) =>
          (kind === undefined || e.kind === kind) &&
          (source === undefined || e.source === source) &&
          (gteMs === undefined || e.timestampMs >= gteMs) &&
          (ltMs === undefined || e.timestampMs < ltMs) &&
          e.seq >= fromSeq &&
          e.seq <= toSeq,
      );
      const count = expected.length;
      if (order === "desc") expected = [...expected].reverse();
      const got: StoredEvent[] = [];
      for await (const e of store.events.scan("c1", { kind, source, fromSeq, toSeq, order, chunk: limit + 1 })) {
        got.push(e);
        if (got.length === limit) break;
      }
      const label = JSON.stringify({ kind, source, gteMs, ltMs, order, cursor, limit });
      expect(got.map((e) => e.seq), label).toEqual(expected.slice(0, limit).map((e) => e.seq));
      expect(got.map((e) => e.id), label).toEqual(expected.slice(0, limit).map((e) => e.id));
      expect(await store.events.count("c1", { kind, source, fromSeq, toSeq }), label).toBe(count);
    }
    // Head counts agree with the data.
    const head = await store.events.head("c1");
    for (const k of KINDS) expect(head.countsByKind.get(k) ?? 0).toBe(truth.filter((e) => e.kind === k).length);
    for (const s of SOURCES) expect(head.countsBySource.get(s) ?? 0).toBe(truth.filter((e) => e.source === s).length);
    // Batch get by ids, with missing and malformed ids.
    const pick = [truth[5]!, truth[100]!, truth[truth.length - 1]!];
    const got = await store.events.getManyByIds("c1", [pick[0]!.id, "missing", pick[1]!.id, "bad id!", pick[2]!.id]);
    expect(got.map((e) => e?.seq ?? null)).toEqual([pick[0]!.seq, null, pick[1]!.seq, null, pick[2]!.seq]);
  });

  it("counts without reading any index when unfiltered or filtered by kind or source alone", async () => {
    await store.events.createLog("c1");
    await store.events.append("c1", Array.from({ length: 300 }, (_, i) => entry(`o${i}`, KINDS[i % 3], SOURCES[i % 4])));
    const iterators = spyOnIterators(store);
    expect(await store.events.count("c1")).toBe(300);
    expect(await store.events.count("c1", { kind: "ActionEvent" })).toBe(100);
    expect(await store.events.count("c1", { source: "hook" })).toBe(75);
    expect(await store.events.count("c1", { kind: "ActionEvent", source: "user" })).toBe(25);
    expect(await store.events.count("c1", { fromSeq: 10, toSeq: 19 })).toBe(10);
    expect(iterators.opened).toBe(0);
    // With a seq range and a filter it has to walk the index.
    expect(await store.events.count("c1", { kind: "ActionEvent", fromSeq: 1, toSeq: 30 })).toBe(10);
    expect(iterators.opened).toBeGreaterThan(0);
    iterators.restore();
  });

  it("reads the same number of entries for a page whatever the log's size", async () => {
    const entriesRead = async (conversationId: string, size: number): Promise<number[]> => {
      await store.events.createLog(conversationId);
      for (let i = 0; i < size; i += 1000) {
        await store.events.append(
          conversationId,
          Array.from({ length: Math.min(1000, size - i) }, (_, j) => entry(`p${i + j}`, KINDS[(i + j) % 3], SOURCES[(i + j) % 4])),
        );
      }
      const reads: number[] = [];
      const pages = [
        { fromSeq: Math.floor(size / 2) },
        { kind: "ActionEvent", fromSeq: Math.floor(size / 2) },
        { source: "agent", order: "desc" as const, toSeq: Math.floor(size / 2) },
        { kind: "ActionEvent", source: "agent", fromSeq: Math.floor(size / 2) },
      ];
      for (const page of pages) {
        const spy = spyOnIterators(store);
        let n = 0;
        for await (const _ of store.events.scan(conversationId, { ...page, chunk: 101 })) if (++n === 100) break;
        expect(n).toBe(100);
        reads.push(spy.entries);
        spy.restore();
      }
      return reads;
    };
    const small = await entriesRead("small", 3_000);
    const large = await entriesRead("large", 30_000);
    expect(large).toEqual(small);
    for (const r of small) expect(r).toBeLessThanOrEqual(101 * 4); // a merge reads ≤ one chunk per pair
  });

  it("reads an unfiltered page of 101 ordinary events in one LevelDB round trip", async () => {
    await store.events.createLog("c1");
    // ~1 KiB bodies: 101 of them are well past classic-level's default 16 KiB read-ahead.
    await store.events.append("c1", Array.from({ length: 300 }, (_, i) => entry(`r${i}`, "MessageEvent", "user", Date.now(), new Uint8Array(1000).fill(i % 256))));
    const spy = spyOnIterators(store);
    let n = 0;
    for await (const chunk of store.events.scanChunks("c1", { fromSeq: 50, chunk: 101 })) {
      n += chunk.length;
      break;
    }
    spy.restore();
    expect(n).toBe(101);
    expect(spy.roundTrips).toBe(1);
  });

  it("fails only the read of a corrupt value with data_loss and keeps serving the rest", async () => {
    await store.events.createLog("c1");
    await store.events.append("c1", Array.from({ length: 10 }, (_, i) => entry(`k${i}`)));
    await store.close();
    const raw = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: "utf8", valueEncoding: "view" });
    await raw.open();
    await raw.put("!evt!c1!0000000000000005", new Uint8Array([0xff, 0xff, 0xff, 0x07, 0x00]));
    await raw.close();
    store = await openStore(dir);
    const err = await expectCode(store.events.get("c1", 5), "data_loss");
    expect(err.message).toBe("record 5 of conversation c1 is unreadable (corrupt storage)");
    await expectCode(store.events.getById("c1", "k4"), "data_loss");
    expect((await store.events.get("c1", 4))?.id).toBe("k3");
    expect((await store.events.get("c1", 6))?.id).toBe("k5");
    expect((await collect(store.events.scan("c1", { toSeq: 4 }))).length).toBe(4);
    expect((await collect(store.events.scan("c1", { fromSeq: 6 }))).length).toBe(5);
    await expectCode(collect(store.events.scan("c1")), "data_loss");
    expect(await store.events.count("c1")).toBe(10);
    const [next] = await store.events.append("c1", [entry("after")]);
    expect(next!.seq).toBe(11);
  });

  it("deletes every key of a conversation and nothing of another", async () => {
    await store.events.createLog("c1");
    await store.events.createLog("c1-x"); // shares the prefix "c1"
    for (let i = 0; i < 5; i++) {
      await store.events.append("c1", Array.from({ length: 700 }, (_, j) => entry(`d${i}-${j}`, KINDS[j % 4], SOURCES[j % 4], 1000 + j)));
    }
    await store.events.append("c1-x", [entry("keep")]);
    await store.events.deleteLog("c1");
    expect(await store.events.exists("c1")).toBe(false);
    await expectCode(store.events.deleteLog("c1"), "not_found");
    await store.close();
    const keys = await allKeys(dir);
    expect(keys.filter((k) => /^!(?:evt[^!]*|log-[^!]*)!c1(?:!|$)/.test(k))).toEqual([]);
    expect(keys.filter((k) => k.includes("!c1-x")).length).toBe(5); // head, evt, evt-id, index, ts
    store = await openStore(dir);
    expect((await store.events.getById("c1-x", "keep"))?.seq).toBe(1);
    // The id can be used again, from seq 1.
    await store.events.createLog("c1");
    expect((await store.events.append("c1", [entry("again")]))[0]!.seq).toBe(1);
  });

  it("finishes a deletion interrupted by a crash at the next open", async () => {
    await store.events.createLog("c1");
    await store.events.append("c1", Array.from({ length: 50 }, (_, i) => entry(`z${i}`)));
    await store.close();
    // What a crash right after the first step of deleteLog leaves behind: the marker.
    const raw = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: "utf8", valueEncoding: "view" });
    await raw.open();
    await raw.put("!log-deleting!c1", new Uint8Array(0));
    await raw.close();
    store = await openStore(dir);
    expect(await store.events.exists("c1")).toBe(false);
    await store.close();
    expect((await allKeys(dir)).filter((k) => k.includes("!c1"))).toEqual([]);
    store = await openStore(dir);
  });
});

/** Counts iterators opened and entries read through any sublevel of the store. */
function spyOnIterators(store: Store): { readonly opened: number; readonly entries: number; readonly roundTrips: number; restore(): void } {
  const state = { opened: 0, entries: 0, roundTrips: 0 };
  // Every sublevel iterator of the store is created by one of these methods of a sublevel object.
  const subs = new Set<Record<string, unknown>>();
  const ctx = (store.events as unknown as { log: { ctx: { sub: Record<string, Record<string, unknown>> } } }).log.ctx;
  for (const name of SUBLEVELS) subs.add(ctx.sub[name]!);
  const restores: (() => void)[] = [];
  for (const sub of subs) {
    for (const method of ["iterator", "keys", "values"] as const) {
      const original = sub[method] as (...args: unknown[]) => { nextv: (n: number) => Promise<unknown[]>; all: () => Promise<unknown[]> };
      sub[method] = (...args: unknown[]) => {
        state.opened++;
        const it = original.apply(sub, args);
        const nextv = it.nextv.bind(it);
        const all = it.all.bind(it);
        it.nextv = async (n: number) => {
          const r = await nextv(n);
          state.roundTrips++;
          state.entries += r.length;
          return r;
        };
        it.all = async () => {
          const r = await all();
          state.entries += r.length;
          return r;
        };
        return it;
      };
      restores.push(() => {
        sub[method] = original;
      });
    }
  }
  return {
    get opened() {
      return state.opened;
    },
    get entries() {
      return state.entries;
    },
    get roundTrips() {
      return state.roundTrips;
    },
    restore: () => restores.forEach((r) => r()),
  };
}

async function allKeys(dir: string): Promise<string[]> {
  const raw = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: "utf8", valueEncoding: "view" });
  await raw.open();
  try {
    return await raw.keys().all();
  } finally {
    await raw.close();
  }
}
