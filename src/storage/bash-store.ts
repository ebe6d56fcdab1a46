/**
 * Storage of the bash service (keyspaces `bash-*` in keys.ts): command records, command output
 * by byte offset, and the global bash event log. Records and event bodies are opaque bytes owned
 * by the bash engine.
 *
 * - Output is one byte stream per command, stored as chunks keyed by (command id, offset of the
 *   chunk's first byte). The engine appends chunks with contiguous offsets; readOutput() serves
 *   any byte range, so a client can re-attach and continue from the byte it last saw.
 * - The event log has one global, dense seq (from 1, never reused, also across clearEvents()),
 *   indexes by kind and by command id, and the same timestamp rules as conversation logs.
 * - Every write resolves once durable (fsynced), like conversation events; only a command record
 *   or an output chunk written with `durable: false` waits for the next synced write of the
 *   database to reach the disk (it is in the OS, safe from a crash of the process, at once).
 */

import { create } from "@bufbuild/protobuf";
import { AgentdError } from "../errors.js";
import { BashCommandEntrySchema, OutputChunkSchema } from "../../gen/agentd/storage/v1/storage_pb.js";
import { WriteBatch, decodeValue, deleteRange, encodeValue } from "./db.js";
import type { ReadAheadRange, StorageContext } from "./db.js";
import { IndexedLog } from "./indexed-log.js";
import type { AppendOptions, Appended, LogFamily, LogRecord } from "./indexed-log.js";
import { bashKeys, bashLogKeys, checkId, encodeInt, isValidId, trailingInt } from "./keys.js";
import { decodeRecord, decodeSeqPointer, encodeRecord, encodeSeqPointer } from "./records.js";

/** One bash event to append. */
export interface BashEventEntry {
  readonly id: string;
  readonly kind: string;
  readonly commandId: string;
  readonly timestampMs: number;
  readonly body: Uint8Array;
}

/** Writes that travel with an event append: same atomic batch, same fsync. */
export interface BashAttachedWrites {
  /** Creates or replaces this command record (as putCommand). */
  readonly command?: { readonly commandId: string; readonly record: Uint8Array };
  /** One output chunk (as appendOutput). */
  readonly output?: { readonly commandId: string; readonly offset: number; readonly data: Uint8Array };
}

/** A stored bash event. */
export interface StoredBashEvent {
  readonly id: string;
  readonly seq: number;
  readonly timestampMs: number;
  readonly kind: string;
  readonly commandId: string;
  readonly body: Uint8Array;
}

/** Filters; omitted ones do not filter. Seq bounds are inclusive. */
export interface BashEventFilter {
  readonly kind?: string;
  readonly commandId?: string;
  readonly fromSeq?: number;
  readonly toSeq?: number;
}

export interface BashEventScanOptions extends BashEventFilter {
  readonly order?: "asc" | "desc";
  readonly chunk?: number;
}

/** A byte range of a command's output. */
export interface OutputSlice {
  /** Offset of `data`'s first byte. */
  readonly offset: number;
  readonly data: Uint8Array;
  /** Offset right after `data`: where the next read continues. */
  readonly nextOffset: number;
}

/** The single log's id (the bash keyspaces carry no log id). */
const BASH_LOG = "bash";
const KIND = 0;
const COMMAND = 1;

const family: LogFamily = {
  keys: bashLogKeys,
  attributes: ["kind", "command id"],
  indexes: [
    { name: "kind", attributes: [KIND], counted: true },
    // Not counted: the head would grow with every command.
    { name: "command", attributes: [COMMAND], counted: false },
  ],
  encode: (r) =>
    encodeRecord({ id: r.id, seq: r.seq, timestampMs: r.timestampMs, kind: r.attributes[KIND]!, field5: r.attributes[COMMAND]!, body: r.body }),
  decode: (bytes) => {
    const m = decodeRecord(bytes);
    return { id: m.id, seq: m.seq, timestampMs: m.timestampMs, attributes: [m.kind, m.field5], body: m.body };
  },
  encodePointer: encodeSeqPointer,
  decodePointer: decodeSeqPointer,
  describe: () => "bash event log",
  implicit: true,
  notFound: () => new AgentdError("internal", "bash event log missing"),
};

