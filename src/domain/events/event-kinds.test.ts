import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EventSchema, EventSource } from "../../../gen/agentd/v1/event_pb.js";
import { OPENHANDS_EVENT_FQN, isTransient, kindOf, messageTexts, normalizeKindFilter, sourceName } from "./event-kinds.js";

describe("event kinds", () => {
  it("names every payload by its OpenHands class name", () => {
    const payload = EventSchema.oneofs.find((o) => o.name === "payload")!;
    for (const field of payload.fields) {
      if (field.localName === "genericEvent") continue;
      const event = create(EventSchema, { payload: { case: field.localName, value: {} } as never });
      expect(kindOf(event)).toBe(field.message!.name);
    }
    expect(kindOf(create(EventSchema, { payload: { case: "genericEvent", value: { kind: "HookExecutionEvent" } } }))).toBe("HookExecutionEvent");
    expect(() => kindOf(create(EventSchema, {}))).toThrow(/has no payload/);
  });

  it("maps fully-qualified kind filters to the short names", () => {
    for (const [short, fqn] of Object.entries(OPENHANDS_EVENT_FQN)) {
      expect(normalizeKindFilter(fqn)).toBe(short);
      expect(normalizeKindFilter(short)).toBe(short);
    }
    expect(normalizeKindFilter("some.module.CustomEvent")).toBe("CustomEvent");
  });

  it("knows which events are transient, the source names and the searchable text", () => {
    const fullState = create(EventSchema, { payload: { case: "conversationStateUpdateEvent", value: { key: "full_state" } } });
    const status = create(EventSchema, { payload: { case: "conversationStateUpdateEvent", value: { key: "execution_status" } } });
    const deltaEvent = create(EventSchema, { payload: { case: "streamingDeltaEvent", value: { content: "x" } } });
    expect([isTransient(fullState), isTransient(status), isTransient(deltaEvent)]).toEqual([true, false, true]);
    expect(sourceName(EventSource.HOOK)).toBe("hook");
    expect(sourceName(EventSource.UNSPECIFIED)).toBeUndefined();
    const message = create(EventSchema, {
      payload: {
        case: "messageEvent",
        value: {
          llmMessage: { content: [{ content: { case: "text", value: { text: "One" } } }], reasoningContent: "Two" },
          extendedContent: [{ content: { case: "text", value: { text: "Three" } } }],
        },
      },
    });
    expect(messageTexts(message)).toEqual(["One", "Three", "Two"]);
    expect(messageTexts(status)).toEqual([]);
  });
});
