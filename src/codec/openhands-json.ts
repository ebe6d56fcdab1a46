/**
 * The OpenHands JSON codec: one generic, descriptor-driven rule set (see plan.ts for the rules)
 * that renders agentd messages in the JSON shape of the OpenHands agent server and parses that
 * shape back. Used by the REST/WebSocket gateway and by the agent domain (OpenHands-shaped tool
 * JSON → proto messages). Pure: depends only on @bufbuild/protobuf and gen/.
 *
 * Output (`toOpenHandsJson`):
 * - scalars: 64-bit integers as JSON numbers when they are safe integers, else as strings; bytes
 *   as standard base64; non-finite floats as "NaN" / "Infinity" / "-Infinity".
 * - Timestamp → ISO 8601 UTC string with "Z" (0, 3, 6 or 9 fractional digits); Duration → seconds
 *   as a number; Struct / Value / ListValue → plain JSON; wrappers → their value or null.
 * - unset optional scalars, unset message fields and the unset zero enum value → null, or left
 *   out with `excludeNone` (what OpenHands does for event search pages and WebSocket frames).
 *
 * Input (`fromOpenHandsJson`):
 * - keys: rest name, proto name or protobuf JSON name; unknown keys are ignored (or collected into
 *   an `inline_struct` field); null means "unset".
 * - integers as numbers or numeric strings, booleans also as "true"/"false"/"1"/"0", enums as the
 *   rest value, the full or short value name (case-insensitive) or the number; timestamps as ISO
 *   strings (no offset = UTC) or epoch seconds; durations as seconds or "1.5s"; bytes as base64.
 * - discriminated oneofs: the variant named by the discriminator key (the short kind or an
 *   OpenHands fully-qualified class name ending in it); unknown kinds go to the generic variant
 *   when there is one. Without a discriminator, the one variant whose fields cover every key given
 *   is chosen; if none or several do, the oneof stays unset.
 * - scalar shorthand: a JSON scalar where a message is expected is accepted when exactly one
 *   single-field variant (or the message itself) has one scalar field, e.g. a plain string for a
 *   SecretSource becomes a StaticSecret value (OpenHands accepts `"NAME": "value"`).
 * - conversation ids are accepted dashed or as 32 hex digits and stored dashed (plan.ts).
 * Every violation throws AgentdError("invalid_argument") naming the field path.
 */
import { create, fromJson, ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { base64Decode, base64Encode } from "@bufbuild/protobuf/wire";
import { ValueSchema, type Timestamp, type Value, type Duration } from "@bufbuild/protobuf/wkt";
import { AgentdError } from "../errors.js";
import { enumPlanOf, planOf, type DiscriminatedPlan, type FieldPlan, type MessagePlan, type VariantPlan } from "./plan.js";

export interface ToOpenHandsJsonOptions {
  /** Leave out null values (unset optionals and messages) instead of writing null. Default false. */
  excludeNone?: boolean;
  /** Include fields marked `rest_extension` (agentd extensions such as the event `seq`). Default false. */
  extensions?: boolean;
}

/** How one render call writes optional parts; fixed for the whole call. */
interface RenderMode {
  excludeNone: boolean;
  extensions: boolean;
}

function modeOf(options: ToOpenHandsJsonOptions): RenderMode {
  return { excludeNone: options.excludeNone === true, extensions: options.extensions === true };
}

/** A message as plain data; the codec reads and writes fields by their local names. */
type Fields = Record<string, unknown>;
type OneofValue = { case: string | undefined; value?: unknown };

// ------------------------------------------------------------------------------------------------
// Output

/** Renders `message` (of type `schema`) as OpenHands JSON. */
export function toOpenHandsJson<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, options: ToOpenHandsJsonOptions = {}): JsonValue {
  return renderMessage(planOf(schema), message as unknown as Fields, modeOf(options));
}

/** Renders one field's value (as stored on a message) as OpenHands JSON. */
export function fieldToOpenHandsJson(field: DescField, value: unknown, options: ToOpenHandsJsonOptions = {}): JsonValue {
  const mode = modeOf(options);
  switch (field.fieldKind) {
    case "list":
      return (value as unknown[]).map((item) => renderSingular(field, item, mode));
    case "map": {
      const out: JsonObject = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = renderSingular(field, v, mode);
      return out;
    }
    default:
      return renderSingular(field, value, mode);
  }
}

