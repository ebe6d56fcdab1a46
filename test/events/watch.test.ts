/**
 * WatchEvents on the real server (gRPC, Connect, gRPC-Web) and the events WebSocket through the
 * gateway: full_state first, replay-then-live with no gap and no duplicate under racing appends,
 * after_seq beyond the head, a stalled subscriber ended with ResourceExhausted while others keep
 * up, keepalives, NotFound, and clean ends on shutdown.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecutionStatus } from "../../gen/agentd/v1/conversation_pb.js";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import type { WatchEventsRequestSchema, WatchEventsResponse } from "../../gen/agentd/v1/event_service_pb.js";
import { equals, type MessageInitShape } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/agentd/v1/event_pb.js";
import { ErrorDetailSchema } from "../../gen/agentd/v1/error_detail_pb.js";
import { transport, type TransportKind } from "../helpers/clients.js";
import { connectWs } from "../helpers/ws.js";
import {
  delta,
  logConversationState,
  message,
  startEventServiceServer,
  startEventsServer,
  stateUpdate,
  textOf,
  type EventsServer,
} from "./harness.js";

/** A WatchEvents stream read one item at a time. */
class Watch {
  private readonly abort = new AbortController();
  private readonly it: AsyncIterator<WatchEventsResponse>;

  constructor(client: Client<typeof EventService>, req: MessageInitShape<typeof WatchEventsRequestSchema>) {
    this.it = client.watchEvents(req, { signal: this.abort.signal })[Symbol.asyncIterator]();
  }

  async next(): Promise<WatchEventsResponse> {
    const r = await this.it.next();
    if (r.done === true) throw new Error("the stream ended");
    return r.value;
  }

  /** The next event, skipping keepalives. */
  async event(): Promise<Event> {
    for (;;) {
      const item = (await this.next()).item;
      if (item.case === "event") return item.value;
    }
  }

  /** Events until one with seq `seq` (inclusive), skipping keepalives and transients. */
  async until(seq: number): Promise<Event[]> {
    const out: Event[] = [];
    for (;;) {
      const e = await this.event();
      if (e.seq === 0n) continue;
      out.push(e);
      if (Number(e.seq) >= seq) return out;
    }
  }

  /** Reads to the end: "ok" for a normal end, or the error (items read on the way are returned). */
  async end(): Promise<{ items: WatchEventsResponse[]; error?: ConnectError }> {
    const items: WatchEventsResponse[] = [];
    try {
      for (;;) {
        const r = await this.it.next();
        if (r.done === true) return { items };
        items.push(r.value);
      }
    } catch (err) {
      return { items, error: ConnectError.from(err) };
    }
  }

  close(): void {
    this.abort.abort();
  }
}

function expectFullState(item: WatchEventsResponse, conversationId: string): void {
  expect(item.item.case).toBe("event");
  const e = item.item.value as Event;
  expect(e.seq).toBe(0n);
  expect(e.payload.case).toBe("conversationStateUpdateEvent");
  const update = e.payload.value as { key: string; value?: { kind: { case: string; value: { fields: Record<string, { kind: { value: unknown } }> } } } };
  expect(update.key).toBe("full_state");
  expect(update.value?.kind.case).toBe("structValue");
  expect(update.value?.kind.value.fields.id?.kind.value).toBe(conversationId);
}

const seqs = (events: readonly Event[]) => events.map((e) => Number(e.seq));
const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);

let server: EventsServer;

beforeAll(async () => {
  server = await startEventsServer();
});

afterAll(async () => {
  await server.close();
});

// Binary calls get pre-encoded events, JSON calls plain messages: both are covered.
const KINDS: TransportKind[] = ["grpc", "connect-h1", "connect-json-h1", "grpc-web-h2"];

