/**
 * SearchEvents, CountEvents, GetEvent, BatchGetEvents on the real server, over gRPC, Connect
 * (binary and JSON) and gRPC-Web, against a log written through the server's own EventLog.
 */
import { randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSource } from "../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import { EventService, EventSortOrder } from "../../gen/agentd/v1/event_service_pb.js";
import { OPENHANDS_EVENT_FQN } from "../../src/domain/events/event-kinds.js";
import { transport, type TransportKind } from "../helpers/clients.js";
import { action, connectErrorOf, message, observation, pause, startEventsServer, textOf, type EventsServer } from "./harness.js";

let server: EventsServer;
let conv: string;
/** Every event of `conv`, as stored (seq 1..28). */
let stored: Event[];
/** Append time of seq 1..5 and of seq 6..28 (distinct milliseconds). */
let t1: number;
let t2: number;

function ms(e: Event): number {
  return Number(e.timestamp!.seconds) * 1000 + e.timestamp!.nanos / 1e6;
}

beforeAll(async () => {
  server = await startEventsServer();
  conv = await server.newConversation();
  const log = server.domain.events;
  const first = await log.append(conv, [message("Hello World"), action("terminal"), observation("terminal"), message("the answer is 42", EventSource.AGENT), pause()]);
  t1 = ms(first[0]!);
  // The next batch must carry a later timestamp: wait for the clock to move on.
  while (Date.now() <= t1) await new Promise((r) => setImmediate(r));
  const second = await log.append(conv, [message("second HELLO"), action("file_editor"), observation("file_editor")]);
  t2 = ms(second[0]!);
  const rest: Event[] = [];
  for (let i = 9; i <= 28; i++) rest.push(message(`m${i}`, i % 2 === 0 ? EventSource.USER : EventSource.AGENT));
  await log.append(conv, rest);
  stored = [];
  for await (const e of log.read(conv)) stored.push(e);
});

afterAll(async () => {
  await server.close();
});

const seqs = (events: readonly Event[]) => events.map((e) => Number(e.seq));
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

const KINDS: TransportKind[] = ["grpc", "connect-h1", "connect-json-h1", "grpc-web-h1"];

