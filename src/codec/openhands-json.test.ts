import { create, equals, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { BatchGetConversationsResponseSchema, CreateConversationRequestSchema, UpdateConversationSecretsRequestSchema } from "../../gen/agentd/v1/conversation_service_pb.js";
import { ConfirmationPolicySchema, ConversationSchema, ExecutionStatus } from "../../gen/agentd/v1/conversation_pb.js";
import { EventSchema } from "../../gen/agentd/v1/event_pb.js";
import { SearchEventsRequestSchema } from "../../gen/agentd/v1/event_service_pb.js";
import { BashEventSchema } from "../../gen/agentd/v1/bash_pb.js";
import { ActionSchema, ObservationSchema, TerminalActionSchema } from "../../gen/agentd/v1/tool_pb.js";
import { AgentdError } from "../errors.js";
import { fromOpenHandsJson, normalizeUuid, parseTimestamp, toOpenHandsJson, formatTimestamp } from "./openhands-json.js";
import { planOf, reachableMessages } from "./plan.js";

const UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

/** A message of `desc` with every field set to a recognisable value (depth-bounded). */
function sample<D extends DescMessage>(desc: D, depth = 0, variant?: string): MessageShape<D> {
  const msg = create(desc) as unknown as Record<string, unknown>;
  if (desc.typeName === "google.protobuf.Timestamp") return timestampFromMs(1_750_000_000_123) as unknown as MessageShape<D>;
  if (desc.typeName === "google.protobuf.Value") return create(desc, { kind: { case: "stringValue", value: "v" } } as never);
  if (depth > 4) return msg as unknown as MessageShape<D>;
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      const chosen = member.fields.find((f) => f.localName === variant) ?? member.fields[0]!;
      msg[member.localName] = { case: chosen.localName, value: value(chosen, depth) };
      continue;
    }
    const f = member;
    if (f.fieldKind === "list") msg[f.localName] = [value(f, depth), value(f, depth)];
    else if (f.fieldKind === "map") msg[f.localName] = { alpha: value(f, depth) };
    else msg[f.localName] = value(f, depth);
  }
  return msg as unknown as MessageShape<D>;
}

function value(f: DescField, depth: number): unknown {
  if (f.message !== undefined) {
    if (f.message.typeName === "google.protobuf.Struct") return { a: 1, b: [true, null], c: { d: "e" } };
    return sample(f.message, depth + 1);
  }
  if (f.enum !== undefined) return f.enum.values.find((v) => v.number !== 0)?.number ?? 0;
  switch (f.scalar) {
    case 9: // string
      return f.name === "conversation_id" || f.name === "ids" || f.name.endsWith("_conversation_id") ? UUID : `s-${f.name}`;
    case 8:
      return true;
    case 1:
    case 2:
      return 1.5;
    case 12:
      return new Uint8Array([1, 2, 250]);
    case 3:
    case 18:
    case 16:
      return 1n << 60n; // beyond 2^53: rendered as a string
    case 4:
    case 6:
      return 42n;
    default:
      return 7;
  }
}

function roundTrip<D extends DescMessage>(desc: D, msg: MessageShape<D>): void {
  const json = toOpenHandsJson(desc, msg, { extensions: true });
  const back = fromOpenHandsJson(desc, JSON.parse(JSON.stringify(json)));
  expect(equals(desc, back, msg), `${desc.typeName}: ${JSON.stringify(json)}`).toBe(true);
  const lean = toOpenHandsJson(desc, msg, { excludeNone: true, extensions: true });
  expect(equals(desc, fromOpenHandsJson(desc, JSON.parse(JSON.stringify(lean))), msg)).toBe(true);
}

