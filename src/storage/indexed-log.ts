/**
 * The engine behind every append-only log of agentd: per-conversation event logs and the global
 * bash event log. A family of logs shares sublevels (see `LogKeys` in keys.ts); each log has a head
 * (`LogHead`), dense sequence numbers, an id index, key-only secondary indexes over the records'
 * attributes, and a sparse timestamp index.
 *
 * Writes. Appends to one log are serialised in-process through that log's queue, with group
 * commit: while one batch is being written, newly arriving appends wait, and the next batch
 * carries all of them (one LevelDB batch, one fsync). Each batch holds the records, their index
 * entries and the new head, so a reader never sees a record without its head or the reverse.
 * Maintenance (create, delete, clear) runs through the same queue, so it is ordered with appends.
 * The queue lives in this process only: the data directory is locked against other processes.
 *
 * Timestamps. An append's timestamp is clamped up to the log's last timestamp, so timestamps never
 * decrease in seq order. That is what lets a timestamp range map to a seq range through the sparse
 * timestamp index (one seek per bound).
 *
 * Queries. A filter on attributes is served by one secondary index: directly when the index covers
 * exactly the filtered attributes, or by merging the few value tuples of a counted index that
 * match (e.g. kind=ActionEvent on a (kind, source) index merges the (ActionEvent, *) entries that
 * the head says exist). Filters the chosen index does not cover are checked on the records.
 * Every walk seeks straight to its first key, so a page costs the same at any log size.
 *
 * Reads never take the queue; they read the committed state (the head cache is only updated after
 * a batch is written). A value that cannot be decoded fails that read with data_loss and nothing
 * else.
 */

import { create } from "@bufbuild/protobuf";
import { AgentdError } from "../errors.js";
import { IndexCountsSchema, type LogHead, LogHeadSchema } from "../../gen/agentd/storage/v1/storage_pb.js";
import { EMPTY, WriteBatch, dataLoss, decodeValue, deleteRange, encodeValue } from "./db.js";
import type { ReadAheadRange, StorageContext, Sublevel } from "./db.js";
import { SEP, checkId, encodeInt, isValidId, trailingInt } from "./keys.js";
import type { KeyRange, LogKeys } from "./keys.js";

/** One record to append. `attributes` are positional, as declared by the log family. */
export interface LogEntryInput {
  readonly id: string;
  readonly timestampMs: number;
  readonly attributes: readonly string[];
  readonly body: Uint8Array;
}

/** A stored record. */
export interface LogRecord {
  readonly id: string;
  readonly seq: number;
  readonly timestampMs: number;
  readonly attributes: readonly string[];
  readonly body: Uint8Array;
}

/** Options of an append. */
export interface AppendOptions {
  /**
   * How id uniqueness is ensured. "check" (default) looks the ids up before writing (one batched
   * point lookup per group commit, overlapped with building the batch) and refuses a call with a
   * taken id. "fresh" is for ids the caller has just generated with enough randomness that they
   * cannot collide (UUIDv4): the lookup is skipped, which removes a random read per record from
   * the append path. A "fresh" id that does collide re-points the id index to the new record.
   */
  readonly ids?: "check" | "fresh";
  /**
   * Writes of the caller (storage-internal) committed in the same atomic batch as the records:
   * both or neither are written, and one fsync covers them.
   */
  readonly extra?: WriteBatch;
}

/** What an append assigned to one entry. `timestampMs` is the stored (possibly clamped) time. */
export interface Appended {
  readonly seq: number;
  readonly timestampMs: number;
}

