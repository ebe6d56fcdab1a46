// The agent loop (reference §8): one `agentStep` is one decision of the agent, `runAgentLoop`
// repeats steps while the conversation is running.
//
// A step:
//   1. runs the pending actions first (actions recorded but never answered, i.e. accepted after
//      waiting_for_confirmation) and ends;
//   2. condenses the view when the condenser says so (one Condensation event) and ends;
//   3. calls the LLM with the view as messages and the tools as functions;
//   4. tool calls → one ActionEvent per call (thought and reasoning on the first only). An unknown
//      tool or invalid arguments give an ActionEvent without action plus an AgentErrorEvent the
//      model can correct itself from. If the confirmation policy asks, the status becomes
//      waiting_for_confirmation and the step ends; otherwise the actions run in order, one
//      ObservationEvent each (a tool that throws gives an AgentErrorEvent). A FinishAction makes
//      the status finished;
//      plain text → an agent MessageEvent and status finished;
//      nothing usable → the empty agent message plus a corrective nudge (environment message).
//   Token usage of every LLM call is added to the stats and emitted as a `stats` state update.
// The run loop stops when the status leaves `running` (pause, finish, confirmation), at
// max_iterations (error + ConversationErrorEvent "MaxIterationsReached"), or when the stuck
// detector fires (status stuck). Cancellation (interrupt) surfaces as AgentdError "canceled" from
// the step; the caller turns it into paused + InterruptEvent.

import type { ChatCompletionTool } from "openai/resources/chat/completions";
import { fromOpenHandsJson, toOpenHandsJson } from "../../codec/openhands-json.js";
import { AgentdError } from "../../errors.js";
import { ExecutionStatus } from "../../../gen/agentd/v1/conversation_pb.js";
import type { ConfirmationPolicy, SecurityAnalyzer } from "../../../gen/agentd/v1/conversation_pb.js";
import { EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { SecurityRisk } from "../../../gen/agentd/v1/message_pb.js";
import { ActionSchema, ObservationSchema } from "../../../gen/agentd/v1/tool_pb.js";
import type { Action as ActionProto } from "../../../gen/agentd/v1/tool_pb.js";
import { assessRisk, batchNeedsConfirmation } from "./confirmation.js";
import { computeView, needsCondensation, planCondensation, summarize } from "./condenser.js";
import type { CondenserSettings } from "./condenser.js";
import {
  agentErrorEvent,
  agentMessageEvent,
  answeredToolCallId,
  classification,
  conversationErrorEvent,
  isUserMessage,
  messageText,
  newEvent,
  textPart,
  userMessageEvent,
} from "./events.js";
import type { LlmClient, LlmResponse } from "./llm.js";
import { buildChatMessages } from "./messages.js";
import type { AnswerRenderer } from "./messages.js";
import { EMPTY_REPLY_NUDGE, TRUNCATED_REPLY_NUDGE } from "./prompt.js";
import { detectStuck, NUDGE_PREFIX } from "./stuck-detector.js";
import type { Action, Content, Observation } from "./tools/types.js";
import type { Toolset } from "./tools/toolset.js";

/** Settings of one run, read at each step (they may change between steps). */
export interface AgentRunConfig {
  maxIterations: number;
  stuckDetection: boolean;
  confirmationPolicy: ConfirmationPolicy | undefined;
  securityAnalyzer: SecurityAnalyzer | undefined;
  /** Unset: no condensation. */
  condenser: CondenserSettings | undefined;
}

/** What the loop needs from the conversation it runs. */
export interface AgentHost {
  readonly conversationId: string;
  /** Every event of the conversation in seq order, including the ones this run appended. */
  readonly history: readonly Event[];
  readonly status: ExecutionStatus;
  readonly config: AgentRunConfig;
  /** Appends events (secrets masked); resolves with the stored events (ids, seqs) once durable. */
  append(events: Event[]): Promise<readonly Event[]>;
  /** Appends without waiting for durability (order is kept; a failure fails the next append). */
  appendDeferred(events: Event[]): void;
  /** Resolves when every append issued so far is durable (ids and seqs assigned). */
  settle(): Promise<void>;
  /** Sends a transient event (seq 0) to live watchers. */
  publishTransient(event: Event): void;
  /** Changes the status, emitting a state update. */
  setStatus(status: ExecutionStatus): Promise<void>;
  llm(): LlmClient;
  condenserLlm(): LlmClient;
  toolset(): Promise<Toolset>;
  /** The LLM `tools` array for the toolset. */
  toolDefinitions(toolset: Toolset): ChatCompletionTool[];
  /** Makes sure the SystemPromptEvent exists (first run). */
  ensureSystemPrompt(toolset: Toolset): Promise<void>;
  /** Adds one LLM call's usage to the stats; returns the `stats` state update to append. */
  recordUsage(client: LlmClient, response: LlmResponse): Event;
  /** How the LLM sees a tool answer. */
  readonly render: AnswerRenderer;
  /** Remembers how an observation renders, and the action JSON that produced it. */
  rememberObservation(event: Event, llmContent: Content[]): void;
  /** The parsed JSON action of an ActionEvent recorded by this process, if still known. */
  parsedAction(actionEventId: string): Action | undefined;
  rememberAction(actionEventId: string, action: Action): void;
  /** Called right before the LLM is asked (the view includes every message appended so far). */
  beforeLlmCall?(): void;
}

const RISK_BY_NAME: Record<string, SecurityRisk> = {
  UNKNOWN: SecurityRisk.UNKNOWN,
  LOW: SecurityRisk.LOW,
  MEDIUM: SecurityRisk.MEDIUM,
  HIGH: SecurityRisk.HIGH,
};

/** ActionEvents (with an action) that no observation, error or rejection answers yet. */
export function pendingActions(history: readonly Event[]): Event[] {
  const answered = new Set<string>();
  const pending: Event[] = [];
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i]!;
    const id = answeredToolCallId(e);
    if (id !== undefined) answered.add(id);
    else if (e.payload.case === "actionEvent") {
      if (e.payload.value.action !== undefined && !answered.has(e.payload.value.toolCallId)) pending.push(e);
    } else if (isUserMessage(e)) break;
  }
  return pending.reverse();
}

