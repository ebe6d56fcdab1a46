// A conversation loaded in memory: its state, its events, its tools and its run.
//
// Invariants:
// - `history` holds every stored event of the conversation in seq order (it is loaded whole when
//   the conversation is loaded, and every append goes through `append`, which adds to it only
//   once the events are durable).
// - At most one run task exists. `status` is RUNNING while it runs (set durably before the task
//   starts); the task ends when the status leaves RUNNING, on an error (status ERROR +
//   ConversationErrorEvent), or when aborted (interrupt → PAUSED + InterruptEvent; shutdown →
//   left RUNNING so the next start reports the restart).
// - Every status change appends a ConversationStateUpdateEvent("execution_status") and saves the
//   record, both before `setStatus` resolves.
// - Secret values never leave this object unmasked: events are masked before they are appended,
//   the record is saved without them (sealed separately), responses redact them.

import { clone, create } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import type { ChatCompletionTool } from "openai/resources/chat/completions";
import { toOpenHandsJson } from "../../codec/openhands-json.js";
import { AgentdError } from "../../errors.js";
import { ConversationStatsSchema, ExecutionStatus, LlmMetricsSchema, TokenUsageSchema } from "../../../gen/agentd/v1/conversation_pb.js";
import { ConversationSchema } from "../../../gen/agentd/v1/conversation_pb.js";
import type { Conversation, Llm } from "../../../gen/agentd/v1/conversation_pb.js";
import { EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { ObservationSchema } from "../../../gen/agentd/v1/tool_pb.js";
import type { CondenserSettings } from "../agent/condenser.js";
import { DEFAULT_CONDENSER_KEEP_FIRST, DEFAULT_CONDENSER_MAX_SIZE } from "../agent/condenser.js";
import {
  agentErrorEvent,
  classification,
  contentText,
  conversationErrorEvent,
  eventKind,
  newEvent,
  stateUpdateEvent,
} from "../agent/events.js";
import { LlmCallError, LlmClient } from "../agent/llm.js";
import type { LlmResponse, LlmSettings, RetryPolicy } from "../agent/llm.js";
import { pendingActions, runAgentLoop } from "../agent/loop.js";
import type { AgentHost, AgentRunConfig } from "../agent/loop.js";
import { renderNonObservation } from "../agent/messages.js";
import type { RenderedAnswer } from "../agent/messages.js";
import { buildSystemPrompt } from "../agent/prompt.js";
import type { SecretBundle } from "../agent/secrets.js";
import { resolveSecretValues } from "../agent/secrets.js";
import { SecretMasker } from "../agent/tools/secret-masker.js";
import { defaultLlmContent } from "../agent/tools/text.js";
import type { Toolset } from "../agent/tools/toolset.js";
import type { Action, Content, Observation } from "../agent/tools/types.js";
import { STATUS_NAME } from "./status.js";

/** The event log as conversations use it (implemented over the event log of src/domain/events). */
export interface ConversationEventLog {
  /** Appends in order; resolves with the stored events (seq and timestamp set) once durable. */
  append(conversationId: string, events: readonly Event[]): Promise<readonly Event[]>;
  /** Delivers a transient event (seq 0, never stored) to the conversation's live watchers. */
  publishTransient(conversationId: string, event: Event): void;
  /** Every stored event in seq order. */
  read(conversationId: string): AsyncIterable<Event>;
}

/** Server-wide services a live conversation uses. */
export interface LiveDeps {
  events: ConversationEventLog;
  /** Persists the conversation record (state + sealed secrets). */
  saveRecord(c: LiveConversation): Promise<void>;
  /** Builds the conversation's tools (names already validated). */
  createToolset(c: LiveConversation): Toolset;
  /** Server default LLM (LLM_MODEL / LLM_API_KEY / LLM_BASE_URL). */
  llmDefaults: { model?: string | undefined; apiKey?: string | undefined; baseUrl?: string | undefined };
  retry?: Partial<RetryPolicy> | undefined;
  /** Told the duration of every LLM call (metrics, benchmarks). */
  onLlmCall?: ((durationMs: number, usageId: string) => void) | undefined;
  /** Called after every durable append (catalog bookkeeping). */
  onAppended(c: LiveConversation, stored: readonly Event[]): void;
  log(level: "debug" | "info" | "warn" | "error", message: string, fields?: Record<string, unknown>): void;
  now(): number;
}

const INTERRUPT_WAIT_MS = 5000;

function isCanceled(err: unknown): boolean {
  return err instanceof AgentdError && err.code === "canceled";
}

/** Masks every string of a protobuf message tree in place (oneof `case` names excluded). */
function maskStrings(node: unknown, mask: (s: string) => string): unknown {
  if (typeof node === "string") return mask(node);
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = maskStrings(node[i], mask);
    return node;
  }
  if (node !== null && typeof node === "object" && !(node instanceof Uint8Array)) {
    const obj = node as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      if (key === "$typeName" || key === "case") continue;
      obj[key] = maskStrings(obj[key], mask);
    }
  }
  return node;
}

