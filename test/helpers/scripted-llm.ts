// A scripted OpenAI-compatible chat-completions server for tests: real HTTP on 127.0.0.1 (port 0),
// spoken to by the real `openai` client, so the agent's whole LLM path (request building, JSON and
// SSE parsing, tool-call deltas, usage, retries, aborts) is exercised without a paid model.
//
//   const llm = await startScriptedLlm();
//   llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "ls" } }] });
//   llm.enqueue((req) => { expect(req.body.messages.at(-1).role).toBe("tool"); return { text: "done" }; });
//   const client = new OpenAI({ baseURL: llm.baseUrl, apiKey: "test" });
//   ...
//   await llm.close();
//
// Each POST /v1/chat/completions (or /chat/completions) consumes the next step, in order. A step
// is a reply or a function of the request returning one (sync or async). Replies:
//   { text?, reasoning?, toolCalls?, usage?, finishReason?, chunkSize?, chunkDelayMs? }  a completion
//   { status, retryAfter?, message?, type?, code?, headers? }                              an error
//   { delayMs, then }                                                                     wait, then reply
// Requests without a step get a 500 whose message says "no scripted reply" (with
// `x-should-retry: false`, so the client does not retry it). Delays end early when the client
// aborts the request: nothing is written to a closed connection and no timer is left behind.

import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ScriptedToolCall {
  name: string;
  /** An object (sent JSON-encoded) or the exact argument string (to test malformed JSON). */
  arguments: unknown;
  /** Tool call id; default `call_<request>_<index>`. */
  id?: string;
}

export interface ScriptedUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ScriptedCompletion {
  text?: string;
  /** Sent as `reasoning_content` (the field LiteLLM/DeepSeek-style servers use). */
  reasoning?: string;
  toolCalls?: ScriptedToolCall[];
  /** Default: estimated from the request and reply sizes (about 4 characters per token). */
  usage?: Partial<ScriptedUsage>;
  /** Default "tool_calls" when there are tool calls, else "stop". */
  finishReason?: "stop" | "tool_calls" | "length" | "content_filter";
  /** Streaming: characters per content/argument delta (default 16). */
  chunkSize?: number;
  /** Streaming: pause between chunks (default 0), to test consumers of partial streams. */
  chunkDelayMs?: number;
  /** Response id; default `chatcmpl-scripted-<n>`. */
  id?: string;
}

export interface ScriptedError {
  status: number;
  /** Seconds, sent as the Retry-After header. */
  retryAfter?: number;
  message?: string;
  type?: string;
  code?: string;
  headers?: Record<string, string>;
}

export interface ScriptedDelay {
  /** Milliseconds to wait before replying; Infinity waits until the client gives up. */
  delayMs: number;
  then: ScriptedReply;
}

export type ScriptedReply = ScriptedCompletion | ScriptedError | ScriptedDelay;

/** What a step function receives. */
export interface ScriptedRequest {
  /** 1-based sequence number over all chat-completion requests. */
  n: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (model, messages, tools, stream, ...). */
  body: any;
  /** Aborted when the client closes the connection. */
  signal: AbortSignal;
}

export type ScriptedStep = ScriptedReply | ((request: ScriptedRequest) => ScriptedReply | Promise<ScriptedReply>);

export interface ScriptedLlm {
  /** e.g. "http://127.0.0.1:41234/v1" — pass as the client's baseURL. */
  readonly baseUrl: string;
  /** The JSON body of every chat-completion request, in arrival order. */
  readonly requests: any[];
  /** Every request (any path) with its headers. */
  readonly received: { method: string; path: string; headers: IncomingHttpHeaders }[];
  /** Errors thrown by step functions (e.g. failed expectations); also answered with a 500. */
  readonly errors: unknown[];
  /** Appends steps to the script. */
  enqueue(...steps: ScriptedStep[]): void;
  /** Steps not consumed yet. */
  readonly pending: number;
  /** Resolves once `count` chat-completion requests have arrived in total (e.g. to interrupt mid-call). */
  waitForRequests(count: number): Promise<void>;
  /** Throws when a step function failed or steps remain unconsumed. */
  assertDone(): void;
  /** Stops the server and destroys open connections; resolves when nothing is left. */
  close(): Promise<void>;
}

