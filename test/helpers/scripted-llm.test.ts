import OpenAI from "openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { startScriptedLlm, type ScriptedLlm } from "./scripted-llm.js";

describe("scripted LLM (real openai client over HTTP)", () => {
  let llm: ScriptedLlm;
  let client: OpenAI;

  beforeEach(async () => {
    llm = await startScriptedLlm();
    client = new OpenAI({ baseURL: llm.baseUrl, apiKey: "test-key", maxRetries: 0 });
  });

  afterEach(async () => {
    await llm.close();
  });

  it("answers a JSON completion with text and usage, and records the request", async () => {
    llm.enqueue({ text: "Hello there", usage: { prompt_tokens: 11, completion_tokens: 3 } });
    const res = await client.chat.completions.create({
      model: "gpt-test",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(res.choices[0]?.message.content).toBe("Hello there");
    expect(res.choices[0]?.finish_reason).toBe("stop");
    expect(res.model).toBe("gpt-test");
    expect(res.usage).toEqual({ prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 });
    expect(llm.requests).toHaveLength(1);
    expect(llm.requests[0].messages).toEqual([{ role: "user", content: "hi" }]);
    expect(llm.received[0]?.headers.authorization).toBe("Bearer test-key");
    llm.assertDone();
  });

  it("returns tool calls as JSON and lets a step function inspect the request", async () => {
    llm.enqueue((req) => {
      expect(req.body.tools[0].function.name).toBe("terminal");
      return { toolCalls: [{ name: "terminal", arguments: { command: "ls -la" } }, { name: "think", arguments: '{"thought":"x"}' }] };
    });
    const res = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "list files" }],
      tools: [{ type: "function", function: { name: "terminal", parameters: { type: "object", properties: {} } } }],
    });
    const calls = res.choices[0]?.message.tool_calls ?? [];
    expect(res.choices[0]?.finish_reason).toBe("tool_calls");
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({ id: "call_1_0", type: "function", function: { name: "terminal" } });
    expect(JSON.parse((calls[0] as { function: { arguments: string } }).function.arguments)).toEqual({ command: "ls -la" });
    expect((calls[1] as { function: { arguments: string } }).function.arguments).toBe('{"thought":"x"}');
    llm.assertDone();
  });

  it("streams text, reasoning and tool-call deltas over SSE, with a final usage chunk", async () => {
    llm.enqueue({
      text: "Let me look at the repository first.",
      reasoning: "thinking...",
      toolCalls: [{ name: "grep", arguments: { pattern: "TODO", include: "*.ts" } }],
      chunkSize: 5,
      usage: { prompt_tokens: 20, completion_tokens: 9 },
    });
    const stream = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "go" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let reasoning = "";
    let contentChunks = 0;
    const args: string[] = [];
    let name = "";
    let id = "";
    let finish: string | null = null;
    let usage: unknown = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      const delta = choice.delta as { content?: string; reasoning_content?: string; tool_calls?: { id?: string; function?: { name?: string; arguments?: string } }[] };
      if (delta.content) {
        text += delta.content;
        contentChunks++;
      }
      if (delta.reasoning_content) reasoning += delta.reasoning_content;
      for (const tc of delta.tool_calls ?? []) {
        if (tc.id) id = tc.id;
        if (tc.function?.name) name = tc.function.name;
        if (tc.function?.arguments) args.push(tc.function.arguments);
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    expect(text).toBe("Let me look at the repository first.");
    expect(contentChunks).toBeGreaterThan(1);
    expect(reasoning).toBe("thinking...");
    expect(name).toBe("grep");
    expect(id).toBe("call_1_0");
    expect(args.length).toBeGreaterThan(1);
    expect(JSON.parse(args.join(""))).toEqual({ pattern: "TODO", include: "*.ts" });
    expect(finish).toBe("tool_calls");
    expect(usage).toEqual({ prompt_tokens: 20, completion_tokens: 9, total_tokens: 29 });
  });

  it("assembles a streamed tool call with the SDK's stream helper", async () => {
    llm.enqueue({ toolCalls: [{ name: "finish", arguments: { message: "all done" } }], chunkSize: 3 });
    const runner = client.chat.completions.stream({ model: "m", messages: [{ role: "user", content: "x" }] });
    const final = await runner.finalChatCompletion();
    const call = final.choices[0]?.message.tool_calls?.[0] as { function: { name: string; arguments: string } };
    expect(call.function.name).toBe("finish");
    expect(JSON.parse(call.function.arguments)).toEqual({ message: "all done" });
  });

  it("maps error statuses to the client's error classes", async () => {
    llm.enqueue({ status: 400, message: "bad tools" }, { status: 500 }, { status: 429, retryAfter: 7, message: "slow down" });
    const ask = (): Promise<unknown> => client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    await expect(ask()).rejects.toMatchObject({ status: 400, message: expect.stringContaining("bad tools") });
    await expect(ask()).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    const err = await ask().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get("retry-after")).toBe("7");
  });

  it("lets the client retry a 429 after Retry-After, then succeed", async () => {
    const retrying = new OpenAI({ baseURL: llm.baseUrl, apiKey: "k", maxRetries: 2 });
    llm.enqueue({ status: 429, retryAfter: 0 }, { text: "second time lucky" });
    const res = await retrying.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    expect(res.choices[0]?.message.content).toBe("second time lucky");
    expect(llm.requests).toHaveLength(2);
  });

  it("answers unscripted requests with a clear 500 that the client does not retry", async () => {
    const retrying = new OpenAI({ baseURL: llm.baseUrl, apiKey: "k", maxRetries: 2 });
    const err = await retrying.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect((err as Error).message).toContain("no scripted reply");
    expect(llm.requests).toHaveLength(1);
  });

  it("delays a reply, and a request the client aborts stops waiting", async () => {
    llm.enqueue({ delayMs: 50, then: { text: "late" } });
    const started = Date.now();
    const res = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] });
    expect(res.choices[0]?.message.content).toBe("late");
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);

    let sawAbort!: () => void;
    const aborted = new Promise<void>((resolve) => (sawAbort = resolve));
    llm.enqueue((req) => {
      req.signal.addEventListener("abort", () => sawAbort());
      return { delayMs: Infinity, then: { text: "never" } };
    });
    const controller = new AbortController();
    const pending = client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }, { signal: controller.signal });
    await llm.waitForRequests(2);
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    await aborted; // the server saw the disconnect and stopped waiting
  });

  it("reports a failing step function and lists models", async () => {
    llm.enqueue(() => {
      throw new Error("expected the system prompt first");
    });
    const err = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect((err as Error).message).toContain("expected the system prompt first");
    expect(() => llm.assertDone()).toThrow("expected the system prompt first");

    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["scripted-model"]);
  });

  it("close() ends open streams and leaves no connection behind", async () => {
    llm.enqueue({ delayMs: Infinity, then: { text: "never" } });
    const pending = client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    await llm.waitForRequests(1);
    await llm.close();
    expect(await pending).toBeInstanceOf(OpenAI.APIConnectionError);
    llm = await startScriptedLlm(); // for afterEach
  });
});