export class LiveConversation implements AgentHost {
  readonly conversationId: string;
  /** State; secret values are never set on it (see record.ts). */
  conversation: Conversation;
  /** Plaintext secrets (memory only, sealed when saved). */
  secrets: SecretBundle;
  readonly history: Event[];
  readonly masker = new SecretMasker();
  /** Last time a client touched it (idle unloading). */
  lastAccessMs: number;

  readonly #deps: LiveDeps;
  #toolset: Toolset | undefined;
  #toolDefs: ChatCompletionTool[] | undefined;
  #llm: LlmClient | undefined;
  #condenserLlm: LlmClient | undefined;
  #task: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #interrupting = false;
  #rerunRequested = false;
  #starting = false;
  #closed = false;
  #lookupValues: Record<string, string> = {};
  #deferredError: unknown;
  readonly #renders = new WeakMap<Event, RenderedAnswer>();
  readonly #actions = new Map<string, Action>();
  /** Serializes appends so history order equals seq order. */
  #appendQueue: Promise<unknown> = Promise.resolve();

  constructor(conversation: Conversation, secrets: SecretBundle, history: Event[], deps: LiveDeps) {
    this.conversationId = conversation.id;
    this.conversation = conversation;
    this.secrets = secrets;
    this.history = history;
    this.#deps = deps;
    this.lastAccessMs = deps.now();
  }

  get status(): ExecutionStatus {
    return this.conversation.executionStatus;
  }

  get running(): boolean {
    return this.#task !== undefined;
  }

  get config(): AgentRunConfig {
    const c = this.conversation;
    const cond = c.agent?.condenser?.condenser;
    let condenser: CondenserSettings | undefined;
    if (cond?.case === "llmSummarizing") {
      condenser = { maxSize: cond.value.maxSize || DEFAULT_CONDENSER_MAX_SIZE, keepFirst: cond.value.keepFirst || DEFAULT_CONDENSER_KEEP_FIRST };
    }
    return {
      maxIterations: c.maxIterations,
      stuckDetection: c.stuckDetection,
      confirmationPolicy: c.confirmationPolicy,
      securityAnalyzer: c.securityAnalyzer,
      condenser,
    };
  }

  // ---- secrets -----------------------------------------------------------------------------------

  /**
   * Puts the secret values into the masker (and so into the terminal's environment). Lookup
   * secrets are fetched when `lookups` is true (at run start and when secrets change); otherwise
   * their last fetched values are used.
   */
  async refreshSecrets(lookups: boolean): Promise<void> {
    if (lookups) {
      const lookupSources = Object.fromEntries(Object.entries(this.secrets.secrets).filter(([, s]) => s.kind === "lookup"));
      this.#lookupValues = await resolveSecretValues(lookupSources, (name, reason) =>
        this.#deps.log("warn", "secret lookup failed", { conversation_id: this.conversationId, secret: name, reason }),
      );
    }
    const values: Record<string, string> = {};
    for (const [name, src] of Object.entries(this.secrets.secrets)) {
      if (src.kind === "static") values[name] = src.value;
      else if (this.#lookupValues[name] !== undefined) values[name] = this.#lookupValues[name];
    }
    const masked = { ...values };
    // The LLM keys are masked too (never exported: their names are not valid identifiers).
    if (this.secrets.llmApiKey) masked["-llm-api-key"] = this.secrets.llmApiKey;
    if (this.secrets.condenserApiKey) masked["-condenser-api-key"] = this.secrets.condenserApiKey;
    this.masker.update(masked);
    this.conversation.secretNames = Object.keys(this.secrets.secrets).sort();
  }

  mask(text: string): string {
    return this.masker.mask(text);
  }

  // ---- events ------------------------------------------------------------------------------------

