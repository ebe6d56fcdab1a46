import { describe, expect, it } from "vitest";
import { EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { computeView, needsCondensation, planCondensation } from "./condenser.js";
import { agentErrorEvent, agentMessageEvent, newEvent as bareEvent, textPart, userMessageEvent, withId } from "./events.js";

const newEvent: typeof bareEvent = (source, payload) => withId(bareEvent(source, payload));
import { buildChatMessages, renderNonObservation } from "./messages.js";

function action(id: string, responseId: string): Event {
  return newEvent(EventSource.AGENT, { case: "actionEvent", value: { toolName: "terminal", toolCallId: id, llmResponseId: responseId, toolCall: { id, name: "terminal", arguments: "{}" } } });
}
const answer = (id: string): Event => withId(agentErrorEvent(`result ${id}`, "terminal", id));
const render = (e: Event) => renderNonObservation(e) ?? { text: "", imageUrls: [] };

function history(pairs: number): Event[] {
  const sys = newEvent(EventSource.AGENT, { case: "systemPromptEvent", value: { systemPrompt: { text: "SYS" } } });
  const out: Event[] = [withId(userMessageEvent([textPart("task")])), sys];
  for (let i = 0; i < pairs; i++) out.push(action(`c${i}`, `r${i}`), answer(`c${i}`));
  return out;
}

describe("view and condensation", () => {
  it("puts the system prompt first and applies condensations", () => {
    const events = history(5);
    const view = computeView(events);
    expect(view.items).toHaveLength(12);
    expect(view.items[0]!.type === "event" && view.items[0]!.event.payload.case).toBe("systemPromptEvent");
    const settings = { maxSize: 8, keepFirst: 2 };
    expect(needsCondensation(view, settings)).toBe(true);
    const plan = planCondensation(view, settings)!;
    // 12 items → keep 2, a summary and the newest 1 (target 4): forgotten ones never split a pair.
    const cond = newEvent(EventSource.ENVIRONMENT, { case: "condensation", value: { forgottenEventIds: plan.forgottenIds, summary: "S", summaryOffset: plan.summaryOffset } });
    const after = computeView([...events, cond]);
    expect(after.items.length).toBeLessThan(view.items.length);
    expect(after.items[2]).toEqual({ type: "summary", summary: "S" });
    const messages = buildChatMessages(after.items, render);
    // Every tool message answers a call of the assistant message right before it.
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (m.role === "tool") {
        const prev = messages.slice(0, i).reverse().find((x) => x.role !== "tool");
        expect(prev?.role).toBe("assistant");
      }
    }
    expect(JSON.stringify(messages)).toContain("S");
  });

  it("a CondensationRequest asks for condensation until one follows", () => {
    const events = history(2);
    const req = newEvent(EventSource.ENVIRONMENT, { case: "condensationRequest", value: {} });
    expect(computeView([...events, req]).pendingRequest).toBe(true);
    const cond = newEvent(EventSource.ENVIRONMENT, { case: "condensation", value: { forgottenEventIds: [] } });
    expect(computeView([...events, req, cond]).pendingRequest).toBe(false);
  });
});

describe("buildChatMessages", () => {
  it("groups the calls of one response, drops unanswered calls, moves answers next to their call", () => {
    const user2 = userMessageEvent([textPart("interjection")]);
    const events = [
      userMessageEvent([textPart("task")]),
      action("a", "r1"),
      action("b", "r1"),
      action("c", "r1"),
      user2,
      answer("a"),
      answer("b"),
      agentMessageEvent("done", "r2"),
    ];
    const messages = buildChatMessages(computeView(events).items, render);
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant", "tool", "tool", "user", "assistant"]);
    const assistant = messages[1]!;
    expect(assistant.role === "assistant" && assistant.tool_calls?.map((c) => c.id)).toEqual(["a", "b"]);
  });
});