/** A snapshot of a log's head. */
export interface LogHeadInfo {
  /** Highest seq ever assigned (0 when empty). */
  readonly lastSeq: number;
  /** Lowest seq that may be present (1 unless records were cleared). */
  readonly firstSeq: number;
  /** Timestamp of the last appended record (0 when empty). */
  readonly lastTimestampMs: number;
  /** Number of records present. */
  readonly recordCount: number;
  readonly createdAtMs: number;
  /** Per attribute covered by a counted index (by attribute name): count per value. */
  readonly counts: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

/** Filters of a scan or count. Omitted bounds mean the whole log. */
export interface LogQuery {
  /** Positional attribute filters (exact match); undefined entries do not filter. */
  readonly attributes?: readonly (string | undefined)[];
  /** Lowest seq to include. */
  readonly fromSeq?: number;
  /** Highest seq to include. */
  readonly toSeq?: number;
}

export interface ScanOptions extends LogQuery {
  /** "asc" (default) walks from fromSeq up, "desc" from toSeq down. */
  readonly order?: "asc" | "desc";
  /** How many entries to read per LevelDB round trip (default 64, at most 1000). */
  readonly chunk?: number;
}

/** A secondary index of a log family. */
export interface LogIndex {
  /** Name used for its counts in the head. */
  readonly name: string;
  /** Attribute positions, in key order. */
  readonly attributes: readonly number[];
  /**
   * Whether the head counts entries per value tuple. Only for attributes with few distinct values:
   * the head is rewritten on every append.
   */
  readonly counted: boolean;
}

/** Describes one log family. */
export interface LogFamily {
  readonly keys: LogKeys;
  /** Attribute names, positional. */
  readonly attributes: readonly string[];
  /** Secondary indexes, in the order of `keys.indexSublevels`. */
  readonly indexes: readonly LogIndex[];
  /** Encodes a record (the hot path of appends). */
  encode(record: LogRecord): Uint8Array;
  /** Throws on bytes that are not a valid record. */
  decode(bytes: Uint8Array): LogRecord;
  /** Encodes the value of an id index entry (a SeqPointer). */
  encodePointer(seq: number): Uint8Array;
  /** Throws on bytes that are not a valid pointer. */
  decodePointer(bytes: Uint8Array): number;
  /** "conversation <id>" or "bash event log": used in messages. */
  describe(logId: string): string;
  /** The log exists without being created (the single bash log). */
  readonly implicit: boolean;
  /** The error for a log that does not exist. */
  notFound(logId: string): AgentdError;
}

interface HeadState {
  lastSeq: number;
  firstSeq: number;
  lastTimestampMs: number;
  recordCount: number;
  createdAtMs: number;
  deleting: boolean;
  /** Per index position: joined value tuple → entry count (empty for uncounted indexes). */
  counts: Map<string, number>[];
}

type AppendJob = {
  readonly kind: "append";
  readonly entries: readonly LogEntryInput[];
  readonly bytes: number;
  readonly checkIds: boolean;
  readonly extra: WriteBatch | undefined;
  readonly resolve: (appended: Appended[]) => void;
  readonly reject: (err: unknown) => void;
};
type Job = AppendJob | { readonly kind: "control"; readonly run: () => Promise<void> };

interface LogQueue {
  jobs: Job[];
  running: boolean;
}

type Filter = { readonly position: number; readonly value: string };

/** How a query is answered: which index, which value tuples of it, what to check on records. */
interface Plan {
  /** Index position, or -1 to walk the records themselves. */
  readonly index: number;
  /** Value tuples whose index entries are merged in seq order. */
  readonly tuples: readonly (readonly string[])[];
  /** Filters the index does not cover, checked on each record. */
  readonly residual: readonly Filter[];
  /** Exact number of index entries over the whole log, when known from the head. */
  readonly exactCount: number | undefined;
}

/** Upper bounds of one group-commit batch (a single larger append is still written whole). */
const MAX_GROUP_ENTRIES = 4096;
const MAX_GROUP_BYTES = 8 * 1024 * 1024;
/** Heads kept in memory for logs that are appended to; least recently used are dropped first. */
const HEAD_CACHE_SIZE = 4096;
/** Keys deleted per batch when purging a log. */
const PURGE_CHUNK = 1000;

export class IndexedLog {
  private readonly queues = new Map<string, LogQueue>();
  /**
   * Committed heads (LRU). Written by the queue owner after a batch is written; a reader may add a
   * head it read from disk, but only if no head was cached or dropped anywhere while it read
   * (`headEpoch` unchanged), so a read that raced a commit never replaces what the writer cached.
   */
  private readonly heads = new Map<string, HeadState>();
  /** Bumped by every change to `heads` other than a reader's addition. */
  private headEpoch = 0;
  private idle: Promise<void> = Promise.resolve();
  private wakeIdle: (() => void) | undefined;

  constructor(
    private readonly ctx: StorageContext,
    private readonly family: LogFamily,
  ) {}

  // ---- writes -----------------------------------------------------------------------------------

  /**
   * Creates an empty log, together with `extra` writes, in one atomic batch.
   * @throws AgentdError already_exists when the log exists.
   */
  async createLog(logId: string, createdAtMs: number, extra?: WriteBatch): Promise<void> {
    checkId("log id", logId);
    encodeInt("creation time", createdAtMs);
    return this.control(logId, async () => {
      let head = await this.loadHead(logId);
      if (head !== undefined && head.deleting) {
        // A deletion interrupted by a crash: finish it before the id is reused.
        await this.purge(logId);
        head = undefined;
      }
      if (head !== undefined) {
        throw new AgentdError("already_exists", `${this.family.describe(logId)} already exists`, { log_id: logId });
      }
      const fresh = this.emptyHead(createdAtMs);
      const batch = new WriteBatch(this.ctx).put(this.family.keys.headSublevel, this.family.keys.head(logId), this.encodeHead(fresh));
      if (extra) batch.append(extra);
      await batch.write();
      this.cacheHead(logId, fresh);
    });
  }

  /**
   * Appends records; resolves once they are written (durably, in sync mode), with the seq and
   * stored timestamp of each, in input order. All entries of one call get consecutive seqs.
   * @throws AgentdError invalid_argument for a malformed id, attribute or timestamp,
   *   already_exists when an id is already in the log or repeated in the call (nothing of the
   *   call is written), not_found when the log does not exist.
   */
  async append(logId: string, entries: readonly LogEntryInput[], options: AppendOptions = {}): Promise<Appended[]> {
    checkId("log id", logId);
    if (entries.length === 0) {
      await this.requireHead(logId);
      return [];
    }
    let bytes = 0;
    for (const e of entries) {
      checkId("event id", e.id);
      if (e.attributes.length !== this.family.attributes.length) {
        throw new TypeError(`append: expected ${this.family.attributes.length} attributes, got ${e.attributes.length}`);
      }
      for (let i = 0; i < e.attributes.length; i++) checkId(this.family.attributes[i]!, e.attributes[i]!);
      encodeInt("timestamp", e.timestampMs);
      bytes += e.body.byteLength;
    }
    return new Promise<Appended[]>((resolve, reject) => {
      this.enqueue(logId, { kind: "append", entries, bytes, checkIds: options.ids !== "fresh", extra: options.extra, resolve, reject });
    });
  }

