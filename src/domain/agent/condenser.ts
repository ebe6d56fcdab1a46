// The agent's view of its history and the LLM summarizing condenser (reference §8).
//
// View: the LLM-relevant events (system prompt first, then messages, actions, tool answers) minus
// every event a Condensation forgot, with the latest Condensation's summary inserted at its `summary_offset`.
//
// Condensing (LLMSummarizingCondenser{max_size, keep_first}): when the view holds more than
// `max_size` items, or a CondensationRequest came after the last Condensation, the view is cut to
// about half (`max_size / 2`, or half its current size for a request): the first `keep_first`
// items are always kept, the oldest of the rest are forgotten and summarized, together with the
// previous summary, by the condenser's LLM into one new summary. The result is a Condensation
// event (forgotten ids, summary, offset = keep_first); the step that produced it makes no other
// LLM call. A cut never separates a tool call from its answer: a kept answer whose call is
// forgotten is forgotten too.

import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { EventSource } from "../../../gen/agentd/v1/event_pb.js";
import { answeredToolCallId, contentText, isLlmConvertible } from "./events.js";
import type { LlmClient, LlmResponse } from "./llm.js";
import type { AnswerRenderer, ViewItem } from "./messages.js";
import { SUMMARY_PROMPT } from "./prompt.js";

export const DEFAULT_CONDENSER_MAX_SIZE = 240;
export const DEFAULT_CONDENSER_KEEP_FIRST = 2;
export const MIN_CONDENSER_MAX_SIZE = 4;

/** Longest text of one event in a summarization request. */
const MAX_EVENT_CHARS_IN_SUMMARY = 4000;

export interface CondenserSettings {
  maxSize: number;
  keepFirst: number;
}

export interface View {
  items: ViewItem[];
  /** A CondensationRequest is waiting. */
  pendingRequest: boolean;
  /** The summary currently in the view, if any. */
  summary: string | undefined;
}

/** Computes the view from a conversation's events (in seq order). */
export function computeView(events: readonly Event[]): View {
  const forgotten = new Set<string>();
  let summary: string | undefined;
  let offset = 0;
  let pendingRequest = false;
  for (const e of events) {
    if (e.payload.case === "condensation") {
      for (const id of e.payload.value.forgottenEventIds) forgotten.add(id);
      summary = e.payload.value.summary ?? summary;
      offset = e.payload.value.summaryOffset ?? 0;
      pendingRequest = false;
    } else if (e.payload.case === "condensationRequest") {
      pendingRequest = true;
    }
  }
  const items: ViewItem[] = [];
  for (const e of events) {
    if (!isLlmConvertible(e) || forgotten.has(e.id)) continue;
    // The system prompt leads the view even when a message was stored before it (the agent is
    // initialized at its first run, after the initial message).
    if (e.payload.case === "systemPromptEvent") items.unshift({ type: "event", event: e });
    else items.push({ type: "event", event: e });
  }
  if (summary !== undefined) items.splice(Math.min(offset, items.length), 0, { type: "summary", summary });
  return { items, pendingRequest, summary };
}

/** Whether the view must be condensed before the next LLM call. */
export function needsCondensation(view: View, settings: CondenserSettings): boolean {
  return view.pendingRequest || view.items.length > settings.maxSize;
}

export interface CondensationPlan {
  /** Items that are summarized (events and possibly the old summary), in order. */
  forgotten: ViewItem[];
  /** Ids of the forgotten events. */
  forgottenIds: string[];
  summaryOffset: number;
}

/**
 * Chooses what to forget. Returns undefined when nothing can be forgotten (the view is already as
 * small as keep_first allows).
 */
export function planCondensation(view: View, settings: CondenserSettings): CondensationPlan | undefined {
  const items = view.items;
  const keepFirst = Math.min(settings.keepFirst, items.length);
  const target = view.pendingRequest && items.length <= settings.maxSize ? Math.floor(items.length / 2) : Math.floor(settings.maxSize / 2);
  // The new view: keep_first items, the summary, and the newest `tail` items.
  const tail = Math.max(1, target - keepFirst - 1);
  let end = items.length - tail;
  if (end <= keepFirst) return undefined;
  // Never keep an answer whose call is forgotten.
  const forgottenCalls = new Set<string>();
  for (let i = keepFirst; i < end; i++) {
    const it = items[i]!;
    if (it.type === "event" && it.event.payload.case === "actionEvent") forgottenCalls.add(it.event.payload.value.toolCallId);
  }
  while (end < items.length) {
    const it = items[end]!;
    const answered = it.type === "event" ? answeredToolCallId(it.event) : undefined;
    if (answered === undefined || !forgottenCalls.has(answered)) break;
    end++;
  }
  const forgotten = items.slice(keepFirst, end);
  const forgottenIds = forgotten.flatMap((it) => (it.type === "event" ? [it.event.id] : []));
  if (forgottenIds.length === 0) return undefined;
  return { forgotten, forgottenIds, summaryOffset: keepFirst };
}

function clip(text: string): string {
  return text.length > MAX_EVENT_CHARS_IN_SUMMARY ? `${text.slice(0, MAX_EVENT_CHARS_IN_SUMMARY)} […]` : text;
}

/** The forgotten items as plain text for the summarizer. */
export function describeForSummary(items: readonly ViewItem[], render: AnswerRenderer): string {
  const lines: string[] = [];
  for (const it of items) {
    if (it.type === "summary") {
      lines.push(`[previous summary]\n${it.summary}`);
      continue;
    }
    const e = it.event;
    switch (e.payload.case) {
      case "messageEvent": {
        const who = e.source === EventSource.AGENT ? "agent" : e.source === EventSource.USER ? "user" : "environment";
        lines.push(`[${who} message]\n${clip(contentText(e.payload.value.llmMessage?.content ?? []))}`);
        break;
      }
      case "actionEvent": {
        const v = e.payload.value;
        const thought = contentText(v.thought);
        lines.push(`[agent calls ${v.toolName || v.toolCall?.name}]${thought ? ` ${clip(thought)}` : ""}\n${clip(v.toolCall?.arguments ?? "")}`);
        break;
      }
      case "observationEvent":
      case "agentErrorEvent":
      case "userRejectObservation":
        lines.push(`[result]\n${clip(render(e).text)}`);
        break;
      case "systemPromptEvent":
        break;
      default:
        break;
    }
  }
  return lines.join("\n\n");
}

/** Asks the condenser LLM for the summary of `plan.forgotten`. */
export async function summarize(llm: LlmClient, plan: CondensationPlan, render: AnswerRenderer, signal?: AbortSignal): Promise<LlmResponse> {
  return llm.complete({
    messages: [
      { role: "system", content: SUMMARY_PROMPT },
      { role: "user", content: describeForSummary(plan.forgotten, render) },
    ],
    signal,
    noStream: true,
  });
}