function renderMessage(plan: MessagePlan, msg: Fields, mode: RenderMode): JsonValue {
  if (plan.wkt !== undefined) return renderWkt(plan, msg);
  if (plan.wrapped !== undefined) {
    const inner = msg[plan.wrapped.localName];
    return inner === undefined ? null : renderMessage(planOf(plan.wrapped.message!), inner as Fields, mode);
  }
  const out: JsonObject = {};
  writeObject(plan, msg, out, mode, true);
  return out;
}

/** Writes the kind, the fields and the inlined variants of `msg` into `out`. */
function writeObject(plan: MessagePlan, msg: Fields, out: JsonObject, mode: RenderMode, writeKind: boolean): void {
  if (writeKind && plan.kind !== undefined) out[plan.kindKey] = plan.kind;
  // Discriminators first, so "kind" leads the object as in OpenHands.
  for (const disc of plan.discriminated) {
    const sel = msg[disc.oneof.localName] as OneofValue;
    if (sel.case === undefined) continue;
    const variant = variantByCase(disc, sel.case);
    if (variant.kind !== undefined) out[disc.key] = variant.kind;
    else if (variant.kindField !== undefined) out[disc.key] = (sel.value as Fields)[variant.kindField.localName] as string;
  }
  for (const entry of plan.entries) {
    if (entry.type === "oneof") {
      const disc = entry.plan;
      const sel = msg[disc.oneof.localName] as OneofValue;
      if (sel.case === undefined) continue;
      const variant = variantByCase(disc, sel.case);
      writeVariant(variant, sel.value as Fields, out, mode);
      continue;
    }
    const fp = entry.plan;
    if (fp.extension && !mode.extensions) continue;
    const field = fp.field;
    let value: unknown;
    if (field.oneof !== undefined) {
      const sel = msg[field.oneof.localName] as OneofValue;
      value = sel.case === field.localName ? sel.value : undefined;
    } else {
      value = msg[field.localName];
    }
    const json = renderField(fp, value, mode);
    if (json === null && mode.excludeNone && !fp.nullIfEmpty) continue;
    out[fp.key] = json;
  }
  if (plan.inlineStruct !== undefined) mergeInline(out, msg[plan.inlineStruct.field.localName]);
}

/** Inlines a variant's fields; a generic variant's kind field rewrites the (equal) discriminator. */
function writeVariant(variant: VariantPlan, value: Fields, out: JsonObject, mode: RenderMode): void {
  writeObject(variant.plan, value, out, mode, false);
}

function mergeInline(out: JsonObject, struct: unknown): void {
  if (struct === undefined || struct === null) return;
  for (const [k, v] of Object.entries(struct as JsonObject)) {
    if (!(k in out)) out[k] = v;
  }
}

function variantByCase(disc: DiscriminatedPlan, localName: string): VariantPlan {
  for (const v of disc.variants) if (v.field.localName === localName) return v;
  throw new Error(`unknown oneof case ${localName}`);
}

function renderField(fp: FieldPlan, value: unknown, mode: RenderMode): JsonValue {
  const field = fp.field;
  switch (field.fieldKind) {
    case "list": {
      const list = value as unknown[];
      const out: JsonValue[] = new Array(list.length);
      for (let i = 0; i < list.length; i++) out[i] = renderSingular(field, list[i], mode);
      return out;
    }
    case "map": {
      const out: JsonObject = {};
      for (const k in value as Record<string, unknown>) out[k] = renderSingular(field, (value as Record<string, unknown>)[k], mode);
      return out;
    }
    default:
      if (value === undefined || (fp.nullIfEmpty && value === "")) return null;
      return renderSingular(field, value, mode);
  }
}

/** Renders a singular value, a list item or a map value of `field`. */
function renderSingular(field: DescField, value: unknown, mode: RenderMode): JsonValue {
  if (value === undefined || value === null) return null;
  const scalar = field.scalar;
  if (scalar !== undefined) return renderScalar(scalar, value);
  if (field.enum !== undefined) {
    const spelled = enumPlanOf(field.enum).toJson.get(value as number);
    return spelled === undefined ? (value as number) : spelled;
  }
  const desc = field.message!;
  const plan = planOf(desc);
  if (plan.wkt === "struct" && field.fieldKind === "message") return value as JsonObject; // local form is JsonObject
  if (plan.wkt === "wrapper" && field.fieldKind === "message" && field.oneof === undefined) {
    return renderScalar(desc.fields[0]!.scalar!, value);
  }
  return renderMessage(plan, value as Fields, mode);
}