/** True when the repeated-error nudge was already sent since the last user message. */
function nudgedThisTurn(history: readonly Event[]): boolean {
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i]!;
    if (isUserMessage(e)) return false;
    if (e.payload.case === "messageEvent" && e.source === EventSource.ENVIRONMENT && messageText(e).startsWith(NUDGE_PREFIX)) return true;
  }
  return false;
}

function observationEvent(action: Event, observation: Observation): Event {
  const a = action.payload.case === "actionEvent" ? action.payload.value : undefined;
  return newEvent(EventSource.ENVIRONMENT, {
    case: "observationEvent",
    value: {
      observation: fromOpenHandsJson(ObservationSchema, observation),
      actionId: action.id,
      toolName: a?.toolName ?? "",
      toolCallId: a?.toolCallId ?? "",
      extendedContent: [],
    },
  });
}

/**
 * Runs recorded actions in order, appending one answer each. Finish → status finished. The last
 * answer's append is not awaited: its write overlaps the next LLM call (the log stays a prefix of
 * what the agent saw, see AgentHost.appendDeferred).
 */
export async function executeActions(host: AgentHost, actions: readonly Event[], signal: AbortSignal): Promise<void> {
  const toolset = await host.toolset();
  let finished = false;
  for (const [index, ev] of actions.entries()) {
    if (ev.payload.case !== "actionEvent" || ev.payload.value.action === undefined) continue;
    if (signal.aborted) throw new AgentdError("canceled", "the run was interrupted");
    const v = ev.payload.value;
    const action = host.parsedAction(ev.id) ?? (toOpenHandsJson(ActionSchema, v.action as ActionProto) as unknown as Action);
    let answer: Event;
    // Each call gets its own signal linked to the run's, so listeners a tool leaves on it do not
    // pile up on the run's signal.
    const child = new AbortController();
    const onAbort = (): void => child.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const obs = await toolset.execute({ toolName: v.toolName, action }, child.signal);
      answer = observationEvent(ev, obs);
      host.rememberObservation(answer, toolset.toLlmContent(v.toolName, obs));
      if (action.kind === "FinishAction") finished = true;
    } catch (err) {
      if (signal.aborted || (err instanceof AgentdError && err.code === "canceled")) throw new AgentdError("canceled", "the run was interrupted");
      const msg = err instanceof Error ? err.message : String(err);
      answer = agentErrorEvent(`Tool ${v.toolName} failed: ${msg}`, v.toolName, v.toolCallId);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    if (index === actions.length - 1 && !finished) host.appendDeferred([answer]);
    else await host.append([answer]);
  }
  if (finished) await host.setStatus(ExecutionStatus.FINISHED);
}