  /**
   * Deletes a log: first marks it deleting (with `extra` writes, atomically; from then on it does
   * not exist), then removes its keys in bounded batches, then the head. An interrupted deletion
   * is finished at the next open ({@link resumeDeletions}) or when the id is created again.
   * @throws AgentdError not_found when the log does not exist.
   */
  async deleteLog(logId: string, extra?: WriteBatch): Promise<void> {
    checkId("log id", logId);
    const deletingSublevel = this.family.keys.deletingSublevel;
    if (deletingSublevel === undefined) throw new TypeError("this log family cannot delete logs");
    return this.control(logId, async () => {
      const head = await this.loadHead(logId);
      if (head === undefined || head.deleting) throw this.family.notFound(logId);
      const marked: HeadState = { ...head, deleting: true };
      const batch = new WriteBatch(this.ctx)
        .put(this.family.keys.headSublevel, this.family.keys.head(logId), this.encodeHead(marked))
        .put(deletingSublevel, logId, EMPTY);
      if (extra) batch.append(extra);
      await batch.write();
      this.cacheHead(logId, marked);
      await this.purge(logId);
    });
  }

  /** Finishes deletions interrupted by a crash (runs them through the logs' queues). */
  async resumeDeletions(): Promise<void> {
    const deletingSublevel = this.family.keys.deletingSublevel;
    if (deletingSublevel === undefined) return;
    const pending = await this.ctx.sub[deletingSublevel].keys().all();
    await Promise.all(
      // The marker is written in the same batch as the deleting head, so it alone decides.
      pending.map((logId) => this.control(logId, () => this.purge(logId))),
    );
  }

  /**
   * Removes every record of the log but keeps its seq counter (the next append continues after
   * `lastSeq`). The head is reset first, in one durable batch, so readers see an empty log at once;
   * the keys are then removed in bounded batches. Only for single-log families (bash).
   */
  async clear(logId: string): Promise<void> {
    if (!this.family.implicit) throw new TypeError("clear() is only for single-log families");
    return this.control(logId, async () => {
      const head = (await this.loadHead(logId)) ?? this.emptyHead(Date.now());
      const cleared: HeadState = {
        ...head,
        firstSeq: head.lastSeq + 1,
        recordCount: 0,
        counts: this.family.indexes.map(() => new Map()),
      };
      await new WriteBatch(this.ctx)
        .put(this.family.keys.headSublevel, this.family.keys.head(logId), this.encodeHead(cleared))
        .write();
      this.cacheHead(logId, cleared);
      await this.purgeRecords(logId);
    });
  }

  /**
   * Finishes a clear interrupted by a crash: when the log is empty but record keys remain, removes
   * them. Call at open, before the first append. Only for single-log families.
   */
  async resumeClear(logId: string): Promise<void> {
    const head = await this.readHeadState(logId);
    if (head === undefined || head.recordCount > 0) return;
    const k = this.family.keys;
    const leftover = await this.ctx.sub[k.recordSublevel].keys({ ...k.all(logId), limit: 1 }).all();
    if (leftover.length > 0) await this.control(logId, () => this.purgeRecords(logId));
  }

  /**
   * Runs `fn` alone in the log's queue (after the writes queued before it, before those queued
   * after it). `fn` receives whether the log exists. Storage-internal: lets a related record be
   * written without racing an append or a deletion of the log.
   */
  async exclusive<T>(logId: string, fn: (exists: boolean) => Promise<T>): Promise<T> {
    checkId("log id", logId);
    return this.control(logId, async () => {
      const head = await this.loadHead(logId);
      return fn(head !== undefined && !head.deleting);
    });
  }

  /** Resolves when every queued write has settled (used by close()). */
  async drain(): Promise<void> {
    while (this.queues.size > 0) await this.idle;
  }

  // ---- reads ------------------------------------------------------------------------------------

  /** True when the log exists (and is not being deleted). */
  async exists(logId: string): Promise<boolean> {
    checkId("log id", logId);
    const head = await this.readHeadState(logId);
    return head !== undefined && !head.deleting;
  }

  /**
   * The log's head.
   * @throws AgentdError not_found when the log does not exist.
   */
  async head(logId: string): Promise<LogHeadInfo> {
    const h = await this.requireHead(logId);
    const counts = new Map<string, Map<string, number>>();
    this.family.indexes.forEach((index, i) => {
      if (!index.counted) return;
      for (const [tuple, n] of h.counts[i]!) {
        const values = tuple.split(SEP);
        index.attributes.forEach((attribute, j) => {
          const name = this.family.attributes[attribute]!;
          const perValue = counts.get(name) ?? new Map<string, number>();
          counts.set(name, perValue);
          perValue.set(values[j]!, (perValue.get(values[j]!) ?? 0) + n);
        });
      }
    });
    return {
      lastSeq: h.lastSeq,
      firstSeq: h.firstSeq,
      lastTimestampMs: h.lastTimestampMs,
      recordCount: h.recordCount,
      createdAtMs: h.createdAtMs,
      counts,
    };
  }

