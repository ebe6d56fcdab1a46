/**
 * Encoders for the values written on the append hot path (EventRecord, BashEventRecord,
 * SeqPointer). They write the exact bytes `toBinary(create(Schema, …))` writes (proto3: fields in
 * number order, default values omitted) into a single allocation, avoiding the reflective
 * encoder's per-message cost and garbage (measured: it dominated append CPU time);
 * records.test.ts checks the equivalence. Decoding always goes through the generated schemas.
 */

import { fromBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import {
  BashEventRecordSchema,
  EventRecordSchema,
  SeqPointerSchema,
} from "../../gen/agentd/storage/v1/storage_pb.js";

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
    out[at++] = (6 << 3) | WireType.LengthDelimited;
    at = writeVarint(out, at, r.body.byteLength);
    out.set(r.body, at);
  }
  return out;
}

/** Size of a varint field (tag + value) for a non-negative safe integer; 0 for the default 0. */
function varintFieldSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

function stringFieldSize(s: string): number {
  return s.length === 0 ? 0 : 1 + varintSize(s.length) + s.length;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** Writes a non-negative safe integer as a varint (no 32-bit bit operations: values reach 2^53). */
function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

function writeVarintField(out: Uint8Array, at: number, field: number, n: number): number {
  if (n === 0) return at;
  out[at++] = (field << 3) | WireType.Varint;
  return writeVarint(out, at, n);
}

function writeAsciiField(out: Uint8Array, at: number, field: number, s: string): number {
  if (s.length === 0) return at;
  out[at++] = (field << 3) | WireType.LengthDelimited;
  at = writeVarint(out, at, s.length);
  for (let i = 0; i < s.length; i++) out[at++] = s.charCodeAt(i);
  return at;
}

/** Decodes an EventRecord. Throws on invalid bytes. */
export function decodeEventRecord(bytes: Uint8Array): RecordFields {
  const m = fromBinary(EventRecordSchema, bytes);
  return { id: m.id, seq: Number(m.seq), timestampMs: Number(m.timestampMs), kind: m.kind, field5: m.source, body: m.body };
}

/** Decodes a BashEventRecord. Throws on invalid bytes. */
export function decodeBashEventRecord(bytes: Uint8Array): RecordFields {
  const m = fromBinary(BashEventRecordSchema, bytes);
  return { id: m.id, seq: Number(m.seq), timestampMs: Number(m.timestampMs), kind: m.kind, field5: m.commandId, body: m.body };
}

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
