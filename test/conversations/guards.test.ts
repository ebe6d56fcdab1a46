// Run control and guards of the agent loop: pause, interrupt, max_iterations, stuck detection,
// confirmation, condensation, LLM retries and failures (real LevelDB, real tools, scripted LLM).
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfirmationPolicySchema, SecurityAnalyzerSchema } from "../../gen/agentd/v1/conversation_pb.js";
import { SecurityRisk } from "../../gen/agentd/v1/message_pb.js";
import { AgentdError } from "../../src/errors.js";
import { ExecutionStatus, startHarness, userMessage, type Harness } from "./harness.js";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

const echo = (s: string) => ({ toolCalls: [{ name: "terminal", arguments: { command: `echo ${s}` } }] });
const think = (s: string) => ({ toolCalls: [{ name: "think", arguments: { thought: s } }] });

describe("run control", () => {
  it("pause takes effect between steps; run again completes", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    h.llm.enqueue(async () => {
      await gate;
      return think("step one");
    });
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.llm.waitForRequests(1);
    await h.manager.pause(id);
    expect(h.manager.status(id)).toBe(ExecutionStatus.PAUSED);
    release();
    // The in-flight step completes (its observation is stored), then the loop stops.
    await (await h.manager.live(id)).settled();
    expect(h.manager.status(id)).toBe(ExecutionStatus.PAUSED);
    expect((await h.kinds(id)).filter((k) => k === "ObservationEvent")).toHaveLength(1);
    expect(h.llm.requests).toHaveLength(1);

    h.llm.enqueue({ toolCalls: [{ name: "finish", arguments: { message: "resumed and done" } }] });
    await h.manager.run(id);
    expect(h.manager.status(id)).toBe(ExecutionStatus.RUNNING);
    await h.waitForStatus(id, ExecutionStatus.FINISHED);
    expect(await h.manager.agentFinalResponse(id)).toBe("resumed and done");
    expect(await h.kinds(id)).toContain("PauseEvent");
  });

  it("run while running is CONVERSATION_ALREADY_RUNNING", async () => {
    h.llm.enqueue({ delayMs: Infinity, then: { text: "x" } });
    const id = await h.create({ initialMessage: userMessage("go") });
    const err = await h.manager.run(id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentdError);
    expect((err as AgentdError).code).toBe("failed_precondition");
    expect((err as AgentdError).reason).toBe("CONVERSATION_ALREADY_RUNNING");
    await h.manager.interrupt(id);
  });

  it("interrupt cancels a slow LLM call promptly", async () => {
    h.llm.enqueue({ delayMs: 60_000, then: { text: "too late" } });
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.llm.waitForRequests(1);
    const t = performance.now();
    await h.manager.interrupt(id);
    expect(performance.now() - t).toBeLessThan(1000);
    expect(h.manager.status(id)).toBe(ExecutionStatus.PAUSED);
    const kinds = await h.kinds(id);
    expect(kinds).toContain("InterruptEvent");
    expect(kinds).not.toContain("ConversationErrorEvent");
  });

  it("interrupt during a long tool call answers the orphaned action", async () => {
    h.llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "sleep 30", timeout: 60 } }] });
    const id = await h.create({ initialMessage: userMessage("go") });
    // Wait for the ActionEvent to be stored (the tool is then running).
    await new Promise<void>((resolve) => {
      const off = h.log.subscribe((cid, e) => {
        if (cid === id && e.payload.case === "actionEvent") {
          off();
          resolve();
        }
      });
    });
    const t = performance.now();
    await h.manager.interrupt(id);
    expect(performance.now() - t).toBeLessThan(4000);
    expect(h.manager.status(id)).toBe(ExecutionStatus.PAUSED);
    const kinds = await h.kinds(id);
    expect(kinds.includes("ObservationEvent") || kinds.includes("AgentErrorEvent")).toBe(true);
  });
});

