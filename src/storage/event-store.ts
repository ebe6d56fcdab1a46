/**
 * Per-conversation append-only event logs (keyspaces `log-head`, `log-deleting`, `evt*` in
 * keys.ts). Bodies are opaque bytes; storage indexes each event by id, kind, source and
 * timestamp, and keeps per-kind and per-source counts in the conversation's head.
 *
 * Contract:
 * - seq is dense from 1 per conversation, assigned at append in arrival order, never reused.
 * - An append is one atomic, fsynced batch (events, index entries, head); concurrent appends to
 *   one conversation are group-committed (see indexed-log.ts). Acknowledged appends survive
 *   kill -9.
 * - Timestamps are clamped up to the previous event's, so they never decrease in seq order; the
 *   stored timestamp is returned by append and is the one reads report.
 * - A conversation's log exists from createLog() until deleteLog(); every call on a log that does
 *   not exist throws not_found.
 */

import { AgentdError } from "../errors.js";
import type { StorageContext, WriteBatch } from "./db.js";
import { IndexedLog } from "./indexed-log.js";
import type { AppendOptions, Appended, LogFamily, LogRecord } from "./indexed-log.js";
import { eventLogKeys } from "./keys.js";
import { decodeRecord, decodeSeqPointer, encodeRecord, encodeSeqPointer } from "./records.js";

export type { AppendOptions, Appended } from "./indexed-log.js";

/** One event to append. `kind` and `source` are indexed; ids are unique per conversation. */
export interface EventEntry {
  /** Event id; 1-128 characters of [A-Za-z0-9._:-]. */
  readonly id: string;
  /** Kind name (e.g. "ActionEvent"); same character set. */
  readonly kind: string;
  /** Source name (e.g. "agent"); same character set. */
  readonly source: string;
  /** Requested timestamp; stored as max(this, previous event's timestamp). */
  readonly timestampMs: number;
  readonly body: Uint8Array;
}

/** A stored event. */
export interface StoredEvent {
  readonly id: string;
  readonly seq: number;
  readonly timestampMs: number;
  readonly kind: string;
  readonly source: string;
  readonly body: Uint8Array;
}

/** Filters; omitted ones do not filter. Seq bounds are inclusive. */
export interface EventFilter {
  readonly kind?: string;
  readonly source?: string;
  readonly fromSeq?: number;
  readonly toSeq?: number;
}

export interface EventScanOptions extends EventFilter {
  /** "asc" (default) or "desc". */
  readonly order?: "asc" | "desc";
  /** Entries read per LevelDB round trip (default 64); set it to the page size + 1 for pages. */
  readonly chunk?: number;
}

/** A conversation log's head. */
export interface EventLogHead {
  /** The highest seq (0 when empty); also the number of events. */
  readonly lastSeq: number;
  /** The last event's timestamp (0 when empty). */
  readonly lastTimestampMs: number;
  readonly createdAtMs: number;
  readonly countsByKind: ReadonlyMap<string, number>;
  readonly countsBySource: ReadonlyMap<string, number>;
}

const KIND = 0;
const SOURCE = 1;

const family: LogFamily = {
  keys: eventLogKeys,
  attributes: ["kind", "source"],
  // One index over (kind, source): one key per event serves kind, source and kind+source filters
  // (few distinct pairs exist, and the head counts each).
  indexes: [{ name: "kind_source", attributes: [KIND, SOURCE], counted: true }],
  encode: (r) =>
    encodeRecord({ id: r.id, seq: r.seq, timestampMs: r.timestampMs, kind: r.attributes[KIND]!, field5: r.attributes[SOURCE]!, body: r.body }),
  decode: (bytes) => {
    const m = decodeRecord(bytes);
    return { id: m.id, seq: m.seq, timestampMs: m.timestampMs, attributes: [m.kind, m.field5], body: m.body };
  },
  encodePointer: encodeSeqPointer,
  decodePointer: decodeSeqPointer,
  describe: (conversationId) => `conversation ${conversationId}`,
  implicit: false,
  notFound: (conversationId) =>
    new AgentdError("not_found", `conversation ${conversationId} not found`, { conversation_id: conversationId }, "CONVERSATION_NOT_FOUND"),
};

function toStored(r: LogRecord): StoredEvent {
  return { id: r.id, seq: r.seq, timestampMs: r.timestampMs, kind: r.attributes[KIND]!, source: r.attributes[SOURCE]!, body: r.body };
}

export class EventStore {
  private readonly log: IndexedLog;

  constructor(ctx: StorageContext) {
    this.log = new IndexedLog(ctx, family);
  }

  /**
   * Creates an empty event log (the conversation "exists" from then on).
   * `extra` (storage-internal) is written in the same atomic batch.
   * @throws AgentdError already_exists, invalid_argument for a malformed id.
   */
  createLog(conversationId: string, createdAtMs: number = Date.now(), extra?: WriteBatch): Promise<void> {
    return this.log.createLog(conversationId, createdAtMs, extra);
  }