describe.each(KINDS)("EventService over %s", (kind) => {
  let events: Client<typeof EventService>;
  beforeAll(() => {
    events = createClient(EventService, transport(server.url, kind));
  });

  async function searchAll(req: Parameters<typeof events.searchEvents>[0]): Promise<{ items: Event[]; pages: number }> {
    const items: Event[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await events.searchEvents({ ...req, pageToken });
      items.push(...page.items);
      pageToken = page.nextPageToken;
      pages++;
      expect(pages).toBeLessThan(100);
    } while (pageToken !== "");
    return { items, pages };
  }

  it("returns the whole log in seq order with ids, seqs and append timestamps", async () => {
    const page = await events.searchEvents({ conversationId: conv });
    expect(page.nextPageToken).toBe("");
    expect(seqs(page.items)).toEqual(range(1, 28));
    expect(page.items.map((e) => e.id)).toEqual(stored.map((e) => e.id));
    expect(page.items[0]!.payload.case).toBe("messageEvent");
    expect(textOf(page.items[0]!)).toBe("Hello World");
    expect(ms(page.items[0]!)).toBe(t1);
    expect(ms(page.items[5]!)).toBe(t2);
    const desc = await events.searchEvents({ conversationId: conv, sortOrder: EventSortOrder.TIMESTAMP_DESC });
    expect(seqs(desc.items)).toEqual(range(1, 28).reverse());
  });

  it("pages with opaque tokens in both orders, with no gap or repeat", async () => {
    const asc = await searchAll({ conversationId: conv, pageSize: 5 });
    expect(asc.pages).toBe(6);
    expect(seqs(asc.items)).toEqual(range(1, 28));
    const desc = await searchAll({ conversationId: conv, pageSize: 3, sortOrder: EventSortOrder.TIMESTAMP_DESC });
    expect(desc.pages).toBe(10);
    expect(seqs(desc.items)).toEqual(range(1, 28).reverse());
    const filtered = await searchAll({ conversationId: conv, pageSize: 2, filter: { kind: "MessageEvent", source: EventSource.USER } });
    expect(seqs(filtered.items)).toEqual([1, 6, ...range(9, 28).filter((i) => i % 2 === 0)]);
  });

  it("filters by kind (short and OpenHands fully-qualified name), source, body and time", async () => {
    const q = async (filter: Parameters<typeof events.searchEvents>[0]["filter"]) => seqs((await events.searchEvents({ conversationId: conv, filter })).items);
    expect(await q({ kind: "ActionEvent" })).toEqual([2, 7]);
    expect(await q({ kind: OPENHANDS_EVENT_FQN.ActionEvent! })).toEqual([2, 7]);
    expect(await q({ kind: "PauseEvent" })).toEqual([5]);
    expect(await q({ kind: "CondensationSummaryEvent" })).toEqual([]);
    expect(await q({ source: EventSource.ENVIRONMENT })).toEqual([3, 8]);
    expect(await q({ source: EventSource.AGENT })).toEqual([2, 4, 7, ...range(9, 28).filter((i) => i % 2 === 1)]);
    expect(await q({ kind: "MessageEvent", source: EventSource.AGENT })).toEqual([4, ...range(9, 28).filter((i) => i % 2 === 1)]);
    expect(await q({ body: "hello" })).toEqual([1, 6]);
    expect(await q({ body: "ANSWER IS" })).toEqual([4]);
    expect(await q({ body: "hello", kind: "ActionEvent" })).toEqual([]);
    expect(await q({ timestampGte: timestampFromMs(t2) })).toEqual(range(6, 28));
    expect(await q({ timestampLt: timestampFromMs(t2) })).toEqual(range(1, 5));
    expect(await q({ timestampGte: timestampFromMs(t1), timestampLt: timestampFromMs(t2) })).toEqual(range(1, 5));
    expect(await q({ timestampGte: timestampFromMs(t2 + 60_000) })).toEqual([]);
    expect(await q({ timestampGte: timestampFromMs(t2), kind: "ObservationEvent" })).toEqual([8]);
  });

  it("counts with and without filters", async () => {
    const count = async (filter?: Parameters<typeof events.countEvents>[0]["filter"]) => Number((await events.countEvents({ conversationId: conv, filter })).count);
    expect(await count()).toBe(28);
    expect(await count({ kind: "MessageEvent" })).toBe(23);
    expect(await count({ kind: OPENHANDS_EVENT_FQN.ObservationEvent! })).toBe(2);
    expect(await count({ source: EventSource.USER })).toBe(13);
    expect(await count({ kind: "MessageEvent", source: EventSource.AGENT })).toBe(11);
    expect(await count({ body: "hello" })).toBe(2);
    expect(await count({ timestampLt: timestampFromMs(t2) })).toBe(5);
    expect(await count({ timestampGte: timestampFromMs(t2), source: EventSource.AGENT })).toBe(11);
  });

  it("gets one event by id, and a batch in request order with empty slots for unknown ids", async () => {
    const target = stored[6]!;
    const one = await events.getEvent({ conversationId: conv, eventId: target.id });
    expect(one.event?.id).toBe(target.id);
    expect(one.event?.seq).toBe(7n);
    expect(one.event?.payload.case).toBe("actionEvent");
    const missing = randomUUID();
    const batch = await events.batchGetEvents({ conversationId: conv, eventIds: [stored[2]!.id, missing, stored[0]!.id, "not an id!"] });
    expect(batch.events.map((s) => s.event?.seq)).toEqual([3n, undefined, 1n, undefined]);
    const err = await connectErrorOf(events.getEvent({ conversationId: conv, eventId: missing }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain(missing);
  });

  it("accepts the conversation id as 32 hex digits", async () => {
    const hex = conv.replaceAll("-", "").toUpperCase();
    expect((await events.countEvents({ conversationId: hex })).count).toBe(28n);
  });

  it("answers NotFound for an unknown conversation on every RPC", async () => {
    const unknown = randomUUID();
    const calls: (() => Promise<unknown>)[] = [
      () => events.searchEvents({ conversationId: unknown }),
      () => events.countEvents({ conversationId: unknown }),
      () => events.getEvent({ conversationId: unknown, eventId: stored[0]!.id }),
      () => events.batchGetEvents({ conversationId: unknown, eventIds: [stored[0]!.id] }),
      () => events.searchEvents({ conversationId: "definitely not a uuid" }),
    ];
    for (const call of calls) {
      const err = await connectErrorOf(call());
      expect(err.code).toBe(Code.NotFound);
    }
  });

  it("rejects bad input with InvalidArgument naming it", async () => {
    const bad = async (p: Promise<unknown>, pattern: RegExp) => {
      const err = await connectErrorOf(p);
      expect(err.code, err.message).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(pattern);
    };
    await bad(events.searchEvents({ conversationId: conv, pageSize: 101 }), /page_size 101/);
    await bad(events.searchEvents({ conversationId: conv, pageSize: -1 }), /page_size -1/);
    // Checked before the conversation is looked up.
    await bad(events.searchEvents({ conversationId: randomUUID(), pageSize: 1000 }), /page_size 1000/);
    await bad(events.searchEvents({ conversationId: conv, pageToken: "garbage" }), /token/);
    const page = await events.searchEvents({ conversationId: conv, pageSize: 2 });
    await bad(events.searchEvents({ conversationId: conv, pageSize: 2, pageToken: page.nextPageToken, filter: { kind: "ActionEvent" } }), /other filters/);
    await bad(events.searchEvents({ conversationId: conv, pageSize: 2, pageToken: page.nextPageToken, sortOrder: EventSortOrder.TIMESTAMP_DESC }), /other filters/);
    await bad(events.searchEvents({ conversationId: conv, filter: { source: 42 as EventSource } }), /source 42/);
    await bad(events.countEvents({ conversationId: conv, filter: { source: 42 as EventSource } }), /source 42/);
    await bad(events.searchEvents({ conversationId: conv, sortOrder: 9 as EventSortOrder }), /sort_order 9/);
    // (The JSON codec refuses to encode an invalid Timestamp on the client already.)
    if (kind !== "connect-json-h1") await bad(events.countEvents({ conversationId: conv, filter: { timestampGte: { seconds: 1n, nanos: -5 } } }), /timestamp_gte/);
    await bad(events.countEvents({ conversationId: conv, filter: { kind: "no spaces allowed" } }), /kind/);
    await bad(events.batchGetEvents({ conversationId: conv, eventIds: Array.from({ length: 101 }, () => randomUUID()) }), /101/);
    // And the server keeps answering.
    expect((await events.countEvents({ conversationId: conv })).count).toBe(28n);
  });
});

describe("REST over the gateway", () => {
  it("serves search (OpenHands JSON, exclude_none), count and get from the same log", async () => {
    const base = `${server.url}/api/conversations/${conv}/events`;
    const search = (await (await fetch(`${base}/search?kind=${OPENHANDS_EVENT_FQN.ActionEvent}&limit=1`)).json()) as { items: Record<string, unknown>[]; next_page_id: string | null };
    expect(search.items).toHaveLength(1);
    expect(search.items[0]).toMatchObject({ kind: "ActionEvent", id: stored[1]!.id, source: "agent", tool_name: "terminal" });
    expect(search.items[0]).not.toHaveProperty("parent_id");
    expect(typeof search.next_page_id).toBe("string");
    const next = (await (await fetch(`${base}/search?kind=ActionEvent&limit=1&page_id=${search.next_page_id}`)).json()) as { items: { id: string }[]; next_page_id: string | null };
    expect(next.items.map((e) => e.id)).toEqual([stored[6]!.id]);
    expect(next.next_page_id).toBeNull(); // the last page has no next page: null, as in OpenHands
    expect(await (await fetch(`${base}/count?source=environment`)).json()).toBe(2);
    const one = (await (await fetch(`${base}/${stored[0]!.id}`)).json()) as Record<string, unknown>;
    expect(one).toMatchObject({ kind: "MessageEvent", id: stored[0]!.id });
    const tooMany = await fetch(`${base}/search?limit=101`);
    expect(tooMany.status).toBe(422);
    await tooMany.arrayBuffer();
    const unknown = await fetch(`${server.url}/api/conversations/${randomUUID()}/events/count`);
    expect(unknown.status).toBe(404);
    await unknown.arrayBuffer();
  });
});