describe.each(KINDS)("WatchEvents over %s", (kind) => {
  let client: Client<typeof EventService>;
  beforeAll(() => {
    client = createClient(EventService, transport(server.url, kind));
  });

  it("sends full_state first, then the backlog, then live and transient events in order", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    await log.append(conv, [message("one"), message("two"), message("three")]);
    const w = new Watch(client, { conversationId: conv });
    try {
      expectFullState(await w.next(), conv);
      expect((await w.until(3)).map(textOf)).toEqual(["one", "two", "three"]);
      const [stored4] = await log.append(conv, [message("four")]);
      log.publishTransient(conv, delta("tok"));
      await log.append(conv, [message("five")]);
      const four = await w.event();
      const tok = await w.event();
      const five = await w.event();
      expect([four.seq, textOf(four)]).toEqual([4n, "four"]);
      // Live events are sent pre-encoded on binary calls: exactly the stored event arrives.
      expect(equals(EventSchema, four, stored4!)).toBe(true);
      expect(tok.seq).toBe(0n);
      expect(tok.payload.case).toBe("streamingDeltaEvent");
      expect([five.seq, textOf(five)]).toEqual([5n, "five"]);
    } finally {
      w.close();
    }
  });

  it("replays from after_seq, or nothing with live_only", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    await log.append(conv, range(1, 6).map((i) => message(`e${i}`)));
    const from4 = new Watch(client, { conversationId: conv, afterSeq: 4n });
    const live = new Watch(client, { conversationId: conv, liveOnly: true });
    try {
      expectFullState(await from4.next(), conv);
      expectFullState(await live.next(), conv);
      expect(seqs(await from4.until(6))).toEqual([5, 6]);
      await log.append(conv, [message("e7")]);
      expect(seqs(await from4.until(7))).toEqual([7]);
      expect(seqs(await live.until(7))).toEqual([7]);
    } finally {
      from4.close();
      live.close();
    }
  });

  it("sends batches of up to max_batch events with max_batch > 1: the same events, each exactly once", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    const stored = await log.append(conv, range(1, 7).map((i) => message(`e${i}`)));
    const w = new Watch(client, { conversationId: conv, maxBatch: 3 });
    const batch = async (): Promise<Event[]> => {
      for (;;) {
        const item = (await w.next()).item;
        if (item.case === "events") return item.value.events;
        expect(item.case).toBe("keepalive"); // never a single `event` on a batched stream
      }
    };
    try {
      const [state] = await batch();
      expect(state?.seq).toBe(0n);
      expect(state?.payload.case).toBe("conversationStateUpdateEvent");
      expect([seqs(await batch()), seqs(await batch()), seqs(await batch())]).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
      const more = await log.append(conv, [message("e8"), message("e9")]);
      const live = await batch();
      expect(seqs(live).slice(0, 1)).toEqual([8]); // 8 alone or 8 and 9, as they became ready
      const all = live.length === 2 ? live : [...live, ...(await batch())];
      expect(seqs(all)).toEqual([8, 9]);
      // Binary calls build the batch from the stored events' encodings: identical events arrive.
      [...stored, ...more].slice(7).forEach((e, i) => expect(equals(EventSchema, all[i]!, e)).toBe(true));
      expect(textOf(all[1]!)).toBe("e9");
    } finally {
      w.close();
    }
    const err = await new Watch(client, { conversationId: conv, maxBatch: 1001 }).end();
    expect(err.error?.code).toBe(Code.InvalidArgument);
    expect(err.error?.rawMessage).toContain("max_batch");
  });

  it("gives each batched watcher its own events when some are sent the same batch and others overlapping ones", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    await log.append(conv, range(1, 4).map((i) => message(`e${i}`)));
    // Until seq `last`: the events of each batch received, skipping the full_state and keepalives.
    const batchesUntil = async (w: Watch, last: number): Promise<Event[][]> => {
      const out: Event[][] = [];
      while (Number(out.at(-1)?.at(-1)?.seq ?? 0) < last) {
        const item = (await w.next()).item;
        if (item.case === "keepalive") continue;
        expect(item.case).toBe("events");
        if (item.case !== "events") break;
        const events = item.value.events.filter((e) => e.seq !== 0n);
        if (events.length > 0) out.push(events);
      }
      return out;
    };
    // Two watchers that keep up get the same batches; a third takes two events at a time, so its
    // batches start at the same events with other lengths; a fourth starts mid-way.
    const watchers = [
      new Watch(client, { conversationId: conv, maxBatch: 50 }),
      new Watch(client, { conversationId: conv, maxBatch: 50 }),
      new Watch(client, { conversationId: conv, maxBatch: 2 }),
      new Watch(client, { conversationId: conv, maxBatch: 50, afterSeq: 2n }),
    ];
    try {
      for (const w of watchers) await batchesUntil(w, 4);
      const appended = await log.append(conv, range(5, 9).map((i) => message(`e${i}`)));
      const received = await Promise.all(watchers.map((w) => batchesUntil(w, 9)));
      for (const [i, batches] of received.entries()) {
        const events = batches.flat();
        expect(seqs(events), `watcher ${i}`).toEqual([5, 6, 7, 8, 9]);
        events.forEach((e, j) => expect(equals(EventSchema, e, appended[j]!)).toBe(true));
        expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(i === 2 ? 2 : 50);
      }
    } finally {
      for (const w of watchers) w.close();
    }
  });
});

