/**
 * Protobuf wire-format primitives for the hand-written hot-path codecs (stored records, the
 * event log's stored-event framing, binary-encode.ts): no reader objects per nested message, no
 * closures, no sub-buffers beyond the ones returned. Integers are JS numbers (exact up to 2^53,
 * which every seq, timestamp and length here stays below).
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_DELIMITED = 2;
export const WIRE_FIXED32 = 5;

/** A read position in one buffer. Every read throws on truncation or malformed framing. */
export class WireCursor {
  pos: number;
  readonly end: number;

  constructor(
    readonly buf: Uint8Array,
    start = 0,
    end = buf.length,
  ) {
    this.pos = start;
    this.end = end;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error("truncated varint");
      const b = this.buf[this.pos++]!;
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 0x80;
    }
    throw new Error("varint longer than 10 bytes");
  }

  /** The next length-delimited value, as a view into the buffer. */
  delimited(): Uint8Array {
    const len = this.varint(); // read first: the value starts after the length
    if (len > this.end - this.pos) throw new Error("truncated length-delimited field");
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  /** Skips the value of a field of wire type `wireType` (groups are refused). */
  skip(wireType: number): void {
    if (wireType === WIRE_VARINT) this.varint();
    else if (wireType === WIRE_DELIMITED) this.delimited();
    else if (wireType === WIRE_FIXED64 || wireType === WIRE_FIXED32) {
      const n = wireType === WIRE_FIXED64 ? 8 : 4;
      if (n > this.end - this.pos) throw new Error("truncated fixed-size field");
      this.pos += n;
    } else throw new Error(`unsupported wire type ${wireType}`);
  }
}

/** Bytes of a non-negative integer as a varint. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** Writes a non-negative safe integer as a varint (no 32-bit bit operations: values reach 2^53); returns the next position. */
export function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/** Size of a varint field (a one-byte tag + value) of a non-negative integer; 0 for the default 0, which proto3 leaves out. */
export function varintFieldSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

/** Writes a varint field (field numbers below 16: a one-byte tag), nothing for 0; returns the next position. */
export function writeVarintField(out: Uint8Array, at: number, field: number, n: number): number {
  if (n === 0) return at;
  out[at++] = (field << 3) | WIRE_VARINT;
  return writeVarint(out, at, n);
}
