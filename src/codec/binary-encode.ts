/**
 * Protobuf binary encoding for the hot paths (every appended event is encoded once to be stored),
 * byte for byte what protobuf-es's `toBinary(schema, message)` writes with default options —
 * fields in field-number order, implicit-presence zero values left out, packed repeated scalars,
 * unknown fields last — and with the same checks on out-of-range numbers.
 *
 * protobuf-es builds the output from small arrays and copies each nested message once per level
 * (fork/join); this encoder measures the message first, then writes it once into one buffer. The
 * sizes pass records, in visiting order, the length of every nested message and string, which
 * the write pass consumes in the same order.
 *
 * A google.protobuf.Struct field (outside google.protobuf.Value) holds a JsonObject in protobuf-es
 * messages; it is turned back into the Struct it stands for, as protobuf-es's reflection does.
 *
 * Messages this file does not implement — delimited (group) encoding, proto2 required fields,
 * singular wrapper fields (google.protobuf.*Value, held as bare values; agentd's protos have none)
 * — are handed to toBinary whole: the plan of a schema says whether it can.
 */
import { ScalarType, toBinary, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { varintSize, WIRE_DELIMITED, WIRE_FIXED32, WIRE_FIXED64, WIRE_VARINT, writeVarint as writeVarintAt } from "./wire.js";

const IMPLICIT = 2; // FeatureSet.FieldPresence.IMPLICIT
const LEGACY_REQUIRED = 3;

const FLOAT32_MAX = 3.4028234663852886e38;

/** A nested message type's plan, resolved on first use (schemas may be recursive). */
class NestedEncoding {
  private resolved: MessageEncoding | undefined;
  /** Turns the field's value as held in a message into the message it stands for, when they differ. */
  private readonly toMessage: ((value: unknown) => Fields) | undefined;

  constructor(
    private readonly schema: DescMessage,
    field: DescField,
  ) {
    if (schema.typeName === "google.protobuf.Struct" && field.parent.typeName !== "google.protobuf.Value") {
      this.toMessage = (value) => (typeof value === "object" && value !== null ? structFromJson(value as Record<string, unknown>) : (value as Fields));
    }
  }

  get plan(): MessageEncoding {
    return (this.resolved ??= encodingOf(this.schema));
  }

  /** The message a field value stands for. */
  message(value: unknown): Fields {
    return this.toMessage === undefined ? (value as Fields) : this.toMessage(value);
  }
}

/** google.protobuf.Struct from the JsonObject protobuf-es holds for it (as its reflection does). */
function structFromJson(json: Record<string, unknown>): Fields {
  const fields: Record<string, Fields> = {};
  for (const [key, value] of Object.entries(json)) fields[key] = valueFromJson(value);
  return { $typeName: "google.protobuf.Struct", fields };
}

function valueFromJson(json: unknown): Fields {
  let kind: OneofValue = { case: undefined };
  if (typeof json === "number") kind = { case: "numberValue", value: json };
  else if (typeof json === "string") kind = { case: "stringValue", value: json };
  else if (typeof json === "boolean") kind = { case: "boolValue", value: json };
  else if (json === null) kind = { case: "nullValue", value: 0 };
  else if (Array.isArray(json)) kind = { case: "listValue", value: { $typeName: "google.protobuf.ListValue", values: json.map(valueFromJson) } };
  else if (typeof json === "object") kind = { case: "structValue", value: structFromJson(json as Record<string, unknown>) };
  return { $typeName: "google.protobuf.Value", kind };
}

type FieldEncoding =
  | { kind: "scalar"; field: DescField; name: string; oneof: string | undefined; implicit: boolean; scalar: ScalarType; tag: number; enumZero: number | undefined }
  | { kind: "list"; field: DescField; name: string; scalar: ScalarType; tag: number; packed: boolean }
  | { kind: "messages"; field: DescField; name: string; tag: number; nested: NestedEncoding }
  | { kind: "message"; field: DescField; name: string; oneof: string | undefined; tag: number; nested: NestedEncoding }
  | { kind: "map"; field: DescField; name: string; tag: number; key: ScalarType; value: ScalarType | NestedEncoding };

interface MessageEncoding {
  readonly schema: DescMessage;
  readonly fields: FieldEncoding[];
  /** False when the schema itself uses an encoding left to toBinary. */
  supported: boolean;
  /** Whether every schema reachable from this one is supported (set by the first encodeMessage). */
  supportedDeep?: boolean;
}

const encodings = new WeakMap<DescMessage, MessageEncoding>();

function encodingOf(schema: DescMessage): MessageEncoding {
  let plan = encodings.get(schema);
  if (plan !== undefined) return plan;
  plan = { schema, fields: [], supported: true };
  encodings.set(schema, plan); // before the fields: recursive schemas find it
  const sorted = [...schema.fields].sort((a, b) => a.number - b.number);
  for (const field of sorted) {
    const name = field.localName;
    const oneof = field.oneof?.localName;
    if (field.presence === LEGACY_REQUIRED) plan.supported = false;
    switch (field.fieldKind) {
      case "scalar":
      case "enum": {
        const scalar = field.fieldKind === "enum" ? ScalarType.INT32 : field.scalar;
        // An enum's implicit zero is its first value (0 in proto3), as protobuf-es decides presence.
        const enumZero = field.fieldKind === "enum" ? field.enum.values[0]?.number : undefined;
        plan.fields.push({ kind: "scalar", field, name, oneof, implicit: oneof === undefined && field.presence === IMPLICIT, scalar, tag: tagOf(field.number, wireTypeOf(scalar)), enumZero });
        break;
      }
      case "message": {
        if (field.delimitedEncoding || (field.oneof === undefined && isWrapperDesc(field.message))) plan.supported = false;
        plan.fields.push({ kind: "message", field, name, oneof, tag: tagOf(field.number, WIRE_DELIMITED), nested: new NestedEncoding(field.message, field) });
        break;
      }
      case "list":
        if (field.listKind === "message") {
          if (field.delimitedEncoding) plan.supported = false;
          plan.fields.push({ kind: "messages", field, name, tag: tagOf(field.number, WIRE_DELIMITED), nested: new NestedEncoding(field.message, field) });
        } else {
          const scalar = field.listKind === "enum" ? ScalarType.INT32 : field.scalar;
          plan.fields.push({ kind: "list", field, name, scalar, packed: field.packed, tag: tagOf(field.number, field.packed ? WIRE_DELIMITED : wireTypeOf(scalar)) });
        }
        break;
      case "map": {
        const value = field.mapKind === "message" ? new NestedEncoding(field.message, field) : field.mapKind === "enum" ? ScalarType.INT32 : field.scalar;
        plan.fields.push({ kind: "map", field, name, tag: tagOf(field.number, WIRE_DELIMITED), key: field.mapKey, value });
        break;
      }
    }
  }
  return plan;
}

function supportedDeep(root: MessageEncoding): boolean {
  if (root.supportedDeep !== undefined) return root.supportedDeep;
  const seen = new Set<MessageEncoding>();
  const visit = (p: MessageEncoding): boolean => {
    if (seen.has(p)) return true;
    seen.add(p);
    if (!p.supported) return false;
    for (const f of p.fields) {
      if (f.kind === "message" || f.kind === "messages") {
        if (!visit(f.nested.plan)) return false;
      } else if (f.kind === "map" && f.value instanceof NestedEncoding && !visit(f.value.plan)) return false;
    }
    return true;
  };
  return (root.supportedDeep = visit(root));
}

/** `toBinary(schema, message)`, faster. */
export function encodeMessage<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array {
  const plan = encodingOf(schema);
  if (!supportedDeep(plan)) return toBinary(schema, message);
  lengths.length = 0;
  const size = measureMessage(plan, message as unknown as Fields);
  const out = Buffer.allocUnsafe(size);
  buf = out;
  pos = 0;
  next = 0;
  writeMessage(plan, message as unknown as Fields);
  if (pos !== size) throw new Error(`internal error: encoded ${pos} bytes of ${size} for ${schema.typeName}`);
  buf = EMPTY;
  return new Uint8Array(out.buffer, out.byteOffset, size);
}

// ---- measuring ----------------------------------------------------------------------------------

type Fields = Record<string, unknown> & { $unknown?: { no: number; wireType: number; data: Uint8Array }[] };
type OneofValue = { case: string | undefined; value?: unknown };

/** Lengths of nested messages, packed lists, map entries and strings, in writing order. */
const lengths: number[] = [];

function isSet(f: FieldEncoding & { oneof: string | undefined }, m: Fields): boolean {
  if (f.oneof !== undefined) return (m[f.oneof] as OneofValue).case === f.name;
  return m[f.name] !== undefined && Object.prototype.hasOwnProperty.call(m, f.name);
}

function valueOf(f: FieldEncoding & { oneof: string | undefined }, m: Fields): unknown {
  return f.oneof !== undefined ? (m[f.oneof] as OneofValue).value : m[f.name];
}

function measureMessage(plan: MessageEncoding, m: Fields): number {
  let size = 0;
  for (const f of plan.fields) {
    switch (f.kind) {
      case "scalar": {
        if (f.implicit) {
          const v = m[f.name];
          if (f.enumZero !== undefined ? v === f.enumZero : isZero(f.scalar, v)) continue;
          size += varintSize(f.tag) + measureScalar(f.scalar, v, f.field);
        } else if (isSet(f, m)) size += varintSize(f.tag) + measureScalar(f.scalar, valueOf(f, m), f.field);
        break;
      }
      case "message": {
        if (!isSet(f, m)) continue;
        const at = lengths.push(0) - 1;
        const len = measureMessage(f.nested.plan, f.nested.message(valueOf(f, m)));
        lengths[at] = len;
        size += varintSize(f.tag) + varintSize(len) + len;
        break;
      }
      case "messages": {
        const list = m[f.name] as Fields[];
        if (list.length === 0) continue;
        const nested = f.nested.plan;
        const tagSize = varintSize(f.tag);
        for (const item of list) {
          const at = lengths.push(0) - 1;
          const len = measureMessage(nested, f.nested.message(item));
          lengths[at] = len;
          size += tagSize + varintSize(len) + len;
        }
        break;
      }
      case "list": {
        const list = m[f.name] as unknown[];
        if (list.length === 0) continue;
        if (f.packed) {
          const at = lengths.push(0) - 1;
          let len = 0;
          for (const v of list) len += measureScalar(f.scalar, v, f.field);
          lengths[at] = len;
          size += varintSize(f.tag) + varintSize(len) + len;
        } else {
          const tagSize = varintSize(f.tag);
          for (const v of list) size += tagSize + measureScalar(f.scalar, v, f.field);
        }
        break;
      }
      case "map": {
        const map = m[f.name] as Record<string, unknown>;
        const tagSize = varintSize(f.tag);
        for (const key of Object.keys(map)) {
          const at = lengths.push(0) - 1;
          let len = 1 + measureScalar(f.key, mapKey(f.key, key), f.field); // key: field 1, tag is one byte
          const value = map[key];
          if (f.value instanceof NestedEncoding) {
            const vat = lengths.push(0) - 1;
            const vlen = measureMessage(f.value.plan, f.value.message(value));
            lengths[vat] = vlen;
            len += 1 + varintSize(vlen) + vlen;
          } else len += 1 + measureScalar(f.value, value, f.field);
          lengths[at] = len;
          size += tagSize + varintSize(len) + len;
        }
        break;
      }
    }
  }
  const unknown = m.$unknown;
  if (unknown !== undefined) for (const u of unknown) size += varintSize(tagOf(u.no, u.wireType)) + u.data.byteLength;
  return size;
}

function measureScalar(scalar: ScalarType, v: unknown, field: DescField): number {
  switch (scalar) {
    case ScalarType.STRING: {
      const len = Buffer.byteLength(v as string, "utf8");
      lengths.push(len);
      return varintSize(len) + len;
    }
    case ScalarType.BYTES: {
      const len = (v as Uint8Array).byteLength;
      return varintSize(len) + len;
    }
    case ScalarType.BOOL:
      return 1;
    case ScalarType.DOUBLE:
      if (typeof v !== "number") fail(field, `invalid double: ${String(v)}`);
      return 8;
    case ScalarType.FIXED64:
      uint64(v, field);
      return 8;
    case ScalarType.SFIXED64:
      int64(v, field);
      return 8;
    case ScalarType.FLOAT:
      if (typeof v !== "number" || (Number.isFinite(v) && Math.abs(v) > FLOAT32_MAX)) fail(field, `invalid float32: ${String(v)}`);
      return 4;
    case ScalarType.FIXED32:
      checkUint32(v, field);
      return 4;
    case ScalarType.SFIXED32:
      checkInt32(v, field);
      return 4;
    case ScalarType.INT32:
      checkInt32(v, field);
      return (v as number) < 0 ? 10 : varintSize(v as number);
    case ScalarType.UINT32:
      checkUint32(v, field);
      return varintSize(v as number);
    case ScalarType.SINT32:
      checkInt32(v, field);
      return varintSize(zigzag32(v as number));
    case ScalarType.INT64:
      return varintSize64(BigInt.asUintN(64, int64(v, field)));
    case ScalarType.UINT64:
      return varintSize64(uint64(v, field));
    case ScalarType.SINT64: {
      const n = int64(v, field);
      return varintSize64(BigInt.asUintN(64, (n << 1n) ^ (n >> 63n)));
    }
  }
}

// ---- writing ------------------------------------------------------------------------------------

const EMPTY = Buffer.alloc(0);
let buf: Buffer = EMPTY;
let pos = 0;
/** The next entry of `lengths` to consume. */
let next = 0;

function writeMessage(plan: MessageEncoding, m: Fields): void {
  for (const f of plan.fields) {
    switch (f.kind) {
      case "scalar": {
        if (f.implicit) {
          const v = m[f.name];
          if (f.enumZero !== undefined ? v === f.enumZero : isZero(f.scalar, v)) continue;
          writeVarint(f.tag);
          writeScalar(f.scalar, v);
        } else if (isSet(f, m)) {
          writeVarint(f.tag);
          writeScalar(f.scalar, valueOf(f, m));
        }
        break;
      }
      case "message": {
        if (!isSet(f, m)) continue;
        writeVarint(f.tag);
        writeVarint(lengths[next++]!);
        writeMessage(f.nested.plan, f.nested.message(valueOf(f, m)));
        break;
      }
      case "messages": {
        const list = m[f.name] as Fields[];
        if (list.length === 0) continue;
        const nested = f.nested.plan;
        for (const item of list) {
          writeVarint(f.tag);
          writeVarint(lengths[next++]!);
          writeMessage(nested, f.nested.message(item));
        }
        break;
      }
      case "list": {
        const list = m[f.name] as unknown[];
        if (list.length === 0) continue;
        if (f.packed) {
          writeVarint(f.tag);
          writeVarint(lengths[next++]!);
          for (const v of list) writeScalar(f.scalar, v);
        } else {
          for (const v of list) {
            writeVarint(f.tag);
            writeScalar(f.scalar, v);
          }
        }
        break;
      }
      case "map": {
        const map = m[f.name] as Record<string, unknown>;
        for (const key of Object.keys(map)) {
          writeVarint(f.tag);
          writeVarint(lengths[next++]!);
          writeVarint(tagOf(1, wireTypeOf(f.key)));
          writeScalar(f.key, mapKey(f.key, key));
          const value = map[key];
          if (f.value instanceof NestedEncoding) {
            writeVarint(tagOf(2, WIRE_DELIMITED));
            writeVarint(lengths[next++]!);
            writeMessage(f.value.plan, f.value.message(value));
          } else {
            writeVarint(tagOf(2, wireTypeOf(f.value)));
            writeScalar(f.value, value);
          }
        }
        break;
      }
    }
  }
  const unknown = m.$unknown;
  if (unknown !== undefined) {
    for (const u of unknown) {
      writeVarint(tagOf(u.no, u.wireType));
      buf.set(u.data, pos);
      pos += u.data.byteLength;
    }
  }
}

/** Writes a value already checked by the measuring pass. */
function writeScalar(scalar: ScalarType, v: unknown): void {
  switch (scalar) {
    case ScalarType.STRING: {
      const len = lengths[next++]!;
      writeVarint(len);
      if (len > 0) pos += buf.write(v as string, pos, len, "utf8");
      return;
    }
    case ScalarType.BYTES: {
      const bytes = v as Uint8Array;
      writeVarint(bytes.byteLength);
      buf.set(bytes, pos);
      pos += bytes.byteLength;
      return;
    }
    case ScalarType.BOOL:
      buf[pos++] = v ? 1 : 0;
      return;
    case ScalarType.DOUBLE:
      pos = buf.writeDoubleLE(v as number, pos);
      return;
    case ScalarType.FLOAT:
      pos = buf.writeFloatLE(v as number, pos);
      return;
    case ScalarType.FIXED32:
      pos = buf.writeUInt32LE(v as number, pos);
      return;
    case ScalarType.SFIXED32:
      pos = buf.writeInt32LE(v as number, pos);
      return;
    case ScalarType.FIXED64:
      pos = buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v as bigint)), pos);
      return;
    case ScalarType.SFIXED64:
      pos = buf.writeBigInt64LE(BigInt.asIntN(64, BigInt(v as bigint)), pos);
      return;
    case ScalarType.INT32: {
      const n = v as number;
      if (n >= 0) writeVarint(n);
      else writeVarint64(BigInt.asUintN(64, BigInt(n)));
      return;
    }
    case ScalarType.UINT32:
      writeVarint(v as number);
      return;
    case ScalarType.SINT32:
      writeVarint(zigzag32(v as number));
      return;
    case ScalarType.INT64:
      writeVarint64(BigInt.asUintN(64, BigInt(v as bigint)));
      return;
    case ScalarType.UINT64:
      writeVarint64(BigInt(v as bigint));
      return;
    case ScalarType.SINT64: {
      const n = BigInt(v as bigint);
      writeVarint64(BigInt.asUintN(64, (n << 1n) ^ (n >> 63n)));
      return;
    }
  }
}