  /**
   * The record with `seq`, or null when there is none.
   * @throws AgentdError not_found when the log does not exist; data_loss when the record is unreadable.
   */
  async get(logId: string, seq: number): Promise<LogRecord | null> {
    const head = await this.requireHead(logId);
    if (!Number.isSafeInteger(seq) || seq < head.firstSeq || seq > head.lastSeq) return null;
    const bytes = await this.ctx.sub[this.family.keys.recordSublevel].get(this.family.keys.record(logId, seq));
    return bytes === undefined ? null : this.decodeRecord(logId, seq, bytes);
  }

  /** The record with event id `id`, or null. Same errors as {@link get}. */
  async getById(logId: string, id: string): Promise<LogRecord | null> {
    const [r] = await this.getManyByIds(logId, [id]);
    return r ?? null;
  }

  /**
   * Records by event id, in input order, null for ids that are not in the log (strings that are
   * not valid ids are simply absent).
   * @throws AgentdError not_found when the log does not exist; data_loss when a record is unreadable.
   */
  async getManyByIds(logId: string, ids: readonly string[]): Promise<(LogRecord | null)[]> {
    const head = await this.requireHead(logId);
    const k = this.family.keys;
    const valid = ids.filter(isValidId);
    const pointers = await this.ctx.sub[k.idSublevel].getMany(valid.map((id) => k.id(logId, id)));
    const seqById = new Map<string, number>();
    valid.forEach((id, i) => {
      const bytes = pointers[i];
      if (bytes === undefined) return;
      let seq: number;
      try {
        seq = this.family.decodePointer(bytes);
      } catch (cause) {
        throw dataLoss(`id index entry ${id} of ${this.family.describe(logId)}`, { log_id: logId, event_id: id }, cause);
      }
      // Pointers below firstSeq are leftovers of a clear; they point at nothing.
      if (seq >= head.firstSeq && seq <= head.lastSeq) seqById.set(id, seq);
    });
    const seqs = [...new Set(seqById.values())];
    const values = await this.ctx.sub[k.recordSublevel].getMany(seqs.map((s) => k.record(logId, s)));
    const bySeq = new Map<number, LogRecord>();
    seqs.forEach((s, i) => {
      const v = values[i];
      if (v !== undefined) bySeq.set(s, this.decodeRecord(logId, s, v));
    });
    return ids.map((id) => {
      const seq = seqById.get(id);
      return seq === undefined ? null : (bySeq.get(seq) ?? null);
    });
  }

  /**
   * Walks the records matching `options` in seq order, reading `chunk` entries per round trip.
   * The cost of producing N records is O(N + records skipped by residual filters), independent of
   * the log's size: every walk seeks directly to its first key. Stop iterating at any time.
   * @throws AgentdError not_found when the log does not exist; invalid_argument for a malformed
   *   filter value; data_loss when a record is unreadable (the walk ends there).
   */
  async *scan(logId: string, options: ScanOptions = {}): AsyncGenerator<LogRecord, void, undefined> {
    for await (const records of this.scanChunks(logId, options)) yield* records;
  }

  /**
   * scan(), a round trip's matching records at a time (never an empty array): for walks whose
   * per-record work is small, where an async step per record would be most of the cost.
   */
  async *scanChunks(logId: string, options: ScanOptions = {}): AsyncGenerator<LogRecord[], void, undefined> {
    const head = await this.requireHead(logId);
    const [lo, hi] = clampRange(head, options);
    if (lo > hi) return;
    const reverse = options.order === "desc";
    const chunk = Math.max(1, Math.min(options.chunk ?? 64, 1000));
    const plan = this.plan(head, this.filtersOf(options));
    const k = this.family.keys;
    if (plan.index < 0) {
      yield* this.scanRecords(logId, lo, hi, reverse, chunk, plan.residual);
      return;
    }
    const seqs = this.mergeIndex(logId, plan, lo, hi, reverse, chunk);
    try {
      for (;;) {
        const next = await seqs.next();
        if (next.done === true) return;
        const values = await this.ctx.sub[k.recordSublevel].getMany(next.value.map((s) => k.record(logId, s)));
        const out: LogRecord[] = [];
        let deleted = false;
        for (let i = 0; i < next.value.length; i++) {
          const v = values[i];
          // Absent only if the log was deleted while we walked it; the walk then ends.
          if (v === undefined) {
            deleted = true;
            break;
          }
          const record = this.decodeRecord(logId, next.value[i]!, v);
          if (matches(record, plan.residual)) out.push(record);
        }
        if (out.length > 0) yield out;
        if (deleted) return;
      }
    } finally {
      await seqs.return(undefined);
    }
  }

  /** Walks the records themselves in [lo, hi], keeping those that pass `residual`. */
  private async *scanRecords(
    logId: string,
    lo: number,
    hi: number,
    reverse: boolean,
    chunk: number,
    residual: readonly Filter[],
  ): AsyncGenerator<LogRecord[], void, undefined> {
    const k = this.family.keys;
    const options: ReadAheadRange = { ...k.recordRange(logId, lo, hi), reverse, highWaterMarkBytes: readAheadBytes(chunk, RECORD_BYTES_GUESS) };
    const it = this.ctx.sub[k.recordSublevel].iterator(options);
    try {
      for (;;) {
        const entries = await it.nextv(chunk);
        if (entries.length === 0) return;
        const out: LogRecord[] = [];
        for (const [key, value] of entries) {
          const record = this.decodeRecord(logId, trailingInt(key), value);
          if (matches(record, residual)) out.push(record);
        }
        if (out.length > 0) yield out;
      }
    } finally {
      await it.close();
    }
  }