export interface ScriptedLlmOptions {
  /** Model ids listed by GET /v1/models (default ["scripted-model"]). */
  models?: string[];
}

const DEFAULT_CHUNK = 16;

function isError(reply: ScriptedReply): reply is ScriptedError {
  return "status" in reply;
}

function isDelay(reply: ScriptedReply): reply is ScriptedDelay {
  return "delayMs" in reply;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.writableEnded) return;
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data), ...headers });
  res.end(data);
}

function errorBody(message: string, type: string, code: string | null = null): unknown {
  return { error: { message, type, param: null, code } };
}

/** Waits `ms` (Infinity = forever) unless `signal` aborts first; true when it waited the full time. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      resolve(false);
    };
    const timer =
      ms === Infinity
        ? undefined
        : setTimeout(() => {
            signal.removeEventListener("abort", onAbort);
            resolve(true);
          }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function pieces(text: string, size: number): string[] {
  if (text === "") return [];
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function estimateTokens(s: string): number {
  return Math.max(1, Math.ceil(s.length / 4));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Starts the server on an ephemeral port of 127.0.0.1. */
export async function startScriptedLlm(opts: ScriptedLlmOptions = {}): Promise<ScriptedLlm> {
  const steps: ScriptedStep[] = [];
  const requests: any[] = [];
  const received: { method: string; path: string; headers: IncomingHttpHeaders }[] = [];
  const errors: unknown[] = [];
  const models = opts.models ?? ["scripted-model"];
  let completionCount = 0;
  const requestWaiters: { count: number; resolve: () => void }[] = [];

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      errors.push(err);
      sendJson(res, 500, errorBody(`scripted LLM failed: ${(err as Error).message}`, "server_error"), { "x-should-retry": "false" });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] as string;
    const method = req.method ?? "GET";
    received.push({ method, path, headers: req.headers });
    const controller = new AbortController();
    // The client going away (abort, timeout) ends any wait on its behalf.
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
    });

    if (method === "GET" && (path === "/v1/models" || path === "/models")) {
      sendJson(res, 200, {
        object: "list",
        data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "scripted" })),
      });
      return;
    }
    if (method !== "POST" || (path !== "/v1/chat/completions" && path !== "/chat/completions")) {
      sendJson(res, 404, errorBody(`scripted LLM: no route ${method} ${path}`, "invalid_request_error"), { "x-should-retry": "false" });
      return;
    }

    const raw = await readBody(req);
    let body: any;
    try {
      body = JSON.parse(raw);
    } catch {
      sendJson(res, 400, errorBody("request body is not valid JSON", "invalid_request_error"), { "x-should-retry": "false" });
      return;
    }
    requests.push(body);
    const n = ++completionCount;
    for (const waiter of requestWaiters.filter((w) => w.count <= requests.length)) {
      requestWaiters.splice(requestWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    const step = steps.shift();
    if (step === undefined) {
      sendJson(
        res,
        500,
        errorBody(
          `scripted LLM: no scripted reply for request #${n} (${method} ${path}); enqueue a step before the agent calls the LLM`,
          "scripted_llm_error",
        ),
        { "x-should-retry": "false" },
      );
      return;
    }
    let reply: ScriptedReply;
    try {
      reply = typeof step === "function" ? await step({ n, method, path, headers: req.headers, body, signal: controller.signal }) : step;
    } catch (err) {
      errors.push(err);
      sendJson(res, 500, errorBody(`scripted step #${n} threw: ${(err as Error).message}`, "scripted_llm_error"), {
        "x-should-retry": "false",
      });
      return;
    }
    while (isDelay(reply)) {
      if (!(await sleep(reply.delayMs, controller.signal))) return; // client gone
      reply = reply.then;
    }
    if (isError(reply)) {
      const headers: Record<string, string> = { ...reply.headers };
      if (reply.retryAfter !== undefined) headers["retry-after"] = String(reply.retryAfter);
      const type =
        reply.type ?? (reply.status === 429 ? "rate_limit_error" : reply.status >= 500 ? "server_error" : "invalid_request_error");
      sendJson(res, reply.status, errorBody(reply.message ?? `scripted error ${reply.status}`, type, reply.code ?? null), headers);
      return;
    }
    await complete(res, body, reply, n, controller.signal);
  }

  async function complete(
    res: ServerResponse,
    body: any,
    reply: ScriptedCompletion,
    n: number,
    signal: AbortSignal,
  ): Promise<void> {
    const id = reply.id ?? `chatcmpl-scripted-${n}`;
    const created = Math.floor(Date.now() / 1000);
    const model = typeof body.model === "string" ? body.model : (models[0] as string);
    const toolCalls = (reply.toolCalls ?? []).map((tc, i) => ({
      id: tc.id ?? `call_${n}_${i}`,
      type: "function" as const,
      function: { name: tc.name, arguments: typeof tc.arguments === "string" ? tc.arguments : JSON.stringify(tc.arguments ?? {}) },
    }));
    const text = reply.text ?? (toolCalls.length > 0 ? null : "");
    const finishReason = reply.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop");
    const promptTokens = reply.usage?.prompt_tokens ?? estimateTokens(JSON.stringify(body.messages ?? []));
    const completionTokens =
      reply.usage?.completion_tokens ?? estimateTokens((text ?? "") + (reply.reasoning ?? "") + JSON.stringify(toolCalls));
    const usage: ScriptedUsage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: reply.usage?.total_tokens ?? promptTokens + completionTokens,
    };

    if (body.stream !== true) {
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content: text,
              refusal: null,
              ...(reply.reasoning !== undefined ? { reasoning_content: reply.reasoning } : {}),
              ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
            },
            logprobs: null,
            finish_reason: finishReason,
          },
        ],
        usage,
      });
      return;
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const size = Math.max(1, reply.chunkSize ?? DEFAULT_CHUNK);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const send = async (delta: unknown, finish: string | null = null): Promise<boolean> => {
      if (signal.aborted || res.destroyed) return false;
      const chunk = {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        ...(includeUsage ? { usage: null } : {}),
      };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      if (reply.chunkDelayMs !== undefined && reply.chunkDelayMs > 0) return sleep(reply.chunkDelayMs, signal);
      return true;
    };

    if (!(await send({ role: "assistant", content: "", refusal: null }))) return;
    for (const piece of pieces(reply.reasoning ?? "", size)) if (!(await send({ reasoning_content: piece }))) return;
    for (const piece of pieces(text ?? "", size)) if (!(await send({ content: piece }))) return;
    for (const [index, tc] of toolCalls.entries()) {
      const head = { index, id: tc.id, type: "function", function: { name: tc.function.name, arguments: "" } };
      if (!(await send({ tool_calls: [head] }))) return;
      for (const piece of pieces(tc.function.arguments, size)) {
        if (!(await send({ tool_calls: [{ index, function: { arguments: piece } }] }))) return;
      }
    }
    if (!(await send({}, finishReason))) return;
    if (includeUsage) res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage })}\n\n`);
    res.end("data: [DONE]\n\n");
  }

  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    received,
    errors,
    enqueue: (...more) => {
      steps.push(...more);
    },
    get pending() {
      return steps.length;
    },
    waitForRequests: (count) =>
      requests.length >= count ? Promise.resolve() : new Promise<void>((resolve) => requestWaiters.push({ count, resolve })),
    assertDone: () => {
      if (errors.length > 0) throw errors[0] instanceof Error ? errors[0] : new Error(String(errors[0]));
      if (steps.length > 0) throw new Error(`scripted LLM: ${steps.length} scripted step(s) were never requested`);
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