  /** True when the conversation's log exists. @throws AgentdError invalid_argument for a malformed id. */
  exists(conversationId: string): Promise<boolean> {
    return this.log.exists(conversationId);
  }

  /** The log's head (O(1)). @throws AgentdError not_found. */
  async head(conversationId: string): Promise<EventLogHead> {
    const h = await this.log.head(conversationId);
    return {
      lastSeq: h.lastSeq,
      lastTimestampMs: h.lastTimestampMs,
      createdAtMs: h.createdAtMs,
      countsByKind: h.counts.get("kind") ?? new Map(),
      countsBySource: h.counts.get("source") ?? new Map(),
    };
  }

  /**
   * Appends events; resolves when they are durable with each one's seq and stored timestamp.
   * With `options.ids = "fresh"` (ids just generated as UUIDv4) the uniqueness lookup is skipped.
   * @throws AgentdError not_found, invalid_argument (malformed id/kind/source/timestamp),
   *   already_exists (an id already in the log or repeated; nothing of this call is written).
   */
  append(conversationId: string, entries: readonly EventEntry[], options?: AppendOptions): Promise<Appended[]> {
    return this.log.append(
      conversationId,
      entries.map((e) => ({ id: e.id, timestampMs: e.timestampMs, attributes: [e.kind, e.source], body: e.body })),
      options,
    );
  }

  /** The event with `seq`, or null. @throws AgentdError not_found (conversation), data_loss. */
  async get(conversationId: string, seq: number): Promise<StoredEvent | null> {
    const r = await this.log.get(conversationId, seq);
    return r === null ? null : toStored(r);
  }

  /** The event with id `id`, or null. @throws AgentdError not_found (conversation), data_loss. */
  async getById(conversationId: string, id: string): Promise<StoredEvent | null> {
    const r = await this.log.getById(conversationId, id);
    return r === null ? null : toStored(r);
  }

  /** Events by id in input order, null where missing. @throws AgentdError not_found, data_loss. */
  async getManyByIds(conversationId: string, ids: readonly string[]): Promise<(StoredEvent | null)[]> {
    return (await this.log.getManyByIds(conversationId, ids)).map((r) => (r === null ? null : toStored(r)));
  }

  /**
   * Walks matching events in seq order (kind and source filters use their indexes; with both,
   * the smaller index is walked). Each page costs the same whatever the log's size.
   * @throws AgentdError not_found, invalid_argument, data_loss (the walk ends at that event).
   */
  async *scan(conversationId: string, options: EventScanOptions = {}): AsyncGenerator<StoredEvent, void, undefined> {
    for await (const events of this.scanChunks(conversationId, options)) yield* events;
  }

  /** scan(), a round trip's matching events at a time (never an empty array). */
  async *scanChunks(conversationId: string, options: EventScanOptions = {}): AsyncGenerator<StoredEvent[], void, undefined> {
    for await (const records of this.log.scanChunks(conversationId, {
      attributes: [options.kind, options.source],
      fromSeq: options.fromSeq,
      toSeq: options.toSeq,
      order: options.order,
      chunk: options.chunk,
    })) {
      yield records.map(toStored);
    }
  }

  /**
   * Counts matching events: O(1) unfiltered, by kind or by source alone; otherwise walks an index
   * (keys only). @throws AgentdError not_found, invalid_argument.
   */
  count(conversationId: string, filter: EventFilter = {}): Promise<number> {
    return this.log.count(conversationId, {
      attributes: [filter.kind, filter.source],
      fromSeq: filter.fromSeq,
      toSeq: filter.toSeq,
    });
  }

  /**
   * The seq range [fromSeq, toSeq] of events with gteMs ≤ timestamp < ltMs (empty when
   * fromSeq > toSeq). Two seeks. @throws AgentdError not_found.
   */
  seqRangeForTime(conversationId: string, range: { readonly gteMs?: number; readonly ltMs?: number }): Promise<{ fromSeq: number; toSeq: number }> {
    return this.log.seqRangeForTime(conversationId, range);
  }

  /**
   * Deletes the conversation's log and all its keys (bounded batches). It stops existing at once;
   * a crash mid-way is finished at the next open. `extra` (storage-internal) is written with the
   * first, atomic step. @throws AgentdError not_found.
   */
  deleteLog(conversationId: string, extra?: WriteBatch): Promise<void> {
    return this.log.deleteLog(conversationId, extra);
  }

  /**
   * Storage-internal: runs `fn` in the conversation's write queue, told whether the log exists
   * (used by the conversation store so record updates never race a deletion).
   */
  exclusive<T>(conversationId: string, fn: (exists: boolean) => Promise<T>): Promise<T> {
    return this.log.exclusive(conversationId, fn);
  }

  /** Storage-internal: finishes interrupted deletions (called by openStore). */
  resumeDeletions(): Promise<void> {
    return this.log.resumeDeletions();
  }

  /** Storage-internal: waits for queued writes (called by Store.close). */
  drain(): Promise<void> {
    return this.log.drain();
  }
}