  /**
   * Counts the records matching `query`: O(1) without attribute filters, and over the whole log
   * for filters a counted index covers; otherwise walks an index (keys only, plus the records
   * when a filter is not covered by that index).
   * @throws AgentdError not_found when the log does not exist; invalid_argument.
   */
  async count(logId: string, query: LogQuery = {}): Promise<number> {
    const head = await this.requireHead(logId);
    const [lo, hi] = clampRange(head, query);
    if (lo > hi) return 0;
    const filters = this.filtersOf(query);
    if (filters.length === 0) return hi - lo + 1; // records are dense between firstSeq and lastSeq
    const plan = this.plan(head, filters);
    const whole = lo === head.firstSeq && hi === head.lastSeq;
    if (whole && plan.residual.length === 0 && plan.exactCount !== undefined) return plan.exactCount;
    if (plan.residual.length > 0) {
      let n = 0;
      for await (const _ of this.scan(logId, { ...query, chunk: 1000 })) n++;
      return n;
    }
    const seqs = this.mergeIndex(logId, plan, lo, hi, false, 1000);
    let n = 0;
    for await (const chunk of seqs) n += chunk.length;
    return n;
  }

  /**
   * Maps a timestamp range [gteMs, ltMs) to the seq range [fromSeq, toSeq] of the records in it
   * (fromSeq > toSeq when none). Two index seeks, whatever the log's size.
   * @throws AgentdError not_found when the log does not exist.
   */
  async seqRangeForTime(
    logId: string,
    range: { readonly gteMs?: number; readonly ltMs?: number },
  ): Promise<{ fromSeq: number; toSeq: number }> {
    const head = await this.requireHead(logId);
    let fromSeq = head.firstSeq;
    let toSeq = head.lastSeq;
    if (range.gteMs !== undefined) {
      fromSeq = Math.max(fromSeq, (await this.firstSeqAtOrAfter(logId, range.gteMs)) ?? head.lastSeq + 1);
    }
    if (range.ltMs !== undefined) {
      toSeq = Math.min(toSeq, ((await this.firstSeqAtOrAfter(logId, range.ltMs)) ?? head.lastSeq + 1) - 1);
    }
    return { fromSeq, toSeq };
  }

  // ---- internals: queue -------------------------------------------------------------------------

