/**
 * The conversation event log: durable append with dense per-conversation seqs, search, count,
 * get, and live watching with replay.
 *
 * Storage: each event is stored as the protobuf binary of its `agentd.v1.Event` with seq and
 * timestamp cleared; the storage record carries seq, the append timestamp, id, kind and source
 * (see src/storage/event-store.ts). Timestamps are assigned here at append, in milliseconds, and
 * never decrease in seq order (the store clamps them), so a timestamp filter is a seq range.
 *
 * Watching (replay-then-live, ARCHITECTURE.md §4): a watcher subscribes first, then reads the
 * backlog from storage, then drains its live queue, skipping every seq it already sent and filling
 * any gap from storage. So a watcher sees every stored event exactly once, in seq order, however
 * appends race the switch from replay to live. `afterSeq` beyond the head is allowed: the watcher
 * simply waits for those events.
 *
 * Transient events (StreamingDeltaEvent, ConversationStateUpdateEvent "full_state") are handed to
 * the watchers subscribed at that moment, in publish order relative to appended events, with seq 0
 * and the publish time; they are never stored, never replayed and consume no seq. A client keeps
 * its cursor at the last event with seq > 0.
 *
 * Back-pressure: each watcher has a bounded queue (default 4096 events). A watcher that falls
 * further behind is ended with resource_exhausted naming the seq to resume from; the producer and
 * the other watchers never wait for it.
 */