function renderScalar(scalar: ScalarType, value: unknown): JsonValue {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BOOL:
      return value as string | boolean;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      const n = value as number;
      if (Number.isFinite(n)) return n;
      return Number.isNaN(n) ? "NaN" : n > 0 ? "Infinity" : "-Infinity";
    }
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64: {
      if (typeof value === "string") return value;
      const big = value as bigint;
      return big <= MAX_SAFE && big >= MIN_SAFE ? Number(big) : big.toString();
    }
    case ScalarType.BYTES:
      return base64Encode(value as Uint8Array);
    default:
      return value as number;
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

function renderWkt(plan: MessagePlan, msg: Fields): JsonValue {
  switch (plan.wkt) {
    case "timestamp":
      return formatTimestamp(msg as unknown as Timestamp);
    case "duration": {
      const d = msg as unknown as Duration;
      return Number(d.seconds) + d.nanos / 1e9;
    }
    case "value":
      return valueToJson(msg as unknown as Value);
    case "struct":
      return structToJson(msg);
    case "list_value":
      return ((msg.values as Value[]) ?? []).map(valueToJson);
    case "wrapper":
      return renderScalar(plan.desc.fields[0]!.scalar!, msg.value);
    case "empty":
      return {};
    case "field_mask":
      return (msg.paths as string[]).join(",");
    default: {
      // google.protobuf.Any has no OpenHands form; render its type URL and base64 payload.
      return { type_url: msg.typeUrl as string, value: base64Encode(msg.value as Uint8Array) };
    }
  }
}

function structToJson(msg: Fields): JsonObject {
  const out: JsonObject = {};
  const fields = msg.fields as Record<string, Value>;
  for (const k in fields) out[k] = valueToJson(fields[k]!);
  return out;
}

function valueToJson(v: Value): JsonValue {
  const kind = v.kind;
  switch (kind.case) {
    case "nullValue":
    case undefined:
      return null;
    case "numberValue":
      return kind.value;
    case "stringValue":
      return kind.value;
    case "boolValue":
      return kind.value;
    case "structValue":
      return structToJson(kind.value as unknown as Fields);
    case "listValue":
      return kind.value.values.map(valueToJson);
  }
}

/** ISO 8601 in UTC with "Z"; fractional digits as protobuf JSON does (none, 3, 6 or 9). */
export function formatTimestamp(ts: Timestamp): string {
  const ms = Number(ts.seconds) * 1000;
  const base = new Date(ms).toISOString().slice(0, 19);
  const nanos = ts.nanos;
  if (nanos === 0) return `${base}Z`;
  let frac = String(nanos).padStart(9, "0");
  if (nanos % 1_000_000 === 0) frac = frac.slice(0, 3);
  else if (nanos % 1000 === 0) frac = frac.slice(0, 6);
  return `${base}.${frac}Z`;
}

// ------------------------------------------------------------------------------------------------
// Input

/**
 * Parses OpenHands JSON into a message of type `schema`.
 * @param path prefix of the field paths in error messages (e.g. "body").
 * @throws AgentdError("invalid_argument") naming the offending field.
 */
export function fromOpenHandsJson<Desc extends DescMessage>(schema: Desc, json: unknown, path = ""): MessageShape<Desc> {
  return readMessage(planOf(schema), json, path, false) as MessageShape<Desc>;
}

/**
 * Converts one JSON value (or query-string text) to the local value of `field`: for list fields an
 * array is expected (a single value becomes a one-item list). Used for query and path parameters.
 * @throws AgentdError("invalid_argument") naming `path`.
 */
export function fieldFromOpenHandsJson(field: DescField, json: unknown, path: string): unknown {
  const fp = planOf(field.parent).inputs.get(field.name);
  return readField(fp ?? { field, key: field.name, uuid: false, inlineStruct: false, nullable: true, extension: false, nullIfEmpty: false }, json, path);
}

