/**
 * Encoders for the values written on the append hot path (EventRecord, BashEventRecord,
 * SeqPointer). They write the exact bytes `toBinary(create(Schema, …))` writes (proto3: fields in
 * number order, default values omitted) into a single allocation, avoiding the reflective
 * encoder's per-message cost and garbage (measured: it dominated append CPU time);
 * records.test.ts checks the equivalence. Records are decoded by hand too (every search and
 * replay reads them: the reflective decoder cost ~3 µs per record, a fifth of a page of 100);
 * the SeqPointer of an id lookup goes through the generated schema.
 */

import { fromBinary } from "@bufbuild/protobuf";
import { SeqPointerSchema } from "../../gen/agentd/storage/v1/storage_pb.js";
import { varintFieldSize, varintSize, WIRE_DELIMITED, WIRE_VARINT, WireCursor, writeVarint, writeVarintField } from "../codec/wire.js";

/** The fields shared by EventRecord and BashEventRecord (field 5 is source or command_id). */
export interface RecordFields {
  readonly id: string;
  readonly seq: number;
  readonly timestampMs: number;
  readonly kind: string;
  /** EventRecord.source or BashEventRecord.command_id. */
  readonly field5: string;
  readonly body: Uint8Array;
}

/**
 * Encodes an EventRecord or a BashEventRecord (same field numbers and types). The string fields
 * must be ASCII, which keys.ts's ID_PATTERN guarantees for every id, kind, source and command id;
 * that makes the encoded size known up front, so the record is written into one allocation.
 */
export function encodeRecord(r: RecordFields): Uint8Array {
  const size =
    stringFieldSize(r.id) +
    varintFieldSize(r.seq) +
    varintFieldSize(r.timestampMs) +
    stringFieldSize(r.kind) +
    stringFieldSize(r.field5) +
    (r.body.byteLength === 0 ? 0 : 1 + varintSize(r.body.byteLength) + r.body.byteLength);
  const out = new Uint8Array(size);
  let at = 0;
  at = writeAsciiField(out, at, 1, r.id);
  at = writeVarintField(out, at, 2, r.seq);
  at = writeVarintField(out, at, 3, r.timestampMs);
  at = writeAsciiField(out, at, 4, r.kind);
  at = writeAsciiField(out, at, 5, r.field5);
  if (r.body.byteLength !== 0) {
    out[at++] = (6 << 3) | WIRE_DELIMITED;
    at = writeVarint(out, at, r.body.byteLength);
    out.set(r.body, at);
  }
  return out;
}

function stringFieldSize(s: string): number {
  return s.length === 0 ? 0 : 1 + varintSize(s.length) + s.length;
}

function writeAsciiField(out: Uint8Array, at: number, field: number, s: string): number {
  if (s.length === 0) return at;
  out[at++] = (field << 3) | WIRE_DELIMITED;
  at = writeVarint(out, at, s.length);
  for (let i = 0; i < s.length; i++) out[at++] = s.charCodeAt(i);
  return at;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes an EventRecord or a BashEventRecord (field 5 is `source` or `command_id`). Throws on
 * invalid bytes. Reads the shared record layout as a proto3 parser would (unknown fields
 * skipped, the last of a repeated scalar wins, `body` a view into `bytes`), but refuses anything
 * a writer of these messages cannot have produced — a known field with another wire type, a
 * group, invalid UTF-8, truncation — so damaged values surface as errors (data_loss above),
 * never as odd records.
 */
export function decodeRecord(bytes: Uint8Array): RecordFields {
  const w = new WireCursor(bytes);
  let id = "";
  let seq = 0;
  let timestampMs = 0;
  let kind = "";
  let field5 = "";
  let body: Uint8Array = EMPTY_BODY;
  while (!w.done) {
    const tag = w.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    const want = field === 2 || field === 3 ? WIRE_VARINT : field >= 1 && field <= 6 ? WIRE_DELIMITED : wireType;
    if (field === 0 || wireType !== want) throw new Error(`field ${field} has wire type ${wireType}`);
    if (field === 1) id = utf8.decode(w.delimited());
    else if (field === 2) seq = w.varint();
    else if (field === 3) timestampMs = w.varint();
    else if (field === 4) kind = utf8.decode(w.delimited());
    else if (field === 5) field5 = utf8.decode(w.delimited());
    else if (field === 6) body = w.delimited();
    else w.skip(wireType); // an unknown field (a later schema version)
  }
  return { id, seq, timestampMs, kind, field5, body };
}

const EMPTY_BODY = new Uint8Array(0);

/** Encodes a SeqPointer. */
export function encodeSeqPointer(seq: number): Uint8Array {
  const out = new Uint8Array(varintFieldSize(seq));
  writeVarintField(out, 0, 1, seq);
  return out;
}

/** Decodes a SeqPointer. Throws on invalid bytes. */
export function decodeSeqPointer(bytes: Uint8Array): number {
  return Number(fromBinary(SeqPointerSchema, bytes).seq);
}