  private control<T>(logId: string, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.ctx.closing) {
        reject(new AgentdError("unavailable", "storage is closing"));
        return;
      }
      // The wrapper settles the caller's promise itself and never rejects, so the queue loop
      // needs no error handling for control jobs.
      const run = async (): Promise<void> => {
        try {
          resolve(await fn());
        } catch (err) {
          this.forgetHead(logId); // the durable state is re-read by the next writer
          reject(err);
        }
      };
      this.enqueue(logId, { kind: "control", run });
    });
  }

  private enqueue(logId: string, job: Job): void {
    if (this.ctx.closing && job.kind === "append") {
      job.reject(new AgentdError("unavailable", "storage is closing"));
      return;
    }
    let q = this.queues.get(logId);
    if (q === undefined) {
      q = { jobs: [], running: false };
      this.queues.set(logId, q);
      if (this.queues.size === 1) this.idle = new Promise<void>((r) => (this.wakeIdle = r));
    }
    q.jobs.push(job);
    if (!q.running) {
      q.running = true;
      void this.run(logId, q);
    }
  }

  /** Owns the log's queue until it is empty. Never rejects: every job is settled individually. */
  private async run(logId: string, q: LogQueue): Promise<void> {
    while (q.jobs.length > 0) {
      const first = q.jobs[0]!;
      if (first.kind === "control") {
        q.jobs.shift();
        await first.run();
        continue;
      }
      // Group commit: every append waiting now (up to the batch bounds) goes into one batch.
      const group: AppendJob[] = [];
      let entries = 0;
      let bytes = 0;
      while (q.jobs.length > 0) {
        const next = q.jobs[0]!;
        if (next.kind !== "append") break;
        if (group.length > 0 && (entries + next.entries.length > MAX_GROUP_ENTRIES || bytes + next.bytes > MAX_GROUP_BYTES)) break;
        q.jobs.shift();
        group.push(next);
        entries += next.entries.length;
        bytes += next.bytes;
      }
      await this.commit(logId, group);
    }
    q.running = false;
    this.queues.delete(logId);
    if (this.queues.size === 0) this.wakeIdle?.();
  }

  /** Writes one group of appends as one batch; settles every job of the group. Never rejects. */
  private async commit(logId: string, group: AppendJob[]): Promise<void> {
    let head: HeadState | undefined;
    try {
      head = await this.loadHead(logId);
    } catch (err) {
      for (const j of group) j.reject(err);
      return;
    }
    if (head === undefined || head.deleting) {
      for (const j of group) j.reject(this.family.notFound(logId));
      return;
    }
    const k = this.family.keys;
    // Ids must be unique in the log. The lookup of the group's ids runs while the batch is being
    // built; a taken id (rare) only costs building the batch again without the offending call.
    const checked = group.filter((j) => j.checkIds);
    const lookup =
      checked.length === 0
        ? Promise.resolve({ values: [] as (Uint8Array | undefined)[], error: undefined })
        : this.ctx.sub[k.idSublevel].getMany(checked.flatMap((j) => j.entries.map((e) => k.id(logId, e.id)))).then(
            (values) => ({ values, error: undefined }),
            (error: unknown) => ({ values: [] as (Uint8Array | undefined)[], error }),
          );
    // Calls whose ids repeat within the call or an earlier call of the group are refused outright.
    const groupIds = new Set<string>();
    let accepted = group.filter((j) => {
      const own = new Set<string>();
      const clash = j.entries.find((e) => groupIds.has(e.id) || own.has(e.id) || (own.add(e.id), false));
      if (clash !== undefined) {
        j.reject(this.duplicate(logId, clash.id));
        return false;
      }
      for (const id of own) groupIds.add(id);
      return true;
    });
    let built = this.build(logId, head, accepted);
    const { values: existing, error } = await lookup;
    if (error !== undefined) {
      for (const j of accepted) j.reject(error);
      return;
    }
    const taken = new Set<string>();
    let i = 0;
    for (const j of checked) for (const e of j.entries) if (existing[i++] !== undefined) taken.add(e.id);
    if (taken.size > 0) {
      const clash = (j: AppendJob): string | undefined => (j.checkIds ? j.entries.find((e) => taken.has(e.id))?.id : undefined);
      for (const j of accepted) {
        const id = clash(j);
        if (id !== undefined) j.reject(this.duplicate(logId, id));
      }
      accepted = accepted.filter((j) => clash(j) === undefined);
      built = this.build(logId, head, accepted);
    }
    if (accepted.length === 0) return;
    try {
      await built.batch.write();
    } catch (err) {
      this.forgetHead(logId);
      for (const j of accepted) j.reject(err);
      return;
    }
    this.cacheHead(logId, built.next);
    accepted.forEach((j, n) => j.resolve(built.appended[n]!));
  }

  /** The batch that appends `jobs` (ids already checked) to a log whose head is `head`. */
  private build(
    logId: string,
    head: HeadState,
    jobs: readonly AppendJob[],
  ): { batch: WriteBatch; next: HeadState; appended: Appended[][] } {
    const k = this.family.keys;
    const indexes = this.family.indexes;
    const next: HeadState = { ...head, counts: head.counts.map((m) => new Map(m)) };
    const batch = new WriteBatch(this.ctx);
    const appended = jobs.map((job) =>
      job.entries.map((e) => {
        const seq = next.lastSeq + 1;
        const timestampMs = Math.max(e.timestampMs, next.lastTimestampMs);
        batch.put(k.recordSublevel, k.record(logId, seq), this.family.encode({ id: e.id, seq, timestampMs, attributes: e.attributes, body: e.body }));
        batch.put(k.idSublevel, k.id(logId, e.id), this.family.encodePointer(seq));
        for (let i = 0; i < indexes.length; i++) {
          const values = indexes[i]!.attributes.map((a) => e.attributes[a]!);
          batch.put(k.indexSublevels[i]!, k.index(logId, values, seq), EMPTY);
          if (indexes[i]!.counted) {
            const tuple = values.join(SEP);
            next.counts[i]!.set(tuple, (next.counts[i]!.get(tuple) ?? 0) + 1);
          }
        }
        // Sparse timestamp index: the first record of each distinct timestamp, and the first record.
        if (timestampMs > next.lastTimestampMs || seq === next.firstSeq) batch.put(k.tsSublevel, k.ts(logId, timestampMs, seq), EMPTY);
        next.lastSeq = seq;
        next.lastTimestampMs = timestampMs;
        next.recordCount += 1;
        return { seq, timestampMs };
      }),
    );
    batch.put(k.headSublevel, k.head(logId), this.encodeHead(next));
    for (const job of jobs) if (job.extra !== undefined) batch.append(job.extra);
    return { batch, next, appended };
  }

  private duplicate(logId: string, id: string): AgentdError {
    return new AgentdError("already_exists", `event ${id} already exists in ${this.family.describe(logId)}`, { event_id: id });
  }

  /** Removes every key of a deleting log, the head last. Runs inside the log's queue. */
  private async purge(logId: string): Promise<void> {
    const k = this.family.keys;
    await this.purgeRecords(logId);
    // Not fsynced: if lost, the marker survives and the purge runs again at the next open; a later
    // durable write (e.g. re-creating the id) makes this batch durable too (the log is ordered).
    const last = new WriteBatch(this.ctx).del(k.headSublevel, k.head(logId));
    if (k.deletingSublevel !== undefined) last.del(k.deletingSublevel, logId);
    await last.write(false);
    this.forgetHead(logId);
  }

  /** Removes every record and index key of one log (the head stays). */
  private async purgeRecords(logId: string): Promise<void> {
    const k = this.family.keys;
    for (const sublevel of [k.recordSublevel, k.idSublevel, k.tsSublevel, ...k.indexSublevels]) {
      await deleteRange(this.ctx, sublevel, k.all(logId), PURGE_CHUNK);
    }
  }

  // ---- internals: heads -------------------------------------------------------------------------

  private emptyHead(createdAtMs: number): HeadState {
    return {
      lastSeq: 0,
      firstSeq: 1,
      lastTimestampMs: 0,
      recordCount: 0,
      createdAtMs,
      deleting: false,
      counts: this.family.indexes.map(() => new Map()),
    };
  }

  /** The head for a writer: cached, else read; undefined when the log was never created. */
  private async loadHead(logId: string): Promise<HeadState | undefined> {
    const cached = this.heads.get(logId);
    if (cached !== undefined) {
      this.cacheHead(logId, cached); // refresh its LRU position
      return cached;
    }
    const head = await this.readHeadState(logId);
    if (head !== undefined) this.cacheHead(logId, head);
    return head;
  }

  private cacheHead(logId: string, head: HeadState): void {
    this.headEpoch++;
    this.putHead(logId, head);
  }

  private forgetHead(logId: string): void {
    this.headEpoch++;
    this.heads.delete(logId);
  }

  private putHead(logId: string, head: HeadState): void {
    this.heads.delete(logId);
    this.heads.set(logId, head);
    if (this.heads.size > HEAD_CACHE_SIZE) {
      const oldest = this.heads.keys().next();
      if (oldest.done !== true) this.heads.delete(oldest.value);
    }
  }

  /**
   * The committed head: cached, else read from disk (and cached when that is safe, see `heads`);
   * undefined when the log does not exist.
   */
  private async readHeadState(logId: string): Promise<HeadState | undefined> {
    const cached = this.heads.get(logId);
    if (cached !== undefined) return cached;
    const epoch = this.headEpoch;
    const k = this.family.keys;
    const bytes = await this.ctx.sub[k.headSublevel].get(k.head(logId));
    if (bytes === undefined) return this.family.implicit ? this.emptyHead(0) : undefined;
    const head = this.decodeHead(logId, bytes);
    if (this.headEpoch === epoch && !this.heads.has(logId)) this.putHead(logId, head);
    return head;
  }

  private async requireHead(logId: string): Promise<HeadState> {
    checkId("log id", logId);
    const head = await this.readHeadState(logId);
    if (head === undefined || head.deleting) throw this.family.notFound(logId);
    return head;
  }

  private encodeHead(h: HeadState): Uint8Array {
    const indexCounts: LogHead["indexCounts"] = {};
    this.family.indexes.forEach((index, i) => {
      if (!index.counted) return;
      const counts: Record<string, bigint> = {};
      for (const [tuple, n] of h.counts[i]!) if (n > 0) counts[tuple] = BigInt(n);
      indexCounts[index.name] = create(IndexCountsSchema, { counts });
    });
    return encodeValue(
      LogHeadSchema,
      create(LogHeadSchema, {
        lastSeq: BigInt(h.lastSeq),
        firstSeq: BigInt(h.firstSeq),
        lastTimestampMs: BigInt(h.lastTimestampMs),
        recordCount: BigInt(h.recordCount),
        createdAtMs: BigInt(h.createdAtMs),
        deleting: h.deleting,
        indexCounts,
      }),
    );
  }

  private decodeHead(logId: string, bytes: Uint8Array): HeadState {
    const what = `head of ${this.family.describe(logId)}`;
    const m = decodeValue(LogHeadSchema, bytes, what, { log_id: logId });
    if (m.firstSeq < 1n || m.firstSeq > m.lastSeq + 1n || m.lastSeq > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw dataLoss(what, { log_id: logId });
    }
    return {
      lastSeq: Number(m.lastSeq),
      firstSeq: Number(m.firstSeq),
      lastTimestampMs: Number(m.lastTimestampMs),
      recordCount: Number(m.recordCount),
      createdAtMs: Number(m.createdAtMs),
      deleting: m.deleting,
      counts: this.family.indexes.map((index) => {
        const counts = m.indexCounts[index.name]?.counts ?? {};
        return new Map(Object.entries(counts).map(([tuple, n]) => [tuple, Number(n)]));
      }),
    };
  }

  // ---- internals: reads -------------------------------------------------------------------------

  private decodeRecord(logId: string, seq: number, bytes: Uint8Array): LogRecord {
    const what = `record ${seq} of ${this.family.describe(logId)}`;
    let record: LogRecord;
    try {
      record = this.family.decode(bytes);
    } catch (cause) {
      throw dataLoss(what, { log_id: logId, seq: String(seq) }, cause);
    }
    if (record.seq !== seq || record.attributes.length !== this.family.attributes.length) {
      throw dataLoss(what, { log_id: logId, seq: String(seq) });
    }
    return record;
  }

  private filtersOf(query: LogQuery): Filter[] {
    const filters: Filter[] = [];
    (query.attributes ?? []).forEach((value, position) => {
      if (value === undefined) return;
      const name = this.family.attributes[position];
      if (name === undefined) throw new TypeError(`no attribute at position ${position}`);
      checkId(name, value);
      filters.push({ position, value });
    });
    return filters;
  }

  /**
   * Chooses how to answer a filtered query. An index qualifies when all its attributes are
   * filtered (one value tuple), or when it is counted and at least one of its attributes is
   * filtered (the matching tuples are listed from the head). Preferred: fewest filters left to
   * check on records, then fewest index entries to walk (uncounted indexes, such as a bash
   * command id, are assumed to be selective).
   */
  private plan(head: HeadState, filters: readonly Filter[]): Plan {
    let best: (Plan & { cost: number }) | undefined;
    this.family.indexes.forEach((index, i) => {
      const bound = index.attributes.map((a) => filters.find((f) => f.position === a)?.value);
      if (!bound.some((v) => v !== undefined)) return;
      let tuples: string[][];
      let exactCount: number | undefined;
      if (bound.every((v): v is string => v !== undefined)) {
        tuples = [bound];
        exactCount = index.counted ? (head.counts[i]!.get(bound.join(SEP)) ?? 0) : undefined;
      } else if (index.counted) {
        tuples = [];
        exactCount = 0;
        for (const [tuple, n] of head.counts[i]!) {
          const values = tuple.split(SEP);
          if (values.every((v, j) => bound[j] === undefined || bound[j] === v)) {
            tuples.push(values);
            exactCount += n;
          }
        }
      } else {
        return;
      }
      const residual = filters.filter((f) => !index.attributes.includes(f.position));
      const cost = residual.length * Number.MAX_SAFE_INTEGER / 16 + (exactCount ?? 0);
      if (best === undefined || cost < best.cost) best = { index: i, tuples, residual, exactCount, cost };
    });
    return best ?? { index: -1, tuples: [], residual: filters, exactCount: undefined };
  }

  /**
   * The seqs in [lo, hi] of the plan's index entries, merged across its value tuples in seq order,
   * in chunks of at most `chunk`. One seek per tuple, then sequential reads.
   */
  private async *mergeIndex(
    logId: string,
    plan: Plan,
    lo: number,
    hi: number,
    reverse: boolean,
    chunk: number,
  ): AsyncGenerator<number[], void, undefined> {
    const k = this.family.keys;
    const sub = this.ctx.sub[k.indexSublevels[plan.index]!];
    const streams = plan.tuples.map((t) => new SeqStream(sub, k.indexRange(logId, t, lo, hi), reverse, chunk));
    try {
      for (;;) {
        const out: number[] = [];
        while (out.length < chunk) {
          let pick: SeqStream | undefined;
          for (const s of streams) {
            const v = await s.peek();
            if (v === undefined) continue;
            const best = pick === undefined ? undefined : await pick.peek();
            if (best === undefined || (reverse ? v > best : v < best)) pick = s;
          }
          if (pick === undefined) break;
          out.push(pick.take());
        }
        if (out.length === 0) return;
        yield out;
      }
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
  }

  private async firstSeqAtOrAfter(logId: string, timestampMs: number): Promise<number | undefined> {
    const k = this.family.keys;
    const ts = Math.max(0, Math.min(Math.ceil(timestampMs), Number.MAX_SAFE_INTEGER));
    const [key] = await this.ctx.sub[k.tsSublevel].keys({ ...k.tsFrom(logId, ts), limit: 1 }).all();
    return key === undefined ? undefined : trailingInt(key);
  }
}