/** Paths whose values are never echoed in error messages (they may hold secrets). */
const SECRETISH = /(^|[._[\]])(api_key|[a-z_]*secret[a-z_]*|[a-z_]*token|password|headers|extra_headers|env|value)($|[.[\]])/i;

function invalid(path: string, what: string, got?: unknown): AgentdError {
  const where = path === "" ? "request body" : path;
  const echo = got !== undefined && !SECRETISH.test(path);
  return new AgentdError("invalid_argument", echo ? `${where}: ${what}, got ${describe(got)}` : `${where}: ${what}`, { field: path });
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  const text = typeof v === "string" ? JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v) : String(v);
  return text;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * @param parent when parsing a discriminated variant: the enclosing message, whose keys are not the
 *   variant's (they must not end up in the variant's inline struct).
 */
function readMessage(plan: MessagePlan, json: unknown, path: string, asVariant: boolean, parent?: MessagePlan): unknown {
  if (plan.wkt !== undefined) return readWkt(plan, json, path);
  if (plan.wrapped !== undefined) {
    const msg = create(plan.desc) as unknown as Fields;
    if (json !== null && json !== undefined) msg[plan.wrapped.localName] = readMessage(planOf(plan.wrapped.message!), json, path, false);
    return msg;
  }
  if (!isPlainObject(json)) {
    const shorthand = scalarShorthand(plan, json, path);
    if (shorthand !== undefined) return shorthand;
    throw invalid(path, "expected an object", json);
  }
  if (!asVariant && plan.kind !== undefined) {
    const given = json[plan.kindKey];
    if (given !== undefined && given !== null && !kindMatches(given, plan.kind)) {
      throw invalid(join(path, plan.kindKey), `expected ${JSON.stringify(plan.kind)}`, given);
    }
  }
  const msg = create(plan.desc) as unknown as Fields;
  const used = new Set<string>();
  if (plan.kind !== undefined) used.add(plan.kindKey);
  for (const key in json) {
    const fp = plan.inputs.get(key);
    if (fp === undefined || fp.inlineStruct) continue;
    used.add(key);
    const value = json[key];
    if (value === null || value === undefined) continue;
    assign(msg, fp.field, readField(fp, value, join(path, fp.key)));
  }
  for (const disc of plan.discriminated) {
    const variant = chooseVariant(disc, plan, json, path);
    if (variant === undefined) continue;
    used.add(disc.key);
    const value = readVariant(variant, disc, plan, json, path, used);
    msg[disc.oneof.localName] = { case: variant.field.localName, value };
  }
  if (parent !== undefined) {
    for (const key of parent.inputs.keys()) used.add(key);
    for (const d of parent.discriminated) used.add(d.key);
    if (parent.kind !== undefined) used.add(parent.kindKey);
  }
  if (plan.inlineStruct !== undefined) {
    const rest = collectUnused(json, used);
    if (rest !== undefined) msg[plan.inlineStruct.field.localName] = rest;
  }
  return msg;
}

function readVariant(variant: VariantPlan, disc: DiscriminatedPlan, parent: MessagePlan, json: Record<string, unknown>, path: string, used: Set<string>): unknown {
  const plan = variant.plan;
  const msg = readMessage(plan, json, path, true, parent) as Fields;
  for (const key in json) if (plan.inputs.has(key)) used.add(key);
  if (variant.kindField !== undefined) {
    const given = json[disc.key];
    msg[variant.kindField.localName] = typeof given === "string" ? given : "";
  }
  return msg;
}

function collectUnused(json: Record<string, unknown>, used: Set<string>): JsonObject | undefined {
  let rest: JsonObject | undefined;
  for (const key in json) {
    if (used.has(key)) continue;
    const v = json[key];
    if (v === undefined) continue;
    rest ??= {};
    rest[key] = v as JsonValue;
  }
  return rest;
}

function kindMatches(given: unknown, kind: string): boolean {
  if (typeof given !== "string") return false;
  if (given === kind) return true;
  // OpenHands fully-qualified class names, e.g. "openhands.sdk.event.llm_convertible.message.MessageEvent".
  return given.length > kind.length && given.endsWith(kind) && given[given.length - kind.length - 1] === ".";
}

