/**
 * Event kinds and sources as the event log indexes them.
 *
 * - The kind of an event is the OpenHands class name of its payload: the `(agentd.v1.kind)` option
 *   of the payload message (e.g. "ActionEvent"), or `GenericEvent.kind` for kinds this server has
 *   no typed message for.
 * - Kind filters accept the short name and the OpenHands fully-qualified name
 *   ("openhands.sdk.event.llm_convertible.action.ActionEvent"); both select the same events.
 * - Transient events (StreamingDeltaEvent, and ConversationStateUpdateEvent with key
 *   "full_state") are delivered to watchers but never stored.
 */

import { getOption } from "@bufbuild/protobuf";
import { AgentdError } from "../../errors.js";
import { EventSchema, EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { kind as kindOption } from "../../../gen/agentd/v1/options_pb.js";

type PayloadCase = NonNullable<Event["payload"]["case"]>;

/** Kind of each typed payload case, read from the proto options (message name as fallback). */
const KIND_BY_CASE: ReadonlyMap<PayloadCase, string> = new Map(
  EventSchema.oneofs
    .find((o) => o.name === "payload")!
    .fields.filter((f) => f.message !== undefined)
    .map((f) => [f.localName as PayloadCase, getOption(f.message!, kindOption) || f.message!.name]),
);

/**
 * OpenHands fully-qualified class names of the core event kinds (openhands-agent-server.md §1.4).
 * The OpenHands server filters on these; we accept them and the short names.
 */
export const OPENHANDS_EVENT_FQN: Readonly<Record<string, string>> = {
  MessageEvent: "openhands.sdk.event.llm_convertible.message.MessageEvent",
  ActionEvent: "openhands.sdk.event.llm_convertible.action.ActionEvent",
  ObservationEvent: "openhands.sdk.event.llm_convertible.observation.ObservationEvent",
  AgentErrorEvent: "openhands.sdk.event.llm_convertible.observation.AgentErrorEvent",
  UserRejectObservation: "openhands.sdk.event.llm_convertible.observation.UserRejectObservation",
  SystemPromptEvent: "openhands.sdk.event.llm_convertible.system.SystemPromptEvent",
  ConversationStateUpdateEvent: "openhands.sdk.event.conversation_state.ConversationStateUpdateEvent",
  ConversationErrorEvent: "openhands.sdk.event.conversation_error.ConversationErrorEvent",
  Condensation: "openhands.sdk.event.condenser.Condensation",
  CondensationRequest: "openhands.sdk.event.condenser.CondensationRequest",
  CondensationSummaryEvent: "openhands.sdk.event.condenser.CondensationSummaryEvent",
  PauseEvent: "openhands.sdk.event.user_action.PauseEvent",
  InterruptEvent: "openhands.sdk.event.user_action.InterruptEvent",
  HookExecutionEvent: "openhands.sdk.event.hook_execution.HookExecutionEvent",
  LLMCompletionLogEvent: "openhands.sdk.event.llm_completion_log.LLMCompletionLogEvent",
  ACPToolCallEvent: "openhands.sdk.event.acp_tool_call.ACPToolCallEvent",
  TokenEvent: "openhands.sdk.event.token.TokenEvent",
};

const SHORT_BY_FQN: ReadonlyMap<string, string> = new Map(Object.entries(OPENHANDS_EVENT_FQN).map(([short, fqn]) => [fqn, short]));

/**
 * The kind of an event ("ActionEvent", …).
 * @throws AgentdError invalid_argument when the event has no payload.
 */
export function kindOf(event: Event): string {
  const p = event.payload;
  if (p.case === undefined) throw new AgentdError("invalid_argument", `event ${event.id || "(no id)"} has no payload`);
  if (p.case === "genericEvent") return p.value.kind;
  return KIND_BY_CASE.get(p.case) ?? p.case;
}

/**
 * The stored kind a kind filter selects: the short name itself, the short name of a known
 * fully-qualified name, or, for other dotted names, the part after the last dot (the class name).
 */
export function normalizeKindFilter(kind: string): string {
  const known = SHORT_BY_FQN.get(kind);
  if (known !== undefined) return known;
  const dot = kind.lastIndexOf(".");
  return dot >= 0 ? kind.slice(dot + 1) : kind;
}

/** True for events that are delivered to watchers but never stored (and carry seq 0). */
export function isTransient(event: Event): boolean {
  const p = event.payload;
  return p.case === "streamingDeltaEvent" || (p.case === "conversationStateUpdateEvent" && p.value.key === "full_state");
}

const SOURCE_NAMES: ReadonlyMap<EventSource, string> = new Map([
  [EventSource.AGENT, "agent"],
  [EventSource.USER, "user"],
  [EventSource.ENVIRONMENT, "environment"],
  [EventSource.HOOK, "hook"],
]);

/** The stored name of a source ("agent", "user", "environment", "hook"); undefined for UNSPECIFIED. */
export function sourceName(source: EventSource): string | undefined {
  return SOURCE_NAMES.get(source);
}

/** The text a body filter searches: a MessageEvent's text parts and reasoning; none for other kinds. */
export function messageTexts(event: Event): string[] {
  if (event.payload.case !== "messageEvent") return [];
  const m = event.payload.value;
  const texts: string[] = [];
  for (const c of [...(m.llmMessage?.content ?? []), ...m.extendedContent]) {
    if (c.content.case === "text") texts.push(c.content.value.text);
  }
  if (m.llmMessage?.reasoningContent !== undefined) texts.push(m.llmMessage.reasoningContent);
  return texts;
}
