/**
 * EventService: thin handlers over the conversation event log (src/domain/events/event-log.ts).
 *
 * - Conversation ids: dashed or 32-hex-digit UUIDs are normalized to the dashed lower-case form
 *   the log uses; anything else simply names no conversation (NotFound).
 * - SearchEvents / CountEvents filters: `kind` short ("ActionEvent") or OpenHands fully-qualified
 *   name; `source` an EventSource (UNSPECIFIED = any, unknown values InvalidArgument); `body` a
 *   case-insensitive substring of MessageEvent text; `timestamp_gte` / `timestamp_lt` with
 *   sub-millisecond precision (stored timestamps are whole milliseconds). `page_size` 0 means 100,
 *   anything else outside 1..100 is InvalidArgument (checked before the conversation is looked up);
 *   page tokens are opaque and bound to the filters and order they were issued for.
 * - WatchEvents: first a transient ConversationStateUpdateEvent `full_state` (seq 0) whose value
 *   is the conversation's OpenHands ConversationState JSON, then stored events with
 *   seq > after_seq (none with live_only), then live events, with no gap and no duplicate. After
 *   `keepAliveIntervalMs` (default 15 s) without a message an EventKeepAlive {head_seq,
 *   execution_status, time} is sent. The stream ends with OK when the client goes away or the
 *   server shuts down, ResourceExhausted (naming the seq to resume from) when the subscriber falls
 *   more than the log's queue limit behind, NotFound when the conversation is deleted. With
 *   `max_batch` > 1 events come in `events` batches of what is ready at once (EventLog.watchBatches);
 *   binary calls build a batch from the events' shared encodings, without encoding per watcher.
 * - SendMessage and RespondToConfirmation belong to the conversation engine: they are delegated
 *   to `deps.sendMessage` / `deps.respondToConfirmation` and answer Unimplemented without them.
 */
import { randomUUID } from "node:crypto";
import { create, fromJson, type JsonValue, type UnknownField } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromMs, timestampNow, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { EventSchema, EventSource } from "../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import {
  EventBatchSchema,
  EventKeepAliveSchema,
  EventSortOrder,
  SearchEventsResponseSchema,
  WatchEventsResponseSchema,
} from "../../gen/agentd/v1/event_service_pb.js";
import type { EventFilter as ProtoEventFilter, EventService, WatchEventsResponse } from "../../gen/agentd/v1/event_service_pb.js";
import type { ExecutionStatus } from "../../gen/agentd/v1/conversation_pb.js";
import type { EventFilter, EventLog } from "../domain/events/event-log.js";
import { MAX_PAGE_SIZE } from "../domain/events/event-log.js";
import { AgentdError } from "../errors.js";
import { encodeMessage } from "../codec/binary-encode.js";
import { isSerialized } from "./in-process.js";
import { KEEPALIVE_DUE, withKeepAlives } from "./keep-alives.js";

/** Default silence after which WatchEvents sends a keepalive (the contract says 15 s). */
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 15_000;

/** What WatchEvents needs to know about a conversation beyond its log. */
export interface ConversationStateSource {
  /** The OpenHands ConversationState JSON (the `full_state` value). @throws AgentdError not_found. */
  fullState(conversationId: string): Promise<JsonValue>;
  /** The conversation's current status (for keepalives). @throws AgentdError not_found. */
  status(conversationId: string): ExecutionStatus | Promise<ExecutionStatus>;
}

type Impl = ServiceImpl<typeof EventService>;

export interface EventServiceDeps {
  /** The server's event log (one instance, owned and closed by the modules). */
  events: EventLog;
  /** Snapshot and status of a conversation (the conversation manager). */
  conversationState: ConversationStateSource;
  /** Aborted when the server begins shutting down: open watches end with OK. */
  shutdownSignal: AbortSignal;
  /** Silence after which WatchEvents sends a keepalive (default 15 000 ms). */
  keepAliveIntervalMs?: number;
  /** SendMessage, implemented by the conversation engine; absent: Unimplemented. */
  sendMessage?: Impl["sendMessage"];
  /** RespondToConfirmation, implemented by the conversation engine; absent: Unimplemented. */
  respondToConfirmation?: Impl["respondToConfirmation"];
}

