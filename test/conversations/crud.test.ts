// ConversationManager CRUD, listing and side calls (real LevelDB, scripted LLM).
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SecretSourceSchema } from "../../gen/agentd/v1/conversation_pb.js";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../gen/agentd/v1/message_pb.js";
import { AgentdError } from "../../src/errors.js";
import { fallbackTitle, normalizeConversationId } from "../../src/domain/conversations/conversation-manager.js";
import { ExecutionStatus, startHarness, text, userMessage, type Harness } from "./harness.js";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof AgentdError)) throw new Error(`expected an AgentdError, got ${String(err)}`);
  return err.code;
}

describe("create", () => {
  it("creates the working directory inside the workspace and is idempotent by id", async () => {
    const id = "5b9c8f0e-2f4e-4c53-9a0e-2b1f4f6d2c11";
    const first = await h.manager.create({ agent: h.agent(), conversationId: id.replace(/-/g, ""), tags: { team: "infra" }, workspace: { $typeName: "agentd.v1.LocalWorkspace", workingDir: "a/b" } });
    expect(first.created).toBe(true);
    expect(first.conversation.id).toBe(id);
    expect(first.conversation.workspace?.workingDir).toBe(path.join(h.workspace, "a/b"));
    expect(first.conversation.maxIterations).toBe(500);
    expect(first.conversation.executionStatus).toBe(ExecutionStatus.IDLE);
    expect(first.conversation.confirmationPolicy?.policy.case).toBe("neverConfirm");
    expect(first.conversation.agent?.includeDefaultTools).toEqual(["FinishTool", "ThinkTool"]);
    const again = await h.manager.create({ agent: h.agent(["file_editor"]), conversationId: id });
    expect(again.created).toBe(false);
    expect(again.conversation.agent?.tools.map((t) => t.name)).toEqual(["terminal"]);
    expect(h.manager.count()).toBe(1);
  });

  it("defaults the working directory to <workspace>/<id>", async () => {
    const { conversation } = await h.manager.create({ agent: h.agent() });
    expect(conversation.workspace?.workingDir).toBe(path.join(h.workspace, conversation.id));
  });

  it("rejects bad input with clear errors", async () => {
    expect(await codeOf(h.manager.create({ agent: h.agent(["no_such_tool"]) }))).toBe("invalid_argument");
    await expect(h.manager.create({ agent: h.agent(["no_such_tool"]) })).rejects.toThrow(/unknown tool "no_such_tool"/);
    await expect(h.manager.create({ agent: h.agent([], { llm: { model: "" } }) })).rejects.toThrow(/model is required/);
    await expect(h.manager.create({ agent: h.agent([], { llm: { model: "bogus/x" } }) })).rejects.toThrow(/unknown provider/);
    await expect(h.manager.create({})).rejects.toThrow(/agent is required/);
    expect(await codeOf(h.manager.create({ agent: h.agent(), workspace: { $typeName: "agentd.v1.LocalWorkspace", workingDir: "/etc" } }))).toBe("permission_denied");
    expect(await codeOf(h.manager.create({ agent: h.agent(), workspace: { $typeName: "agentd.v1.LocalWorkspace", workingDir: "../outside" } }))).toBe("permission_denied");
    await writeFile(path.join(h.workspace, "afile"), "x");
    await expect(h.manager.create({ agent: h.agent(), workspace: { $typeName: "agentd.v1.LocalWorkspace", workingDir: "afile" } })).rejects.toThrow(/not a directory/);
    await expect(h.manager.create({ agent: h.agent(), tags: { "Bad-Key": "v" } })).rejects.toThrow(/invalid tag key/);
    await expect(h.manager.create({ agent: h.agent(), maxIterations: 0 })).rejects.toThrow(/max_iterations/);
    await expect(h.manager.create({ agent: h.agent(), conversationId: "not-a-uuid" })).rejects.toThrow(/expected a UUID/);
    await expect(h.manager.create({ agent: h.agent(), initialMessage: { role: MessageRole.USER, content: [] } })).rejects.toThrow(/no content/);
    await expect(
      h.manager.create({ agent: h.agent([], { condenser: { condenser: { case: "llmSummarizing", value: { maxSize: 10, keepFirst: 5 } } } }) }),
    ).rejects.toThrow(/keep_first/);
    expect(h.manager.count()).toBe(0);
  });

  it("uses the server's default model when the agent names none", async () => {
    await h.restart({ llmDefaults: { model: "openai/scripted", baseUrl: h.llm.baseUrl, apiKey: "server-key" } });
    h.llm.enqueue((req) => {
      expect(req.headers.authorization).toBe("Bearer server-key");
      expect(req.body.model).toBe("scripted");
      return { text: "hi" };
    });
    const { conversation } = await h.manager.create({ agent: h.agent([], { llm: {} }), initialMessage: userMessage("hello") });
    await h.waitForStatus(conversation.id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    h.llm.assertDone();
  });
});

describe("unknown ids", () => {
  it("answer not_found everywhere", async () => {
    const id = "00000000-0000-4000-8000-000000000000";
    for (const p of [
      h.manager.get(id),
      h.manager.run(id),
      h.manager.pause(id),
      h.manager.interrupt(id),
      h.manager.delete(id),
      h.manager.update(id, { title: "x" }),
      h.manager.agentFinalResponse(id),
      h.manager.sendMessage(id, { role: MessageRole.USER, content: [text("x")], run: false }),
    ]) {
      expect(await codeOf(p)).toBe("not_found");
    }
    expect(await codeOf(h.manager.get("xyz"))).toBe("invalid_argument");
    expect(await h.manager.batchGet([id])).toEqual([undefined]);
  });
});

describe("search, count, update, delete", () => {
  it("pages, sorts and filters", async () => {
    let t = 1_000_000;
    await h.restart({ now: () => (t += 1000) });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await h.manager.create({ agent: h.agent(), title: `c${i}` })).conversation.id);
    // Newest first by default, pages of 2: 2, 2, 1.
    const p1 = await h.manager.search({ pageSize: 2 });
    expect(p1.items.map((c) => c.title)).toEqual(["c4", "c3"]);
    expect(p1.nextPageToken).toBe(ids[2]!.replace(/-/g, ""));
    const p2 = await h.manager.search({ pageSize: 2, pageToken: p1.nextPageToken });
    expect(p2.items.map((c) => c.title)).toEqual(["c2", "c1"]);
    const p3 = await h.manager.search({ pageSize: 2, pageToken: p2.nextPageToken });
    expect(p3.items.map((c) => c.title)).toEqual(["c0"]);
    expect(p3.nextPageToken).toBe("");
    expect((await h.manager.search({ order: "created_at" })).items.map((c) => c.title)).toEqual(["c0", "c1", "c2", "c3", "c4"]);

    // Updating c1 makes it the most recently updated.
    await h.manager.update(ids[1]!, { title: "c1 renamed", tags: { k: "v" } });
    expect((await h.manager.search({ order: "updated_at_desc", pageSize: 1 })).items[0]!.title).toBe("c1 renamed");
    expect((await h.manager.get(ids[1]!)).tags).toEqual({ k: "v" });
    await expect(h.manager.update(ids[1]!, { title: "" })).rejects.toThrow(/1..200/);

    // Status filter and count.
    h.llm.enqueue({ text: "done" });
    await h.manager.sendMessage(ids[0]!, { role: MessageRole.USER, content: [text("hi")], run: true });
    await h.waitForStatus(ids[0]!, ExecutionStatus.FINISHED);
    expect(h.manager.count(ExecutionStatus.FINISHED)).toBe(1);
    expect(h.manager.count(ExecutionStatus.IDLE)).toBe(4);
    expect((await h.manager.search({ status: ExecutionStatus.FINISHED })).items.map((c) => c.id)).toEqual([ids[0]]);
    await expect(h.manager.search({ pageSize: 101 })).rejects.toThrow(/page size/);

    // Batch get keeps order with holes.
    const missing = "00000000-0000-4000-8000-000000000000";
    const batch = await h.manager.batchGet([ids[3]!, missing, ids[0]!]);
    expect(batch.map((c) => c?.title)).toEqual(["c3", undefined, "c0"]);

    // Delete removes it everywhere; its events are gone.
    await h.manager.delete(ids[0]!);
    expect(h.manager.count()).toBe(4);
    expect(await codeOf(h.manager.get(ids[0]!))).toBe("not_found");
    expect(await codeOf(h.store.events.head(ids[0]!))).toBe("not_found");
  });

  it("delete stops a running agent", async () => {
    h.llm.enqueue({ delayMs: Infinity, then: { text: "never" } });
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.llm.waitForRequests(1);
    await h.manager.delete(id);
    expect(h.manager.has(id)).toBe(false);
  });
});

