// The agent's LLM client: one Chat Completions call with native tool calling through the `openai`
// package, against any OpenAI-compatible endpoint.
//
// Contract:
// - `provider/model` names are resolved as LiteLLM does (see `resolveLlmEndpoint`): the provider
//   prefix picks the default base URL and is stripped from the model sent on the wire; an explicit
//   `base_url` always wins. A bare model name means OpenAI (or Anthropic for `claude-*`).
// - Retries are ours (the openai client's own are off): 429, 408, 409, 5xx, connection errors and
//   timeouts are retried up to `numRetries` times (default 5) with exponential backoff
//   (`retry.minWaitMs` × `retry.multiplier`^attempt, capped at `retry.maxWaitMs`); a `retry-after-ms`
//   or `retry-after` header from the provider takes precedence (capped the same way). Any other
//   status fails at once. After the last retry an `LlmCallError` (code unavailable, or
//   invalid_argument/unauthenticated/permission_denied for 400/401/403) is thrown.
// - `signal` aborts the in-flight HTTP request at once (interrupt); the call then throws
//   AgentdError "canceled" and is never retried.
// - With `stream`, deltas are handed to `onDelta` as they arrive (content and reasoning text only;
//   tool call fragments are accumulated silently) and the assembled response is returned as in the
//   non-streaming case. Usage is requested with `stream_options.include_usage`.
// - Nothing here logs or returns the API key; error messages carry the provider's status and a
//   one-line, length-capped provider message.

import type OpenAI from "openai";
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from "openai/resources/chat/completions";
import { AgentdError } from "../../errors.js";

/** The LLM settings of an agent, in domain form (proto `agentd.v1.Llm`). */
export interface LlmSettings {
  /** `provider/model` or a bare model name. */
  model: string;
  apiKey?: string | undefined;
  baseUrl?: string | undefined;
  temperature?: number | undefined;
  topP?: number | undefined;
  maxOutputTokens?: number | undefined;
  /** Per-request timeout in seconds (default 300). */
  timeoutSeconds?: number | undefined;
  /** Retries on transient failures (default 5). */
  numRetries?: number | undefined;
  stream?: boolean | undefined;
  /** Name under which usage is accounted (default "default"). */
  usageId?: string | undefined;
  reasoningEffort?: string | undefined;
  extraHeaders?: Record<string, string> | undefined;
  maxInputTokens?: number | undefined;
}