function toStored(r: LogRecord): StoredBashEvent {
  return { id: r.id, seq: r.seq, timestampMs: r.timestampMs, kind: r.attributes[KIND]!, commandId: r.attributes[COMMAND]!, body: r.body };
}

export class BashStore {
  private readonly log: IndexedLog;

  constructor(private readonly ctx: StorageContext) {
    this.log = new IndexedLog(ctx, family);
  }

  // ---- commands ---------------------------------------------------------------------------------

  /**
   * Creates or replaces a command record. `options.durable` as in {@link appendOutput} (default
   * true: fsynced before resolving).
   * @throws AgentdError invalid_argument for a malformed id.
   */
  async putCommand(commandId: string, record: Uint8Array, options: { readonly durable?: boolean } = {}): Promise<void> {
    await this.putCommandOp(new WriteBatch(this.ctx), commandId, record).write(options.durable ?? true);
  }

  /** The command record, or null. @throws AgentdError data_loss. */
  async getCommand(commandId: string): Promise<Uint8Array | null> {
    const [r] = await this.getCommands([commandId]);
    return r ?? null;
  }

  /** Command records in input order, null where missing. @throws AgentdError data_loss. */
  async getCommands(commandIds: readonly string[]): Promise<(Uint8Array | null)[]> {
    const valid = commandIds.filter(isValidId);
    const values = await this.ctx.sub["bash-cmd"].getMany(valid.map(bashKeys.command));
    const found = new Map<string, Uint8Array>();
    valid.forEach((id, i) => {
      const v = values[i];
      if (v !== undefined) found.set(id, decodeValue(BashCommandEntrySchema, v, `bash command ${id}`, { command_id: id }).record);
    });
    return commandIds.map((id) => found.get(id) ?? null);
  }

  /** Every command record, in command id order (e.g. to find commands that were running at a crash). */
  async listCommands(): Promise<{ commandId: string; record: Uint8Array }[]> {
    const out: { commandId: string; record: Uint8Array }[] = [];
    for await (const [id, v] of this.ctx.sub["bash-cmd"].iterator()) {
      out.push({ commandId: id, record: decodeValue(BashCommandEntrySchema, v, `bash command ${id}`, { command_id: id }).record });
    }
    return out;
  }

  /**
   * Deletes a command record and all its output (bounded batches; the record goes first).
   * Its events stay in the event log. Resolves true when the record existed.
   */
  async deleteCommand(commandId: string): Promise<boolean> {
    checkId("command id", commandId);
    const existed = (await this.ctx.sub["bash-cmd"].get(bashKeys.command(commandId))) !== undefined;
    await new WriteBatch(this.ctx).del("bash-cmd", bashKeys.command(commandId)).write();
    await deleteRange(this.ctx, "bash-out", bashKeys.allOutput(commandId));
    return existed;
  }

  // ---- output -----------------------------------------------------------------------------------

  /**
   * Stores one chunk of a command's output (one byte stream per command), starting at byte
   * `offset`. Chunks must be appended with contiguous, non-overlapping offsets: `offset` is the
   * current stored length, which the engine tracks.
   *
   * `options.durable` (default true) fsyncs before resolving, like every acknowledged write.
   * false writes the chunk to the LevelDB log without an fsync of its own: it survives a crash of
   * the process (the data reached the OS before the promise resolves) and becomes durable against
   * power loss with the next synced write of the database (the log is one append-only file).
   * @throws AgentdError invalid_argument for a malformed id or offset, or empty data.
   */
  async appendOutput(commandId: string, offset: number, data: Uint8Array, options: { readonly durable?: boolean } = {}): Promise<void> {
    await this.appendOutputOp(new WriteBatch(this.ctx), commandId, offset, data).write(options.durable ?? true);
  }

  private putCommandOp(batch: WriteBatch, commandId: string, record: Uint8Array): WriteBatch {
    checkId("command id", commandId);
    return batch.put("bash-cmd", bashKeys.command(commandId), encodeValue(BashCommandEntrySchema, create(BashCommandEntrySchema, { record })));
  }