const ORDERS: Readonly<Record<number, "asc" | "desc">> = {
  [EventSortOrder.UNSPECIFIED]: "asc",
  [EventSortOrder.TIMESTAMP]: "asc",
  [EventSortOrder.TIMESTAMP_DESC]: "desc",
};

const KNOWN_SOURCES: ReadonlySet<number> = new Set([EventSource.AGENT, EventSource.USER, EventSource.ENVIRONMENT, EventSource.HOOK]);

const UUID_DASHED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UUID_HEX = /^[0-9a-f]{32}$/i;

/** A UUID conversation id in the dashed lower-case form the log uses; other strings unchanged. */
export function conversationIdOf(id: string): string {
  if (UUID_DASHED.test(id)) return id.toLowerCase();
  if (UUID_HEX.test(id)) {
    const h = id.toLowerCase();
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  return id;
}

/** Proto filter → domain filter. @throws AgentdError invalid_argument (unknown source, bad timestamp). */
export function filterOf(f: ProtoEventFilter | undefined): EventFilter {
  if (f === undefined) return {};
  if (f.source !== EventSource.UNSPECIFIED && !KNOWN_SOURCES.has(f.source)) {
    throw new AgentdError("invalid_argument", `invalid filter.source ${f.source}: expected one of agent, user, environment, hook`, { source: String(f.source) });
  }
  return {
    kind: f.kind,
    source: f.source === EventSource.UNSPECIFIED ? undefined : f.source,
    body: f.body,
    timestampGteMs: f.timestampGte === undefined ? undefined : msOf(f.timestampGte, "filter.timestamp_gte"),
    timestampLtMs: f.timestampLt === undefined ? undefined : msOf(f.timestampLt, "filter.timestamp_lt"),
  };
}

/** Milliseconds since the epoch, fractions kept. @throws AgentdError invalid_argument. */
function msOf(ts: Timestamp, name: string): number {
  // google.protobuf.Timestamp's valid range: 0001-01-01 .. 9999-12-31, nanos 0..999 999 999.
  if (ts.nanos < 0 || ts.nanos > 999_999_999 || ts.seconds < -62_135_596_800n || ts.seconds > 253_402_300_799n) {
    throw new AgentdError("invalid_argument", `invalid ${name}: seconds ${ts.seconds}, nanos ${ts.nanos} is not a valid timestamp`);
  }
  return Number(ts.seconds) * 1000 + ts.nanos / 1e6;
}

function pageSizeOf(n: number): number {
  if (n === 0) return MAX_PAGE_SIZE;
  if (n < 1 || n > MAX_PAGE_SIZE) {
    throw new AgentdError("invalid_argument", `invalid page_size ${n}: expected 1..${MAX_PAGE_SIZE} (0 means ${MAX_PAGE_SIZE})`, { page_size: String(n) });
  }
  return n;
}

function orderOf(o: EventSortOrder): "asc" | "desc" {
  const order = ORDERS[o];
  if (order === undefined) throw new AgentdError("invalid_argument", `invalid sort_order ${o}`, { sort_order: String(o) });
  return order;
}

/** The transient `full_state` event WatchEvents starts with. */
export function fullStateEvent(state: JsonValue): Event {
  return create(EventSchema, {
    id: randomUUID(),
    source: EventSource.ENVIRONMENT,
    timestamp: timestampNow(),
    payload: { case: "conversationStateUpdateEvent", value: { key: "full_state", value: fromJson(ValueSchema, state) } },
  });
}

export function createEventService(deps: EventServiceDeps): Impl {
  const log = deps.events;
  const keepAliveMs = deps.keepAliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS;
  return {
    async searchEvents(req, ctx) {
      const limit = pageSizeOf(req.pageSize);
      const order = orderOf(req.sortOrder);
      const filter = filterOf(req.filter);
      const query = { ...filter, order, limit, pageToken: req.pageToken };
      if (!binaryWire(ctx)) {
        const page = await log.search(conversationIdOf(req.conversationId), query);
        return { items: page.items, nextPageToken: page.nextPageToken };
      }
      // Binary clients get the stored bytes as they are (see encodedMessageField).
      const page = await log.searchEncoded(conversationIdOf(req.conversationId), query);
      const res = create(SearchEventsResponseSchema, { nextPageToken: page.nextPageToken });
      res.$unknown = page.items.map((bytes) => encodedMessageField(SearchEventsResponseSchema.field.items!.number, bytes));
      return res;
    },

    async countEvents(req) {
      const filter = filterOf(req.filter);
      return { count: BigInt(await log.count(conversationIdOf(req.conversationId), filter)) };
    },

    async getEvent(req) {
      return { event: await log.get(conversationIdOf(req.conversationId), req.eventId) };
    },

    async batchGetEvents(req) {
      const found = await log.batchGet(conversationIdOf(req.conversationId), req.eventIds);
      return { events: found.map((event) => (event === null ? {} : { event })) };
    },

    sendMessage(req, ctx) {
      if (deps.sendMessage === undefined) throw new AgentdError("unimplemented", "SendMessage is not available: no conversation engine is wired");
      return deps.sendMessage(req, ctx);
    },

    respondToConfirmation(req, ctx) {
      if (deps.respondToConfirmation === undefined) {
        throw new AgentdError("unimplemented", "RespondToConfirmation is not available: no conversation engine is wired");
      }
      return deps.respondToConfirmation(req, ctx);
    },

    async *watchEvents(req, ctx) {
      const conversationId = conversationIdOf(req.conversationId);
      if (req.afterSeq > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new AgentdError("invalid_argument", `invalid after_seq ${req.afterSeq}: larger than any seq`, { after_seq: String(req.afterSeq) });
      }
      // Our own abort ends the log's watch (and frees its subscription) whenever this generator
      // is closed, whatever the reason.
      const stop = new AbortController();
      const signal = AbortSignal.any([ctx.signal, deps.shutdownSignal, stop.signal]);
      const batched = req.maxBatch > 1;
      const events = log.watchBatches(conversationId, {
        afterSeq: Number(req.afterSeq),
        liveOnly: req.liveOnly,
        signal,
        maxBatch: Math.max(1, req.maxBatch), // 0 = not set: one event per response; the log checks the upper bound
        first: async () => fullStateEvent(await deps.conversationState.fullState(conversationId)),
      });
      const keepAlive = async (): Promise<WatchEventsResponse["item"]> => ({
        case: "keepalive",
        value: create(EventKeepAliveSchema, {
          headSeq: BigInt(await log.headSeq(conversationId)),
          executionStatus: await deps.conversationState.status(conversationId),
          time: timestampFromMs(Date.now()),
        }),
      });
      const binary = binaryWire(ctx);
      try {
        for await (const item of withKeepAlives(events, keepAliveMs, signal)) {
          try {
            if (item === KEEPALIVE_DUE) yield { item: await keepAlive() };
            else if (batched) yield binary ? preEncodedBatch(item) : { item: { case: "events", value: { events: item } } };
            else for (const event of item) yield binary ? preEncoded(event) : { item: { case: "event", value: event } };
          } catch (err) {
            // A write failed because the client went away mid-stream: nothing to report to anyone.
            if (ctx.signal.aborted) return;
            throw err;
          }
        }
      } finally {
        stop.abort();
        await events.return(undefined);
      }
    },
  };
}

// ---- internals ------------------------------------------------------------------------------

/**
 * Fan-out without re-encoding. A live event is one shared object handed to every watcher; encoding
 * it to protobuf once instead of once per watcher is most of the per-watcher cost of a broadcast.
 * The bytes are kept beside the event (the event log's events are immutable) and sent as
 * pre-encoded fields: a response message carries them as unknown fields, which protobuf-es writes
 * verbatim, so the wire bytes are exactly those of the fields set normally. Only for calls
 * serialized as protobuf binary (gRPC, gRPC-Web, Connect+proto); JSON calls get plain messages.
 *
 * - One event: the response's field 1, `event`.
 * - A batch: field 3, `events` (an EventBatch), once per event, each holding that one event as
 *   EventBatch field 1. Protobuf parsers merge repeated occurrences of a message field (the
 *   encoding spec's rule, a conformance requirement, also for a oneof member), so the client
 *   decodes a single EventBatch of all the events, in order. A batch's occurrences are
 *   concatenated once and the result shared by the watchers sent the same events (batchField).
 */
const encodedEvents = new WeakMap<Event, { single: UnknownField; inBatch?: UnknownField }>();

function encodingsOf(event: Event): { single: UnknownField; inBatch?: UnknownField } {
  let e = encodedEvents.get(event);
  if (e === undefined) {
    e = { single: encodedMessageField(WatchEventsResponseSchema.field.event!.number, encodeMessage(EventSchema, event)) };
    encodedEvents.set(event, e);
  }
  return e;
}

function preEncoded(event: Event): WatchEventsResponse {
  const res = create(WatchEventsResponseSchema);
  res.$unknown = [encodingsOf(event).single];
  return res;
}

function preEncodedBatch(events: readonly Event[]): WatchEventsResponse {
  const res = create(WatchEventsResponseSchema);
  res.$unknown = [batchField(events)];
  return res;
}

/** WatchEventsResponse.events, and its tag as written between the occurrences of a batch. */
const EVENTS_FIELD = WatchEventsResponseSchema.field.events!.number;
const EVENTS_TAG = new BinaryWriter().tag(EVENTS_FIELD, WireType.LengthDelimited).finish();

/** The one-event `events` field of an event (see preEncodedBatch). */
function inBatchOf(event: Event): UnknownField {
  const e = encodingsOf(event);
  if (e.inBatch === undefined) {
    // A one-event EventBatch: its `events` field carrying the event's encoding (`single.data`
    // is the length-prefixed event, whatever the field number around it).
    const batchOfOne = new BinaryWriter().tag(EventBatchSchema.field.events!.number, WireType.LengthDelimited).raw(e.single.data).finish();
    e.inBatch = encodedMessageField(EVENTS_FIELD, batchOfOne);
  }
  return e.inBatch;
}

/**
 * Batches recently sent, shared by the watchers that are sent the same events: watchers that keep
 * up are woken in the same turn for the same new events, so one encoding serves all of them.
 * Keyed by the first event object and the count (a log's events are contiguous, and objects are
 * shared only among the live watchers of one conversation). A few entries, bounded in bytes.
 */
const recentBatches: { first: Event; count: number; field: UnknownField }[] = [];
const RECENT_BATCHES = 4;
const RECENT_BATCH_MAX_BYTES = 1024 * 1024;

/**
 * All the events of a batch as one unknown field: the occurrences of `events` back to back, the
 * first one's tag left to the writer. The wire bytes are those of one occurrence per event.
 */
function batchField(events: readonly Event[]): UnknownField {
  const first = events[0];
  if (first === undefined) return { no: EVENTS_FIELD, wireType: WireType.LengthDelimited, data: new Uint8Array([0]) }; // an empty EventBatch
  const hit = recentBatches.find((b) => b.first === first && b.count === events.length);
  if (hit !== undefined) return hit.field;
  const parts = events.map(inBatchOf);
  if (parts.length === 1) return parts[0]!;
  let size = 0;
  for (const part of parts) size += part.data.length;
  size += (parts.length - 1) * EVENTS_TAG.length;
  const data = new Uint8Array(size);
  let at = 0;
  for (const [i, part] of parts.entries()) {
    if (i > 0) {
      data.set(EVENTS_TAG, at);
      at += EVENTS_TAG.length;
    }
    data.set(part.data, at);
    at += part.data.length;
  }
  const field: UnknownField = { no: EVENTS_FIELD, wireType: WireType.LengthDelimited, data };
  if (size <= RECENT_BATCH_MAX_BYTES) {
    recentBatches.unshift({ first, count: events.length, field });
    recentBatches.length = Math.min(recentBatches.length, RECENT_BATCHES);
  }
  return field;
}

/**
 * A message-typed field given as its encoded message, for a response's `$unknown`: protobuf-es
 * writes unknown fields verbatim, so the wire bytes are exactly those of the field set normally.
 * (An unknown field's data is its value as on the wire: the length, then the bytes.)
 */
function encodedMessageField(no: number, message: Uint8Array): UnknownField {
  return { no, wireType: WireType.LengthDelimited, data: new BinaryWriter().bytes(message).finish() };
}

/** True when the call's messages are serialised as protobuf binary (not in-process, not `application/{grpc,grpc-web,connect}+json`). */
function binaryWire(ctx: HandlerContext): boolean {
  return isSerialized(ctx) && !/json/i.test(ctx.requestHeader.get("content-type") ?? "");
}
