// SIGKILL during a run, then restart: the real CLI as a child process on a temp data dir.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { ExecutionStatus } from "../../gen/agentd/v1/conversation_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../gen/agentd/v1/message_pb.js";
import { client } from "../helpers/clients.js";
import { startScriptedLlm, type ScriptedLlm } from "../helpers/scripted-llm.js";

const CLI = path.resolve(import.meta.dirname, "../../src/cli.ts");

let child: ChildProcess | undefined;
let llm: ScriptedLlm | undefined;
let root: string | undefined;
afterEach(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  }
  await llm?.close();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

async function startAgentd(workspace: string, dataDir: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ["--import", "tsx", CLI, "--port", "0", "--workspace", workspace, "--data-dir", dataDir], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "silent" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.once("line", (line) => resolve((JSON.parse(line) as { listening: string }).listening));
    proc.once("exit", (code) => reject(new Error(`agentd exited with ${code}`)));
  });
  return { proc, url };
}

async function allEvents(url: string, conversationId: string): Promise<Event[]> {
  const out: Event[] = [];
  let pageToken = "";
  do {
    const page = await client(EventService, url, "grpc").searchEvents({ conversationId, pageSize: 100, pageToken });
    out.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out;
}

describe("crash recovery", () => {
  it("SIGKILL during a run: after restart the conversation is error with a restart event, history intact, and runs again", async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "agentd-crash-"));
    const workspace = path.join(root, "ws");
    const dataDir = path.join(root, "data");
    llm = await startScriptedLlm();
    llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "echo before-the-crash" } }] }, { delayMs: Infinity, then: { text: "never" } });

    const first = await startAgentd(workspace, dataDir);
    child = first.proc;
    const conversations = client(ConversationService, first.url, "grpc");
    const { conversation } = await conversations.createConversation({
      agent: { llm: { model: "openai/scripted", baseUrl: llm.baseUrl, apiKey: "sk-x" }, tools: [{ name: "terminal" }] },
      initialMessage: { role: MessageRole.USER, content: [{ content: { case: "text", value: { text: "go" } } }] },
    });
    const id = conversation!.id;
    await llm.waitForRequests(2); // the second LLM call hangs: the agent is mid-run
    // The last observation of a step is written while the next LLM call starts (the loop's
    // appendDeferred): wait for it to be stored rather than assume it already is.
    const watching = new AbortController();
    for await (const item of client(EventService, first.url, "grpc").watchEvents({ conversationId: id }, { signal: watching.signal })) {
      if (item.item.case === "event" && item.item.value.payload.case === "observationEvent") break;
    }
    watching.abort();
    const before = await allEvents(first.url, id);
    expect(before.some((e) => e.payload.case === "observationEvent")).toBe(true);

    const exited = new Promise((r) => first.proc.once("exit", r));
    first.proc.kill("SIGKILL");
    await exited;

    const second = await startAgentd(workspace, dataDir);
    child = second.proc;
    const c2 = client(ConversationService, second.url, "grpc");
    const got = await c2.getConversation({ conversationId: id });
    expect(got.conversation?.executionStatus).toBe(ExecutionStatus.ERROR);
    const after = await allEvents(second.url, id);
    expect(after.slice(0, before.length).map((e) => e.id)).toEqual(before.map((e) => e.id));
    expect(after.find((e) => e.payload.case === "conversationErrorEvent")?.payload.value).toMatchObject({ code: "ServerRestarted" });
    expect((await c2.searchConversations({})).items.map((c) => c.id)).toContain(id);

    llm.enqueue({ text: "running again" });
    const ev = client(EventService, second.url, "grpc");
    const sent = await ev.sendMessage({ conversationId: id, content: [{ content: { case: "text", value: { text: "continue" } } }], run: true });
    // Watch until the run that message started has finished.
    const ac = new AbortController();
    for await (const item of ev.watchEvents({ conversationId: id, afterSeq: sent.seq }, { signal: ac.signal })) {
      const e = item.item.case === "event" ? item.item.value : undefined;
      const v = e?.payload.case === "conversationStateUpdateEvent" ? e.payload.value : undefined;
      if (v?.key === "execution_status" && v.value?.kind.case === "stringValue" && v.value.kind.value !== "running") break;
    }
    ac.abort();
    expect((await c2.getConversation({ conversationId: id })).conversation?.executionStatus).toBe(ExecutionStatus.FINISHED);
    expect((await c2.getAgentFinalResponse({ conversationId: id })).response).toBe("running again");
  });
});
