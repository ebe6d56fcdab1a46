// The agent's LLM client against the scripted OpenAI-compatible server (real HTTP, real `openai`).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentdError } from "../../src/errors.js";
import { LlmCallError, LlmClient, resolveLlmEndpoint } from "../../src/domain/agent/llm.js";
import { startScriptedLlm, type ScriptedLlm } from "../helpers/scripted-llm.js";

let llm: ScriptedLlm;
beforeEach(async () => {
  llm = await startScriptedLlm();
});
afterEach(async () => {
  await llm.close();
});

const fastRetry = { minWaitMs: 5, maxWaitMs: 20, multiplier: 2 };

describe("resolveLlmEndpoint", () => {
  it("maps provider prefixes to base URLs and strips them", () => {
    expect(resolveLlmEndpoint("openai/gpt-4o")).toMatchObject({ baseUrl: "https://api.openai.com/v1", model: "gpt-4o" });
    expect(resolveLlmEndpoint("anthropic/claude-sonnet-4-5")).toMatchObject({ baseUrl: "https://api.anthropic.com/v1/", model: "claude-sonnet-4-5" });
    expect(resolveLlmEndpoint("openrouter/anthropic/claude-3.5")).toMatchObject({ baseUrl: "https://openrouter.ai/api/v1", model: "anthropic/claude-3.5" });
    expect(resolveLlmEndpoint("ollama/llama3")).toMatchObject({ baseUrl: "http://localhost:11434/v1", model: "llama3", keyOptional: true });
    expect(resolveLlmEndpoint("gpt-4o-mini")).toMatchObject({ provider: "openai", model: "gpt-4o-mini" });
    expect(resolveLlmEndpoint("openai/x", "http://h:1/v1")).toMatchObject({ baseUrl: "http://h:1/v1", model: "x" });
    expect(resolveLlmEndpoint("meta/llama", "http://h:1/v1")).toMatchObject({ provider: "custom", model: "meta/llama" });
  });

  it("rejects what cannot be resolved with a clear message", () => {
    expect(() => resolveLlmEndpoint("")).toThrow(/model is empty/);
    expect(() => resolveLlmEndpoint("nope/model")).toThrow(/unknown provider "nope"/);
    expect(() => resolveLlmEndpoint("litellm_proxy/m")).toThrow(/needs llm.base_url/);
    expect(() => resolveLlmEndpoint("m", "ftp://x")).toThrow(/http or https/);
  });
});

describe("LlmClient", () => {
  it("returns text, tool calls and usage from a JSON completion", async () => {
    llm.enqueue({ text: "thinking", toolCalls: [{ name: "terminal", arguments: { command: "ls" }, id: "c1" }], usage: { prompt_tokens: 11, completion_tokens: 7 } });
    const client = new LlmClient({ model: "openai/scripted", baseUrl: llm.baseUrl, apiKey: "k" });
    const res = await client.complete({ messages: [{ role: "user", content: "hi" }], tools: [] });
    expect(res.content).toBe("thinking");
    expect(res.toolCalls).toEqual([{ id: "c1", name: "terminal", arguments: '{"command":"ls"}' }]);
    expect(res.usage.promptTokens).toBe(11);
    expect(res.usage.completionTokens).toBe(7);
    expect(llm.requests[0].model).toBe("scripted");
    expect(llm.received[0]!.headers.authorization).toBe("Bearer k");
  });

  it("streams deltas and assembles tool calls", async () => {
    llm.enqueue({ text: "hello streaming world", reasoning: "hmm", toolCalls: [{ name: "think", arguments: { thought: "x".repeat(40) } }], chunkSize: 5 });
    const client = new LlmClient({ model: "scripted", baseUrl: llm.baseUrl, stream: true });
    const deltas: string[] = [];
    const reasoning: string[] = [];
    const res = await client.complete({
      messages: [{ role: "user", content: "hi" }],
      onDelta: (d) => {
        if (d.content !== undefined) deltas.push(d.content);
        if (d.reasoningContent !== undefined) reasoning.push(d.reasoningContent);
      },
    });
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.join("")).toBe("hello streaming world");
    expect(reasoning.join("")).toBe("hmm");
    expect(res.content).toBe("hello streaming world");
    expect(res.toolCalls).toHaveLength(1);
    expect(JSON.parse(res.toolCalls[0]!.arguments)).toEqual({ thought: "x".repeat(40) });
    expect(res.usage.promptTokens).toBeGreaterThan(0);
    expect(llm.requests[0].stream).toBe(true);
  });

  it("retries 429 and 5xx, then succeeds", async () => {
    llm.enqueue({ status: 429, retryAfter: 0 }, { status: 503 }, { text: "ok" });
    const client = new LlmClient({ model: "scripted", baseUrl: llm.baseUrl, numRetries: 3 }, { retry: fastRetry });
    const res = await client.complete({ messages: [{ role: "user", content: "hi" }] });
    expect(res.content).toBe("ok");
    expect(llm.requests).toHaveLength(3);
  });

  it("gives up after num_retries with a classified error", async () => {
    llm.enqueue({ status: 500 }, { status: 500 }, { status: 500 });
    const client = new LlmClient({ model: "scripted", baseUrl: llm.baseUrl, numRetries: 2 }, { retry: fastRetry });
    const err = await client.complete({ messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlmCallError);
    expect((err as LlmCallError).code).toBe("unavailable");
    expect((err as LlmCallError).errorName).toBe("InternalServerError");
    expect((err as LlmCallError).attempts).toBe(3);
    expect(llm.requests).toHaveLength(3);
  });

  it("does not retry 401 and never echoes the key", async () => {
    llm.enqueue({ status: 401, message: "bad key" });
    const client = new LlmClient({ model: "scripted", baseUrl: llm.baseUrl, apiKey: "sk-very-secret" }, { retry: fastRetry });
    const err = (await client.complete({ messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e)) as LlmCallError;
    expect(err.code).toBe("unauthenticated");
    expect(err.message).not.toContain("sk-very-secret");
    expect(llm.requests).toHaveLength(1);
  });

  it("aborts an in-flight call at once", async () => {
    llm.enqueue({ delayMs: Infinity, then: { text: "never" } });
    const client = new LlmClient({ model: "scripted", baseUrl: llm.baseUrl });
    const ac = new AbortController();
    const pending = client.complete({ messages: [{ role: "user", content: "hi" }], signal: ac.signal });
    await llm.waitForRequests(1);
    const t = performance.now();
    ac.abort();
    const err = await pending.catch((e: unknown) => e);
    expect(performance.now() - t).toBeLessThan(500);
    expect(err).toBeInstanceOf(AgentdError);
    expect((err as AgentdError).code).toBe("canceled");
  });
});