describe("round trips", () => {
  const payload = EventSchema.oneofs.find((o) => o.name === "payload")!;
  for (const variant of payload.fields) {
    it(`Event with ${variant.name}`, () => {
      const ev = sample(EventSchema, 0, variant.localName);
      roundTrip(EventSchema, ev);
      const json = toOpenHandsJson(EventSchema, ev) as Record<string, unknown>;
      const kind = planOf(variant.message!).kind ?? "s-kind";
      expect(Object.keys(json)[0]).toBe("kind");
      expect(json.kind).toBe(kind);
      // The variant's fields sit next to the envelope, not under the variant's name.
      expect(json).not.toHaveProperty(variant.name);
      expect(json.id).toBe("s-id");
    });
  }
  for (const oneofOwner of [ActionSchema, ObservationSchema]) {
    const oneof = oneofOwner.oneofs[0]!;
    for (const variant of oneof.fields) {
      it(`${oneofOwner.name} ${variant.name}`, () => roundTrip(oneofOwner, sample(oneofOwner, 0, variant.localName)));
    }
  }
  it("requests and resources", () => {
    for (const desc of [CreateConversationRequestSchema, ConversationSchema, SearchEventsRequestSchema, BashEventSchema]) {
      roundTrip(desc as DescMessage, sample(desc as DescMessage));
    }
  });
});

describe("output shape", () => {
  it("inlines discriminated variants under their kind, with kind first", () => {
    const ev = create(EventSchema, {
      id: "e1",
      seq: 3n,
      timestamp: timestampFromMs(Date.UTC(2026, 7, 22, 10, 0, 0, 500)),
      source: 1,
      payload: {
        case: "actionEvent",
        value: {
          toolName: "terminal",
          securityRisk: 2,
          action: { action: { case: "terminal", value: { command: "ls -la" } } },
          thought: [{ content: { case: "text", value: { text: "I'll list" } } }],
        },
      },
    });
    const { seq, ...plain } = toOpenHandsJson(EventSchema, ev, { excludeNone: true, extensions: true }) as Record<string, unknown>;
    expect(seq).toBe(3);
    // Without the opt-in, extension fields (rest_extension) are left out: plain OpenHands JSON.
    expect(toOpenHandsJson(EventSchema, ev, { excludeNone: true })).toEqual(plain);
    expect(plain).toEqual({
      kind: "ActionEvent",
      id: "e1",
      timestamp: "2026-08-22T10:00:00.500Z",
      source: "agent",
      thought: [{ type: "text", text: "I'll list", cache_prompt: false }],
      action: { kind: "TerminalAction", command: "ls -la", is_input: false, reset: false },
      tool_name: "terminal",
      tool_call_id: "",
      llm_response_id: "",
      security_risk: "LOW",
    });
  });

  it("renders unset optionals and messages as null, or leaves them out with excludeNone", () => {
    const action = create(TerminalActionSchema, { command: "x" });
    expect(toOpenHandsJson(TerminalActionSchema, action)).toEqual({ kind: "TerminalAction", command: "x", is_input: false, timeout: null, reset: false });
    expect(toOpenHandsJson(TerminalActionSchema, action, { excludeNone: true })).toEqual({ kind: "TerminalAction", command: "x", is_input: false, reset: false });
  });

  it("renders the zero enum value without rest_value as null and others by rest_value", () => {
    const c = create(ConversationSchema, { id: UUID, executionStatus: ExecutionStatus.RUNNING });
    const json = toOpenHandsJson(ConversationSchema, c) as Record<string, unknown>;
    expect(json.execution_status).toBe("running");
    const none = toOpenHandsJson(ConversationSchema, create(ConversationSchema)) as Record<string, unknown>;
    expect(none.execution_status).toBeNull();
  });

  it("renders 64-bit integers as numbers when safe and as strings otherwise", () => {
    const c = create(ConversationSchema, { lastSeq: 5n, eventCount: (1n << 60n) + 1n });
    const json = toOpenHandsJson(ConversationSchema, c, { extensions: true }) as Record<string, unknown>;
    expect(json.last_seq).toBe(5);
    expect(json.event_count).toBe("1152921504606846977");
  });

  it("renders nullable wrappers as their content or null", () => {
    const res = create(BatchGetConversationsResponseSchema, { conversations: [{ conversation: { id: UUID } }, {}] });
    const json = toOpenHandsJson(BatchGetConversationsResponseSchema, res) as { conversations: unknown[] };
    expect((json.conversations[0] as { id: string }).id).toBe(UUID);
    expect(json.conversations[1]).toBeNull();
    const back = fromOpenHandsJson(BatchGetConversationsResponseSchema, json);
    expect(back.conversations[1]!.conversation).toBeUndefined();
    expect(back.conversations[0]!.conversation?.id).toBe(UUID);
  });

  it("merges inline structs of generic variants and keeps the unknown kind", () => {
    const json = { kind: "MCPToolAction", server: "s", arguments: { q: 1 } };
    const action = fromOpenHandsJson(ActionSchema, json);
    expect(action.action.case).toBe("generic");
    expect(toOpenHandsJson(ActionSchema, action)).toEqual(json);
  });

  it("formats timestamps with 0, 3, 6 or 9 fractional digits", () => {
    const at = (seconds: bigint, nanos: number) => formatTimestamp({ $typeName: "google.protobuf.Timestamp", seconds, nanos });
    expect(at(0n, 0)).toBe("1970-01-01T00:00:00Z");
    expect(at(0n, 500_000_000)).toBe("1970-01-01T00:00:00.500Z");
    expect(at(0n, 500_001_000)).toBe("1970-01-01T00:00:00.500001Z");
    expect(at(0n, 1)).toBe("1970-01-01T00:00:00.000000001Z");
  });
});

