import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ActionSchema, ObservationSchema } from "../../../gen/agentd/v1/tool_pb.js";
import { EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { agentErrorEvent, agentMessageEvent, newEvent, textPart, userMessageEvent } from "./events.js";
import { detectStuck } from "./stuck-detector.js";

let n = 0;
function call(command: string): { action: Event; id: string } {
  const id = `call_${++n}`;
  const action = newEvent(EventSource.AGENT, {
    case: "actionEvent",
    value: {
      toolName: "terminal",
      toolCallId: id,
      action: create(ActionSchema, { action: { case: "terminal", value: { command } } }),
      toolCall: { id, name: "terminal", arguments: JSON.stringify({ command }) },
    },
  });
  return { action, id };
}

function pair(command: string, output: string): Event[] {
  const { action, id } = call(command);
  const obs = newEvent(EventSource.ENVIRONMENT, {
    case: "observationEvent",
    value: { toolName: "terminal", toolCallId: id, actionId: action.id, observation: create(ObservationSchema, { content: [textPart(output)], observation: { case: "terminal", value: {} } }) },
  });
  return [action, obs];
}

function errorPair(command: string, error: string): Event[] {
  const { action, id } = call(command);
  return [action, agentErrorEvent(error, "terminal", id)];
}

const user = (): Event => userMessageEvent([textPart("task")]);

describe("detectStuck", () => {
  it("is not stuck on varied work", () => {
    const events = [user(), ...pair("a", "1"), ...pair("b", "2"), ...pair("c", "3"), ...pair("d", "4")];
    expect(detectStuck(events, false)).toEqual({ stuck: false });
  });

  it("detects 4 identical action/observation pairs, not 3", () => {
    const three = [user(), ...pair("ls", "x"), ...pair("ls", "x"), ...pair("ls", "x")];
    expect(detectStuck(three, false).stuck).toBe(false);
    expect(detectStuck([...three, ...pair("ls", "x")], false)).toMatchObject({ stuck: true, pattern: "action_observation" });
  });

  it("same action with different output is not stuck", () => {
    const events = [user(), ...pair("date", "1"), ...pair("date", "2"), ...pair("date", "3"), ...pair("date", "4")];
    expect(detectStuck(events, false).stuck).toBe(false);
  });

  it("nudges at 3 repeated errors, once, and is stuck after", () => {
    const three = [user(), ...errorPair("x", "boom"), ...errorPair("x", "boom"), ...errorPair("x", "boom")];
    const v = detectStuck(three, false);
    expect(v.stuck).toBe(false);
    expect(v.nudge).toMatch(/same arguments 3 times/);
    expect(detectStuck(three, true).nudge).toBeUndefined();
    expect(detectStuck([...three, ...errorPair("x", "boom2")], true)).toMatchObject({ stuck: true, pattern: "action_error" });
  });

  it("detects a monologue of three agent messages; environment nudges do not break it", () => {
    const nudge = userMessageEvent([textPart("nudge")], EventSource.ENVIRONMENT);
    const events = [user(), agentMessageEvent("", "r1"), nudge, agentMessageEvent("", "r2"), nudge, agentMessageEvent("", "r3")];
    expect(detectStuck(events, false)).toMatchObject({ stuck: true, pattern: "monologue" });
    expect(detectStuck(events.slice(0, 4), false).stuck).toBe(false);
  });

  it("detects A/B alternation over six pairs", () => {
    const events = [user()];
    for (let i = 0; i < 3; i++) events.push(...pair("a", "A"), ...pair("b", "B"));
    expect(detectStuck(events, false)).toMatchObject({ stuck: true, pattern: "alternating_pattern" });
    expect(detectStuck(events.slice(0, -2), false).stuck).toBe(false);
  });

  it("only counts events after the last user message", () => {
    const events = [user(), ...pair("ls", "x"), ...pair("ls", "x"), ...pair("ls", "x"), user(), ...pair("ls", "x")];
    expect(detectStuck(events, false).stuck).toBe(false);
  });
});