import { createHash, randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { encodeMessage } from "../../codec/binary-encode.js";
import { varintFieldSize, varintSize, WIRE_DELIMITED, WireCursor, writeVarint, writeVarintField } from "../../codec/wire.js";
import { AgentdError } from "../../errors.js";
import { EventSchema } from "../../../gen/agentd/v1/event_pb.js";
import type { Event, EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { EventStore, StoredEvent } from "../../storage/event-store.js";
import { isValidId as isWellFormedId } from "../../storage/keys.js";
import { decodePageToken, encodePageToken } from "../../storage/page-token.js";
import { EventHub, SubscriberOverflow } from "./event-hub.js";
import { isTransient, kindOf, messageTexts, normalizeKindFilter, sourceName } from "./event-kinds.js";

/** Filters of search and count; all given filters must match. */
export interface EventFilter {
  /** Kind: short ("ActionEvent") or OpenHands fully-qualified name. Empty or absent: any. */
  readonly kind?: string;
  /** Source; absent or UNSPECIFIED: any. */
  readonly source?: EventSource;
  /** Case-insensitive substring of a MessageEvent's text (other kinds never match). Empty: any. */
  readonly body?: string;
  /** Only events with timestamp ≥ this (ms since the epoch; fractions allowed). */
  readonly timestampGteMs?: number;
  /** Only events with timestamp < this (ms since the epoch; fractions allowed). */
  readonly timestampLtMs?: number;
}

export interface EventSearch extends EventFilter {
  /** "asc" (oldest first, default) or "desc". */
  readonly order?: "asc" | "desc";
  /** Page size, 1..100; default 100. */
  readonly limit?: number;
  /** Token from a previous page (with the same filters and order); empty or absent: first page. */
  readonly pageToken?: string;
}

export interface EventPage<T = Event> {
  readonly items: T[];
  /** Token of the next page; "" when this is the last. */
  readonly nextPageToken: string;
}

export interface WatchOptions {
  /** Replay stored events with seq > afterSeq, then go live (default 0: everything). */
  readonly afterSeq?: number | bigint;
  /** Skip the replay: only events appended or published after the call. */
  readonly liveOnly?: boolean;
  /** Ends the stream (normally) when aborted. */
  readonly signal?: AbortSignal;
  /**
   * Produces the stream's first item (e.g. the conversation's full_state snapshot). Called once,
   * after the subscription is registered and the conversation is known to exist, before the
   * backlog is read. So no change is in neither the snapshot nor the stream: an event appended
   * while the snapshot is computed is still delivered after it (the snapshot may reflect it too).
   */
  readonly first?: () => Promise<Event> | Event;
}

export interface WatchBatchOptions extends WatchOptions {
  /**
   * Most events per batch (default 1). A batch holds what is ready at once — queued live events,
   * a chunk of the replay — never waits to fill up.
   */
  readonly maxBatch?: number;
}

/** Largest `maxBatch` of watchBatches(). */
export const MAX_WATCH_BATCH = 1000;

/**
 * Told about every committed append, synchronously, in seq order per conversation, after the
 * events are durable and handed to the watchers. It must not block (queue work and return);
 * what it throws is ignored.
 */
export type AppendListener = (conversationId: string, events: readonly Event[]) => void;

export interface EventLogOptions {
  /** Unread events a watcher may have queued before it is ended (default 4096). */
  readonly watcherQueueLimit?: number;
  /** Clock for append timestamps (default Date.now). */
  readonly now?: () => number;
}

/** Largest page of search(). */
export const MAX_PAGE_SIZE = 100;
/** Most ids batchGet() takes. */
export const MAX_BATCH_GET = 100;
/** Default bound of a watcher's queue. */
export const DEFAULT_WATCHER_QUEUE_LIMIT = 4096;

/** Field numbers of Event.seq and Event.timestamp (from the schema, so a renumbering cannot go unnoticed). */
const EVENT_SEQ_FIELD = EventSchema.field.seq!.number;
const EVENT_TIMESTAMP_FIELD = EventSchema.field.timestamp!.number;

/** Filters resolved against a conversation: what to ask the store, and what to check here. */
interface Resolved {
  readonly kind: string | undefined;
  readonly source: string | undefined;
  readonly body: string | undefined;
  readonly fromSeq: number;
  readonly toSeq: number;
  /** Nothing can match (e.g. a body filter with a kind other than MessageEvent). */
  readonly empty: boolean;
}

export class EventLog {
  private readonly hub: EventHub;
  private readonly now: () => number;
  private readonly queueLimit: number;
  private readonly appendListeners = new Set<AppendListener>();

  constructor(
    private readonly store: EventStore,
    options: EventLogOptions = {},
  ) {
    this.queueLimit = options.watcherQueueLimit ?? DEFAULT_WATCHER_QUEUE_LIMIT;
    this.hub = new EventHub(this.queueLimit);
    this.now = options.now ?? Date.now;
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  /**
   * Creates the conversation's empty log (the conversation engine does this when it creates a
   * conversation; a conversation exists for the event log exactly when its log does).
   * @throws AgentdError already_exists, invalid_argument (malformed id).
   */
  createLog(conversationId: string, createdAtMs: number = this.now()): Promise<void> {
    return this.store.createLog(conversationId, createdAtMs);
  }

  /** True when the conversation's log exists. */
  async exists(conversationId: string): Promise<boolean> {
    return isWellFormedId(conversationId) && (await this.store.exists(conversationId));
  }

  /** Seq of the newest stored event (0 when none). @throws AgentdError not_found. */
  async headSeq(conversationId: string): Promise<number> {
    return (await this.store.head(this.checkConversationId(conversationId))).lastSeq;
  }

  /** Ends the conversation's watchers with not_found (call when the conversation is deleted). */
  endWatchers(conversationId: string): void {
    this.hub.end(conversationId, notFound(conversationId));
  }

  /** Ends every watcher with unavailable (server shutdown). */
  close(): void {
    this.hub.endAll(new AgentdError("unavailable", "the server is shutting down", {}, "SERVER_SHUTTING_DOWN"));
  }

  /** Number of live watchers of a conversation. */
  watcherCount(conversationId: string): number {
    return this.hub.count(conversationId);
  }

  /** Registers an {@link AppendListener}; returns the function that removes it. */
  onAppend(listener: AppendListener): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  // ---- writes -----------------------------------------------------------------------------------

  /**
   * Appends events in order and resolves, once they are durable, with the stored events (seq and
   * timestamp set, an id generated for events without one); then watchers receive them. Events
   * given without an id get a fresh UUIDv4; given ids must be unique in the conversation.
   * @throws AgentdError not_found (conversation), invalid_argument (no payload, no source, a
   *   transient event, a malformed id or kind), already_exists (an id already in the log).
   */
  async append(conversationId: string, events: readonly Event[]): Promise<Event[]> {
    this.checkConversationId(conversationId);
    const now = this.now();
    const prepared = events.map((e) => {
      if (isTransient(e)) {
        throw new AgentdError("invalid_argument", `${kindOf(e)} events are transient: publish them, do not append them`);
      }
      const source = sourceName(e.source);
      const id = e.id === "" ? randomUUID() : e.id;
      if (source === undefined) throw new AgentdError("invalid_argument", `event ${id} has no source`);
      const body = encodeMessage(EventSchema, { ...e, id, seq: 0n, timestamp: undefined });
      return { event: e, id, entry: { id, kind: kindOf(e), source, timestampMs: now, body } };
    });
    // Ids generated here are random UUIDs: the store can skip looking them up.
    const fresh = events.every((e) => e.id === "");
    const appended = await this.store.append(
      conversationId,
      prepared.map((p) => p.entry),
      { ids: fresh ? "fresh" : "check" },
    );
    const stored = prepared.map((p, i): Event => ({
      ...p.event,
      id: p.id,
      seq: BigInt(appended[i]!.seq),
      timestamp: timestampFromMs(appended[i]!.timestampMs),
    }));
    // Appends resolve in seq order, so watchers receive them in seq order (and fill any gap
    // from storage should that ever not hold).
    this.hub.publish(conversationId, stored);
    for (const listener of this.appendListeners) {
      try {
        listener(conversationId, stored);
      } catch {
        // A listener's failure is its own (see AppendListener); the append has succeeded.
      }
    }
    return stored;
  }

  /**
   * Hands a transient event to the conversation's current watchers: seq 0, timestamp now, never
   * stored. Returns the event as delivered.
   */
  publishTransient(conversationId: string, event: Event): Event {
    const delivered: Event = {
      ...event,
      id: event.id === "" ? randomUUID() : event.id,
      seq: 0n,
      timestamp: event.timestamp ?? timestampFromMs(this.now()),
    };
    this.hub.publish(conversationId, [delivered]);
    return delivered;
  }

  // ---- reads ------------------------------------------------------------------------------------

  /** Every stored event in seq order. @throws AgentdError not_found, data_loss. */
  async *read(conversationId: string): AsyncGenerator<Event, void, undefined> {
    for await (const r of this.store.scan(this.checkConversationId(conversationId), { chunk: 256 })) yield this.decode(conversationId, r);
  }

  /**
   * One page of events matching the filters, in seq (= timestamp) order. Without a body filter a
   * page costs the same at any log size (index seeks); a body filter reads the MessageEvents in
   * range until the page is full.
   * @throws AgentdError not_found, invalid_argument (limit outside 1..100, malformed or foreign
   *   page token, malformed kind), data_loss.
   */
  search(conversationId: string, query: EventSearch = {}): Promise<EventPage> {
    return this.page(conversationId, query, (r, event) => event ?? this.decode(conversationId, r));
  }

  /**
   * search(), with each event in its protobuf binary encoding, built from the stored bytes without
   * decoding them (for callers that pass events on unread: ~1 ms less per page of 100 than
   * decoding and encoding again). Decoding an item gives exactly what search() returns.
   */
  searchEncoded(conversationId: string, query: EventSearch = {}): Promise<EventPage<Uint8Array>> {
    return this.page(conversationId, query, (r) => {
      try {
        return encodeStored(r);
      } catch (cause) {
        throw unreadable(conversationId, r, cause);
      }
    });
  }

  private async page<T>(conversationId: string, query: EventSearch, item: (r: StoredEvent, decoded: Event | undefined) => T): Promise<EventPage<T>> {
    const limit = query.limit ?? MAX_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new AgentdError("invalid_argument", `invalid limit ${limit}: expected 1..${MAX_PAGE_SIZE}`, { limit: String(limit) });
    }
    const order = query.order ?? "asc";
    const resolved = await this.resolve(conversationId, query);
    const filterHash = hashFilters(resolved, query, order);
    let { fromSeq, toSeq } = resolved;
    if (query.pageToken !== undefined && query.pageToken !== "") {
      const cursor = decodePageToken(query.pageToken);
      if (cursor.filterHash !== filterHash) {
        throw new AgentdError("invalid_argument", "page token was issued for other filters or another sort order", {}, "INVALID_PAGE_TOKEN");
      }
      if (order === "asc") fromSeq = Math.max(fromSeq, cursor.nextSeq);
      else toSeq = Math.min(toSeq, cursor.nextSeq);
    }
    if (resolved.empty || fromSeq > toSeq) return { items: [], nextPageToken: "" };
    const items: T[] = [];
    for await (const chunk of this.store.scanChunks(conversationId, {
      kind: resolved.kind,
      source: resolved.source,
      fromSeq,
      toSeq,
      order,
      chunk: resolved.body === undefined ? limit + 1 : 256,
    })) {
      for (const r of chunk) {
        // The first event past the page only names the next page; it is decoded only when a body
        // filter must decide whether it matches.
        const event = resolved.body === undefined ? undefined : this.decode(conversationId, r);
        if (event !== undefined && !bodyMatches(event, resolved.body!)) continue;
        if (items.length === limit) return { items, nextPageToken: encodePageToken({ nextSeq: r.seq, filterHash }) };
        items.push(item(r, event));
      }
    }
    return { items, nextPageToken: "" };
  }

  /**
   * Number of events matching the filters: O(1) without filters or with only kind and/or source;
   * with a time range it walks an index; with a body filter it reads the MessageEvents in range.
   * @throws AgentdError not_found, invalid_argument, data_loss.
   */
  async count(conversationId: string, filter: EventFilter = {}): Promise<number> {
    const resolved = await this.resolve(conversationId, filter);
    if (resolved.empty || resolved.fromSeq > resolved.toSeq) return 0;
    const { kind, source, fromSeq, toSeq, body } = resolved;
    if (body === undefined) return this.store.count(conversationId, { kind, source, fromSeq, toSeq });
    let n = 0;
    for await (const r of this.store.scan(conversationId, { kind, source, fromSeq, toSeq, chunk: 256 })) {
      if (bodyMatches(this.decode(conversationId, r), body)) n++;
    }
    return n;
  }

  /** One event by id. @throws AgentdError not_found (conversation or event), data_loss. */
  async get(conversationId: string, eventId: string): Promise<Event> {
    const r = await this.store.getById(this.checkConversationId(conversationId), eventId);
    if (r === null) {
      throw new AgentdError("not_found", `event ${eventId} not found in conversation ${conversationId}`, {
        conversation_id: conversationId,
        event_id: eventId,
      }, "EVENT_NOT_FOUND");
    }
    return this.decode(conversationId, r);
  }

  /**
   * Events by id, in request order, null for unknown ids.
   * @throws AgentdError not_found (conversation), invalid_argument (more than 100 ids), data_loss.
   */
  async batchGet(conversationId: string, eventIds: readonly string[]): Promise<(Event | null)[]> {
    if (eventIds.length > MAX_BATCH_GET) {
      throw new AgentdError("invalid_argument", `too many event ids: ${eventIds.length} (at most ${MAX_BATCH_GET})`);
    }
    const records = await this.store.getManyByIds(this.checkConversationId(conversationId), eventIds);
    return records.map((r) => (r === null ? null : this.decode(conversationId, r)));
  }

  /**
   * Streams the conversation's events: stored events with seq > afterSeq in order, then live
   * events (and transient ones, seq 0) as they come, with no gap and no duplicate. Ends normally
   * when `signal` aborts; ends with not_found if the conversation is deleted, resource_exhausted
   * when the watcher falls more than the queue limit behind (resume from the seq in the message),
   * unavailable on shutdown.
   * @throws AgentdError not_found (at start), invalid_argument (bad afterSeq), data_loss.
   */
  async *watch(conversationId: string, options: WatchOptions = {}): AsyncGenerator<Event, void, undefined> {
    for await (const batch of this.watchBatches(conversationId, { ...options, maxBatch: 1 })) yield* batch;
  }

  /**
   * watch(), in batches of up to `maxBatch` events: a watcher that is behind takes every event
   * waiting for it at once, so delivering costs per batch rather than per event. Same order,
   * guarantees and errors as watch(); the first item (if any) is a batch of its own.
   * @throws also AgentdError invalid_argument for maxBatch outside 1..MAX_WATCH_BATCH.
   */
  async *watchBatches(conversationId: string, options: WatchBatchOptions = {}): AsyncGenerator<Event[], void, undefined> {
    this.checkConversationId(conversationId);
    const after = Number(options.afterSeq ?? 0);
    if (!Number.isSafeInteger(after) || after < 0) throw new AgentdError("invalid_argument", `invalid after_seq ${String(options.afterSeq)}`);
    const max = options.maxBatch ?? 1;
    if (!Number.isSafeInteger(max) || max < 1 || max > MAX_WATCH_BATCH) {
      throw new AgentdError("invalid_argument", `invalid max_batch ${String(options.maxBatch)}: expected 1..${MAX_WATCH_BATCH}`);
    }
    const { signal } = options;
    // Subscribe before reading the backlog: whatever is appended from now on is queued.
    const sub = this.hub.subscribe(conversationId);
    try {
      let last = after;
      if (options.liveOnly === true) {
        last = Math.max(after, await this.headSeq(conversationId));
        if (options.first !== undefined) yield [await options.first()];
      } else {
        if (!(await this.store.exists(conversationId))) throw notFound(conversationId);
        if (options.first !== undefined) yield [await options.first()];
        const kept = this.hub.recentFrom(conversationId, last + 1);
        if (kept !== undefined) {
          // Shared with the live watchers (see EventHub): no storage read, no private copy.
          for (let i = 0; i < kept.length; i += max) {
            if (signal?.aborted === true) return;
            const batch = kept.slice(i, i + max);
            yield batch;
            last = Number(batch[batch.length - 1]!.seq);
          }
        } else {
          const chunk = Math.max(max, 256);
          let batch: Event[] = [];
          for await (const r of this.store.scan(conversationId, { fromSeq: last + 1, chunk })) {
            if (signal?.aborted === true) return;
            batch.push(this.decode(conversationId, r));
            if (batch.length === max) {
              yield batch;
              batch = [];
            }
            last = r.seq;
          }
          if (batch.length > 0) yield batch;
        }
      }
      for (;;) {
        let ready: Event[] | undefined;
        try {
          ready = await sub.nextBatch(max, signal);
        } catch (err) {
          if (err instanceof SubscriberOverflow) throw this.fellBehind(conversationId, last);
          throw err;
        }
        if (ready === undefined) return;
        let out: Event[] = [];
        for (const event of ready) {
          const seq = Number(event.seq);
          if (seq === 0) {
            out.push(event);
            continue;
          }
          if (seq <= last) continue; // already sent from the backlog
          if (seq > last + 1) {
            // Not expected (appends publish in seq order), but never skip: read the gap.
            if (out.length > 0) yield out;
            out = [];
            for await (const r of this.store.scan(conversationId, { fromSeq: last + 1, toSeq: seq - 1, chunk: 256 })) {
              yield [this.decode(conversationId, r)];
              last = r.seq;
            }
          }
          out.push(event);
          last = seq;
        }
        if (out.length > 0) yield out;
      }
    } finally {
      sub.close();
    }
  }

  // ---- internals --------------------------------------------------------------------------------

  private async resolve(conversationId: string, filter: EventFilter): Promise<Resolved> {
    this.checkConversationId(conversationId);
    let kind = filter.kind === undefined || filter.kind === "" ? undefined : normalizeKindFilter(filter.kind);
    const source = filter.source === undefined ? undefined : sourceName(filter.source);
    const body = filter.body === undefined || filter.body === "" ? undefined : filter.body.toLowerCase();
    let empty = false;
    if (body !== undefined) {
      // Only MessageEvents have a body.
      if (kind !== undefined && kind !== "MessageEvent") empty = true;
      kind = "MessageEvent";
    }
    const gte = filter.timestampGteMs;
    const lt = filter.timestampLtMs;
    for (const [name, v] of [["timestamp__gte", gte], ["timestamp__lt", lt]] as const) {
      if (v !== undefined && !Number.isFinite(v)) throw new AgentdError("invalid_argument", `invalid ${name} ${v}`);
    }
    const range =
      gte === undefined && lt === undefined
        ? { fromSeq: 1, toSeq: (await this.store.head(conversationId)).lastSeq }
        : await this.store.seqRangeForTime(conversationId, { gteMs: gte, ltMs: lt });
    return { kind, source, body, fromSeq: range.fromSeq, toSeq: range.toSeq, empty };
  }

  private decode(conversationId: string, r: StoredEvent): Event {
    let event: Event;
    try {
      event = fromBinary(EventSchema, r.body);
    } catch (cause) {
      throw unreadable(conversationId, r, cause);
    }
    event.seq = BigInt(r.seq);
    event.timestamp = timestampFromMs(r.timestampMs);
    return event;
  }

  private fellBehind(conversationId: string, last: number): AgentdError {
    return new AgentdError(
      "resource_exhausted",
      `event stream of conversation ${conversationId} fell more than ${this.queueLimit} events behind; resume from seq ${last + 1}`,
      { conversation_id: conversationId, resume_from_seq: String(last + 1), after_seq: String(last) },
      "SUBSCRIBER_QUEUE_FULL",
    );
  }

  /** Conversation ids the store cannot hold do not exist. */
  private checkConversationId(conversationId: string): string {
    if (!isWellFormedId(conversationId)) throw notFound(conversationId);
    return conversationId;
  }
}

function notFound(conversationId: string): AgentdError {
  return new AgentdError("not_found", `conversation ${conversationId} not found`, { conversation_id: conversationId }, "CONVERSATION_NOT_FOUND");
}

function bodyMatches(event: Event, needle: string): boolean {
  return messageTexts(event).some((t) => t.toLowerCase().includes(needle));
}

/** 64 bits of SHA-256 over the normalized filters and order: binds a page token to its query. */
function hashFilters(r: Resolved, filter: EventFilter, order: "asc" | "desc"): bigint {
  const canonical = JSON.stringify([r.kind ?? null, r.source ?? null, r.body ?? null, filter.timestampGteMs ?? null, filter.timestampLtMs ?? null, order]);
  return createHash("sha256").update(canonical).digest().readBigUInt64BE(0);
}

function unreadable(conversationId: string, r: StoredEvent, cause: unknown): AgentdError {
  return new AgentdError("data_loss", `event ${r.seq} of conversation ${conversationId} is unreadable (corrupt storage)`, {
    conversation_id: conversationId,
    seq: String(r.seq),
  }, "STORAGE_CORRUPT", { cause });
}

/**
 * The binary encoding of a stored event: the stored bytes (the event without seq and timestamp)
 * followed by those two fields. Protobuf readers merge fields in any order, so this decodes to
 * what EventLog.decode builds.
 */
function encodeStored(r: StoredEvent): Uint8Array {
  // The framing of every top-level field is checked (cheap: nothing is decoded), so a truncated
  // or garbled record is reported here as data loss rather than failing in the client's parser.
  const body = new WireCursor(r.body);
  while (!body.done) {
    const tag = body.varint();
    if (tag < 8) throw new Error("field number 0");
    body.skip(tag & 7);
  }
  // Appended: seq, and the timestamp as a google.protobuf.Timestamp (seconds 1, nanos 2; proto3
  // leaves zeros out), exactly as toBinary writes them.
  const seconds = Math.floor(r.timestampMs / 1000);
  const nanos = (r.timestampMs % 1000) * 1_000_000;
  const tsSize = varintFieldSize(seconds) + varintFieldSize(nanos);
  const out = new Uint8Array(r.body.byteLength + varintFieldSize(r.seq) + 1 + varintSize(tsSize) + tsSize);
  out.set(r.body, 0);
  let at = writeVarintField(out, r.body.byteLength, EVENT_SEQ_FIELD, r.seq);
  out[at++] = (EVENT_TIMESTAMP_FIELD << 3) | WIRE_DELIMITED;
  at = writeVarint(out, at, tsSize);
  at = writeVarintField(out, at, 1, seconds);
  writeVarintField(out, at, 2, nanos);
  return out;
}