describe("input", () => {
  it("accepts the OpenHands create request", () => {
    const req = fromOpenHandsJson(CreateConversationRequestSchema, {
      agent: { kind: "Agent", llm: { model: "anthropic/claude-sonnet-4-5", api_key: "sk-x", usage_id: "agent" }, tools: [{ name: "terminal" }] },
      workspace: { kind: "LocalWorkspace", working_dir: "/workspace/project" },
      initial_message: { role: "user", content: [{ type: "text", text: "List the files" }] },
      confirmation_policy: { kind: "NeverConfirm" },
      max_iterations: 50,
      tags: { team: "infra" },
      unknown_field: { ignored: true },
    });
    expect(req.agent?.llm?.model).toBe("anthropic/claude-sonnet-4-5");
    expect(req.initialMessage?.content[0]?.content.case).toBe("text");
    expect(req.confirmationPolicy?.policy.case).toBe("neverConfirm");
    expect(req.maxIterations).toBe(50);
    expect(req.tags).toEqual({ team: "infra" });
  });

  it("accepts secrets as a plain string, {value}, or a kinded SecretSource", () => {
    const req = fromOpenHandsJson(UpdateConversationSecretsRequestSchema, {
      secrets: { A: "plain", B: { value: "wrapped" }, C: { kind: "StaticSecret", value: "kinded" }, D: { kind: "LookupSecret", url: "https://vault/x", headers: { h: "v" } } },
    });
    expect(req.secrets.A?.source).toEqual({ case: "staticSecret", value: expect.objectContaining({ value: "plain" }) });
    expect(req.secrets.B?.source).toEqual({ case: "staticSecret", value: expect.objectContaining({ value: "wrapped" }) });
    expect(req.secrets.C?.source.case).toBe("staticSecret");
    expect(req.secrets.D?.source).toEqual({ case: "lookupSecret", value: expect.objectContaining({ url: "https://vault/x", headers: { h: "v" } }) });
  });

  it("accepts confirmation policies by kind", () => {
    const risky = fromOpenHandsJson(ConfirmationPolicySchema, { kind: "ConfirmRisky", threshold: "HIGH", confirm_unknown: true });
    expect(risky.policy.case).toBe("confirmRisky");
    expect(risky.policy.value).toEqual(expect.objectContaining({ threshold: 4, confirmUnknown: true }));
    expect(fromOpenHandsJson(ConfirmationPolicySchema, { kind: "AlwaysConfirm" }).policy.case).toBe("alwaysConfirm");
  });

  it("accepts enum values as rest value, full name, short name or number", () => {
    for (const status of ["running", "EXECUTION_STATUS_RUNNING", "RUNNING", "Running", 2, "2"]) {
      expect(fromOpenHandsJson(ConversationSchema, { execution_status: status }).executionStatus).toBe(ExecutionStatus.RUNNING);
    }
  });

  it("accepts OpenHands fully-qualified event kinds", () => {
    const ev = fromOpenHandsJson(EventSchema, { kind: "openhands.sdk.event.user_action.PauseEvent", id: "p", source: "user" });
    expect(ev.payload.case).toBe("pauseEvent");
  });

  it("sends kinds nobody claims to the generic variant, with the other keys in its struct", () => {
    const ev = fromOpenHandsJson(EventSchema, { kind: "HookExecutionEvent", id: "h", source: "hook", hook_command: "ls", success: true });
    expect(ev.payload.case).toBe("genericEvent");
    expect(ev.payload.value).toEqual(expect.objectContaining({ kind: "HookExecutionEvent", fields: { hook_command: "ls", success: true } }));
  });

  it("normalises conversation ids in any UUID spelling", () => {
    for (const form of [UUID, UUID.toUpperCase(), UUID.replaceAll("-", ""), `{${UUID}}`, `urn:uuid:${UUID}`]) {
      expect(fromOpenHandsJson(CreateConversationRequestSchema, { conversation_id: form }).conversationId).toBe(UUID);
    }
    expect(normalizeUuid("", "x")).toBe("");
  });

  it("parses ISO timestamps with and without offsets", () => {
    const sec = (text: string) => Number(parseTimestamp(text, "t").seconds);
    const base = Date.UTC(2026, 7, 22, 10, 0, 0) / 1000;
    expect(sec("2026-08-22T10:00:00")).toBe(base);
    expect(sec("2026-08-22T10:00:00Z")).toBe(base);
    expect(sec("2026-08-22T12:00:00+02:00")).toBe(base);
    expect(sec("2026-08-22T12:00:00 02:00")).toBe(base); // "+" decoded as a space in a query
    expect(parseTimestamp("2026-08-22T10:00:00.123456", "t").nanos).toBe(123_456_000);
  });

  const bad: [string, () => unknown, RegExp][] = [
    ["a string where an integer is expected", () => fromOpenHandsJson(CreateConversationRequestSchema, { max_iterations: "many" }), /^max_iterations: expected an integer, got "many"$/],
    ["a float where an integer is expected", () => fromOpenHandsJson(CreateConversationRequestSchema, { max_iterations: 1.5 }), /max_iterations: expected an integer/],
    ["an out-of-range int32", () => fromOpenHandsJson(CreateConversationRequestSchema, { max_iterations: 2 ** 40 }), /max_iterations: integer out of range/],
    ["a nested wrong type", () => fromOpenHandsJson(CreateConversationRequestSchema, { agent: { llm: { model: 5 } } }), /^agent\.llm\.model: expected a string, got 5$/],
    ["an unknown enum value", () => fromOpenHandsJson(ConversationSchema, { execution_status: "sleeping" }), /execution_status: expected one of "idle", "running"/],
    ["an unknown kind", () => fromOpenHandsJson(ConfirmationPolicySchema, { kind: "SometimesConfirm" }), /kind: unknown kind; expected one of NeverConfirm/],
    ["a wrong own kind", () => fromOpenHandsJson(CreateConversationRequestSchema, { workspace: { kind: "RemoteWorkspace" } }), /workspace\.kind: expected "LocalWorkspace"/],
    ["a bad UUID", () => fromOpenHandsJson(CreateConversationRequestSchema, { conversation_id: "123" }), /conversation_id: expected a UUID/],
    ["an array for an object", () => fromOpenHandsJson(CreateConversationRequestSchema, []), /^request body: expected an object, got an array$/],
    ["a list item of the wrong type", () => fromOpenHandsJson(ConversationSchema, { secret_names: ["a", 3] }), /secret_names\[1\]: expected a string/],
    ["a bad timestamp", () => fromOpenHandsJson(ConversationSchema, { created_at: "yesterday" }), /created_at: expected an ISO 8601 date-time/],
  ];
  for (const [name, fn, message] of bad) {
    it(`refuses ${name} with invalid_argument naming the field`, () => {
      let caught: unknown;
      try {
        fn();
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(AgentdError);
      expect((caught as AgentdError).code).toBe("invalid_argument");
      expect((caught as AgentdError).message).toMatch(message);
    });
  }
});

describe("plans", () => {
  it("every reachable message has a consistent plan and no inlined key collides with its parent's", async () => {
    const services = await Promise.all([
      import("../../gen/agentd/v1/conversation_service_pb.js"),
      import("../../gen/agentd/v1/event_service_pb.js"),
      import("../../gen/agentd/v1/bash_service_pb.js"),
      import("../../gen/agentd/v1/file_service_pb.js"),
      import("../../gen/agentd/v1/server_service_pb.js"),
    ]);
    const roots: DescMessage[] = [];
    for (const mod of services) {
      for (const v of Object.values(mod)) {
        if (typeof v === "object" && v !== null && (v as { kind?: string }).kind === "service") {
          for (const m of (v as { methods: { input: DescMessage; output: DescMessage }[] }).methods) roots.push(m.input, m.output);
        }
      }
    }
    const all = reachableMessages(roots);
    expect(all.length).toBeGreaterThan(100);
    for (const desc of all) {
      const plan = planOf(desc);
      for (const disc of plan.discriminated) {
        for (const v of disc.variants) {
          for (const key of v.plan.ownKeys) {
            if (key === disc.key) continue;
            expect(plan.ownKeys.has(key), `${desc.typeName}: ${v.field.message!.typeName}.${key} collides`).toBe(false);
          }
        }
      }
    }
  });
});

describe("enums without rest_value", () => {
  it("render as the value name without the enum prefix and parse back", async () => {
    const { FileInfoSchema, FileType } = await import("../../gen/agentd/v1/file_pb.js");
    const info = create(FileInfoSchema, { path: "/a", type: FileType.DIRECTORY });
    expect((toOpenHandsJson(FileInfoSchema, info) as { type: string }).type).toBe("DIRECTORY");
    expect(fromOpenHandsJson(FileInfoSchema, { type: "DIRECTORY" }).type).toBe(FileType.DIRECTORY);
    expect(fromOpenHandsJson(FileInfoSchema, { type: "FILE_TYPE_DIRECTORY" }).type).toBe(FileType.DIRECTORY);
    expect((toOpenHandsJson(FileInfoSchema, create(FileInfoSchema)) as { type: unknown }).type).toBeNull();
  });
});

describe("secrets in errors", () => {
  it("never echoes the value given for a secret-like field", () => {
    for (const [json, field] of [
      [{ agent: { llm: { model: "m", api_key: 12345678 } } }, "agent.llm.api_key"],
      [{ secrets: { GITHUB: { kind: "StaticSecret", value: 987654321 } } }, "secrets.GITHUB.value"],
      [{ secrets: { X: { kind: "LookupSecret", url: "u", headers: { Authorization: 424242 } } } }, "secrets.X.headers.Authorization"],
    ] as const) {
      let message = "";
      try {
        fromOpenHandsJson(CreateConversationRequestSchema, json);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message.startsWith(`${field}: expected`), message).toBe(true);
      expect(message).not.toMatch(/12345678|987654321|424242/);
    }
  });
});