describe("WatchEvents semantics", () => {
  let client: Client<typeof EventService>;
  beforeAll(() => {
    client = createClient(EventService, transport(server.url, "grpc"));
  });

  it("gives every watcher every event exactly once, in seq order, while 8 writers race watchers joining", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    const WRITERS = 8;
    const PER_WRITER = 120;
    const total = WRITERS * PER_WRITER;
    const watchers: { after: number; done: Promise<Event[]>; w: Watch }[] = [];
    let written = 0;
    const writers = Array.from({ length: WRITERS }, async (_, writer) => {
      for (let i = 0; i < PER_WRITER; i++) {
        await log.append(conv, [message(`w${writer}-${i}`)]);
        written++;
        // Watchers join while appends are in flight, from various cursors (some ahead of the head).
        if (writer === 0 && i % 15 === 7) {
          const head = await log.headSeq(conv);
          const after = [0, Math.floor(head / 2), head, head + 3][watchers.length % 4]!;
          const w = new Watch(client, { conversationId: conv, afterSeq: BigInt(after) });
          watchers.push({ after, w, done: w.until(total) });
        }
      }
    });
    await Promise.all(writers);
    expect(written).toBe(total);
    expect(watchers.length).toBeGreaterThanOrEqual(8);
    try {
      for (const { after, done } of watchers) expect(seqs(await done)).toEqual(range(after + 1, total));
    } finally {
      for (const { w } of watchers) w.close();
    }
  });

  it("waits when after_seq is beyond the head, then sends only events after it", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    await log.append(conv, [message("a"), message("b"), message("c")]);
    const w = new Watch(client, { conversationId: conv, afterSeq: 10n });
    try {
      expectFullState(await w.next(), conv);
      await log.append(conv, range(4, 12).map((i) => message(`e${i}`)));
      expect(seqs(await w.until(12))).toEqual([11, 12]);
    } finally {
      w.close();
    }
  });

  it("answers NotFound for an unknown conversation, and ends watchers of a deleted one with NotFound", async () => {
    const unknown = await new Watch(client, { conversationId: randomUUID() }).end();
    expect(unknown.items).toEqual([]);
    expect(unknown.error?.code).toBe(Code.NotFound);
    const conv = await server.newConversation();
    const w = new Watch(client, { conversationId: conv });
    expectFullState(await w.next(), conv);
    server.domain.events.endWatchers(conv);
    const ended = await w.end();
    expect(ended.error?.code).toBe(Code.NotFound);
  });

  it("rejects an after_seq no seq can reach", async () => {
    const conv = await server.newConversation();
    const r = await new Watch(client, { conversationId: conv, afterSeq: 2n ** 63n }).end();
    expect(r.error?.code).toBe(Code.InvalidArgument);
  });

  it("ends a stalled subscriber with ResourceExhausted naming the resume seq; the producer and another watcher are not held back", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    const stalled = new Watch(client, { conversationId: conv });
    const reader = new Watch(client, { conversationId: conv });
    try {
      expectFullState(await stalled.next(), conv);
      expectFullState(await reader.next(), conv);
      expect(log.watcherCount(conv)).toBe(2);
      const TOTAL = 6000; // > the 4096-event queue plus whatever HTTP/2 flow control buffers
      const pad = "x".repeat(1000);
      const received: Event[] = [];
      const started = performance.now();
      for (let i = 0; i < TOTAL; i += 200) {
        await log.append(conv, range(i + 1, i + 200).map((n) => message(`${n} ${pad}`)));
        // The reader keeps up (it is in this process, so the producer lets it catch up); the
        // stalled one never reads.
        received.push(...(await reader.until(i + 200)));
      }
      const elapsed = performance.now() - started;
      expect(seqs(received)).toEqual(range(1, TOTAL));
      // The stalled subscriber's queue overflowed during those appends: it is detached already,
      // its queue released.
      expect(log.watcherCount(conv)).toBe(1);
      expect(elapsed).toBeLessThan(20_000);
      // Reading again: what was already in flight, then the error naming where to resume.
      const rest = await stalled.end();
      const delivered = rest.items.flatMap((i) => (i.item.case === "event" ? [Number(i.item.value.seq)] : []));
      expect(delivered).toEqual(range(1, delivered.length));
      expect(delivered.length).toBeLessThan(TOTAL);
      expect(rest.error?.code).toBe(Code.ResourceExhausted);
      expect(rest.error?.rawMessage).toContain(`resume from seq ${delivered.length + 1}`);
      const detail = rest.error!.findDetails(ErrorDetailSchema)[0];
      expect(detail?.reason).toBe("SUBSCRIBER_QUEUE_FULL");
      expect(detail?.metadata.resume_from_seq).toBe(String(delivered.length + 1));
      // Resuming from there continues without a gap.
      const resumed = new Watch(client, { conversationId: conv, afterSeq: BigInt(delivered.length) });
      expectFullState(await resumed.next(), conv);
      expect(seqs(await resumed.until(TOTAL))).toEqual(range(delivered.length + 1, TOTAL));
      resumed.close();
    } finally {
      stalled.close();
      reader.close();
    }
  });

  it("sends keepalives with the head seq and status after the interval of silence", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    await log.append(conv, [message("a"), stateUpdate("execution_status", "running")]);
    const own = await startEventServiceServer({ events: log, conversationState: logConversationState(log), keepAliveIntervalMs: 50 });
    const c = createClient(EventService, transport(own.url, "grpc"));
    const w = new Watch(c, { conversationId: conv });
    try {
      const first = await w.next();
      expectFullState(first, conv);
      expect(seqs(await w.until(2))).toEqual([1, 2]);
      const t0 = performance.now();
      const ka = await w.next();
      expect(performance.now() - t0).toBeGreaterThanOrEqual(30);
      expect(ka.item.case).toBe("keepalive");
      if (ka.item.case !== "keepalive") return;
      expect(ka.item.value.headSeq).toBe(2n);
      expect(ka.item.value.executionStatus).toBe(ExecutionStatus.RUNNING);
      expect(Math.abs(Number(ka.item.value.time!.seconds) * 1000 - Date.now())).toBeLessThan(5000);
      await log.append(conv, [stateUpdate("execution_status", "finished")]);
      expect(seqs(await w.until(3))).toEqual([3]);
      const ka2 = await w.next();
      expect(ka2.item.case === "keepalive" && [ka2.item.value.headSeq, ka2.item.value.executionStatus]).toEqual([3n, ExecutionStatus.FINISHED]);
    } finally {
      w.close();
      await own.close();
    }
  });

  it("ends open streams with OK when the server shuts down", async () => {
    const other = await startEventsServer();
    const conv = await other.newConversation();
    const c = createClient(EventService, transport(other.url, "grpc"));
    const w = new Watch(c, { conversationId: conv });
    expectFullState(await w.next(), conv);
    await other.domain.events.append(conv, [message("last")]);
    expect(seqs(await w.until(1))).toEqual([1]);
    const ended = w.end();
    await other.close();
    const r = await ended;
    expect(r.error).toBeUndefined();
  });
});

