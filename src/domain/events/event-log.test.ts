import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { create, fromBinary } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentdError } from "../../errors.js";
import { EventSchema, EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../../gen/agentd/v1/message_pb.js";
import { openStore } from "../../storage/open-store.js";
import type { Store } from "../../storage/open-store.js";
import { EventLog } from "./event-log.js";
import { OPENHANDS_EVENT_FQN, kindOf } from "./event-kinds.js";

function message(text: string, source: EventSource = EventSource.USER, id = ""): Event {
  return create(EventSchema, {
    id,
    source,
    payload: {
      case: "messageEvent",
      value: { llmMessage: { role: MessageRole.USER, content: [{ content: { case: "text", value: { text } } }] } },
    },
  });
}

function action(tool: string): Event {
  return create(EventSchema, { source: EventSource.AGENT, payload: { case: "actionEvent", value: { toolName: tool, toolCallId: `call-${tool}` } } });
}

function observation(tool: string): Event {
  return create(EventSchema, { source: EventSource.ENVIRONMENT, payload: { case: "observationEvent", value: { toolName: tool } } });
}

function delta(content: string): Event {
  return create(EventSchema, { source: EventSource.AGENT, payload: { case: "streamingDeltaEvent", value: { content } } });
}

async function rejection(p: Promise<unknown>): Promise<AgentdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentdError);
  return err as AgentdError;
}

/** Reads a watch stream until it has produced an event with seq `untilSeq` (transients included). */
async function readUntil(stream: AsyncGenerator<Event>, untilSeq: number): Promise<Event[]> {
  const seen: Event[] = [];
  for await (const e of stream) {
    seen.push(e);
    if (Number(e.seq) === untilSeq) break;
  }
  return seen;
}