describe("side calls", () => {
  it("autotitles from the first message; GenerateTitle asks the LLM and falls back", async () => {
    h.llm.enqueue({ text: "ok" });
    const id = await h.create({ initialMessage: userMessage("Please refactor the parser module so that it streams\nsecond line") });
    await h.waitForStatus(id, ExecutionStatus.FINISHED);
    expect((await h.manager.get(id)).title).toBe(fallbackTitle("Please refactor the parser module so that it streams"));
    expect(fallbackTitle("x".repeat(60))).toBe(`${"x".repeat(47)}...`);

    h.llm.enqueue((req) => {
      expect(req.body.messages[1].content).toMatch(/refactor the parser/);
      return { text: '"Streaming parser refactor."' };
    });
    expect(await h.manager.generateTitle(id)).toBe("Streaming parser refactor");
    h.llm.enqueue({ status: 400 });
    expect(await h.manager.generateTitle(id, 20)).toBe("Please refactor t...");
    expect((await h.manager.get(id)).title).toBe("Please refactor t...");
    const empty = await h.create();
    expect(await codeOf(h.manager.generateTitle(empty))).toBe("failed_precondition");
  });

  it("ask_agent answers from the context without adding events", async () => {
    h.llm.enqueue({ text: "The answer is 42." });
    const id = await h.create({ initialMessage: userMessage("What is six times seven?") });
    await h.waitForStatus(id, ExecutionStatus.FINISHED);
    await (await h.manager.live(id)).settled();
    const before = (await h.events(id)).length;
    h.llm.enqueue((req) => {
      expect(JSON.stringify(req.body.messages)).toContain("The answer is 42.");
      expect(req.body.messages.at(-1).content).toContain("Did you use a calculator?");
      expect(req.body.tool_choice).toBe("none");
      return { text: "No." };
    });
    expect(await h.manager.askAgent(id, "Did you use a calculator?")).toBe("No.");
    expect((await h.events(id)).length).toBe(before);
    await expect(h.manager.askAgent(id, " ")).rejects.toThrow(/empty/);
    h.llm.enqueue({ status: 401 });
    expect(await codeOf(h.manager.askAgent(id, "again?"))).toBe("unavailable");
  });

  it("streams token deltas as transient events when the LLM streams", async () => {
    const deltas: Event[] = [];
    h.log.subscribe((_id, e) => {
      if (e.payload.case === "streamingDeltaEvent") deltas.push(e);
    });
    h.llm.enqueue({ text: "streamed answer text", chunkSize: 4 });
    const id = await h.create({ agent: h.agent(["terminal"], { llm: { model: "openai/scripted", baseUrl: h.llm.baseUrl, stream: true } }), initialMessage: userMessage("hi") });
    await h.waitForStatus(id, ExecutionStatus.FINISHED);
    expect(deltas.length).toBeGreaterThan(3);
    expect(deltas.map((d) => (d.payload.case === "streamingDeltaEvent" ? d.payload.value.content ?? "" : "")).join("")).toBe("streamed answer text");
    expect(deltas.every((d) => d.seq === 0n)).toBe(true);
    expect(await h.manager.agentFinalResponse(id)).toBe("streamed answer text");
  });

  it("UpdateConversationSecrets reaches the running terminal", async () => {
    const id = await h.create();
    await h.manager.updateSecrets(id, { LATE_TOKEN: create(SecretSourceSchema, { source: { case: "staticSecret", value: { value: "late-value-123" } } }) });
    h.llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "echo $LATE_TOKEN" } }] }, (req) => {
      expect(req.body.messages.at(-1).content).toContain("<secret-hidden>");
      return { text: "ok" };
    });
    await h.manager.sendMessage(id, { role: MessageRole.USER, content: [text("show it")], run: true });
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    h.llm.assertDone();
    expect((await h.manager.get(id)).secretNames).toEqual(["LATE_TOKEN"]);
  });
});

describe("change notifications", () => {
  it("are sent on create, update, pause and delete (status deleting)", async () => {
    const seen: { id: string; status: string; title: unknown }[] = [];
    await h.restart({
      onConversationChanged: (c) => {
        const o = c as { id: string; execution_status: string; title: unknown };
        seen.push({ id: o.id, status: o.execution_status, title: o.title });
      },
    });
    const id = await h.create();
    await h.manager.update(id, { title: "renamed" });
    await h.manager.pause(id);
    await h.manager.delete(id);
    expect(seen).toEqual([
      { id, status: "idle", title: null },
      { id, status: "idle", title: "renamed" },
      { id, status: "paused", title: "renamed" },
      { id, status: "deleting", title: "renamed" },
    ]);
  });
});

describe("ids", () => {
  it("accepts dashed and hex UUIDs", () => {
    expect(normalizeConversationId("5B9C8F0E2F4E4C539A0E2B1F4F6D2C11")).toBe("5b9c8f0e-2f4e-4c53-9a0e-2b1f4f6d2c11");
    expect(() => normalizeConversationId("5b9c8f0e")).toThrow(AgentdError);
  });
});