  private appendOutputOp(batch: WriteBatch, commandId: string, offset: number, data: Uint8Array): WriteBatch {
    checkId("command id", commandId);
    encodeInt("offset", offset);
    if (data.byteLength === 0) throw new AgentdError("invalid_argument", `empty output chunk for command ${commandId}`);
    return batch.put("bash-out", bashKeys.output(commandId, offset), encodeValue(OutputChunkSchema, create(OutputChunkSchema, { data })));
  }

  /**
   * Reads up to `maxBytes` (default 1 MiB) of a command's output from byte `fromOffset`. When `fromOffset`
   * is at or past the stored end, `data` is empty and `nextOffset` is `fromOffset`. Cost: one seek
   * plus the chunks read.
   * @throws AgentdError invalid_argument, data_loss.
   */
  async readOutput(commandId: string, fromOffset: number, maxBytes = 1024 * 1024): Promise<OutputSlice> {
    checkId("command id", commandId);
    encodeInt("offset", fromOffset);
    const sub = this.ctx.sub["bash-out"];
    const all = bashKeys.outputRange(commandId, 0, Number.MAX_SAFE_INTEGER);
    // The chunk containing fromOffset starts at or before it: seek backwards once.
    const [startKey] = await sub.keys({ ...bashKeys.outputRange(commandId, 0, fromOffset), reverse: true, limit: 1 }).all();
    // Read-ahead up to the bytes wanted (classic-level's 16 KiB default would make every chunk
    // after the first a round trip of its own); bounded by maxBytes plus one chunk.
    const options: ReadAheadRange = { gte: startKey ?? all.gte, lte: all.lte, highWaterMarkBytes: maxBytes };
    const it = sub.iterator(options);
    const parts: Uint8Array[] = [];
    let size = 0;
    let start = -1; // offset of the first returned byte, once known
    // Chunks are large (the engine writes up to 256 KiB) and a read often wants less than one:
    // fetch one chunk first, then as many as the rest needs at the size of the last one, so a
    // read never loads (and copies) chunks it does not use.
    let batch = 1;
    try {
      read: while (size < maxBytes) {
        const entries = await it.nextv(batch);
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const chunkOffset = trailingInt(key);
          const data = decodeValue(OutputChunkSchema, value, `output chunk ${chunkOffset} of command ${commandId}`, {
            command_id: commandId,
          }).data;
          if (chunkOffset + data.byteLength <= fromOffset) continue;
          const pos = start === -1 ? Math.max(fromOffset, chunkOffset) : start + size; // next byte wanted
          if (chunkOffset > pos) break read; // a gap: return what is contiguous
          if (start === -1) start = pos;
          const from = pos - chunkOffset;
          const take = Math.min(data.byteLength - from, maxBytes - size);
          parts.push(data.subarray(from, from + take));
          size += take;
          if (size >= maxBytes) break read;
          batch = Math.min(16, Math.max(1, Math.ceil((maxBytes - size) / data.byteLength)));
        }
      }
    } finally {
      await it.close();
    }
    const offset = start === -1 ? fromOffset : start;
    return { offset, data: concat(parts, size), nextOffset: offset + size };
  }

  /** The offset right after the last stored output byte of a command (0 when none). */
  async outputLength(commandId: string): Promise<number> {
    checkId("command id", commandId);
    const [entry] = await this.ctx.sub["bash-out"]
      .iterator({ ...bashKeys.outputRange(commandId, 0, Number.MAX_SAFE_INTEGER), reverse: true, limit: 1 })
      .all();
    if (entry === undefined) return 0;
    const [key, value] = entry;
    const chunkOffset = trailingInt(key);
    return chunkOffset + decodeValue(OutputChunkSchema, value, `output chunk ${chunkOffset} of command ${commandId}`).data.byteLength;
  }

  // ---- events -----------------------------------------------------------------------------------

  /**
   * Appends bash events (group-committed, durable when resolved); returns each one's seq and
   * stored timestamp. `options.ids` as in EventStore.append; `options.with` are written in the
   * same atomic batch (e.g. a command's final record and last output with its final event).
   * @throws AgentdError invalid_argument, already_exists (id taken).
   */
  async appendEvents(
    entries: readonly BashEventEntry[],
    options: { readonly ids?: AppendOptions["ids"]; readonly with?: BashAttachedWrites } = {},
  ): Promise<Appended[]> {
    let extra: WriteBatch | undefined;
    const attached = options.with;
    if (attached !== undefined) {
      extra = new WriteBatch(this.ctx);
      if (attached.command !== undefined) this.putCommandOp(extra, attached.command.commandId, attached.command.record);
      if (attached.output !== undefined) this.appendOutputOp(extra, attached.output.commandId, attached.output.offset, attached.output.data);
    }
    return this.log.append(
      BASH_LOG,
      entries.map((e) => ({ id: e.id, timestampMs: e.timestampMs, attributes: [e.kind, e.commandId], body: e.body })),
      { ids: options.ids, extra },
    );
  }

  /** The event log's head: seq bounds, number of events, counts per kind. */
  async eventHead(): Promise<{ firstSeq: number; lastSeq: number; count: number; lastTimestampMs: number; countsByKind: ReadonlyMap<string, number> }> {
    const h = await this.log.head(BASH_LOG);
    return { firstSeq: h.firstSeq, lastSeq: h.lastSeq, count: h.recordCount, lastTimestampMs: h.lastTimestampMs, countsByKind: h.counts.get("kind") ?? new Map() };
  }

  /** The event with `seq`, or null. @throws AgentdError data_loss. */
  async getEvent(seq: number): Promise<StoredBashEvent | null> {
    const r = await this.log.get(BASH_LOG, seq);
    return r === null ? null : toStored(r);
  }

  /** The event with id `id`, or null. @throws AgentdError data_loss. */
  async getEventById(id: string): Promise<StoredBashEvent | null> {
    const r = await this.log.getById(BASH_LOG, id);
    return r === null ? null : toStored(r);
  }

  /** Events by id in input order, null where missing. @throws AgentdError data_loss. */
  async getEventsByIds(ids: readonly string[]): Promise<(StoredBashEvent | null)[]> {
    return (await this.log.getManyByIds(BASH_LOG, ids)).map((r) => (r === null ? null : toStored(r)));
  }

  /** Walks matching events in seq order (see EventStore.scan). @throws AgentdError invalid_argument, data_loss. */
  async *scanEvents(options: BashEventScanOptions = {}): AsyncGenerator<StoredBashEvent, void, undefined> {
    for await (const r of this.log.scan(BASH_LOG, {
      attributes: [options.kind, options.commandId],
      fromSeq: options.fromSeq,
      toSeq: options.toSeq,
      order: options.order,
      chunk: options.chunk,
    })) {
      yield toStored(r);
    }
  }

  /** Counts matching events (O(1) unfiltered or by kind alone). */
  countEvents(filter: BashEventFilter = {}): Promise<number> {
    return this.log.count(BASH_LOG, { attributes: [filter.kind, filter.commandId], fromSeq: filter.fromSeq, toSeq: filter.toSeq });
  }

  /** The seq range of events with gteMs ≤ timestamp < ltMs (empty when fromSeq > toSeq). */
  seqRangeForTime(range: { readonly gteMs?: number; readonly ltMs?: number }): Promise<{ fromSeq: number; toSeq: number }> {
    return this.log.seqRangeForTime(BASH_LOG, range);
  }

  /**
   * Removes every bash event; seqs continue after the last one. Command records and output stay.
   * Resolves with the number of events removed.
   */
  async clearEvents(): Promise<number> {
    const before = (await this.log.head(BASH_LOG)).recordCount;
    await this.log.clear(BASH_LOG);
    return before;
  }

  /** Storage-internal: finishes a clear interrupted by a crash (called by openStore). */
  resumeClear(): Promise<void> {
    return this.log.resumeClear(BASH_LOG);
  }

  /** Storage-internal: waits for queued writes (called by Store.close). */
  drain(): Promise<void> {
    return this.log.drain();
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