function chooseVariant(disc: DiscriminatedPlan, parent: MessagePlan, json: Record<string, unknown>, path: string): VariantPlan | undefined {
  const given = json[disc.key];
  if (given !== undefined && given !== null) {
    if (typeof given !== "string") throw invalid(join(path, disc.key), "expected a string", given);
    const exact = disc.byKind.get(given);
    if (exact !== undefined) return exact;
    const dot = given.lastIndexOf(".");
    if (dot >= 0) {
      const short = disc.byKind.get(given.slice(dot + 1));
      if (short !== undefined) return short;
    }
    if (disc.generic !== undefined) return disc.generic;
    if (parent.kind !== undefined && parent.kindKey === disc.key && kindMatches(given, parent.kind)) return undefined;
    throw invalid(join(path, disc.key), `unknown kind; expected one of ${[...disc.byKind.keys()].join(", ")}`, given);
  }
  // No discriminator: the single variant whose fields cover every key that is not the parent's.
  let found: VariantPlan | undefined;
  let any = false;
  for (const key in json) {
    if (parent.inputs.has(key) || json[key] === undefined) continue;
    any = true;
  }
  if (!any) return undefined;
  for (const v of disc.variants) {
    if (v.kind === undefined) continue;
    let covers = true;
    for (const key in json) {
      if (parent.inputs.has(key) || json[key] === undefined) continue;
      if (!v.plan.inputs.has(key)) {
        covers = false;
        break;
      }
    }
    if (!covers) continue;
    if (found !== undefined) return undefined; // ambiguous
    found = v;
  }
  return found;
}

/** A JSON scalar standing for a message with one scalar field (directly or in one variant). */
function scalarShorthand(plan: MessagePlan, json: unknown, path: string): unknown {
  if (json === null || typeof json === "object") return undefined;
  const single = (p: MessagePlan): FieldPlan | undefined => {
    const fields = p.entries.filter((e) => e.type === "field");
    if (fields.length !== 1 || p.discriminated.length > 0) return undefined;
    const only = fields[0]!.plan;
    return only.field.fieldKind === "scalar" ? only : undefined;
  };
  const own = single(plan);
  if (own !== undefined) {
    const msg = create(plan.desc) as unknown as Fields;
    assign(msg, own.field, readField(own, json, join(path, own.key)));
    return msg;
  }
  if (plan.discriminated.length !== 1) return undefined;
  const disc = plan.discriminated[0]!;
  const candidates = disc.variants.filter((v) => v.kind !== undefined && single(v.plan) !== undefined);
  if (candidates.length !== 1) return undefined;
  const variant = candidates[0]!;
  const fp = single(variant.plan)!;
  const inner = create(variant.plan.desc) as unknown as Fields;
  assign(inner, fp.field, readField(fp, json, join(path, fp.key)));
  const msg = create(plan.desc) as unknown as Fields;
  msg[disc.oneof.localName] = { case: variant.field.localName, value: inner };
  return msg;
}

function assign(msg: Fields, field: DescField, value: unknown): void {
  if (field.oneof !== undefined) msg[field.oneof.localName] = { case: field.localName, value };
  else msg[field.localName] = value;
}

function readField(fp: FieldPlan, json: unknown, path: string): unknown {
  const field = fp.field;
  switch (field.fieldKind) {
    case "list": {
      const items = Array.isArray(json) ? json : [json];
      const out: unknown[] = new Array(items.length);
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        const itemPath = `${path}[${i}]`;
        if (item === null && field.listKind === "message" && planOf(field.message).wrapped !== undefined) {
          out[i] = create(field.message);
          continue;
        }
        if (item === null || item === undefined) throw invalid(itemPath, "null is not allowed in a list");
        out[i] = fp.uuid ? normalizeUuid(readSingular(field, item, itemPath) as string, itemPath) : readSingular(field, item, itemPath);
      }
      return out;
    }
    case "map": {
      if (!isPlainObject(json)) throw invalid(path, "expected an object", json);
      const out: Record<string, unknown> = {};
      for (const k in json) {
        const v = json[k];
        if (v === undefined) continue;
        const itemPath = `${path}.${k}`;
        if (field.mapKey !== ScalarType.STRING) readMapKey(field.mapKey, k, itemPath);
        if (v === null) throw invalid(itemPath, "null is not allowed as a map value");
        out[k] = readSingular(field, v, itemPath);
      }
      return out;
    }
    default: {
      const value = readSingular(field, json, path);
      return fp.uuid ? normalizeUuid(value as string, path) : value;
    }
  }
}

