/**
 * Descriptor analysis behind the OpenHands JSON codec (ARCHITECTURE.md §3). The custom options of
 * `proto/agentd/v1/options.proto` are read once per message and turned into a `MessagePlan`, so the
 * hot paths (rendering and parsing) never touch options or descriptors again.
 *
 * The rules, in one place (openhands-json.ts applies them, json-schema.ts documents them):
 * - JSON key of a field: its `rest_name`, else the proto field name (snake_case). On input the
 *   protobuf JSON name (lowerCamel) is accepted too.
 * - A message with a `kind` option carries it under `kind_key` (default "kind").
 * - A oneof marked `discriminated`: the set variant's fields are written inline into the parent,
 *   with the variant's `kind` under the variant's `kind_key`. A variant message without a `kind`
 *   option but with a string field named like the key (GenericAction, GenericEvent, ...) is the
 *   "generic" variant: it takes any kind the others do not claim.
 * - A Struct field marked `inline_struct`: its keys are merged into the enclosing object; on input
 *   unknown keys are collected into it.
 * - A message marked `nullable_wrapper`: rendered as its single message field, or null.
 * - A field marked `rest_extension` (an agentd addition such as the event `seq`) is written only
 *   when the caller asks for extensions; input always accepts it.
 * - A string field marked `rest_null_if_empty` renders "" as null and is always written, even when
 *   nulls are excluded (OpenHands' `next_page_id` on the last page).
 * - Enum values: `rest_value`, else the value name without the enum's shared prefix; the zero value
 *   without a `rest_value` means "not set" and renders as null.
 */
import { getOption, ScalarType, type DescEnum, type DescField, type DescMessage, type DescOneof } from "@bufbuild/protobuf";
import {
  discriminated as discriminatedOpt,
  inline_struct as inlineStructOpt,
  kind as kindOpt,
  kind_key as kindKeyOpt,
  nullable_wrapper as nullableWrapperOpt,
  rest_extension as restExtensionOpt,
  rest_name as restNameOpt,
  rest_null_if_empty as restNullIfEmptyOpt,
  rest_value as restValueOpt,
} from "../../gen/agentd/v1/options_pb.js";

/** Well-known types with a custom JSON form. */
export type WktKind = "timestamp" | "duration" | "struct" | "value" | "list_value" | "wrapper" | "empty" | "field_mask" | "any";

const WKT_BY_NAME: Readonly<Record<string, WktKind>> = {
  "google.protobuf.Timestamp": "timestamp",
  "google.protobuf.Duration": "duration",
  "google.protobuf.Struct": "struct",
  "google.protobuf.Value": "value",
  "google.protobuf.ListValue": "list_value",
  "google.protobuf.DoubleValue": "wrapper",
  "google.protobuf.FloatValue": "wrapper",
  "google.protobuf.Int64Value": "wrapper",
  "google.protobuf.UInt64Value": "wrapper",
  "google.protobuf.Int32Value": "wrapper",
  "google.protobuf.UInt32Value": "wrapper",
  "google.protobuf.BoolValue": "wrapper",
  "google.protobuf.StringValue": "wrapper",
  "google.protobuf.BytesValue": "wrapper",
  "google.protobuf.Empty": "empty",
  "google.protobuf.FieldMask": "field_mask",
  "google.protobuf.Any": "any",
};

export function wktKindOf(desc: DescMessage): WktKind | undefined {
  return WKT_BY_NAME[desc.typeName];
}

/** How an enum is spelled in OpenHands JSON. */
export interface EnumPlan {
  desc: DescEnum;
  /** number → JSON spelling; null for the unset zero value. */
  toJson: Map<number, string | null>;
  /** Accepted input spellings (rest value, full name, short name; names also lower-cased) → number. */
  fromText: Map<string, number>;
  /** The spellings clients should use (for error messages and the OpenAPI document). */
  restValues: string[];
  /** True when the zero value renders as null. */
  zeroIsNull: boolean;
}

/** One field as the codec sees it. */
export interface FieldPlan {
  field: DescField;
  /** JSON key (rest_name or proto name). */
  key: string;
  /** The field holds conversation ids that are normalised to dashed UUIDs on input. */
  uuid: boolean;
  /** The field is a google.protobuf.Struct merged into the parent (`inline_struct`). */
  inlineStruct: boolean;
  /** Explicit presence: an unset value renders as null. */
  nullable: boolean;
  /** `rest_extension`: written only when the client opted in to agentd extensions. */
  extension: boolean;
  /** `rest_null_if_empty`: an empty string is written as null. */
  nullIfEmpty: boolean;
}