describe("the events WebSocket through the gateway", () => {
  const wsUrl = () => server.url.replace(/^http/, "ws");

  it("sends full_state, replays with resend_all, then streams live events as OpenHands JSON (seq on request)", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    await log.append(conv, [message("hello"), message("world")]);
    const c = connectWs(`${wsUrl()}/sockets/events/${conv}?resend_all=true&agentd_extensions=true`);
    try {
      expect(await c.opened).toEqual({ ok: true });
      const state = await c.next();
      expect(state).toMatchObject({ kind: "ConversationStateUpdateEvent", key: "full_state", value: { id: conv }, seq: 0 });
      expect(state.id).toMatch(/^[0-9a-f-]{36}$/);
      const replay = [await c.next(), await c.next()];
      expect(replay.map((f) => [f.kind, f.seq, (f.llm_message as { content: { text: string }[] }).content[0]!.text])).toEqual([
        ["MessageEvent", 1, "hello"],
        ["MessageEvent", 2, "world"],
      ]);
      await log.append(conv, [message("live")]);
      const live = await c.next();
      expect([live.seq, (live.llm_message as { content: { text: string }[] }).content[0]!.text]).toEqual([3, "live"]);
    } finally {
      await c.close();
    }
  });

  it("resumes after after_seq, and without a resend option sends only live events", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    await log.append(conv, range(1, 5).map((i) => message(`e${i}`)));
    const resumed = connectWs(`${wsUrl()}/sockets/events/${conv}?after_seq=3`);
    const liveOnly = connectWs(`${wsUrl()}/sockets/events/${conv}`);
    try {
      expect((await resumed.next()).key).toBe("full_state");
      expect((await liveOnly.next()).key).toBe("full_state");
      expect([(await resumed.next()).seq, (await resumed.next()).seq]).toEqual([4, 5]);
      await log.append(conv, [message("e6")]);
      expect((await resumed.next()).seq).toBe(6);
      // Without after_seq or agentd_extensions the frames are plain OpenHands JSON (no seq).
      const plain = await liveOnly.next();
      expect(plain).toMatchObject({ kind: "MessageEvent", llm_message: { content: [{ text: "e6" }] } });
      expect(plain).not.toHaveProperty("seq");
    } finally {
      await resumed.close();
      await liveOnly.close();
    }
  });

  it("closes with 4004 for an unknown conversation", async () => {
    const c = connectWs(`${wsUrl()}/sockets/events/${randomUUID()}`);
    const closed = await c.closed;
    expect(closed.code).toBe(4004);
  });
});