/** A non-negative integer below 2^53 as a varint, at the write position. */
function writeVarint(n: number): void {
  pos = writeVarintAt(buf, pos, n);
}

/** An unsigned 64-bit integer as a varint. */
function writeVarint64(n: bigint): void {
  if (n <= 0x1fffffffffffffn) {
    writeVarint(Number(n));
    return;
  }
  while (n > 0x7fn) {
    buf[pos++] = Number(n & 0x7fn) | 0x80;
    n >>= 7n;
  }
  buf[pos++] = Number(n);
}

// ---- values -------------------------------------------------------------------------------------

function tagOf(fieldNo: number, wireType: number): number {
  return fieldNo * 8 + wireType;
}

function wireTypeOf(scalar: ScalarType): number {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WIRE_DELIMITED;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WIRE_FIXED64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WIRE_FIXED32;
    default:
      return WIRE_VARINT;
  }
}

/** protobuf-es's zero-value rule for implicit presence (Object.is for floats: -0 is written). */
function isZero(scalar: ScalarType, v: unknown): boolean {
  switch (scalar) {
    case ScalarType.BOOL:
      return v === false;
    case ScalarType.STRING:
      return v === "";
    case ScalarType.BYTES:
      return v instanceof Uint8Array && v.byteLength === 0;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return Object.is(v, 0);
    default:
      // Loose on purpose: 0, 0n and "0" are all zero, as in protobuf-es.
      return v == 0;
  }
}

