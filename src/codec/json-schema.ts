/**
 * JSON Schema (2020-12, as OpenAPI 3.1 uses it) of the OpenHands JSON shapes, derived from the same
 * plans as the codec, so the documented shape is the rendered shape: `kind` as a `const`,
 * discriminated oneofs as `anyOf` of the variants with an OpenAPI `discriminator`, inline structs as
 * `additionalProperties`, nullable fields as `[type, "null"]` / `anyOf [..., null]`, enums as their
 * rest values. Messages become named components ("Event", "ConversationInfo" style short names;
 * the full name with "_" when two packages share a short name).
 */
import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { enumPlanOf, planOf, type DiscriminatedPlan, type MessagePlan } from "./plan.js";

export class JsonSchemaBuilder {
  readonly components: Record<string, JsonObject> = {};
  readonly #names = new Map<DescMessage, string>();
  readonly #taken = new Map<string, DescMessage>();
  readonly #refPrefix: string;

  /** @param refPrefix where components live, e.g. "#/components/schemas/". */
  constructor(refPrefix = "#/components/schemas/") {
    this.#refPrefix = refPrefix;
  }

  /** The schema of a message (a $ref to its component, or an inline schema for WKTs). */
  message(desc: DescMessage): JsonObject {
    const plan = planOf(desc);
    if (plan.wkt !== undefined) return wktSchema(plan, desc);
    if (plan.wrapped !== undefined) return nullable(this.message(plan.wrapped.message!));
    return { $ref: this.#refPrefix + this.#component(desc) };
  }

  /** The component name a message is (or will be) registered under. */
  nameOf(desc: DescMessage): string {
    return this.#component(desc);
  }

  /** The schema of one field's value (lists and maps included). */
  field(field: DescField, options: { nullable?: boolean } = {}): JsonObject {
    switch (field.fieldKind) {
      case "list":
        return { type: "array", items: this.#singular(field) };
      case "map":
        return { type: "object", additionalProperties: this.#singular(field) };
      default: {
        const s = this.#singular(field);
        return options.nullable === true ? nullable(s) : s;
      }
    }
  }

  /** A message schema without some of its fields (a request body without the path fields). */
  messageWithout(desc: DescMessage, omit: ReadonlySet<DescField>, name: string): JsonObject {
    if (!(name in this.components)) this.components[name] = this.#objectSchema(planOf(desc), omit);
    return { $ref: this.#refPrefix + name };
  }

  #component(desc: DescMessage): string {
    let name = this.#names.get(desc);
    if (name !== undefined) return name;
    name = desc.name;
    const other = this.#taken.get(name);
    if (other !== undefined && other !== desc) name = desc.typeName.replaceAll(".", "_");
    this.#names.set(desc, name);
    this.#taken.set(name, desc);
    this.components[name] = {}; // placeholder first: recursive types terminate
    this.components[name] = this.#objectSchema(planOf(desc), new Set());
    return name;
  }

  #singular(field: DescField): JsonObject {
    if (field.scalar !== undefined) return scalarSchema(field.scalar, field.name);
    if (field.enum !== undefined) {
      const plan = enumPlanOf(field.enum);
      const values: JsonValue[] = [...plan.restValues];
      if (plan.zeroIsNull) values.push(null);
      return { type: plan.zeroIsNull ? ["string", "null"] : "string", enum: values };
    }
    const desc = field.message!;
    const plan = planOf(desc);
    if (plan.wkt === "wrapper" && field.fieldKind === "message") return nullable(scalarSchema(desc.fields[0]!.scalar!, field.name));
    return this.message(desc);
  }

  #objectSchema(plan: MessagePlan, omit: ReadonlySet<DescField>): JsonObject {
    const properties: JsonObject = {};
    if (plan.kind !== undefined) properties[plan.kindKey] = { type: "string", const: plan.kind };
    for (const entry of plan.entries) {
      if (entry.type !== "field") continue;
      const fp = entry.plan;
      if (omit.has(fp.field)) continue;
      properties[fp.key] = this.field(fp.field, { nullable: fp.nullable });
    }
    const schema: JsonObject = { type: "object", properties };
    if (plan.kind !== undefined) schema.title = plan.kind;
    if (plan.inlineStruct !== undefined) schema.additionalProperties = true;
    const variants = plan.discriminated.map((d) => this.#variants(d));
    if (variants.length === 1) return { allOf: [schema, variants[0]!] };
    if (variants.length > 1) return { allOf: [schema, ...variants] };
    return schema;
  }

  #variants(disc: DiscriminatedPlan): JsonObject {
    const anyOf: JsonValue[] = [];
    const mapping: JsonObject = {};
    for (const v of disc.variants) {
      const ref = this.message(v.field.message!);
      anyOf.push(ref);
      if (v.kind !== undefined) mapping[v.kind] = ref.$ref as string;
    }
    const out: JsonObject = { anyOf, discriminator: { propertyName: disc.key, mapping } };
    return out;
  }
}

function nullable(s: JsonObject): JsonObject {
  if (typeof s.type === "string" && s.$ref === undefined) return { ...s, type: [s.type, "null"] };
  return { anyOf: [s, { type: "null" }] };
}

function scalarSchema(scalar: ScalarType, name: string): JsonObject {
  switch (scalar) {
    case ScalarType.STRING:
      return name === "conversation_id" || name.endsWith("_conversation_id") ? { type: "string", format: "uuid" } : { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "integer", format: "int64" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "integer", format: "int64", minimum: 0 };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "int32", minimum: 0 };
    default:
      return { type: "integer", format: "int32" };
  }
}

function wktSchema(plan: MessagePlan, desc: DescMessage): JsonObject {
  switch (plan.wkt) {
    case "timestamp":
      return { type: "string", format: "date-time" };
    case "duration":
      return { type: "number", description: "seconds" };
    case "struct":
      return { type: "object", additionalProperties: true };
    case "value":
      return {};
    case "list_value":
      return { type: "array" };
    case "wrapper":
      return nullable(scalarSchema(desc.fields[0]!.scalar!, ""));
    case "empty":
      return { type: "object" };
    case "field_mask":
      return { type: "string" };
    default:
      return { type: "object" };
  }
}