/** Records the model's tool calls as ActionEvents (+ AgentErrorEvents for invalid ones). */
function recordToolCalls(
  host: AgentHost,
  toolset: Toolset,
  res: LlmResponse,
): { events: Event[]; parsed: Map<Event, Action>; risks: { toolName: string; risk: SecurityRisk }[] } {
  const events: Event[] = [];
  const parsed = new Map<Event, Action>();
  const risks: { toolName: string; risk: SecurityRisk }[] = [];
  res.toolCalls.forEach((call, i) => {
    const first = i === 0;
    const base = {
      thought: first && res.content !== "" ? [textPart(res.content)] : [],
      reasoningContent: first ? res.reasoningContent : undefined,
      toolCallId: call.id,
      toolCall: { id: call.id, name: call.name, arguments: call.arguments, origin: "completion" },
      llmResponseId: res.id,
    };
    try {
      const call_ = toolset.parseToolCall(call.name, call.arguments);
      const risk = RISK_BY_NAME[call_.securityRisk] ?? SecurityRisk.UNKNOWN;
      const ev = newEvent(EventSource.AGENT, {
        case: "actionEvent",
        value: {
          ...base,
          action: fromOpenHandsJson(ActionSchema, call_.action),
          toolName: call_.toolName,
          securityRisk: risk,
          summary: call_.summary,
        },
      });
      events.push(ev);
      parsed.set(ev, call_.action);
      risks.push({ toolName: call_.toolName, risk: assessRisk(host.config.securityAnalyzer, risk) });
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      events.push(newEvent(EventSource.AGENT, { case: "actionEvent", value: { ...base, toolName: call.name, securityRisk: SecurityRisk.UNKNOWN } }));
      events.push(agentErrorEvent(msg, call.name, call.id));
    }
  });
  return { events, parsed, risks };
}

/** Condenses the view if needed; true when a Condensation was produced (the step ends). */
export async function condenseNow(host: AgentHost, signal: AbortSignal): Promise<boolean> {
  return condenseIfNeeded(host, signal);
}

async function condenseIfNeeded(host: AgentHost, signal: AbortSignal): Promise<boolean> {
  const settings = host.config.condenser;
  if (settings === undefined) return false;
  // Forgotten events are named by id: every event must be committed (have its id) first.
  await host.settle();
  const view = computeView(host.history);
  if (!needsCondensation(view, settings)) return false;
  const plan = planCondensation(view, settings);
  if (plan === undefined) {
    // Nothing left to forget; a pending request is answered with an empty condensation.
    if (view.pendingRequest) {
      await host.append([newEvent(EventSource.ENVIRONMENT, { case: "condensation", value: { forgottenEventIds: [], summary: view.summary, summaryOffset: settings.keepFirst, llmResponseId: "" } })]);
      return true;
    }
    return false;
  }
  const client = host.condenserLlm();
  const res = await summarize(client, plan, host.render, signal);
  await host.append([
    newEvent(EventSource.ENVIRONMENT, {
      case: "condensation",
      value: { forgottenEventIds: plan.forgottenIds, summary: res.content.trim(), summaryOffset: plan.summaryOffset, llmResponseId: res.id },
    }),
    host.recordUsage(client, res),
  ]);
  return true;
}