function readMapKey(scalar: ScalarType, key: string, path: string): void {
  if (scalar === ScalarType.BOOL) {
    if (key !== "true" && key !== "false") throw invalid(path, "map key must be true or false", key);
    return;
  }
  readScalar(scalar, key, path);
}

function readSingular(field: DescField, json: unknown, path: string): unknown {
  const scalar = field.scalar;
  if (scalar !== undefined) return readScalar(scalar, json, path);
  if (field.enum !== undefined) return readEnum(field, json, path);
  const desc = field.message!;
  const plan = planOf(desc);
  if (plan.wkt === "struct" && field.fieldKind === "message") {
    if (!isPlainObject(json)) throw invalid(path, "expected an object", json);
    return json;
  }
  if (plan.wkt === "wrapper" && field.fieldKind === "message" && field.oneof === undefined) {
    return readScalar(desc.fields[0]!.scalar!, json, path);
  }
  return readMessage(plan, json, path, false);
}

function readEnum(field: DescField, json: unknown, path: string): number {
  const plan = enumPlanOf(field.enum!);
  if (typeof json === "number") {
    if (plan.toJson.has(json)) return json;
  } else if (typeof json === "string") {
    const n = plan.fromText.get(json) ?? plan.fromText.get(json.toLowerCase());
    if (n !== undefined) return n;
    if (/^-?\d+$/.test(json) && plan.toJson.has(Number(json))) return Number(json);
  }
  throw invalid(path, `expected one of ${plan.restValues.map((v) => JSON.stringify(v)).join(", ")}`, json);
}

const INT_TEXT = /^-?\d+$/;

function readScalar(scalar: ScalarType, json: unknown, path: string): unknown {
  switch (scalar) {
    case ScalarType.STRING:
      if (typeof json !== "string") throw invalid(path, "expected a string", json);
      return json;
    case ScalarType.BOOL:
      if (typeof json === "boolean") return json;
      if (json === "true" || json === "1" || json === 1 || json === "True" || json === "yes" || json === "on") return true;
      if (json === "false" || json === "0" || json === 0 || json === "False" || json === "no" || json === "off") return false;
      throw invalid(path, "expected a boolean", json);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      if (typeof json === "number") return json;
      if (typeof json === "string") {
        if (json === "NaN") return Number.NaN;
        if (json === "Infinity") return Number.POSITIVE_INFINITY;
        if (json === "-Infinity") return Number.NEGATIVE_INFINITY;
        const n = Number(json);
        if (json.trim() !== "" && Number.isFinite(n)) return n;
      }
      throw invalid(path, "expected a number", json);
    }
    case ScalarType.BYTES: {
      if (typeof json !== "string" || !/^[A-Za-z0-9+/\-_]*={0,2}$/.test(json)) throw invalid(path, "expected base64 text", json);
      return base64Decode(json);
    }
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64: {
      const unsigned = scalar === ScalarType.UINT64 || scalar === ScalarType.FIXED64;
      let big: bigint;
      if (typeof json === "number" && Number.isSafeInteger(json)) big = BigInt(json);
      else if (typeof json === "string" && INT_TEXT.test(json.trim())) big = BigInt(json.trim());
      else throw invalid(path, "expected an integer", json);
      const min = unsigned ? 0n : -(1n << 63n);
      const max = unsigned ? (1n << 64n) - 1n : (1n << 63n) - 1n;
      if (big < min || big > max) throw invalid(path, `integer out of range ${min}..${max}`, json);
      return big;
    }
    default: {
      // int32, uint32, sint32, fixed32, sfixed32
      let n: number;
      if (typeof json === "number") n = json;
      else if (typeof json === "string" && INT_TEXT.test(json.trim())) n = Number(json.trim());
      else throw invalid(path, "expected an integer", json);
      if (!Number.isInteger(n)) throw invalid(path, "expected an integer", json);
      const unsigned = scalar === ScalarType.UINT32 || scalar === ScalarType.FIXED32;
      const min = unsigned ? 0 : -2147483648;
      const max = unsigned ? 4294967295 : 2147483647;
      if (n < min || n > max) throw invalid(path, `integer out of range ${min}..${max}`, json);
      return n;
    }
  }
}