/**
 * classic-level's `highWaterMarkBytes` for a walk reading `chunk` entries per round trip. Its
 * default (16 KiB) ends a nextv() early once that many bytes are read — at ~95 records of an
 * ordinary event, short of a page of 100 + 1 — and each extra round trip through LevelDB's thread
 * costs more than the whole page's decoding. Sized for the chunk, capped so an iterator never
 * holds more than READ_AHEAD_MAX_BYTES.
 */
function readAheadBytes(chunk: number, bytesPerEntry: number): number {
  return Math.min(chunk * bytesPerEntry, READ_AHEAD_MAX_BYTES);
}
/** Generous per-entry sizes for readAheadBytes (an event record is typically 200 B – 2 KiB). */
const RECORD_BYTES_GUESS = 4096;
const INDEX_KEY_BYTES_GUESS = 256;
const READ_AHEAD_MAX_BYTES = 4 * 1024 * 1024;

/** The seqs of one index key range, read in chunks. */
class SeqStream {
  private readonly it: { nextv(size: number): Promise<string[]>; close(): Promise<void> };
  private buffer: number[] = [];
  private at = 0;
  private done = false;

  constructor(sub: Sublevel, range: KeyRange, reverse: boolean, private readonly chunk: number) {
    const options: ReadAheadRange = { ...range, reverse, highWaterMarkBytes: readAheadBytes(chunk, INDEX_KEY_BYTES_GUESS) };
    this.it = sub.keys(options);
  }

  async peek(): Promise<number | undefined> {
    if (this.at < this.buffer.length) return this.buffer[this.at];
    if (this.done) return undefined;
    const keys = await this.it.nextv(this.chunk);
    if (keys.length === 0) {
      this.done = true;
      return undefined;
    }
    this.buffer = keys.map(trailingInt);
    this.at = 0;
    return this.buffer[0];
  }

  /** Consumes the value last returned by peek(). */
  take(): number {
    return this.buffer[this.at++]!;
  }

  close(): Promise<void> {
    return this.it.close();
  }
}

function clampRange(head: HeadState, q: LogQuery): [number, number] {
  const lo = Math.max(head.firstSeq, q.fromSeq ?? 1);
  const hi = Math.min(head.lastSeq, q.toSeq ?? head.lastSeq);
  return [lo, hi];
}

function matches(record: LogRecord, filters: readonly Filter[]): boolean {
  return filters.every((f) => record.attributes[f.position] === f.value);
}