/** One step of the agent (see the header). */
export async function agentStep(host: AgentHost, signal: AbortSignal): Promise<void> {
  const pending = pendingActions(host.history);
  if (pending.length > 0) {
    await executeActions(host, pending, signal);
    return;
  }
  const toolset = await host.toolset();
  await host.ensureSystemPrompt(toolset);
  if (await condenseIfNeeded(host, signal)) return;

  const view = computeView(host.history);
  const messages = buildChatMessages(view.items, host.render);
  const client = host.llm();
  host.beforeLlmCall?.();
  const res = await client.complete({
    messages,
    tools: host.toolDefinitions(toolset),
    signal,
    onDelta: (d) =>
      host.publishTransient(newEvent(EventSource.AGENT, { case: "streamingDeltaEvent", value: { content: d.content, reasoningContent: d.reasoningContent } })),
  });
  const stats = host.recordUsage(client, res);

  if (res.toolCalls.length > 0) {
    const { events, parsed, risks } = recordToolCalls(host, toolset, res);
    const stored = await host.append([...events, stats]);
    const valid: Event[] = [];
    events.forEach((e, i) => {
      const action = parsed.get(e);
      if (action === undefined) return;
      host.rememberAction(stored[i]!.id, action);
      valid.push(stored[i]!);
    });
    if (valid.length === 0) return;
    if (batchNeedsConfirmation(host.config.confirmationPolicy, risks)) {
      await host.setStatus(ExecutionStatus.WAITING_FOR_CONFIRMATION);
      return;
    }
    await executeActions(host, valid, signal);
    return;
  }
  if (res.content.trim() !== "") {
    await host.append([agentMessageEvent(res.content, res.id, res.reasoningContent), stats]);
    await host.setStatus(ExecutionStatus.FINISHED);
    return;
  }
  const nudge = res.finishReason === "length" ? TRUNCATED_REPLY_NUDGE : EMPTY_REPLY_NUDGE;
  await host.append([agentMessageEvent(res.content, res.id, res.reasoningContent), stats, userMessageEvent([textPart(nudge)], EventSource.ENVIRONMENT)]);
}

/**
 * Runs steps while the status is `running`. Errors other than cancellation propagate (the caller
 * records them); the guards (max iterations, stuck) end the run with their status.
 */
export async function runAgentLoop(host: AgentHost, signal: AbortSignal): Promise<void> {
  let iterations = 0;
  while (host.status === ExecutionStatus.RUNNING) {
    if (signal.aborted) throw new AgentdError("canceled", "the run was interrupted");
    if (host.config.stuckDetection) {
      const verdict = detectStuck(host.history, nudgedThisTurn(host.history));
      if (verdict.stuck) {
        await host.setStatus(ExecutionStatus.STUCK);
        return;
      }
      if (verdict.nudge !== undefined) await host.append([userMessageEvent([textPart(verdict.nudge)], EventSource.ENVIRONMENT)]);
    }
    if (iterations >= host.config.maxIterations) {
      const max = host.config.maxIterations;
      await host.append([
        conversationErrorEvent("MaxIterationsReached", `Agent reached maximum iterations limit (${max}).`, classification("agent_action", false, "none")),
      ]);
      await host.setStatus(ExecutionStatus.ERROR);
      return;
    }
    await agentStep(host, signal);
    iterations++;
  }
}