describe("guards", () => {
  it("max_iterations ends in error with MaxIterationsReached", async () => {
    h.llm.enqueue(echo("1"), echo("2"), echo("3"));
    const id = await h.create({ maxIterations: 3, stuckDetection: false, initialMessage: userMessage("loop") });
    await h.waitForStatus(id, ExecutionStatus.ERROR, ExecutionStatus.FINISHED);
    expect(h.manager.status(id)).toBe(ExecutionStatus.ERROR);
    const events = await h.events(id);
    const err = events.find((e) => e.payload.case === "conversationErrorEvent");
    expect(err?.payload.value).toMatchObject({ code: "MaxIterationsReached", detail: "Agent reached maximum iterations limit (3)." });
    h.llm.assertDone();
  });

  it("stuck: the same action and observation four times", async () => {
    h.llm.enqueue(echo("same"), echo("same"), echo("same"), echo("same"));
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.waitForStatus(id, ExecutionStatus.STUCK, ExecutionStatus.ERROR, ExecutionStatus.FINISHED);
    expect(h.manager.status(id)).toBe(ExecutionStatus.STUCK);
    h.llm.assertDone();
  });

  it("stuck: the same failing call, nudged once at three, stuck after", async () => {
    const bad = { toolCalls: [{ name: "terminal", arguments: { command: "x", is_input: true, reset: true } }] };
    h.llm.enqueue(bad, bad, bad, (req) => {
      expect(JSON.stringify(req.body.messages)).toMatch(/with the same arguments 3 times in a row/);
      return bad;
    });
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.waitForStatus(id, ExecutionStatus.STUCK, ExecutionStatus.ERROR, ExecutionStatus.FINISHED);
    expect(h.manager.status(id)).toBe(ExecutionStatus.STUCK);
    h.llm.assertDone();
  });

  it("stuck: a monologue of empty replies", async () => {
    h.llm.enqueue({ text: "" }, { text: "" }, { text: "" });
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.waitForStatus(id, ExecutionStatus.STUCK, ExecutionStatus.ERROR, ExecutionStatus.FINISHED);
    expect(h.manager.status(id)).toBe(ExecutionStatus.STUCK);
    h.llm.assertDone();
  });

  it("stuck: an A/B alternating pattern", async () => {
    h.llm.enqueue(echo("a"), echo("b"), echo("a"), echo("b"), echo("a"), echo("b"));
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.waitForStatus(id, ExecutionStatus.STUCK, ExecutionStatus.ERROR, ExecutionStatus.FINISHED);
    expect(h.manager.status(id)).toBe(ExecutionStatus.STUCK);
    h.llm.assertDone();
  });
});

describe("confirmation", () => {
  it("AlwaysConfirm waits; accept runs the pending action", async () => {
    h.llm.enqueue(echo("confirmed-output"), (req) => {
      expect(req.body.messages.at(-1).content).toContain("confirmed-output");
      return { text: "done" };
    });
    const id = await h.create({
      confirmationPolicy: create(ConfirmationPolicySchema, { policy: { case: "alwaysConfirm", value: {} } }),
      initialMessage: userMessage("go"),
    });
    await h.waitForStatus(id, ExecutionStatus.WAITING_FOR_CONFIRMATION, ExecutionStatus.ERROR);
    expect((await h.kinds(id)).filter((k) => k === "ObservationEvent")).toHaveLength(0);
    await h.manager.respondToConfirmation(id, true, "");
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    expect(h.manager.status(id)).toBe(ExecutionStatus.FINISHED);
    h.llm.assertDone();
  });

  it("reject writes a UserRejectObservation per action and goes idle", async () => {
    h.llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "rm -rf /tmp/x", security_risk: "HIGH" } }, { name: "terminal", arguments: { command: "ls", security_risk: "LOW" } }] });
    const id = await h.create({
      confirmationPolicy: create(ConfirmationPolicySchema, { policy: { case: "confirmRisky", value: { threshold: SecurityRisk.HIGH } } }),
      securityAnalyzer: create(SecurityAnalyzerSchema, { analyzer: { case: "llm", value: {} } }),
      initialMessage: userMessage("go"),
    });
    await h.waitForStatus(id, ExecutionStatus.WAITING_FOR_CONFIRMATION, ExecutionStatus.ERROR, ExecutionStatus.FINISHED);
    expect(h.manager.status(id)).toBe(ExecutionStatus.WAITING_FOR_CONFIRMATION);
    await h.manager.respondToConfirmation(id, false, "too dangerous");
    expect(h.manager.status(id)).toBe(ExecutionStatus.IDLE);
    const rejects = (await h.events(id)).filter((e) => e.payload.case === "userRejectObservation");
    expect(rejects).toHaveLength(2);
    expect(rejects[0]!.payload.value).toMatchObject({ rejectionReason: "too dangerous", toolName: "terminal" });
    const err = await h.manager.respondToConfirmation(id, true, "").catch((e: unknown) => e);
    expect((err as AgentdError).code).toBe("failed_precondition");
  });

  it("ConfirmRisky with the LLM analyzer lets a LOW-risk call through", async () => {
    h.llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "echo safe", security_risk: "LOW" } }] }, { text: "ok" });
    const id = await h.create({
      confirmationPolicy: create(ConfirmationPolicySchema, { policy: { case: "confirmRisky", value: { threshold: SecurityRisk.HIGH } } }),
      securityAnalyzer: create(SecurityAnalyzerSchema, { analyzer: { case: "llm", value: {} } }),
      initialMessage: userMessage("go"),
    });
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.WAITING_FOR_CONFIRMATION, ExecutionStatus.ERROR);
    expect(h.manager.status(id)).toBe(ExecutionStatus.FINISHED);
  });
});

