// Turns the agent's view of a conversation (events after condensation) into Chat Completions
// messages.
//
// Rules:
// - SystemPromptEvent → system message; MessageEvent → user/assistant message (environment nudges
//   are user messages); the condensation summary → a user message at its offset.
// - ActionEvents of one LLM response (same llm_response_id, consecutive) → one assistant message
//   with all their tool calls; its text is the first action's thought.
// - ObservationEvent / AgentErrorEvent / UserRejectObservation → a tool message answering its
//   call, placed right after the assistant message that made the call (the API requires it, and
//   a user message can land between a call and its result while a tool runs).
// - A call with no answer in the view (pending confirmation, interrupted) is dropped from its
//   assistant message, and an answer whose call is not in the view is dropped, so the request is
//   always well-formed.
// - Images an observation carries go in a user message after the tool answers (tool messages
//   carry text only).

import type {
  ChatCompletionContentPart,
  ChatCompletionMessageParam,
  ChatCompletionMessageToolCall,
} from "openai/resources/chat/completions";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { EventSource } from "../../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../../gen/agentd/v1/message_pb.js";
import type { Content } from "../../../gen/agentd/v1/message_pb.js";
import { answeredToolCallId, contentText } from "./events.js";
import { SUMMARY_HEADER } from "./prompt.js";

/** One entry of the agent's view: a stored event, or the summary that replaced forgotten ones. */
export type ViewItem = { type: "event"; event: Event } | { type: "summary"; summary: string };

/** What the LLM is shown for a tool answer. */
export interface RenderedAnswer {
  text: string;
  imageUrls: string[];
}

/** Renders a tool answer event (observation, agent error, rejection) for the LLM. */
export type AnswerRenderer = (e: Event) => RenderedAnswer;

function userContent(content: readonly Content[]): string | ChatCompletionContentPart[] {
  const hasImage = content.some((c) => c.content.case === "image");
  if (!hasImage) return contentText(content);
  const parts: ChatCompletionContentPart[] = [];
  for (const c of content) {
    if (c.content.case === "text") parts.push({ type: "text", text: c.content.value.text });
    else if (c.content.case === "image") for (const url of c.content.value.imageUrls) parts.push({ type: "image_url", image_url: { url } });
  }
  return parts;
}

/** Default rendering of answers that are not observations (errors and rejections). */
export function renderNonObservation(e: Event): RenderedAnswer | undefined {
  switch (e.payload.case) {
    case "agentErrorEvent":
      return { text: e.payload.value.error, imageUrls: [] };
    case "userRejectObservation":
      return { text: `Action rejected: ${e.payload.value.rejectionReason || "User rejected the action."}`, imageUrls: [] };
    default:
      return undefined;
  }
}

export function buildChatMessages(view: readonly ViewItem[], render: AnswerRenderer): ChatCompletionMessageParam[] {
  // Index answers by tool call id (the first answer wins).
  const answers = new Map<string, Event>();
  for (const item of view) {
    if (item.type !== "event") continue;
    const id = answeredToolCallId(item.event);
    if (id !== undefined && !answers.has(id)) answers.set(id, item.event);
  }

  const out: ChatCompletionMessageParam[] = [];
  const used = new Set<Event>();
  for (let i = 0; i < view.length; i++) {
    const item = view[i]!;
    if (item.type === "summary") {
      out.push({ role: "user", content: SUMMARY_HEADER + item.summary });
      continue;
    }
    const e = item.event;
    switch (e.payload.case) {
      case "systemPromptEvent": {
        const p = e.payload.value;
        const text = (p.systemPrompt?.text ?? "") + (p.dynamicContext?.text ? `\n\n${p.dynamicContext.text}` : "");
        out.push({ role: "system", content: text });
        break;
      }
      case "messageEvent": {
        const m = e.payload.value.llmMessage;
        const content = [...(m?.content ?? []), ...e.payload.value.extendedContent];
        if (m?.role === MessageRole.ASSISTANT || (m?.role !== MessageRole.USER && e.source === EventSource.AGENT)) {
          const text = contentText(content);
          out.push({ role: "assistant", content: text === "" ? "(empty response)" : text });
        } else if (m?.role === MessageRole.SYSTEM) {
          out.push({ role: "system", content: contentText(content) });
        } else {
          out.push({ role: "user", content: userContent(content) });
        }
        break;
      }
      case "actionEvent": {
        // Gather the consecutive actions of this response.
        const group: Event[] = [e];
        const responseId = e.payload.value.llmResponseId;
        while (i + 1 < view.length) {
          const next = view[i + 1]!;
          if (next.type !== "event" || next.event.payload.case !== "actionEvent" || next.event.payload.value.llmResponseId !== responseId) break;
          group.push(next.event);
          i++;
        }
        const calls: ChatCompletionMessageToolCall[] = [];
        const answered: Event[] = [];
        for (const a of group) {
          if (a.payload.case !== "actionEvent") continue;
          const v = a.payload.value;
          const ans = answers.get(v.toolCallId);
          if (ans === undefined || used.has(ans)) continue;
          used.add(ans);
          calls.push({
            id: v.toolCallId,
            type: "function",
            function: { name: v.toolCall?.name || v.toolName, arguments: v.toolCall?.arguments ?? "{}" },
          });
          answered.push(ans);
        }
        const first = group[0]!;
        const thought = first.payload.case === "actionEvent" ? contentText(first.payload.value.thought) : "";
        if (calls.length === 0) {
          if (thought !== "") out.push({ role: "assistant", content: thought });
          break;
        }
        out.push({ role: "assistant", content: thought === "" ? null : thought, tool_calls: calls });
        const images: string[] = [];
        for (const ans of answered) {
          const r = render(ans);
          out.push({ role: "tool", tool_call_id: answeredToolCallId(ans)!, content: r.text === "" ? "(no output)" : r.text });
          images.push(...r.imageUrls);
        }
        if (images.length > 0) {
          out.push({
            role: "user",
            content: [{ type: "text", text: "Images returned by the tool calls above:" }, ...images.map((url) => ({ type: "image_url" as const, image_url: { url } }))],
          });
        }
        break;
      }
      default:
        // Answers are emitted with their calls; everything else is not part of the LLM's view.
        break;
    }
  }
  return out;
}