/** Backoff of retried calls. */
export interface RetryPolicy {
  /** First wait, ms (default 1000). */
  minWaitMs: number;
  /** Cap of one wait, ms (default 30 000). */
  maxWaitMs: number;
  /** Growth per attempt (default 2). */
  multiplier: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { minWaitMs: 1000, maxWaitMs: 30_000, multiplier: 2 };
export const DEFAULT_LLM_TIMEOUT_SECONDS = 300;
export const DEFAULT_NUM_RETRIES = 5;

/** Where a model is served and under which name. */
export interface LlmEndpoint {
  /** Provider prefix that was recognised ("openai", "anthropic", ...), or "custom". */
  provider: string;
  baseUrl: string;
  /** The model name sent on the wire (provider prefix removed). */
  model: string;
  /** True when requests may omit an API key (local servers). */
  keyOptional: boolean;
}

interface ProviderInfo {
  /** Default base URL; undefined when the provider needs an explicit base_url. */
  baseUrl?: string;
  keyOptional?: boolean;
}

/**
 * Providers recognised in `provider/model` names (LiteLLM prefixes). Anthropic is reached through
 * its OpenAI-compatible endpoint; OpenRouter keeps the rest of the name (`openrouter/a/b` → `a/b`).
 */
export const LLM_PROVIDERS: Readonly<Record<string, ProviderInfo>> = {
  openai: { baseUrl: "https://api.openai.com/v1" },
  anthropic: { baseUrl: "https://api.anthropic.com/v1/" },
  openrouter: { baseUrl: "https://openrouter.ai/api/v1" },
  ollama: { baseUrl: "http://localhost:11434/v1", keyOptional: true },
  ollama_chat: { baseUrl: "http://localhost:11434/v1", keyOptional: true },
  gemini: { baseUrl: "https://generativelanguage.googleapis.com/v1beta/openai/" },
  deepseek: { baseUrl: "https://api.deepseek.com/v1" },
  groq: { baseUrl: "https://api.groq.com/openai/v1" },
  mistral: { baseUrl: "https://api.mistral.ai/v1" },
  together_ai: { baseUrl: "https://api.together.xyz/v1" },
  fireworks_ai: { baseUrl: "https://api.fireworks.ai/inference/v1" },
  xai: { baseUrl: "https://api.x.ai/v1" },
  hosted_vllm: { keyOptional: true },
  litellm_proxy: {},
};

/**
 * Resolves a model name and optional base URL to the endpoint and wire model name.
 * @throws AgentdError invalid_argument for an empty model, a provider that needs `base_url`
 *   without one, an unknown provider prefix without `base_url`, or a malformed base URL.
 */
export function resolveLlmEndpoint(model: string, baseUrl?: string): LlmEndpoint {
  const name = model.trim();
  if (name === "") throw new AgentdError("invalid_argument", "the agent's llm.model is empty and the server has no default model (LLM_MODEL)");
  if (baseUrl !== undefined && baseUrl !== "") {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new AgentdError("invalid_argument", `llm.base_url ${JSON.stringify(baseUrl)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new AgentdError("invalid_argument", `llm.base_url ${JSON.stringify(baseUrl)} must be http or https`);
    }
  }
  const slash = name.indexOf("/");
  const prefix = slash > 0 ? name.slice(0, slash) : "";
  const known = prefix !== "" ? LLM_PROVIDERS[prefix] : undefined;
  if (known !== undefined) {
    const rest = name.slice(slash + 1);
    if (rest === "") throw new AgentdError("invalid_argument", `llm.model ${JSON.stringify(name)} names no model after the provider`);
    const url = baseUrl || known.baseUrl;
    if (url === undefined) {
      throw new AgentdError("invalid_argument", `llm.model ${JSON.stringify(name)} needs llm.base_url (provider ${prefix} has no default endpoint)`);
    }
    return { provider: prefix, baseUrl: url, model: rest, keyOptional: known.keyOptional ?? false };
  }
  if (baseUrl) return { provider: "custom", baseUrl, model: name, keyOptional: true };
  if (prefix !== "") {
    throw new AgentdError(
      "invalid_argument",
      `llm.model ${JSON.stringify(name)}: unknown provider ${JSON.stringify(prefix)}; use one of ${Object.keys(LLM_PROVIDERS).join(", ")} or give llm.base_url`,
    );
  }
  if (/^claude/i.test(name)) return { provider: "anthropic", baseUrl: LLM_PROVIDERS.anthropic!.baseUrl!, model: name, keyOptional: false };
  return { provider: "openai", baseUrl: LLM_PROVIDERS.openai!.baseUrl!, model: name, keyOptional: false };
}

/** One tool call the model asked for. `arguments` is the raw JSON text (may be malformed). */
export interface LlmToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** Token usage of one completion. */
export interface LlmUsage {
  promptTokens: number;
  completionTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
}

export interface LlmResponse {
  /** Provider response id ("chatcmpl-..."); a generated one when the provider sent none. */
  id: string;
  /** Answer text ("" when none). */
  content: string;
  reasoningContent: string | undefined;
  toolCalls: LlmToolCall[];
  finishReason: string | undefined;
  usage: LlmUsage;
  /** Cost in USD: the provider's figure when it reports one, else the price table, else 0. */
  costUsd: number;
  /** The wire model name. */
  model: string;
}

export interface LlmDelta {
  content?: string;
  reasoningContent?: string;
}

export interface LlmRequest {
  messages: ChatCompletionMessageParam[];
  tools?: ChatCompletionTool[] | undefined;
  /** "none" lets a side question see the tools without calling them. */
  toolChoice?: "auto" | "none" | undefined;
  signal?: AbortSignal | undefined;
  /** Receives streamed deltas (only when the settings ask for streaming). */
  onDelta?: ((delta: LlmDelta) => void) | undefined;
  /** Overrides the settings' max output tokens (titles, summaries). */
  maxOutputTokens?: number | undefined;
  /** Forces streaming off (side calls: titles, ask_agent). */
  noStream?: boolean | undefined;
}

/** Classification of a failed call (ConversationErrorEvent.classification). */
export interface LlmErrorClassification {
  kind: "auth" | "quota" | "rate_limit" | "config" | "transient" | "internal" | "unknown";
  retryable: boolean;
  userAction: "none" | "retry" | "settings";
}

/** The LLM call failed for good (after retries, or at once for a non-retryable status). */
export class LlmCallError extends AgentdError {
  constructor(
    code: "unavailable" | "invalid_argument" | "unauthenticated" | "permission_denied" | "deadline_exceeded",
    message: string,
    /** Exception-class-like name for ConversationErrorEvent.code ("RateLimitError", ...). */
    readonly errorName: string,
    readonly classification: LlmErrorClassification,
    readonly status: number | undefined,
    readonly attempts: number,
  ) {
    super(code, message, status === undefined ? {} : { status: String(status) }, "LLM_CALL_FAILED");
  }
}

/** USD per million tokens (input, output) for a few well-known models; unknown models cost 0. */
const PRICES: ReadonlyArray<readonly [RegExp, number, number]> = [
  [/^gpt-4o-mini/, 0.15, 0.6],
  [/^gpt-4o/, 2.5, 10],
  [/^gpt-4\.1-nano/, 0.1, 0.4],
  [/^gpt-4\.1-mini/, 0.4, 1.6],
  [/^gpt-4\.1/, 2, 8],
  [/^gpt-5-mini/, 0.25, 2],
  [/^gpt-5/, 1.25, 10],
  [/^o4-mini|^o3-mini/, 1.1, 4.4],
  [/claude-(3-5-)?haiku|claude-haiku/, 1, 5],
  [/claude-(opus|3-opus)/, 15, 75],
  [/claude/, 3, 15],
];

/** Estimated cost of a completion in USD from the price table (0 when the model is unknown). */
export function estimateCostUsd(model: string, usage: LlmUsage): number {
  const bare = model.includes("/") ? model.slice(model.lastIndexOf("/") + 1) : model;
  for (const [re, input, output] of PRICES) {
    if (re.test(bare)) return (usage.promptTokens * input + usage.completionTokens * output) / 1e6;
  }
  return 0;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(canceled());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(canceled());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

function canceled(): AgentdError {
  return new AgentdError("canceled", "the LLM call was cancelled");
}

/** The provider's message, one line, at most 300 characters. */
function providerMessage(err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  const line = raw.replace(/\s+/g, " ").trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  if (headers === undefined) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Number(ms);
  const s = headers.get("retry-after");
  if (s !== null) {
    if (/^\d+(\.\d+)?$/.test(s.trim())) return Number(s) * 1000;
    const at = Date.parse(s);
    if (!Number.isNaN(at)) return Math.max(0, at - Date.now());
  }
  return undefined;
}

interface Classified {
  retryable: boolean;
  error: LlmCallError;
  retryAfterMs?: number | undefined;
}

interface OpenAIModule {
  readonly default: typeof OpenAI;
}
let openaiModule: Promise<OpenAIModule> | undefined;

/**
 * The `openai` package, loaded on the first LLM call: it costs ~100 ms and ~10 MiB at import,
 * which a server that never runs an agent should not pay at start-up.
 */
function loadOpenAI(): Promise<OpenAIModule> {
  openaiModule ??= import("openai");
  return openaiModule;
}

function classify({ default: OpenAI }: OpenAIModule, err: unknown, attempts: number): Classified {
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    return {
      retryable: true,
      error: new LlmCallError("unavailable", `the LLM request timed out (${attempts} attempt(s))`, "Timeout", { kind: "transient", retryable: true, userAction: "retry" }, undefined, attempts),
    };
  }
  if (err instanceof OpenAI.APIConnectionError) {
    return {
      retryable: true,
      error: new LlmCallError(
        "unavailable",
        `cannot reach the LLM endpoint after ${attempts} attempt(s): ${providerMessage(err.cause ?? err)}`,
        "APIConnectionError",
        { kind: "transient", retryable: true, userAction: "retry" },
        undefined,
        attempts,
      ),
    };
  }
  if (err instanceof OpenAI.APIError && typeof err.status === "number") {
    const status = err.status;
    const msg = `the LLM provider answered ${status} after ${attempts} attempt(s): ${providerMessage(err)}`;
    const after = retryAfterMs(err.headers as Headers | undefined);
    if (status === 429) {
      const quota = /quota|billing|credit/i.test(err.message);
      return {
        retryable: !quota,
        retryAfterMs: after,
        error: new LlmCallError("unavailable", msg, "RateLimitError", quota ? { kind: "quota", retryable: false, userAction: "settings" } : { kind: "rate_limit", retryable: true, userAction: "retry" }, status, attempts),
      };
    }
    if (status === 401) return { retryable: false, error: new LlmCallError("unauthenticated", msg, "AuthenticationError", { kind: "auth", retryable: false, userAction: "settings" }, status, attempts) };
    if (status === 403) return { retryable: false, error: new LlmCallError("permission_denied", msg, "PermissionDeniedError", { kind: "auth", retryable: false, userAction: "settings" }, status, attempts) };
    if (status === 408 || status === 409 || status >= 500) {
      return {
        retryable: true,
        retryAfterMs: after,
        error: new LlmCallError("unavailable", msg, status >= 500 ? "InternalServerError" : "APIError", { kind: "transient", retryable: true, userAction: "retry" }, status, attempts),
      };
    }
    const name = status === 404 ? "NotFoundError" : status === 400 ? "BadRequestError" : "APIError";
    return { retryable: false, error: new LlmCallError("invalid_argument", msg, name, { kind: "config", retryable: false, userAction: "settings" }, status, attempts) };
  }
  return {
    retryable: false,
    error: new LlmCallError("unavailable", `the LLM call failed: ${providerMessage(err)}`, err instanceof Error ? err.name : "Error", { kind: "unknown", retryable: false, userAction: "none" }, undefined, attempts),
  };
}

function emptyUsage(): LlmUsage {
  return { promptTokens: 0, completionTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
}

interface WireUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number | null; cache_write_tokens?: number | null } | null;
  completion_tokens_details?: { reasoning_tokens?: number | null } | null;
  cache_creation_input_tokens?: number;
  cost?: number;
}

function readUsage(u: WireUsage | null | undefined): { usage: LlmUsage; cost: number | undefined } {
  if (!u) return { usage: emptyUsage(), cost: undefined };
  return {
    usage: {
      promptTokens: u.prompt_tokens ?? 0,
      completionTokens: u.completion_tokens ?? 0,
      cacheReadTokens: u.prompt_tokens_details?.cached_tokens ?? 0,
      cacheWriteTokens: u.prompt_tokens_details?.cache_write_tokens ?? u.cache_creation_input_tokens ?? 0,
      reasoningTokens: u.completion_tokens_details?.reasoning_tokens ?? 0,
    },
    cost: typeof u.cost === "number" && Number.isFinite(u.cost) ? u.cost : undefined,
  };
}

export interface LlmClientOptions {
  retry?: Partial<RetryPolicy> | undefined;
  /** Told the wall time of every complete() call (retries included), e.g. for metrics. */
  onCall?: ((durationMs: number, usageId: string) => void) | undefined;
  /** Replaces fetch (tests of the client itself). */
  fetch?: typeof fetch;
}

/** A client for one agent's LLM settings. Cheap to keep; holds no sockets of its own. */
export class LlmClient {
  readonly endpoint: LlmEndpoint;
  readonly settings: LlmSettings;
  #client: Promise<OpenAI> | undefined;
  readonly #retry: RetryPolicy;
  readonly #onCall: LlmClientOptions["onCall"];
  readonly #fetch: typeof fetch | undefined;

  /** @throws AgentdError invalid_argument when the model or base URL cannot be resolved. */
  constructor(settings: LlmSettings, options: LlmClientOptions = {}) {
    this.settings = settings;
    this.endpoint = resolveLlmEndpoint(settings.model, settings.baseUrl);
    this.#retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.#onCall = options.onCall;
    this.#fetch = options.fetch;
  }

  /** The openai client, built at the first call. */
  #openai(): Promise<OpenAI> {
    this.#client ??= loadOpenAI().then(({ default: OpenAI }) => {
      const settings = this.settings;
      return new OpenAI({
        // Always explicit, so the package never falls back to OPENAI_* environment variables.
        apiKey: settings.apiKey || "no-key",
        baseURL: this.endpoint.baseUrl,
        organization: null,
        project: null,
        maxRetries: 0,
        timeout: (settings.timeoutSeconds ?? DEFAULT_LLM_TIMEOUT_SECONDS) * 1000,
        defaultHeaders: settings.extraHeaders ?? {},
        ...(this.#fetch !== undefined ? { fetch: this.#fetch } : {}),
      });
    });
    return this.#client;
  }

  get usageId(): string {
    return this.settings.usageId || "default";
  }

  /**
   * One completion, retried on transient failures.
   * @throws AgentdError canceled when `signal` aborts; LlmCallError when the call fails for good.
   */
  async complete(req: LlmRequest): Promise<LlmResponse> {
    // The openai client never removes the abort listener it adds to a request's signal, so each
    // call gets its own signal, linked to the caller's and unlinked afterwards (a run's signal
    // lives for hundreds of calls).
    let call = req;
    let unlink = (): void => {};
    if (req.signal !== undefined) {
      const parent = req.signal;
      const child = new AbortController();
      const onAbort = (): void => child.abort(parent.reason);
      if (parent.aborted) child.abort(parent.reason);
      else parent.addEventListener("abort", onAbort, { once: true });
      unlink = () => parent.removeEventListener("abort", onAbort);
      call = { ...req, signal: child.signal };
    }
    const t = performance.now();
    try {
      return await this.#complete(call);
    } finally {
      unlink();
      this.#onCall?.(performance.now() - t, this.usageId);
    }
  }

  async #complete(req: LlmRequest): Promise<LlmResponse> {
    const retries = Math.max(0, this.settings.numRetries ?? DEFAULT_NUM_RETRIES);
    for (let attempt = 0; ; attempt++) {
      if (req.signal?.aborted) throw canceled();
      try {
        return this.settings.stream && req.onDelta !== undefined && req.noStream !== true ? await this.#streamOnce(req) : await this.#once(req);
      } catch (err) {
        const openai = await loadOpenAI();
        if (req.signal?.aborted || err instanceof openai.default.APIUserAbortError) throw canceled();
        if (err instanceof AgentdError) throw err;
        const c = classify(openai, err, attempt + 1);
        if (!c.retryable || attempt >= retries) throw c.error;
        const backoff = Math.min(this.#retry.maxWaitMs, this.#retry.minWaitMs * this.#retry.multiplier ** attempt);
        const wait = c.retryAfterMs !== undefined ? Math.min(this.#retry.maxWaitMs, c.retryAfterMs) : backoff;
        await sleep(wait, req.signal);
      }
    }
  }

  #params(req: LlmRequest): Omit<ChatCompletionCreateParamsNonStreaming, "stream"> {
    const s = this.settings;
    const params: Record<string, unknown> = { model: this.endpoint.model, messages: req.messages };
    if (req.tools !== undefined && req.tools.length > 0) {
      params.tools = req.tools;
      if (req.toolChoice !== undefined) params.tool_choice = req.toolChoice;
    }
    if (s.temperature !== undefined) params.temperature = s.temperature;
    if (s.topP !== undefined) params.top_p = s.topP;
    const maxTokens = req.maxOutputTokens ?? s.maxOutputTokens;
    if (maxTokens !== undefined) {
      if (this.endpoint.provider === "openai") params.max_completion_tokens = maxTokens;
      else params.max_tokens = maxTokens;
    }
    if (s.reasoningEffort) params.reasoning_effort = s.reasoningEffort;
    return params as unknown as Omit<ChatCompletionCreateParamsNonStreaming, "stream">;
  }

  async #once(req: LlmRequest): Promise<LlmResponse> {
    const body: ChatCompletionCreateParamsNonStreaming = { ...this.#params(req), stream: false };
    const res = await (await this.#openai()).chat.completions.create(body, { signal: req.signal });
    const choice = res.choices?.[0];
    const message = choice?.message as (OpenAI.Chat.Completions.ChatCompletionMessage & { reasoning_content?: string | null }) | undefined;
    const toolCalls: LlmToolCall[] = [];
    for (const tc of message?.tool_calls ?? []) {
      if (tc.type === "function") toolCalls.push({ id: tc.id, name: tc.function.name, arguments: tc.function.arguments ?? "" });
    }
    const { usage, cost } = readUsage(res.usage as WireUsage | undefined);
    return {
      id: res.id || `chatcmpl-${crypto.randomUUID()}`,
      content: typeof message?.content === "string" ? message.content : "",
      reasoningContent: message?.reasoning_content ?? undefined,
      toolCalls,
      finishReason: choice?.finish_reason ?? undefined,
      usage,
      costUsd: cost ?? estimateCostUsd(this.endpoint.model, usage),
      model: res.model || this.endpoint.model,
    };
  }

  async #streamOnce(req: LlmRequest): Promise<LlmResponse> {
    const body: ChatCompletionCreateParamsStreaming = { ...this.#params(req), stream: true, stream_options: { include_usage: true } };
    const stream = await (await this.#openai()).chat.completions.create(body, { signal: req.signal });
    let id = "";
    let model = "";
    let content = "";
    let reasoning: string | undefined;
    let finishReason: string | undefined;
    let wireUsage: WireUsage | undefined;
    const calls = new Map<number, LlmToolCall>();
    for await (const chunk of stream as AsyncIterable<ChatCompletionChunk>) {
      if (chunk.id) id = chunk.id;
      if (chunk.model) model = chunk.model;
      if (chunk.usage) wireUsage = chunk.usage as WireUsage;
      for (const choice of chunk.choices ?? []) {
        const delta = choice.delta as (ChatCompletionChunk.Choice.Delta & { reasoning_content?: string | null }) | undefined;
        if (choice.finish_reason) finishReason = choice.finish_reason;
        if (delta === undefined) continue;
        const d: LlmDelta = {};
        if (typeof delta.content === "string") {
          content += delta.content;
          d.content = delta.content;
        }
        if (typeof delta.reasoning_content === "string") {
          reasoning = (reasoning ?? "") + delta.reasoning_content;
          d.reasoningContent = delta.reasoning_content;
        }
        if (d.content !== undefined || d.reasoningContent !== undefined) req.onDelta?.(d);
        for (const tc of delta.tool_calls ?? []) {
          const cur = calls.get(tc.index) ?? { id: "", name: "", arguments: "" };
          if (tc.id) cur.id = tc.id;
          if (tc.function?.name) cur.name += tc.function.name;
          if (tc.function?.arguments) cur.arguments += tc.function.arguments;
          calls.set(tc.index, cur);
        }
      }
    }
    const { usage, cost } = readUsage(wireUsage);
    const toolCalls = [...calls.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([i, c]) => ({ ...c, id: c.id || `call_${i}_${crypto.randomUUID().slice(0, 8)}` }));
    return {
      id: id || `chatcmpl-${crypto.randomUUID()}`,
      content,
      reasoningContent: reasoning,
      toolCalls,
      finishReason,
      usage,
      costUsd: cost ?? estimateCostUsd(this.endpoint.model, usage),
      model: model || this.endpoint.model,
    };
  }
}