function readWkt(plan: MessagePlan, json: unknown, path: string): unknown {
  switch (plan.wkt) {
    case "timestamp":
      return parseTimestamp(json, path);
    case "duration":
      return parseDuration(json, path);
    case "value":
      return fromJson(ValueSchema, json as JsonValue);
    case "struct": {
      if (!isPlainObject(json)) throw invalid(path, "expected an object", json);
      return fromJson(plan.desc, json as JsonValue);
    }
    case "list_value":
      if (!Array.isArray(json)) throw invalid(path, "expected an array", json);
      return fromJson(plan.desc, json as JsonValue);
    case "wrapper": {
      const msg = create(plan.desc) as unknown as Fields;
      msg.value = readScalar(plan.desc.fields[0]!.scalar!, json, path);
      return msg;
    }
    case "empty":
      return create(plan.desc);
    default:
      try {
        return fromJson(plan.desc, json as JsonValue);
      } catch (err) {
        throw invalid(path, err instanceof Error ? err.message : "invalid value");
      }
  }
}

const TS = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)? ?([Zz]|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Parses an ISO 8601 date-time. Without an offset the time is taken as UTC. A space before the
 * offset is read as "+" (an unencoded "+" in a query string arrives as a space).
 */
export function parseTimestamp(json: unknown, path: string): Timestamp {
  if (typeof json === "number" && Number.isFinite(json)) {
    const seconds = Math.floor(json);
    const nanos = Math.min(999_999_999, Math.round((json - seconds) * 1e9));
    return { $typeName: "google.protobuf.Timestamp", seconds: BigInt(seconds), nanos } as Timestamp;
  }
  if (typeof json !== "string") throw invalid(path, "expected an ISO 8601 date-time", json);
  let text = json.trim();
  // "2026-01-01T10:00:00 02:00": the "+" of the offset was decoded as a space.
  text = text.replace(/^(.*\d) (\d{2}(?::?\d{2})?)$/, "$1+$2");
  const m = TS.exec(text);
  if (m === null) throw invalid(path, "expected an ISO 8601 date-time", json);
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone] = m;
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(ms) || Number(mo) > 12 || Number(d) > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) {
    throw invalid(path, "expected an ISO 8601 date-time", json);
  }
  if (zone !== undefined && zone !== "Z" && zone !== "z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const offMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || "0");
    ms -= sign * offMin * 60_000;
  }
  const nanos = frac === "" ? 0 : Number(frac.padEnd(9, "0"));
  return { $typeName: "google.protobuf.Timestamp", seconds: BigInt(Math.floor(ms / 1000)), nanos } as Timestamp;
}

function parseDuration(json: unknown, path: string): Duration {
  let seconds: number;
  if (typeof json === "number") seconds = json;
  else if (typeof json === "string" && /^-?\d+(\.\d+)?s?$/.test(json.trim())) seconds = Number(json.trim().replace(/s$/, ""));
  else throw invalid(path, "expected a duration in seconds", json);
  if (!Number.isFinite(seconds)) throw invalid(path, "expected a duration in seconds", json);
  const whole = Math.trunc(seconds);
  return { $typeName: "google.protobuf.Duration", seconds: BigInt(whole), nanos: Math.round((seconds - whole) * 1e9) } as Duration;
}

const UUID_DASHED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const UUID_HEX = /^[0-9a-fA-F]{32}$/;

/**
 * A UUID in the dashed lower-case form; accepts dashed, 32 hex digits, and braces/urn forms as
 * Python's UUID() does. "" stays "".
 * @throws AgentdError("invalid_argument") for anything else.
 */
export function normalizeUuid(text: string, path: string): string {
  if (text === "") return text;
  let t = text.trim();
  if (t.startsWith("urn:uuid:")) t = t.slice(9);
  if (t.startsWith("{") && t.endsWith("}")) t = t.slice(1, -1);
  if (UUID_DASHED.test(t)) return t.toLowerCase();
  if (UUID_HEX.test(t)) {
    const h = t.toLowerCase();
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  throw invalid(path, "expected a UUID (dashed or 32 hex digits)", text);
}