export interface VariantPlan {
  field: DescField;
  plan: MessagePlan;
  /** The kind this variant answers to; undefined for the generic variant. */
  kind: string | undefined;
  /** For the generic variant: its string field that carries the kind. */
  kindField: DescField | undefined;
}

export interface DiscriminatedPlan {
  oneof: DescOneof;
  /** JSON key of the discriminator ("kind", or "type" for LLM content parts). */
  key: string;
  variants: VariantPlan[];
  byKind: Map<string, VariantPlan>;
  generic: VariantPlan | undefined;
}

/** An item of a message's JSON object, in output order. */
export type Entry = { type: "field"; plan: FieldPlan } | { type: "oneof"; plan: DiscriminatedPlan };

export interface MessagePlan {
  desc: DescMessage;
  wkt: WktKind | undefined;
  /** `kind` option of the message. */
  kind: string | undefined;
  /** `kind_key` option, default "kind". */
  kindKey: string;
  /** For `nullable_wrapper` messages: the single field rendered in their place. */
  wrapped: DescField | undefined;
  entries: Entry[];
  discriminated: DiscriminatedPlan[];
  /** Own fields by every accepted input key (rest name, proto name, JSON name). */
  inputs: Map<string, FieldPlan>;
  /** The `inline_struct` field, if any. */
  inlineStruct: FieldPlan | undefined;
  /** Own JSON keys (output spelling) incl. the kind key; used for structural variant inference. */
  ownKeys: Set<string>;
}

const plans = new WeakMap<DescMessage, MessagePlan>();
const enumPlans = new WeakMap<DescEnum, EnumPlan>();

/**
 * String fields holding conversation ids, accepted dashed or as 32 hex digits and normalised to the
 * dashed lower-case form (OpenHands accepts both spellings for every conversation id). The rule is
 * by name: `conversation_id`, `*_conversation_id`, and the repeated `ids` of batch gets. An empty
 * string stays empty (it means "none" where the field is optional).
 */
export function isUuidField(field: DescField): boolean {
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) {
    return field.name === "conversation_id" || field.name.endsWith("_conversation_id");
  }
  return field.fieldKind === "list" && field.listKind === "scalar" && field.scalar === ScalarType.STRING && field.name === "ids";
}

export function restNameOf(field: DescField): string {
  const name = getOption(field, restNameOpt);
  return name === "" ? field.name : name;
}

export function enumPlanOf(desc: DescEnum): EnumPlan {
  let plan = enumPlans.get(desc);
  if (plan !== undefined) return plan;
  const toJson = new Map<number, string | null>();
  const fromText = new Map<string, number>();
  const restValues: string[] = [];
  let zeroIsNull = false;
  // protobuf-es reports the shared prefix lower-cased ("file_type_").
  const prefix = (desc.sharedPrefix ?? "").toUpperCase();
  for (const v of desc.values) {
    const rest = getOption(v, restValueOpt);
    const short = prefix !== "" && v.name.toUpperCase().startsWith(prefix) ? v.name.slice(prefix.length) : v.name;
    let spelled: string | null;
    if (rest !== "") spelled = rest;
    else if (v.number === 0) spelled = null;
    else spelled = short;
    if (v.number === 0 && spelled === null) zeroIsNull = true;
    toJson.set(v.number, spelled);
    if (spelled !== null) restValues.push(spelled);
    for (const text of [rest, v.name, short]) {
      if (text === "") continue;
      if (!fromText.has(text)) fromText.set(text, v.number);
      const lower = text.toLowerCase();
      if (!fromText.has(lower)) fromText.set(lower, v.number);
    }
  }
  plan = { desc, toJson, fromText, restValues, zeroIsNull };
  enumPlans.set(desc, plan);
  return plan;
}