describe("EventLog", () => {
  let dir: string;
  let store: Store;
  let log: EventLog;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "agentd-eventlog-"));
    store = await openStore(dir);
    log = new EventLog(store.events);
    await log.createLog("conv");
  });

  afterEach(async () => {
    log.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("appends with dense seqs, append timestamps and generated ids", async () => {
    const before = Date.now();
    const stored = await log.append("conv", [message("hello"), action("terminal"), observation("terminal")]);
    expect(stored.map((e) => e.seq)).toEqual([1n, 2n, 3n]);
    for (const e of stored) {
      expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(Number(e.timestamp!.seconds) * 1000).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    }
    const got = await log.get("conv", stored[1]!.id);
    expect(got.seq).toBe(2n);
    expect(got.payload.case).toBe("actionEvent");
    expect(got.timestamp).toEqual(stored[1]!.timestamp);
    // A given id is kept, and must be unique.
    const [mine] = await log.append("conv", [message("x", EventSource.USER, "my-id")]);
    expect(mine!.id).toBe("my-id");
    expect((await rejection(log.append("conv", [message("y", EventSource.USER, "my-id")]))).code).toBe("already_exists");
    expect((await rejection(log.append("conv", [create(EventSchema, { source: EventSource.USER })]))).code).toBe("invalid_argument");
    expect((await rejection(log.append("conv", [message("no source", EventSource.UNSPECIFIED)]))).code).toBe("invalid_argument");
    expect((await rejection(log.append("conv", [delta("hi")]))).code).toBe("invalid_argument");
  });

  it("reports not_found for every operation on an unknown conversation", async () => {
    for (const call of [
      () => log.append("nope", [message("x")]),
      () => log.search("nope"),
      () => log.count("nope"),
      () => log.get("nope", "e"),
      () => log.batchGet("nope", ["e"]),
      () => log.headSeq("nope"),
      () => log.watch("nope").next(),
      () => log.watch("nope", { liveOnly: true }).next(),
      () => log.search("bad id with spaces"),
    ]) {
      expect((await rejection(call())).code).toBe("not_found");
    }
    expect(await log.exists("nope")).toBe(false);
    expect(await log.exists("conv")).toBe(true);
    expect(log.watcherCount("nope")).toBe(0);
    expect((await rejection(log.get("conv", "missing"))).code).toBe("not_found");
  });

  it("searches by short and fully-qualified kind, source, body and time, in both orders", async () => {
    let clock = 1_000_000;
    log = new EventLog(store.events, { now: () => clock });
    const all: Event[] = [];
    for (let i = 0; i < 30; i++) {
      clock += 10;
      const batch = [message(i % 5 === 0 ? `Needle number ${i}` : `hay ${i}`, i % 2 ? EventSource.USER : EventSource.AGENT), action(`t${i}`), observation(`t${i}`)];
      all.push(...(await log.append("conv", batch)));
    }
    const seqs = (events: Event[]): number[] => events.map((e) => Number(e.seq));
    const actions = all.filter((e) => kindOf(e) === "ActionEvent");
    expect(seqs((await log.search("conv", { kind: "ActionEvent" })).items)).toEqual(seqs(actions));
    expect(seqs((await log.search("conv", { kind: OPENHANDS_EVENT_FQN.ActionEvent })).items)).toEqual(seqs(actions));
    expect(await log.count("conv", { kind: "openhands.sdk.event.llm_convertible.observation.ObservationEvent" })).toBe(30);
    expect(await log.count("conv", { source: EventSource.AGENT })).toBe(15 + 30);
    expect(await log.count("conv", { kind: "MessageEvent", source: EventSource.USER })).toBe(15);
    // Body: case-insensitive, MessageEvents only.
    const needles = (await log.search("conv", { body: "NEEDLE" })).items;
    expect(needles.map((e) => (e.payload.case === "messageEvent" ? e.payload.value.llmMessage?.content[0]?.content.value : undefined))).toHaveLength(6);
    expect(await log.count("conv", { body: "needle" })).toBe(6);
    expect(await log.count("conv", { body: "needle", kind: "ActionEvent" })).toBe(0);
    expect(await log.count("conv", { body: "t1" })).toBe(0); // tool names are not message text
    // Time: events of batch i have timestamp 1_000_000 + 10 * (i + 1).
    const window = await log.search("conv", { timestampGteMs: 1_000_050, timestampLtMs: 1_000_080 });
    expect(seqs(window.items)).toEqual(seqs(all.slice(12, 21)));
    expect(await log.count("conv", { timestampGteMs: 1_000_050, timestampLtMs: 1_000_080, kind: "ActionEvent" })).toBe(3);
    expect(await log.count("conv", { timestampGteMs: 1_000_049.5 })).toBe(90 - 12);
    // Paging both ways walks everything exactly once.
    for (const order of ["asc", "desc"] as const) {
      const walked: number[] = [];
      let pageToken = "";
      do {
        const page = await log.search("conv", { order, limit: 7, pageToken, source: EventSource.AGENT });
        expect(page.items.length).toBeLessThanOrEqual(7);
        walked.push(...seqs(page.items));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      const expected = seqs(all.filter((e) => e.source === EventSource.AGENT));
      expect(walked).toEqual(order === "asc" ? expected : [...expected].reverse());
    }
    // Batch get, in request order, null for unknown ids.
    const got = await log.batchGet("conv", [all[3]!.id, "unknown", all[0]!.id]);
    expect(got.map((e) => (e === null ? null : Number(e.seq)))).toEqual([4, null, 1]);
    expect((await rejection(log.batchGet("conv", Array.from({ length: 101 }, (_, i) => `e${i}`)))).code).toBe("invalid_argument");
  });

  it("serves pages as stored bytes that decode to exactly the events search() returns", async () => {
    let clock = 2_000_000;
    log = new EventLog(store.events, { now: () => (clock += 7) });
    for (let i = 0; i < 12; i++) await log.append("conv", [message(i % 3 === 0 ? `needle ${i}` : `hay ${i}`), action(`t${i}`), observation(`t${i}`)]);
    for (const query of [{}, { order: "desc" as const, limit: 5 }, { kind: "ActionEvent" }, { body: "needle" }, { timestampGteMs: 2_000_030, limit: 4 }]) {
      const plain = await log.search("conv", query);
      const encoded = await log.searchEncoded("conv", query);
      expect(encoded.nextPageToken).toBe(plain.nextPageToken);
      expect(encoded.items.map((b) => fromBinary(EventSchema, b))).toEqual(plain.items);
      expect(plain.items.length).toBeGreaterThan(0);
    }
  });

  it("enforces limit bounds and refuses page tokens used with other filters", async () => {
    await log.append("conv", Array.from({ length: 12 }, (_, i) => (i % 2 ? action(`a${i}`) : message(`m${i}`))));
    for (const limit of [0, -1, 101, 1.5, Number.NaN]) {
      const err = await rejection(log.search("conv", { limit }));
      expect(err.code).toBe("invalid_argument");
      expect(err.message).toMatch(/^invalid limit/);
    }
    expect((await log.search("conv", { limit: 1 })).items).toHaveLength(1);
    expect((await log.search("conv", { limit: 100 })).items).toHaveLength(12);
    expect((await log.search("conv")).items).toHaveLength(12);

    const first = await log.search("conv", { kind: "ActionEvent", limit: 2 });
    expect(first.nextPageToken).not.toBe("");
    // The same filters (another page size is fine) continue.
    const second = await log.search("conv", { kind: "ActionEvent", limit: 3, pageToken: first.nextPageToken });
    expect(second.items.map((e) => Number(e.seq))).toEqual([6, 8, 10]);
    // Other filters, another order, or a garbled token are refused.
    for (const q of [
      { kind: "MessageEvent" },
      {},
      { kind: "ActionEvent", order: "desc" as const },
      { kind: "ActionEvent", source: EventSource.AGENT },
      { kind: "ActionEvent", timestampGteMs: 0 },
    ]) {
      const err = await rejection(log.search("conv", { ...q, pageToken: first.nextPageToken }));
      expect(err.code).toBe("invalid_argument");
      expect(err.reason).toBe("INVALID_PAGE_TOKEN");
    }
    for (const token of ["not a token", "AAAA", first.nextPageToken.slice(1), `${first.nextPageToken}A`, "!!"]) {
      expect((await rejection(log.search("conv", { kind: "ActionEvent", pageToken: token }))).code).toBe("invalid_argument");
    }
  });

  it("replays from a cursor then goes live, and waits when the cursor is beyond the head", async () => {
    await log.append("conv", Array.from({ length: 10 }, (_, i) => message(`m${i}`)));
    const resumed = log.watch("conv", { afterSeq: 4 });
    const ahead = log.watch("conv", { afterSeq: 12n });
    const first = await resumed.next(); // subscribes and replays
    expect(first.value?.seq).toBe(5n);
    const aheadFirst = ahead.next(); // subscribes synchronously, then finds nothing to replay
    await log.append("conv", [message("m10"), message("m11"), message("m12"), message("m13")]);
    const rest = await readUntil(resumed, 14);
    expect([first.value!, ...rest].map((e) => Number(e.seq))).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    expect(Number((await aheadFirst).value?.seq)).toBe(13);
    await Promise.all([resumed.return(), ahead.return()]);
    expect(log.watcherCount("conv")).toBe(0);
    expect((await rejection(log.watch("conv", { afterSeq: -1 }).next())).code).toBe("invalid_argument");
  });

  it("replays a re-attaching watcher from the recent events kept around watchers (shared objects), older history from storage", async () => {
    log = new EventLog(store.events, { watcherQueueLimit: 4 });
    await log.append("conv", [message("before anyone watched")]); // seq 1: not kept (no watcher yet)
    // A watcher that keeps up: while it is subscribed the conversation's recent events are kept.
    const keeper = log.watch("conv", { afterSeq: 1 });
    let keeperAt = 1;
    const keeping = (async () => {
      while (keeperAt < 21) keeperAt = Number((await keeper.next()).value!.seq);
    })();
    const batch = (b: number) => Array.from({ length: 4 }, (_, i) => message(`m${b}.${i}`));
    const published: Event[] = [];
    for (let b = 0; b < 5; b++) published.push(...(await log.append("conv", batch(b)))); // seqs 2..21
    await keeping;
    // Within the kept window (8 to 10 events: twice the queue limit, trimmed to the newest 8 here,
    // seqs 14..21): the very objects appended.
    const recent = await readUntil(log.watch("conv", { afterSeq: 17 }), 21);
    expect(recent.map((e) => Number(e.seq))).toEqual([18, 19, 20, 21]);
    recent.forEach((e, i) => expect(e).toBe(published[16 + i]));
    // Older than the window: read from storage, equal content, own copies.
    const old = await readUntil(log.watch("conv", { afterSeq: 10 }), 21);
    expect(old.map((e) => Number(e.seq))).toEqual(Array.from({ length: 11 }, (_, i) => i + 11));
    expect(old[0]).not.toBe(published[9]);
    expect(old[0]).toEqual(published[9]);
    // The last watcher gone, the window stays a while for watchers coming back to resume.
    await keeper.return();
    expect(log.watcherCount("conv")).toBe(0);
    const back = await readUntil(log.watch("conv", { afterSeq: 17 }), 21);
    expect(back[0]).toBe(published[16]);
    // Deleting the conversation (its hook ends the watchers) drops it: the replay reads storage.
    log.endWatchers("conv");
    const after = await readUntil(log.watch("conv", { afterSeq: 17 }), 21);
    expect(after[0]).not.toBe(published[16]);
    expect(after[0]).toEqual(published[16]);
  });

  it("batches what is ready at once: replay chunks, queued live events, the first item alone", async () => {
    await log.append("conv", Array.from({ length: 10 }, (_, i) => message(`m${i}`)));
    const first = create(EventSchema, { source: EventSource.ENVIRONMENT, payload: { case: "pauseEvent", value: {} } });
    const stream = log.watchBatches("conv", { afterSeq: 2, maxBatch: 4, first: () => first });
    const seqsOf = async () => ((await stream.next()).value ?? []).map((e) => Number(e.seq));
    expect(await seqsOf()).toEqual([0]); // the first item, a batch of its own
    expect(await seqsOf()).toEqual([3, 4, 5, 6]);
    expect(await seqsOf()).toEqual([7, 8, 9, 10]);
    // Live: six events queued while the reader was away come as one full batch and the rest,
    // a transient event in its place among them; a single event is not held back to fill a batch.
    await log.append("conv", [message("a"), message("b"), message("c")]);
    log.publishTransient("conv", delta("x"));
    await log.append("conv", [message("d"), message("e")]);
    expect(await seqsOf()).toEqual([11, 12, 13, 0]);
    expect(await seqsOf()).toEqual([14, 15]);
    const next = seqsOf();
    await log.append("conv", [message("f")]);
    expect(await next).toEqual([16]);
    await stream.return(undefined);
    expect(log.watcherCount("conv")).toBe(0);
    for (const maxBatch of [0, 1001, 1.5]) {
      const err = await rejection(log.watchBatches("conv", { maxBatch }).next());
      expect(err.code).toBe("invalid_argument");
      expect(err.message).toContain("max_batch");
    }
  });

  it("starts a live-only watch after the head, without a gap from there", async () => {
    await log.append("conv", Array.from({ length: 10 }, (_, i) => message(`m${i}`)));
    const live = log.watch("conv", { liveOnly: true });
    const first = live.next();
    // Append until the watcher yields: it starts after the head it saw, whenever it saw it.
    let done = false;
    const writer = (async () => {
      while (!done) await log.append("conv", [message("more")]);
    })();
    const got = Number((await first).value?.seq);
    expect(got).toBeGreaterThan(10);
    expect(Number((await live.next()).value?.seq)).toBe(got + 1);
    expect(Number((await live.next()).value?.seq)).toBe(got + 2);
    done = true;
    await writer;
    await live.return();
  });

  it("delivers transient events to watchers with seq 0 without storing them", async () => {
    await log.append("conv", [message("m1")]);
    const stream = log.watch("conv");
    expect((await stream.next()).value?.seq).toBe(1n);
    const pending = stream.next(); // now live (the subscription exists since the first next())
    const published = log.publishTransient("conv", delta("tok"));
    expect(published.seq).toBe(0n);
    const got = await pending;
    expect(got.value?.seq).toBe(0n);
    expect(got.value?.payload.case).toBe("streamingDeltaEvent");
    await log.append("conv", [message("m2")]);
    expect((await stream.next()).value?.seq).toBe(2n);
    expect(await log.count("conv")).toBe(2);
    expect((await log.search("conv")).items.map((e) => e.payload.case)).toEqual(["messageEvent", "messageEvent"]);
    // A later watcher's replay has no transient events.
    const later = await readUntil(log.watch("conv"), 2);
    expect(later.map((e) => Number(e.seq))).toEqual([1, 2]);
    await stream.return();
  });

  it("ends watchers on abort, on deletion (not_found) and on shutdown (unavailable)", async () => {
    const controller = new AbortController();
    const aborted = log.watch("conv", { signal: controller.signal });
    const pending = aborted.next();
    controller.abort();
    expect((await pending).done).toBe(true);

    const deleted = log.watch("conv").next();
    const deleted2 = log.watch("conv").next();
    log.endWatchers("conv");
    expect((await rejection(deleted)).code).toBe("not_found");
    expect((await rejection(deleted2)).code).toBe("not_found");
    await log.createLog("conv2");
    const s2 = log.watch("conv2").next();
    log.close();
    expect((await rejection(s2)).code).toBe("unavailable");
  });

  it("gives every watcher every event exactly once, in seq order, while 8 writers race 8 watchers", { timeout: 60_000 }, async () => {
    const writers = 8;
    const watchers = 8;
    const deadline = Date.now() + 2_000;
    // Watchers start at different moments: before any append, and while appends are running, at
    // different cursors, so the replay→live switch races the writers.
    const headReached = new Map<number, () => void>();
    const whenHead = (n: number): Promise<void> => new Promise((resolve) => headReached.set(n, resolve));
    const received: Event[][] = Array.from({ length: watchers }, () => []);
    const afterSeqs: number[] = [];
    const startWatcher = async (w: number, afterSeq: number): Promise<void> => {
      afterSeqs[w] = afterSeq;
      // Odd watchers take batches (up to 7 events): the same guarantees must hold.
      const stream = w % 2 === 0 ? log.watchBatches("conv", { afterSeq }) : log.watchBatches("conv", { afterSeq, maxBatch: 7 });
      for await (const batch of stream) {
        expect(batch.length).toBeGreaterThan(0);
        expect(batch.length).toBeLessThanOrEqual(w % 2 === 0 ? 1 : 7);
        for (const e of batch) {
          received[w]!.push(e);
          if (e.payload.case === "pauseEvent") return; // the end marker, appended last
        }
      }
    };
    const watching: Promise<void>[] = [];
    for (let w = 0; w < 4; w++) watching.push(startWatcher(w, 0));
    for (let w = 4; w < watchers; w++) {
      watching.push(whenHead(200 * (w - 3)).then(async () => startWatcher(w, w % 2 === 0 ? 0 : (await log.headSeq("conv")) - 7)));
    }
    let appended = 0;
    const writing = Array.from({ length: writers }, async (_, i) => {
      let n = 0;
      while (Date.now() < deadline) {
        const size = 1 + ((i + n++) % 4);
        const batch = Array.from({ length: size }, (_, j) => (j % 2 ? action(`w${i}`) : message(`w${i}-${n}-${j}`)));
        const stored = await log.append("conv", batch);
        appended += stored.length;
        const head = Number(stored[stored.length - 1]!.seq);
        for (const [threshold, fire] of headReached) if (head >= threshold) fire();
        if (n % 50 === 0) log.publishTransient("conv", delta(`w${i}`));
      }
    });
    await Promise.all(writing);
    for (const fire of headReached.values()) fire(); // in case a threshold was not reached
    const [end] = await log.append("conv", [create(EventSchema, { source: EventSource.USER, payload: { case: "pauseEvent", value: {} } })]);
    await Promise.all(watching);
    const final = Number(end!.seq);
    expect(final).toBe(appended + 1);
    expect(final).toBeGreaterThan(500);
    const storedIds = new Map<number, string>();
    for await (const e of log.read("conv")) storedIds.set(Number(e.seq), e.id);
    for (let w = 0; w < watchers; w++) {
      const stored = received[w]!.filter((e) => e.seq > 0n);
      const expected = Array.from({ length: final - afterSeqs[w]! }, (_, i) => afterSeqs[w]! + 1 + i);
      expect(stored.map((e) => Number(e.seq)), `watcher ${w}`).toEqual(expected);
      for (const e of stored) expect(e.id).toBe(storedIds.get(Number(e.seq)));
    }
    expect(log.watcherCount("conv")).toBe(0);
  });

  it("ends a stalled watcher without slowing the producer or 100 other watchers, with bounded memory", { timeout: 60_000 }, async () => {
    const limit = 256;
    log = new EventLog(store.events, { watcherQueueLimit: limit });
    const total = 3_000;
    const stalled = log.watch("conv");
    const stalledFirst = stalled.next(); // subscribes, then is never read again until the end
    const readers = Array.from({ length: 100 }, async () => {
      let count = 0;
      for await (const e of log.watch("conv")) if (++count === total || Number(e.seq) === total) break;
      return count;
    });
    const hub = (log as unknown as { hub: { subscribers: Map<string, Set<{ queued: number }>> } }).hub;
    let maxQueued = 0;
    for (let i = 0; i < total; i += 50) {
      await log.append("conv", Array.from({ length: 50 }, (_, j) => message(`p${i + j}`)));
      for (const s of hub.subscribers.get("conv") ?? []) maxQueued = Math.max(maxQueued, s.queued);
    }
    // Every reader got everything while the stalled watcher never read.
    expect(await Promise.all(readers)).toEqual(Array.from({ length: 100 }, () => total));
    expect(maxQueued).toBeLessThanOrEqual(limit);
    // The stalled watcher was detached (its queue dropped) and learns where to resume.
    expect(log.watcherCount("conv")).toBe(0);
    const firstSeq = Number((await stalledFirst).value?.seq ?? 0);
    const err = await rejection(stalled.next());
    expect(err.code).toBe("resource_exhausted");
    expect(err.message).toMatch(new RegExp(`fell more than ${limit} events behind; resume from seq ${firstSeq + 1}$`));
    expect(err.metadata.resume_from_seq).toBe(String(firstSeq + 1));
  });

  it("fails a read of a corrupt event with data_loss only for that event", async () => {
    const stored = await log.append("conv", [message("a"), message("b"), message("c")]);
    // A body that is not an Event (a stray length-delimited field 5 with a bad length).
    await store.events.append("conv", [{ id: "corrupt", kind: "MessageEvent", source: "user", timestampMs: 1, body: new Uint8Array([0x2a, 0x7f]) }]);
    expect((await rejection(log.get("conv", "corrupt"))).code).toBe("data_loss");
    expect((await log.get("conv", stored[1]!.id)).seq).toBe(2n);
    expect((await log.search("conv", { limit: 3 })).items).toHaveLength(3);
    expect(await log.count("conv")).toBe(4);
  });
});
