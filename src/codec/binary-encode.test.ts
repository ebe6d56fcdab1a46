/**
 * encodeMessage against protobuf-es's toBinary, byte for byte, on random messages of every message
 * type agentd generates (gen/**): every scalar type at its edges, implicit and explicit presence,
 * oneofs, nested and repeated messages, packed lists, maps of every key type, unknown fields,
 * and google.protobuf.Struct fields (held as JsonObject); and the hand-off to toBinary.
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import { create, createFileRegistry, fromBinary, equals, ScalarType, toBinary, type DescField, type DescFile, type DescMessage, type Message } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, file_google_protobuf_wrappers, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { EventSchema, EventSource } from "../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../gen/agentd/v1/message_pb.js";
import { encodeMessage } from "./binary-encode.js";

const GEN = path.resolve(import.meta.dirname, "../../gen");

async function allMessageSchemas(): Promise<DescMessage[]> {
  const files = readdirSync(GEN, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("_pb.ts"));
  const out: DescMessage[] = [];
  const add = (m: DescMessage): void => {
    out.push(m);
    m.nestedMessages.forEach(add);
  };
  for (const f of files) {
    const mod = (await import(path.join(GEN, f))) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      const file = value as DescFile;
      if (file?.kind === "file") file.messages.forEach(add);
    }
  }
  return out;
}

/** mulberry32: a seeded generator, so a failure reproduces. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRINGS = ["", "a", "héllo wörld", "日本語", "emoji 😀 pair", "lone \ud800 surrogate", "x".repeat(300)];
const INT32 = [0, 1, -1, 127, 128, 300, 2 ** 31 - 1, -(2 ** 31)];
const UINT32 = [0, 1, 127, 128, 16384, 2 ** 32 - 1];
const INT64 = [0n, 1n, -1n, 127n, 128n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n)];
const UINT64 = [0n, 1n, 128n, 2n ** 53n + 1n, 2n ** 64n - 1n];
const DOUBLES = [0, -0, 1.5, -2.25e300, Number.NaN, Number.POSITIVE_INFINITY, Number.MIN_VALUE];
const FLOATS = [0, -0, 1.5, -3.25, Number.NaN, Number.NEGATIVE_INFINITY, 3.4e38];

function scalarValue(type: ScalarType, r: () => number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  switch (type) {
    case ScalarType.STRING:
      return pick(STRINGS);
    case ScalarType.BYTES:
      return Uint8Array.from({ length: pick([0, 1, 5, 200]) }, () => Math.floor(r() * 256));
    case ScalarType.BOOL:
      return r() < 0.5;
    case ScalarType.DOUBLE:
      return pick(DOUBLES);
    case ScalarType.FLOAT:
      return pick(FLOATS);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return pick(INT32);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return pick(UINT32);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return pick(INT64);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return pick(UINT64);
  }
}

function mapKeyString(type: ScalarType, r: () => number): string {
  if (type === ScalarType.BOOL) return String(r() < 0.5);
  return String(scalarValue(type, r));
}

function fieldValue(field: DescField, r: () => number, depth: number): unknown {
  const count = (): number => Math.floor(r() * 4);
  switch (field.fieldKind) {
    case "scalar":
      return scalarValue(field.scalar, r);
    case "enum":
      return field.enum.values[Math.floor(r() * field.enum.values.length)]!.number;
    case "message":
      // protobuf-es holds a Struct field as a JsonObject.
      if (field.message.typeName === "google.protobuf.Struct" && field.parent.typeName !== "google.protobuf.Value") return randomJson(r, depth);
      return randomMessage(field.message, r, depth + 1);
    case "list":
      return Array.from({ length: count() }, () =>
        field.listKind === "message" ? randomMessage(field.message, r, depth + 1) : field.listKind === "enum" ? field.enum.values[0]!.number + Math.floor(r() * 3) : scalarValue(field.scalar, r),
      );
    case "map": {
      const map: Record<string, unknown> = {};
      for (let i = 0; i < count(); i++) {
        map[mapKeyString(field.mapKey, r)] = field.mapKind === "message" ? randomMessage(field.message, r, depth + 1) : field.mapKind === "enum" ? field.enum.values[0]!.number : scalarValue(field.scalar, r);
      }
      return map;
    }
  }
}

const JSON_LEAVES = [null, true, false, 0, -1.5, 1e21, "", "text", "ünïcödé"];

function randomJson(r: () => number, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < Math.floor(r() * 4); i++) {
    const roll = r();
    out[`k${i}`] =
      depth < 3 && roll < 0.15
        ? randomJson(r, depth + 1)
        : depth < 3 && roll < 0.3
          ? [JSON_LEAVES[i % JSON_LEAVES.length], randomJson(r, depth + 1)]
          : JSON_LEAVES[Math.floor(r() * JSON_LEAVES.length)];
  }
  return out;
}

function randomMessage(schema: DescMessage, r: () => number, depth = 0): Message {
  const m = create(schema) as unknown as Record<string, unknown>;
  if (depth > 3) return m as unknown as Message;
  for (const oneof of schema.oneofs) {
    if (r() < 0.25) continue;
    const member = oneof.fields[Math.floor(r() * oneof.fields.length)]!;
    m[oneof.localName] = { case: member.localName, value: fieldValue(member, r, depth) };
  }
  for (const field of schema.fields) {
    if (field.oneof !== undefined || r() < 0.3) continue;
    m[field.localName] = fieldValue(field, r, depth);
  }
  if (r() < 0.1) m.$unknown = [{ no: 9999, wireType: 0, data: new Uint8Array([150, 1]) }, { no: 10000, wireType: 2, data: new Uint8Array([2, 7, 7]) }];
  return m as unknown as Message;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("encodeMessage", () => {
  it("writes exactly toBinary's bytes for random messages of every generated message type", async () => {
    const schemas = await allMessageSchemas();
    expect(schemas.length).toBeGreaterThan(100);
    const r = rng(20261122);
    let compared = 0;
    for (const schema of schemas) {
      for (let i = 0; i < 25; i++) {
        const m = randomMessage(schema, r);
        const expected = toBinary(schema, m as never);
        expect(hex(encodeMessage(schema, m)), `${schema.typeName} #${i}`).toBe(hex(expected));
        compared++;
      }
    }
    expect(compared).toBe(schemas.length * 25);
  });

  it("writes an agent message event as toBinary does, and it decodes back equal", () => {
    const event = create(EventSchema, {
      id: "0b5c1f9e-1d2a-4c1e-9b7a-2f3e4d5c6b7a",
      seq: 42n,
      timestamp: { seconds: 1_763_800_000n, nanos: 123_000_000 },
      source: EventSource.AGENT,
      payload: { case: "messageEvent", value: { llmMessage: { role: MessageRole.ASSISTANT, content: [{ content: { case: "text", value: { text: "All 42 tests passed ✓" } } }] } } },
    });
    const bytes = encodeMessage(EventSchema, event);
    expect(hex(bytes)).toBe(hex(toBinary(EventSchema, event)));
    expect(equals(EventSchema, fromBinary(EventSchema, bytes), event)).toBe(true);
  });

  it("refuses numbers out of range for their field, as toBinary does", () => {
    const bad = create(EventSchema, { seq: 2n ** 64n });
    expect(() => toBinary(EventSchema, bad)).toThrow();
    expect(() => encodeMessage(EventSchema, bad)).toThrow(/agentd\.v1\.Event\.seq/);
    const nanos = create(EventSchema, { timestamp: { seconds: 1n, nanos: 2 ** 31 } });
    expect(() => toBinary(EventSchema, nanos)).toThrow();
    expect(() => encodeMessage(EventSchema, nanos)).toThrow(/google\.protobuf\.Timestamp\.nanos/);
  });

  it("hands messages with wrapper fields (held as bare values) to toBinary", () => {
    const file = create(FileDescriptorProtoSchema, {
      name: "agentd_test_wrapped.proto",
      package: "agentd.test",
      syntax: "proto3",
      dependency: ["google/protobuf/wrappers.proto"],
      messageType: [{ name: "Wrapped", field: [{ name: "name", number: 1, label: FieldDescriptorProto_Label.OPTIONAL, type: FieldDescriptorProto_Type.MESSAGE, typeName: ".google.protobuf.StringValue", jsonName: "name" }] }],
    });
    const schema = createFileRegistry(file, (name) => (name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined)).getMessage("agentd.test.Wrapped")!;
    const m = create(schema, { name: "wrapped" } as never);
    expect(hex(encodeMessage(schema, m))).toBe(hex(toBinary(schema, m)));
    expect(hex(encodeMessage(schema, m))).toBe("0a090a0777726170706564"); // name { value: "wrapped" }
  });
});