  /**
   * Appends events (masked), in order with every other append of this conversation, and resolves
   * with the stored events once they are durable. The events enter `history` at once, in queue
   * order (= seq order), and are replaced by their stored copies (id, seq, timestamp) when
   * committed; if the append fails they are removed again.
   */
  append(events: Event[]): Promise<readonly Event[]> {
    if (events.length === 0) return Promise.resolve([]);
    if (this.#deferredError !== undefined) return Promise.reject(this.#deferredError);
    if (this.masker.names().length > 0 || this.secrets.llmApiKey) {
      const m = (s: string): string => this.masker.mask(s);
      for (const e of events) maskStrings(e.payload, m);
    }
    this.history.push(...events);
    const run = this.#appendQueue.then(async () => {
      let stored: readonly Event[];
      try {
        stored = await this.#deps.events.append(this.conversationId, events);
      } catch (err) {
        for (const e of events) {
          const i = this.history.lastIndexOf(e);
          if (i >= 0) this.history.splice(i, 1);
        }
        throw err;
      }
      stored.forEach((s, i) => {
        const original = events[i]!;
        const r = this.#renders.get(original);
        if (r !== undefined && s !== original) this.#renders.set(s, r);
        const at = this.history.lastIndexOf(original);
        if (at >= 0) this.history[at] = s;
        if (s.payload.case !== "conversationStateUpdateEvent" && s.timestamp !== undefined) {
          this.conversation.updatedAt = s.timestamp;
        }
      });
      this.conversation.lastSeq = stored.length > 0 ? stored[stored.length - 1]!.seq : this.conversation.lastSeq;
      this.conversation.eventCount = this.conversation.lastSeq;
      this.#deps.onAppended(this, stored);
      return stored;
    });
    this.#appendQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * Appends without waiting for durability: the loop goes on (e.g. to the next LLM call) while
   * the events are written. Order is kept (later appends commit after these), so the stored log
   * is always a prefix of what the agent saw. A failure fails the next append.
   */
  appendDeferred(events: Event[]): void {
    this.append(events).catch((err: unknown) => {
      this.#deferredError ??= err;
    });
  }

  /** Resolves when every append issued so far is durable. */
  async settle(): Promise<void> {
    await this.#appendQueue;
    if (this.#deferredError !== undefined) throw this.#deferredError;
  }

  publishTransient(event: Event): void {
    if (event.payload.case === "streamingDeltaEvent") {
      const v = event.payload.value;
      if (v.content !== undefined) v.content = this.masker.mask(v.content);
      if (v.reasoningContent !== undefined) v.reasoningContent = this.masker.mask(v.reasoningContent);
    }
    this.#deps.events.publishTransient(this.conversationId, event);
  }

  /** Emits a persisted state update for `key`. */
  async emitState(key: string, value: JsonValue): Promise<void> {
    await this.append([stateUpdateEvent(key, value)]);
  }


  async setStatus(status: ExecutionStatus): Promise<void> {
    if (this.conversation.executionStatus === status) return;
    this.conversation.executionStatus = status;
    await this.append([stateUpdateEvent("execution_status", STATUS_NAME[status])]);
    await this.#deps.saveRecord(this);
  }

  // ---- agent host --------------------------------------------------------------------------------

  #llmSettings(llm: Llm | undefined, apiKey: string | undefined, usageId: string): LlmSettings {
    const d = this.#deps.llmDefaults;
    // The server's default key and base URL go with the server's default model only.
    const usesDefault = !llm?.model || llm.model === d.model;
    return {
      model: llm?.model || d.model || "",
      apiKey: apiKey || (usesDefault ? d.apiKey : undefined),
      baseUrl: llm?.baseUrl || (usesDefault ? d.baseUrl : undefined),
      temperature: llm?.temperature,
      topP: llm?.topP,
      maxOutputTokens: llm?.maxOutputTokens,
      timeoutSeconds: llm?.timeout,
      numRetries: llm?.numRetries,
      stream: llm?.stream ?? false,
      usageId: llm?.usageId || usageId,
      reasoningEffort: llm?.reasoningEffort,
      extraHeaders: llm?.extraHeaders,
      maxInputTokens: llm?.maxInputTokens,
    };
  }

  llm(): LlmClient {
    this.#llm ??= new LlmClient(this.#llmSettings(this.conversation.agent?.llm, this.secrets.llmApiKey, "default"), { retry: this.#deps.retry, onCall: this.#deps.onLlmCall });
    return this.#llm;
  }