describe("condenser", () => {
  it("condenses past max_size and the next request is smaller", async () => {
    const sizes: number[] = [];
    const step = (s: string) => (req: { body: { messages: unknown[] } }) => {
      sizes.push(req.body.messages.length);
      return think(s);
    };
    h.llm.enqueue(step("1"), step("2"), step("3"), step("4"));
    // The fifth request is the summarizer's (max_size 8 exceeded: 1 system + 1 user + 4×2 = 10 items).
    h.llm.enqueue((req) => {
      expect(req.body.messages[0].content).toMatch(/memory of a software engineering agent/);
      expect(req.body.tools).toBeUndefined();
      return { text: "SUMMARY: thought four times" };
    });
    h.llm.enqueue((req) => {
      sizes.push(req.body.messages.length);
      expect(JSON.stringify(req.body.messages)).toContain("SUMMARY: thought four times");
      return { text: "done" };
    });
    const id = await h.create({
      stuckDetection: false,
      agent: h.agent(["terminal"], { condenser: { condenser: { case: "llmSummarizing", value: { maxSize: 8, keepFirst: 2 } } } }),
      initialMessage: userMessage("go"),
    });
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    h.llm.assertDone();
    expect(sizes.at(-1)!).toBeLessThan(sizes.at(-2)!);
    const cond = (await h.events(id)).find((e) => e.payload.case === "condensation");
    expect(cond?.payload.case === "condensation" && cond.payload.value.forgottenEventIds.length).toBeGreaterThan(0);
    const conv = await h.manager.get(id);
    expect(conv.stats?.usageToMetrics.condenser?.completionCount).toBe(1n);
  });

  it("condense on request summarizes at once", async () => {
    h.llm.enqueue(think("a"), think("b"), { text: "first answer" });
    const id = await h.create({
      stuckDetection: false,
      agent: h.agent(["terminal"], { condenser: { condenser: { case: "llmSummarizing", value: { maxSize: 100, keepFirst: 1 } } } }),
      initialMessage: userMessage("go"),
    });
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    h.llm.enqueue({ text: "summary on request" });
    await h.manager.condense(id);
    const kinds = await h.kinds(id);
    expect(kinds.slice(-3)).toEqual(["CondensationRequest", "Condensation", "ConversationStateUpdateEvent"]);
    const view = (await h.events(id)).filter((e) => e.payload.case === "condensation");
    expect(view[0]!.payload.case === "condensation" && view[0]!.payload.value.summary).toBe("summary on request");
    h.llm.assertDone();
  });
});

describe("LLM failures", () => {
  it("429 then success is retried", async () => {
    h.llm.enqueue({ status: 429, retryAfter: 0 }, { text: "after retry" });
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    expect(h.manager.status(id)).toBe(ExecutionStatus.FINISHED);
    expect(h.llm.requests).toHaveLength(2);
  });

  it("500 forever ends in error with a ConversationErrorEvent", async () => {
    h.llm.enqueue(...Array.from({ length: 6 }, () => ({ status: 500 })));
    const id = await h.create({ initialMessage: userMessage("go") });
    await h.waitForStatus(id, ExecutionStatus.ERROR, ExecutionStatus.FINISHED);
    expect(h.manager.status(id)).toBe(ExecutionStatus.ERROR);
    const err = (await h.events(id)).find((e) => e.payload.case === "conversationErrorEvent");
    expect(err?.payload.value).toMatchObject({ code: "InternalServerError" });
    expect(err?.payload.case === "conversationErrorEvent" && err.payload.value.classification?.kind).toBe("transient");
    expect(h.llm.requests).toHaveLength(6);
  });
});
