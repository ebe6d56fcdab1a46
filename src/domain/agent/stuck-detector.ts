// Stuck detection (OpenHands StuckDetector semantics, reference §8). Only events after the last
// user message count. Four patterns, with the reference's thresholds:
//   1. action_observation: the same action with the same observation 4 times in a row → stuck;
//   2. action_error: the same action ending in an error 3 times in a row → a one-time nudge
//      message; 4 or more → stuck;
//   3. monologue: 3 or more consecutive agent messages with nothing else in between (the
//      environment's corrective nudges do not count) → stuck;
//   4. alternating: the last 6 action/observation pairs alternate between two pairs A,B,A,B,A,B
//      → stuck.
// Equality ignores ids, timestamps, tool call ids, summaries and risk: an action is its tool name
// plus its arguments, an observation is its kind, error flag and text.

import { toBinary } from "@bufbuild/protobuf";
import { ActionSchema } from "../../../gen/agentd/v1/tool_pb.js";
import { EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { contentText, isAgentMessage, isLlmConvertible, isUserMessage } from "./events.js";

export const STUCK_THRESHOLDS = {
  actionObservation: 4,
  actionError: 3,
  monologue: 3,
  alternatingPattern: 6,
} as const;

export type StuckPattern = "action_observation" | "action_error" | "monologue" | "alternating_pattern";

export interface StuckVerdict {
  stuck: boolean;
  pattern?: StuckPattern;
  /** Set when the conversation should be nudged once (action_error at exactly the threshold). */
  nudge?: string;
}

/** Text of the one-time nudge for a repeated failing call (the loop emits it once). */
export function repeatedErrorNudge(toolName: string): string {
  return (
    `You've called \`${toolName}\` with the same arguments ${STUCK_THRESHOLDS.actionError} times in a row and it failed each time. ` +
    "Repeating it will not help: read the error, change the arguments or try a different approach."
  );
}

/** A marker the loop puts at the start of the nudge, so it is sent once per user turn. */
export const NUDGE_PREFIX = "You've called `";

interface Pair {
  action: string;
  observation: string;
  error: boolean;
  toolName: string;
}

const decoder = new TextDecoder();

function actionKey(e: Event): { key: string; toolName: string } | undefined {
  if (e.payload.case !== "actionEvent") return undefined;
  const a = e.payload.value;
  if (a.action !== undefined) {
    // Binary encoding is deterministic for equal messages built the same way (no maps in actions
    // except GenericAction's struct, whose key order follows the model's JSON).
    return { key: `${a.toolName}:${decoder.decode(toBinary(ActionSchema, a.action))}`, toolName: a.toolName };
  }
  return { key: `${a.toolCall?.name ?? a.toolName}:invalid:${a.toolCall?.arguments ?? ""}`, toolName: a.toolName || (a.toolCall?.name ?? "") };
}

function observationKey(e: Event): { key: string; error: boolean } | undefined {
  switch (e.payload.case) {
    case "observationEvent": {
      const o = e.payload.value.observation;
      const kind = o?.observation.case ?? "none";
      return { key: `${kind}:${o?.isError ? 1 : 0}:${contentText(o?.content ?? [])}`, error: o?.isError ?? false };
    }
    case "agentErrorEvent":
      return { key: `error:${e.payload.value.error}`, error: true };
    case "userRejectObservation":
      return { key: `reject:${e.payload.value.rejectionReason}`, error: false };
    default:
      return undefined;
  }
}

/**
 * Looks at `events` (a conversation's events in order; only the tail after the last user message
 * is read) and says whether the agent is stuck. `nudged` tells whether the repeated-error nudge
 * was already sent in this user turn.
 */
export function detectStuck(events: readonly Event[], nudged: boolean): StuckVerdict {
  // Walk back to the last user message, collecting the LLM-relevant tail.
  const tail: Event[] = [];
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (isUserMessage(e)) break;
    if (isLlmConvertible(e) && e.payload.case !== "systemPromptEvent") tail.push(e);
    if (tail.length >= 64) break;
  }
  tail.reverse();

  // Monologue: the last N relevant events are all agent messages. The environment's corrective
  // nudges (after an empty reply) do not interrupt a monologue.
  const n = STUCK_THRESHOLDS.monologue;
  const spoken = tail.filter((e) => !(e.payload.case === "messageEvent" && e.source === EventSource.ENVIRONMENT));
  if (spoken.length >= n && spoken.slice(-n).every(isAgentMessage)) return { stuck: true, pattern: "monologue" };

  // Action/observation pairs, matched by tool call id, in action order.
  const pairs: Pair[] = [];
  const pending = new Map<string, { key: string; toolName: string }>();
  for (const e of tail) {
    if (e.payload.case === "actionEvent") {
      const k = actionKey(e);
      if (k !== undefined) pending.set(e.payload.value.toolCallId, k);
      continue;
    }
    const o = observationKey(e);
    if (o === undefined) continue;
    const callId = (e.payload.value as { toolCallId?: string }).toolCallId ?? "";
    const a = pending.get(callId);
    if (a === undefined) continue;
    pending.delete(callId);
    pairs.push({ action: a.key, observation: o.key, error: o.error, toolName: a.toolName });
  }

  const last = (k: number): Pair[] => (pairs.length >= k ? pairs.slice(-k) : []);

  const ao = last(STUCK_THRESHOLDS.actionObservation);
  if (ao.length > 0 && ao.every((p) => p.action === ao[0]!.action && p.observation === ao[0]!.observation)) {
    return { stuck: true, pattern: "action_observation" };
  }

  // Repeated failing call: count the trailing run of the same action erroring.
  let run = 0;
  const lastPair = pairs[pairs.length - 1];
  if (lastPair !== undefined && lastPair.error) {
    for (let i = pairs.length - 1; i >= 0; i--) {
      const p = pairs[i]!;
      if (p.action !== lastPair.action || !p.error) break;
      run++;
    }
  }
  if (run > STUCK_THRESHOLDS.actionError) return { stuck: true, pattern: "action_error" };
  if (run === STUCK_THRESHOLDS.actionError && !nudged) {
    return { stuck: false, pattern: "action_error", nudge: repeatedErrorNudge(lastPair!.toolName) };
  }

  const alt = last(STUCK_THRESHOLDS.alternatingPattern);
  if (alt.length > 0) {
    const a = alt[0]!;
    const b = alt[1]!;
    const differs = a.action !== b.action || a.observation !== b.observation;
    if (differs && alt.every((p, i) => p.action === alt[i % 2]!.action && p.observation === alt[i % 2]!.observation)) {
      return { stuck: true, pattern: "alternating_pattern" };
    }
  }
  return { stuck: false };
}