  condenserLlm(): LlmClient {
    if (this.#condenserLlm !== undefined) return this.#condenserLlm;
    const cond = this.conversation.agent?.condenser?.condenser;
    const own = cond?.case === "llmSummarizing" ? cond.value.llm : undefined;
    this.#condenserLlm =
      own !== undefined && own.model !== ""
        ? new LlmClient(this.#llmSettings(own, this.secrets.condenserApiKey, "condenser"), { retry: this.#deps.retry, onCall: this.#deps.onLlmCall })
        : new LlmClient({ ...this.llm().settings, stream: false, usageId: "condenser" }, { retry: this.#deps.retry, onCall: this.#deps.onLlmCall });
    return this.#condenserLlm;
  }

  /** Drops cached LLM clients (after settings or keys change). */
  resetLlm(): void {
    this.#llm = undefined;
    this.#condenserLlm = undefined;
  }

  async toolset(): Promise<Toolset> {
    if (this.#closed) throw new AgentdError("unavailable", `conversation ${this.conversationId} is being unloaded`);
    this.#toolset ??= this.#deps.createToolset(this);
    return this.#toolset;
  }

  /** The toolset if it was created (for rendering stored observations). */
  get toolsetIfOpen(): Toolset | undefined {
    return this.#toolset;
  }

  toolDefinitions(toolset: Toolset): ChatCompletionTool[] {
    this.#toolDefs ??= toolset.definitions() as unknown as ChatCompletionTool[];
    return this.#toolDefs;
  }

  async ensureSystemPrompt(toolset: Toolset): Promise<void> {
    if (this.history.some((e) => e.payload.case === "systemPromptEvent")) return;
    const agent = this.conversation.agent;
    const text = buildSystemPrompt({
      workingDir: this.conversation.workspace?.workingDir ?? "",
      toolNames: toolset.names,
      securityAnalyzer: this.conversation.securityAnalyzer?.analyzer.case === "llm",
      suffix: agent?.agentContext?.systemMessageSuffix,
      override: agent?.systemPrompt,
      secretNames: this.conversation.secretNames,
    });
    const defs = new Map(this.toolDefinitions(toolset).map((d) => (d.type === "function" ? [d.function.name, d.function.parameters] : ["", undefined])));
    const tools = toolset.tools.map((t) => ({
      name: t.name,
      description: t.description,
      parameters: (defs.get(t.name) ?? t.parameters) as unknown as Record<string, JsonValue>,
      readOnly: t.readOnly,
    }));
    await this.append([
      newEvent(EventSource.AGENT, { case: "systemPromptEvent", value: { systemPrompt: { text, cachePrompt: false }, tools } }),
    ]);
  }

  recordUsage(client: LlmClient, res: LlmResponse): Event {
    const stats = (this.conversation.stats ??= create(ConversationStatsSchema, {}));
    const id = client.usageId;
    const m = (stats.usageToMetrics[id] ??= create(LlmMetricsSchema, { modelName: client.settings.model, accumulatedTokenUsage: create(TokenUsageSchema, {}) }));
    const u = (m.accumulatedTokenUsage ??= create(TokenUsageSchema, {}));
    u.promptTokens += BigInt(res.usage.promptTokens);
    u.completionTokens += BigInt(res.usage.completionTokens);
    u.cacheReadTokens += BigInt(res.usage.cacheReadTokens);
    u.cacheWriteTokens += BigInt(res.usage.cacheWriteTokens);
    u.reasoningTokens += BigInt(res.usage.reasoningTokens);
    u.perTurnToken = BigInt(res.usage.promptTokens + res.usage.completionTokens);
    m.accumulatedCost += res.costUsd;
    m.completionCount += 1n;
    return stateUpdateEvent("stats", toOpenHandsJson(ConversationStatsSchema, stats));
  }

  readonly render = (e: Event): RenderedAnswer => {
    const cached = this.#renders.get(e);
    if (cached !== undefined) return cached;
    let out: RenderedAnswer;
    if (e.payload.case === "observationEvent" && e.payload.value.observation !== undefined) {
      const obsJson = toOpenHandsJson(ObservationSchema, e.payload.value.observation) as unknown as Observation;
      const content = this.#toolset?.toLlmContent(e.payload.value.toolName, obsJson) ?? defaultLlmContent(obsJson);
      out = this.#renderContent(content);
    } else {
      out = renderNonObservation(e) ?? { text: "", imageUrls: [] };
    }
    this.#renders.set(e, out);
    return out;
  };

  #renderContent(content: readonly Content[]): RenderedAnswer {
    let text = "";
    const imageUrls: string[] = [];
    for (const c of content) {
      if (c.type === "text") text += c.text;
      else imageUrls.push(...c.image_urls);
    }
    return { text: this.masker.mask(text), imageUrls };
  }

  rememberObservation(event: Event, llmContent: Content[]): void {
    this.#renders.set(event, this.#renderContent(llmContent));
  }

  parsedAction(actionEventId: string): Action | undefined {
    return this.#actions.get(actionEventId);
  }

  rememberAction(actionEventId: string, action: Action): void {
    this.#actions.set(actionEventId, action);
  }

  beforeLlmCall(): void {
    this.#rerunRequested = false;
  }

  // ---- run control -------------------------------------------------------------------------------

  /**
   * Sets the status to RUNNING (durably) and starts the run task.
   * @throws AgentdError failed_precondition (CONVERSATION_ALREADY_RUNNING) when a run exists.
   */
  /** Waits for a run that already left RUNNING (finished, paused, waiting) to finish saving. */
  async waitForTail(): Promise<void> {
    while (this.#task !== undefined && !this.#starting && this.status !== ExecutionStatus.RUNNING) await this.#task;
  }

  async run(): Promise<void> {
    await this.waitForTail();
    if (this.#task !== undefined || this.status === ExecutionStatus.RUNNING) {
      throw new AgentdError("failed_precondition", "Conversation already running. Wait for completion or pause first.", { conversation_id: this.conversationId }, "CONVERSATION_ALREADY_RUNNING");
    }
    if (this.#closed) throw new AgentdError("unavailable", `conversation ${this.conversationId} is being unloaded`);
    const abort = new AbortController();
    // Claim the slot before the first await, so a concurrent run() sees it.
    let started!: () => void;
    const gate = new Promise<void>((r) => (started = r));
    this.#abort = abort;
    this.#task = gate.then(() => this.#runTask(abort));
    this.#starting = true;
    try {
      await this.refreshSecrets(true);
      await this.setStatus(ExecutionStatus.RUNNING);
    } catch (err) {
      this.#task = undefined;
      this.#abort = undefined;
      throw err;
    } finally {
      this.#starting = false;
    }
    started();
  }

  /** A message with run=true arrived: run now, or once the current run ends if it already decided to finish. */
  async requestRun(): Promise<void> {
    // While the loop runs, the flag makes it run again if it was about to stop; a run that has
    // already left RUNNING is let finish first.
    if (this.#task !== undefined && (this.#starting || this.status === ExecutionStatus.RUNNING)) {
      this.#rerunRequested = true;
      return;
    }
    try {
      await this.run();
    } catch (err) {
      // Another request started the run meanwhile: it will see this message.
      if (!(err instanceof AgentdError && err.reason === "CONVERSATION_ALREADY_RUNNING")) throw err;
      this.#rerunRequested = true;
    }
  }

  async #runTask(abort: AbortController): Promise<void> {
    try {
      for (;;) {
        this.#rerunRequested = false;
        await runAgentLoop(this, abort.signal);
        if (this.#rerunRequested && !abort.signal.aborted && (this.status === ExecutionStatus.FINISHED || this.status === ExecutionStatus.IDLE)) {
          await this.setStatus(ExecutionStatus.RUNNING);
          continue;
        }
        break;
      }
    } catch (err) {
      if (!isCanceled(err) && !abort.signal.aborted) await this.#fail(err);
    } finally {
      await this.#appendQueue;
      this.#task = undefined;
      this.#abort = undefined;
      this.lastAccessMs = this.#deps.now();
      if (!this.#interrupting) {
        try {
          await this.#deps.saveRecord(this);
        } catch (err) {
          this.#deps.log("warn", "saving the conversation after its run failed", { conversation_id: this.conversationId, error: String(err) });
        }
      }
    }
  }

  /** Records a run failure: ConversationErrorEvent + status error. Never throws. */
  async #fail(err: unknown): Promise<void> {
    let code = "AgentError";
    let detail: string;
    let cls = classification("internal", false, "none");
    if (err instanceof LlmCallError) {
      code = err.errorName;
      detail = err.message;
      cls = classification(err.classification.kind, err.classification.retryable, err.classification.userAction);
    } else if (err instanceof AgentdError) {
      code = err.reason;
      detail = err.message;
    } else {
      detail = "internal error while running the agent";
      this.#deps.log("error", "agent run failed", { conversation_id: this.conversationId, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
    try {
      await this.append([conversationErrorEvent(code, this.masker.mask(detail), cls)]);
      await this.setStatus(ExecutionStatus.ERROR);
    } catch (e) {
      this.#deps.log("warn", "recording a run failure failed", { conversation_id: this.conversationId, error: String(e) });
    }
  }

  /** Pause: takes effect between steps. Only from idle or running (else a no-op). */
  async pause(): Promise<void> {
    if (this.status !== ExecutionStatus.IDLE && this.status !== ExecutionStatus.RUNNING) return;
    this.conversation.executionStatus = ExecutionStatus.PAUSED;
    await this.append([newEvent(EventSource.USER, { case: "pauseEvent", value: {} }), stateUpdateEvent("execution_status", STATUS_NAME[ExecutionStatus.PAUSED])]);
    await this.#deps.saveRecord(this);
  }

  /**
   * Interrupt: cancels the in-flight LLM call and tool calls, waits (≤ 5 s) for the run to stop,
   * answers orphaned actions with AgentErrorEvents, status paused, InterruptEvent. Without a run
   * it is a pause.
   */
  async interrupt(): Promise<void> {
    const task = this.#task;
    if (task === undefined) {
      await this.pause();
      return;
    }
    this.#interrupting = true;
    try {
      this.#abort?.abort();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([task, new Promise<void>((r) => (timer = setTimeout(r, INTERRUPT_WAIT_MS)))]);
      clearTimeout(timer);
      const orphans = pendingActions(this.history).map((a) => {
        const v = a.payload.case === "actionEvent" ? a.payload.value : undefined;
        return agentErrorEvent("Tool call interrupted before completion. The conversation was paused.", v?.toolName ?? "", v?.toolCallId ?? "", classification("agent_action", true, "retry"));
      });
      this.conversation.executionStatus = ExecutionStatus.PAUSED;
      await this.append([newEvent(EventSource.USER, { case: "interruptEvent", value: {} }), ...orphans, stateUpdateEvent("execution_status", STATUS_NAME[ExecutionStatus.PAUSED])]);
      await this.#deps.saveRecord(this);
    } finally {
      this.#interrupting = false;
    }
  }

  /**
   * Runs `fn` in the run slot without changing the status (a forced condensation): a Run during it
   * gets CONVERSATION_ALREADY_RUNNING, an interrupt cancels it.
   */
  async exclusive(fn: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
    if (this.#task !== undefined) {
      throw new AgentdError("failed_precondition", "Conversation already running. Wait for completion or pause first.", { conversation_id: this.conversationId }, "CONVERSATION_ALREADY_RUNNING");
    }
    const abort = new AbortController();
    const task = (async () => {
      try {
        await fn(abort.signal);
      } finally {
        this.#task = undefined;
        this.#abort = undefined;
      }
    })();
    this.#abort = abort;
    this.#task = task.catch(() => undefined);
    await task;
  }

  /** Waits for the run task (if any) to end. */
  async settled(): Promise<void> {
    await this.#task;
  }

  /** Stops the run without recording anything (shutdown, delete) and releases tools. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort?.abort();
    const task = this.#task;
    if (task !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([task, new Promise<void>((r) => (timer = setTimeout(r, INTERRUPT_WAIT_MS)))]);
      clearTimeout(timer);
    }
    await this.#appendQueue;
    const toolset = this.#toolset;
    this.#toolset = undefined;
    await toolset?.close();
  }

  // ---- queries -----------------------------------------------------------------------------------

  /** The last FinishAction message or agent message, whichever is later; "" when none. */
  finalResponse(): string {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const e = this.history[i]!;
      if (e.payload.case === "actionEvent" && e.payload.value.action?.action.case === "finish") return e.payload.value.action.action.value.message;
      if (e.payload.case === "messageEvent" && e.source === EventSource.AGENT) return contentText(e.payload.value.llmMessage?.content ?? []);
    }
    return "";
  }

  /** Text of the first user message, if any. */
  firstUserMessage(): string | undefined {
    const e = this.history.find((x) => x.payload.case === "messageEvent" && x.source === EventSource.USER);
    return e === undefined || e.payload.case !== "messageEvent" ? undefined : contentText(e.payload.value.llmMessage?.content ?? []);
  }

  /** A copy of the state (safe to hand out: no secret values are ever set on it). */
  snapshot(): Conversation {
    return clone(ConversationSchema, this.conversation);
  }

  /** Kind counts of the history (diagnostics and tests). */
  kinds(): string[] {
    return this.history.map(eventKind);
  }
}