export function planOf(desc: DescMessage): MessagePlan {
  const cached = plans.get(desc);
  if (cached !== undefined) return cached;
  const kind = getOption(desc, kindOpt);
  const kindKey = getOption(desc, kindKeyOpt);
  const plan: MessagePlan = {
    desc,
    wkt: wktKindOf(desc),
    kind: kind === "" ? undefined : kind,
    kindKey: kindKey === "" ? "kind" : kindKey,
    wrapped: undefined,
    entries: [],
    discriminated: [],
    inputs: new Map(),
    inlineStruct: undefined,
    ownKeys: new Set(),
  };
  // Registered before the members are analysed, so recursive types terminate.
  plans.set(desc, plan);
  if (plan.wkt !== undefined) return plan;
  if (getOption(desc, nullableWrapperOpt)) {
    const only = desc.fields[0];
    if (desc.fields.length !== 1 || only === undefined || only.fieldKind !== "message") {
      throw new Error(`${desc.typeName}: nullable_wrapper needs exactly one singular message field`);
    }
    plan.wrapped = only;
  }
  if (plan.kind !== undefined) plan.ownKeys.add(plan.kindKey);
  for (const member of desc.members) {
    if (member.kind === "oneof" && getOption(member, discriminatedOpt)) {
      const disc = discriminatedPlanOf(desc, member);
      plan.discriminated.push(disc);
      plan.entries.push({ type: "oneof", plan: disc });
      continue;
    }
    const fields = member.kind === "oneof" ? member.fields : [member];
    for (const field of fields) {
      const fp: FieldPlan = {
        field,
        key: restNameOf(field),
        uuid: isUuidField(field),
        inlineStruct: getOption(field, inlineStructOpt),
        nullable: field.fieldKind !== "list" && field.fieldKind !== "map" && (field.fieldKind === "message" || field.presence === 1 || field.oneof !== undefined),
        extension: getOption(field, restExtensionOpt),
        nullIfEmpty: getOption(field, restNullIfEmptyOpt),
      };
      if (fp.inlineStruct) {
        if (field.fieldKind !== "message" || field.message.typeName !== "google.protobuf.Struct") {
          throw new Error(`${field.toString()}: inline_struct needs a google.protobuf.Struct field`);
        }
        plan.inlineStruct = fp;
      } else {
        plan.entries.push({ type: "field", plan: fp });
        plan.ownKeys.add(fp.key);
      }
      for (const alias of [fp.key, field.name, field.jsonName]) {
        if (!plan.inputs.has(alias)) plan.inputs.set(alias, fp);
      }
    }
  }
  return plan;
}

function discriminatedPlanOf(parent: DescMessage, oneof: DescOneof): DiscriminatedPlan {
  const variants: VariantPlan[] = [];
  let key: string | undefined;
  for (const field of oneof.fields) {
    if (field.fieldKind !== "message") {
      throw new Error(`${parent.typeName}.${oneof.name}: discriminated oneof members must be messages (${field.name} is not)`);
    }
    const plan = planOf(field.message);
    const kindField = plan.kind === undefined ? field.message.fields.find((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING && f.name === "kind") : undefined;
    if (plan.kind === undefined && kindField === undefined) {
      throw new Error(`${parent.typeName}.${oneof.name}: variant ${field.message.typeName} has neither a kind option nor a kind field`);
    }
    const variantKey = plan.kind !== undefined ? plan.kindKey : "kind";
    if (key !== undefined && key !== variantKey) {
      throw new Error(`${parent.typeName}.${oneof.name}: variants disagree on the discriminator key (${key} vs ${variantKey})`);
    }
    key = variantKey;
    variants.push({ field, plan, kind: plan.kind, kindField });
  }
  const byKind = new Map<string, VariantPlan>();
  let generic: VariantPlan | undefined;
  for (const v of variants) {
    if (v.kind !== undefined) byKind.set(v.kind, v);
    else generic ??= v;
  }
  return { oneof, key: key ?? "kind", variants, byKind, generic };
}

/** Every message reachable from `roots` (fields, oneof variants, map values), each once. */
export function reachableMessages(roots: Iterable<DescMessage>): DescMessage[] {
  const seen = new Set<DescMessage>();
  const out: DescMessage[] = [];
  const visit = (desc: DescMessage): void => {
    if (seen.has(desc)) return;
    seen.add(desc);
    out.push(desc);
    for (const f of desc.fields) {
      if (f.message !== undefined) visit(f.message);
    }
  };
  for (const r of roots) visit(r);
  return out;
}
