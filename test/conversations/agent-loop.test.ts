// The agent loop through the conversation engine (real LevelDB, real tools, scripted LLM).
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExecutionStatus, startHarness, userMessage, type Harness } from "./harness.js";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe("agent loop", () => {
  it("runs a full task: terminal, file_editor, apply_patch, finish", async () => {
    const wd = path.join(h.workspace, "proj");
    const file = path.join(wd, "hello.txt");
    h.llm.enqueue(
      { text: "Let me look.", toolCalls: [{ name: "terminal", arguments: { command: "echo agent-was-here", security_risk: "LOW" } }] },
      (req) => {
        const last = req.body.messages.at(-1);
        if (last.role !== "tool" || !String(last.content).includes("agent-was-here")) throw new Error(`unexpected last message ${JSON.stringify(last)}`);
        return { toolCalls: [{ name: "file_editor", arguments: { command: "create", path: file, file_text: "hello\nworld\n" } }] };
      },
      { toolCalls: [{ name: "apply_patch", arguments: { patch: "*** Begin Patch\n*** Update File: hello.txt\n@@\n hello\n-world\n+agentd\n*** End Patch" } }] },
      { toolCalls: [{ name: "finish", arguments: { message: "All done." } }] },
    );
    const id = await h.create({
      agent: h.agent(["terminal", "file_editor", "apply_patch"]),
      workspace: { $typeName: "agentd.v1.LocalWorkspace", workingDir: "proj" },
      initialMessage: userMessage("Do the thing"),
    });
    expect(h.manager.status(id)).toBe(ExecutionStatus.RUNNING);
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    h.llm.assertDone();
    expect(h.manager.status(id)).toBe(ExecutionStatus.FINISHED);
    expect(await readFile(file, "utf8")).toBe("hello\nagentd\n");
    expect(await h.manager.agentFinalResponse(id)).toBe("All done.");

    const kinds = (await h.kinds(id)).filter((k) => k !== "ConversationStateUpdateEvent");
    expect(kinds).toEqual([
      "MessageEvent",
      "SystemPromptEvent",
      "ActionEvent",
      "ObservationEvent",
      "ActionEvent",
      "ObservationEvent",
      "ActionEvent",
      "ObservationEvent",
      "ActionEvent",
      "ObservationEvent",
    ]);
    const events = await h.events(id);
    const seqs = events.map((e) => Number(e.seq));
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    const obs = events.filter((e) => e.payload.case === "observationEvent");
    expect(obs[0]!.payload.value).toMatchObject({ toolName: "terminal" });
    const first = obs[0]!.payload.case === "observationEvent" ? obs[0]!.payload.value.observation : undefined;
    expect(first?.observation.case).toBe("terminal");
    // The system prompt leads the LLM's messages and the tools are offered.
    expect(h.llm.requests[0].messages[0].role).toBe("system");
    expect(h.llm.requests[0].tools.map((t: { function: { name: string } }) => t.function.name)).toEqual(
      expect.arrayContaining(["terminal", "file_editor", "apply_patch", "think", "finish"]),
    );
    const conv = await h.manager.get(id);
    expect(conv.stats?.usageToMetrics.default?.completionCount).toBe(4n);
    expect(conv.agent?.llm?.apiKey).toBe("**********");
  });

  it("a plain text reply finishes, an empty reply is nudged", async () => {
    h.llm.enqueue({ text: "" }, (req) => {
      expect(req.body.messages.at(-1).content).toMatch(/did not include a function call/);
      return { text: "Hi there" };
    });
    const id = await h.create({ initialMessage: userMessage("hello") });
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    h.llm.assertDone();
    expect(await h.manager.agentFinalResponse(id)).toBe("Hi there");
  });

  it("an unknown tool or malformed arguments give an AgentErrorEvent the model sees", async () => {
    h.llm.enqueue(
      { toolCalls: [{ name: "no_such_tool", arguments: {} }] },
      (req) => {
        const last = req.body.messages.at(-1);
        expect(last.role).toBe("tool");
        expect(last.content).toMatch(/does not exist/);
        return { toolCalls: [{ name: "terminal", arguments: "{not json" }] };
      },
      (req) => {
        expect(req.body.messages.at(-1).content).toMatch(/not valid JSON/);
        return { text: "giving up" };
      },
    );
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    h.llm.assertDone();
    const kinds = await h.kinds(id);
    expect(kinds.filter((k) => k === "AgentErrorEvent")).toHaveLength(2);
  });
});
