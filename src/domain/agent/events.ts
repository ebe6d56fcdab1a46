// Builders and readers of the conversation events the agent produces (agentd.v1.Event). Events
// are created here without seq and timestamp: the event log assigns both at append.

import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { fromJson } from "@bufbuild/protobuf";
import { EventSchema, EventSource, ErrorClassificationSchema } from "../../../gen/agentd/v1/event_pb.js";
import type { Event, ErrorClassification } from "../../../gen/agentd/v1/event_pb.js";
import { ContentSchema, MessageRole } from "../../../gen/agentd/v1/message_pb.js";
import type { Content } from "../../../gen/agentd/v1/message_pb.js";

/** The payload of an event (the oneof). */
export type EventPayload = Event["payload"];
/** The payload in init form (for `newEvent`). */
export type EventPayloadInit = NonNullable<MessageInitShape<typeof EventSchema>["payload"]>;
/** The payload case names ("messageEvent", "actionEvent", ...). */
export type EventCase = NonNullable<EventPayload["case"]>;

/** OpenHands class name of each payload case (the event's `kind`). */
export const KIND_BY_CASE: Readonly<Record<EventCase, string>> = {
  messageEvent: "MessageEvent",
  actionEvent: "ActionEvent",
  observationEvent: "ObservationEvent",
  agentErrorEvent: "AgentErrorEvent",
  userRejectObservation: "UserRejectObservation",
  systemPromptEvent: "SystemPromptEvent",
  conversationStateUpdateEvent: "ConversationStateUpdateEvent",
  conversationErrorEvent: "ConversationErrorEvent",
  pauseEvent: "PauseEvent",
  interruptEvent: "InterruptEvent",
  condensation: "Condensation",
  condensationRequest: "CondensationRequest",
  condensationSummaryEvent: "CondensationSummaryEvent",
  tokenEvent: "TokenEvent",
  streamingDeltaEvent: "StreamingDeltaEvent",
  genericEvent: "GenericEvent",
};

/** The event's OpenHands kind ("" when no payload is set). */
export function eventKind(e: Event): string {
  if (e.payload.case === undefined) return "";
  if (e.payload.case === "genericEvent") return e.payload.value.kind;
  return KIND_BY_CASE[e.payload.case];
}

/**
 * A new event without id, seq and timestamp: the event log assigns all three at append (a batch of
 * id-less events takes the log's fast path, which skips the duplicate-id lookup). Use `withId`
 * when the id must be known before the append.
 */
export function newEvent(source: EventSource, payload: EventPayloadInit): Event {
  return create(EventSchema, { source, payload });
}

/** Gives the event a fresh dashed UUID (before it is appended). */
export function withId(e: Event): Event {
  e.id = randomUUID();
  return e;
}

export function textPart(text: string): Content {
  return create(ContentSchema, { content: { case: "text", value: { text, cachePrompt: false } } });
}

/** A user (or environment-nudge) message event. */
export function userMessageEvent(content: Content[], source: EventSource = EventSource.USER): Event {
  return newEvent(source, {
    case: "messageEvent",
    value: { llmMessage: { role: MessageRole.USER, content, toolCalls: [] }, activatedSkills: [], extendedContent: [] },
  });
}

/** An agent (assistant) message event. */
export function agentMessageEvent(text: string, responseId: string | undefined, reasoning?: string): Event {
  return newEvent(EventSource.AGENT, {
    case: "messageEvent",
    value: {
      llmMessage: { role: MessageRole.ASSISTANT, content: [textPart(text)], toolCalls: [], reasoningContent: reasoning },
      llmResponseId: responseId,
      activatedSkills: [],
      extendedContent: [],
    },
  });
}

export function classification(kind: string, retryable: boolean, userAction: string): ErrorClassification {
  return create(ErrorClassificationSchema, { kind, retryable, userAction });
}

/** A persisted ConversationStateUpdateEvent for one state field. */
export function stateUpdateEvent(key: string, value: JsonValue): Event {
  return newEvent(EventSource.ENVIRONMENT, {
    case: "conversationStateUpdateEvent",
    value: { key, value: fromJson(ValueSchema, value) },
  });
}

export function conversationErrorEvent(code: string, detail: string, cls: ErrorClassification): Event {
  return newEvent(EventSource.ENVIRONMENT, { case: "conversationErrorEvent", value: { code, detail, classification: cls } });
}

export function agentErrorEvent(error: string, toolName: string, toolCallId: string, cls: ErrorClassification = classification("agent_action", true, "none")): Event {
  return newEvent(EventSource.AGENT, { case: "agentErrorEvent", value: { error, toolName, toolCallId, classification: cls } });
}

/** The concatenated text parts of a content list. */
export function contentText(content: readonly Content[]): string {
  let out = "";
  for (const c of content) if (c.content.case === "text") out += c.content.value.text;
  return out;
}

/** Text of a MessageEvent's LLM message (and extended content). */
export function messageText(e: Event): string {
  if (e.payload.case !== "messageEvent") return "";
  const m = e.payload.value;
  return contentText(m.llmMessage?.content ?? []) + contentText(m.extendedContent);
}

/** True for a message the user sent (not an environment nudge). */
export function isUserMessage(e: Event): boolean {
  return e.payload.case === "messageEvent" && e.source === EventSource.USER;
}

/** True for an agent's own text message. */
export function isAgentMessage(e: Event): boolean {
  return e.payload.case === "messageEvent" && e.source === EventSource.AGENT;
}

/** Events that answer a tool call (carry `tool_call_id` for an earlier ActionEvent). */
export function answeredToolCallId(e: Event): string | undefined {
  switch (e.payload.case) {
    case "observationEvent":
    case "agentErrorEvent":
    case "userRejectObservation":
      return e.payload.value.toolCallId || undefined;
    default:
      return undefined;
  }
}

/** The action id an answer refers to (ObservationEvent/UserRejectObservation carry it). */
export function answeredActionId(e: Event): string | undefined {
  switch (e.payload.case) {
    case "observationEvent":
    case "userRejectObservation":
      return e.payload.value.actionId || undefined;
    default:
      return undefined;
  }
}

/** Kinds that take part in the LLM's view of the conversation. */
export function isLlmConvertible(e: Event): boolean {
  switch (e.payload.case) {
    case "messageEvent":
    case "actionEvent":
    case "observationEvent":
    case "agentErrorEvent":
    case "userRejectObservation":
    case "systemPromptEvent":
      return true;
    default:
      return false;
  }
}