/** A map key as the scalar its field declares (object keys are strings). */
function mapKey(scalar: ScalarType, key: string): unknown {
  switch (scalar) {
    case ScalarType.STRING:
      return key;
    case ScalarType.BOOL:
      return key === "true";
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return BigInt(key);
    default:
      return Number(key);
  }
}

function varintSize64(n: bigint): number {
  if (n <= 0x1fffffffffffffn) return varintSize(Number(n));
  let size = 1;
  while (n > 0x7fn) {
    n >>= 7n;
    size++;
  }
  return size;
}

function zigzag32(n: number): number {
  return ((n << 1) ^ (n >> 31)) >>> 0;
}

function fail(field: DescField, what: string): never {
  throw new Error(`cannot encode field ${field.parent.typeName}.${field.name} to binary: ${what}`);
}

function checkInt32(v: unknown, field: DescField): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000) fail(field, `invalid int32: ${String(v)}`);
}

function checkUint32(v: unknown, field: DescField): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v > 0xffffffff || v < 0) fail(field, `invalid uint32: ${String(v)}`);
}

function toBigInt(v: unknown, field: DescField): bigint {
  if (typeof v === "bigint") return v;
  if ((typeof v === "number" && Number.isInteger(v)) || (typeof v === "string" && /^-?[0-9]+$/.test(v))) return BigInt(v);
  fail(field, `invalid int64: ${String(v)}`);
}

function int64(v: unknown, field: DescField): bigint {
  const n = toBigInt(v, field);
  if (BigInt.asIntN(64, n) !== n) fail(field, `int64 out of range: ${n}`);
  return n;
}

function uint64(v: unknown, field: DescField): bigint {
  const n = toBigInt(v, field);
  if (BigInt.asUintN(64, n) !== n) fail(field, `uint64 out of range: ${n}`);
  return n;
}
