// The conversation acceptance cases on the real server: gRPC clients (and REST through the
// gateway) against startTestServer(), the agent talking to the scripted LLM.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { ExecutionStatus } from "../../gen/agentd/v1/conversation_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../gen/agentd/v1/message_pb.js";
import { ServerService } from "../../gen/agentd/v1/server_service_pb.js";
import { eventKind } from "../../src/domain/agent/events.js";
import { client } from "../helpers/clients.js";
import { connectWs } from "../helpers/ws.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { startScriptedLlm, type ScriptedLlm } from "../helpers/scripted-llm.js";

let server: TestServer;
let llm: ScriptedLlm;
beforeAll(async () => {
  llm = await startScriptedLlm();
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
  await llm?.close();
});

const conversations = () => client(ConversationService, server.url, "grpc");
const events = () => client(EventService, server.url, "grpc");
const agent = (tools: string[] = ["terminal"]) => ({ llm: { model: "openai/scripted", baseUrl: llm.baseUrl, apiKey: "sk-test" }, tools: tools.map((name) => ({ name })) });
const message = (t: string) => ({ role: MessageRole.USER, content: [{ content: { case: "text" as const, value: { text: t } } }] });

async function grpcCode(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** Collects a conversation's events over WatchEvents until `until` says stop. */
async function watch(conversationId: string, until: (e: Event) => boolean): Promise<Event[]> {
  const out: Event[] = [];
  const ac = new AbortController();
  try {
    for await (const item of events().watchEvents({ conversationId, afterSeq: 0n }, { signal: ac.signal })) {
      if (item.item.case !== "event") continue;
      out.push(item.item.value);
      if (until(item.item.value)) break;
    }
  } finally {
    ac.abort();
  }
  return out;
}

const isStatus = (...names: string[]) => (e: Event) =>
  e.payload.case === "conversationStateUpdateEvent" &&
  e.payload.value.key === "execution_status" &&
  e.payload.value.value?.kind.case === "stringValue" &&
  names.includes(e.payload.value.value.kind.value);

describe("a full task over gRPC", () => {
  it("runs terminal, file_editor, apply_patch and finish, observed through WatchEvents", async () => {
    const file = path.join(server.workspace, "task", "notes.txt");
    llm.enqueue(
      { toolCalls: [{ name: "terminal", arguments: { command: "echo from-the-agent" } }] },
      { toolCalls: [{ name: "file_editor", arguments: { command: "create", path: file, file_text: "one\ntwo\n" } }] },
      { toolCalls: [{ name: "apply_patch", arguments: { patch: "*** Begin Patch\n*** Update File: notes.txt\n@@\n one\n-two\n+three\n*** End Patch" } }] },
      { toolCalls: [{ name: "finish", arguments: { message: "Wrote notes.txt" } }] },
    );
    const res = await conversations().createConversation({
      agent: agent(["terminal", "file_editor", "apply_patch"]),
      workspace: { workingDir: "task" },
      initialMessage: message("write the notes"),
    });
    expect(res.created).toBe(true);
    expect(res.conversation?.executionStatus).toBe(ExecutionStatus.RUNNING);
    expect(res.conversation?.agent?.llm?.apiKey).toBe("**********");
    const id = res.conversation!.id;

    const seen = await watch(id, isStatus("finished", "error", "stuck"));
    const stored = seen.filter((e) => e.seq > 0n);
    expect(stored.map((e) => Number(e.seq))).toEqual(stored.map((_, i) => i + 1));
    const kinds = stored.map(eventKind).filter((k) => k !== "ConversationStateUpdateEvent");
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
    expect(isStatus("finished")(seen.at(-1)!)).toBe(true);
    const terminalObs = stored.find((e) => e.payload.case === "observationEvent");
    expect(JSON.stringify(terminalObs?.payload.value)).toContain("from-the-agent");
    expect(await readFile(file, "utf8")).toBe("one\nthree\n");
    expect((await conversations().getAgentFinalResponse({ conversationId: id })).response).toBe("Wrote notes.txt");
    const got = await conversations().getConversation({ conversationId: id });
    expect(got.conversation?.executionStatus).toBe(ExecutionStatus.FINISHED);
    expect(got.conversation?.lastSeq).toBe(BigInt(stored.length));
    llm.assertDone();
  });

  it("SendMessage with run continues the conversation", async () => {
    llm.enqueue({ text: "first" });
    const { conversation } = await conversations().createConversation({ agent: agent(), initialMessage: message("hi") });
    const id = conversation!.id;
    await watch(id, isStatus("finished"));
    llm.enqueue({ text: "second" });
    const sent = await events().sendMessage({ conversationId: id, role: MessageRole.USER, content: message("more").content, run: true });
    expect(sent.success).toBe(true);
    expect(sent.seq).toBeGreaterThan(0n);
    await watch(id, (e) => e.seq > sent.seq && isStatus("finished")(e));
    expect((await conversations().getAgentFinalResponse({ conversationId: id })).response).toBe("second");
  });
});

describe("the REST/WebSocket surface", () => {
  it("shows the same run on /sockets/events and in REST event search", async () => {
    llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "echo over-rest" } }] }, { toolCalls: [{ name: "finish", arguments: { message: "rest done" } }] });
    const created = await fetch(`${server.url}/api/conversations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        agent: { kind: "Agent", llm: { model: "openai/scripted", base_url: llm.baseUrl, api_key: "sk-rest" }, tools: [{ name: "terminal" }] },
        workspace: { kind: "LocalWorkspace", working_dir: "rest" },
        initial_message: { role: "user", content: [{ type: "text", text: "go" }] },
      }),
    });
    expect(created.status).toBe(201);
    const info = (await created.json()) as { id: string; agent: { llm: { api_key: string } } };
    expect(info.agent.llm.api_key).toBe("**********");
    const ws = connectWs(`${server.url.replace(/^http/, "ws")}/sockets/events/${info.id}?resend_mode=all`);
    try {
      const frames = await ws.until((f) => f.kind === "ConversationStateUpdateEvent" && f.key === "execution_status" && f.value === "finished", 10_000);
      const kinds = frames.map((f) => f.kind).filter((k) => k !== "ConversationStateUpdateEvent");
      expect(kinds).toEqual(["MessageEvent", "SystemPromptEvent", "ActionEvent", "ObservationEvent", "ActionEvent", "ObservationEvent"]);
      const action = frames.find((f) => f.kind === "ActionEvent") as { action: { kind: string; command: string } };
      expect(action.action).toMatchObject({ kind: "TerminalAction", command: "echo over-rest" });
    } finally {
      await ws.close();
    }
    const search = await fetch(`${server.url}/api/conversations/${info.id}/events/search?kind=ObservationEvent`);
    const page = (await search.json()) as { items: { observation: { kind: string } }[] };
    expect(page.items.map((i) => i.observation.kind)).toEqual(["TerminalObservation", "FinishObservation"]);
    const final = await fetch(`${server.url}/api/conversations/${info.id}/agent_final_response`);
    expect(await final.json()).toEqual({ response: "rest done" });
    const tools = await fetch(`${server.url}/api/tools/`);
    expect(await tools.json()).toEqual(expect.arrayContaining(["terminal", "finish"]));
  });
});

describe("bad input", () => {
  it("gets clear codes, never Internal", async () => {
    const c = conversations();
    const unknown = "00000000-0000-4000-8000-000000000000";
    expect(await grpcCode(c.getConversation({ conversationId: unknown }))).toBe(Code.NotFound);
    expect(await grpcCode(c.runConversation({ conversationId: unknown }))).toBe(Code.NotFound);
    expect(await grpcCode(c.getConversation({ conversationId: "nope" }))).toBe(Code.InvalidArgument);
    expect(await grpcCode(c.createConversation({ agent: agent(["laser_cannon"]) }))).toBe(Code.InvalidArgument);
    expect(await grpcCode(c.createConversation({ agent: { llm: { model: "" } } }))).toBe(Code.InvalidArgument);
    expect(await grpcCode(c.createConversation({}))).toBe(Code.InvalidArgument);
    expect(await grpcCode(c.createConversation({ agent: agent(), workspace: { workingDir: "/etc/agentd" } }))).toBe(Code.PermissionDenied);
    expect(await grpcCode(c.searchConversations({ pageSize: 101 }))).toBe(Code.InvalidArgument);
    expect(await grpcCode(events().sendMessage({ conversationId: unknown, content: message("x").content }))).toBe(Code.NotFound);

    llm.enqueue({ delayMs: Infinity, then: { text: "never" } });
    const requests = llm.requests.length;
    const { conversation } = await c.createConversation({ agent: agent(), initialMessage: message("slow") });
    await llm.waitForRequests(requests + 1); // the agent is in its LLM call
    const err = await c.runConversation({ conversationId: conversation!.id }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.FailedPrecondition);
    expect(err?.message).toMatch(/already running/);
    expect(await grpcCode(events().respondToConfirmation({ conversationId: conversation!.id, accept: true }))).toBe(Code.FailedPrecondition);
    const t = performance.now();
    await c.interruptConversation({ conversationId: conversation!.id });
    expect(performance.now() - t).toBeLessThan(1500);
    expect((await c.getConversation({ conversationId: conversation!.id })).conversation?.executionStatus).toBe(ExecutionStatus.PAUSED);
  });

  it("REST answers 404, 409 and 422 as OpenHands does", async () => {
    const unknown = "00000000-0000-4000-8000-000000000000";
    expect((await fetch(`${server.url}/api/conversations/${unknown}`)).status).toBe(404);
    const bad = await fetch(`${server.url}/api/conversations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent: { kind: "Agent", llm: { model: "openai/x" }, tools: [{ name: "laser_cannon" }] } }),
    });
    expect(bad.status).toBe(422);
    expect(JSON.stringify(await bad.json())).toContain("laser_cannon");

    llm.enqueue({ delayMs: Infinity, then: { text: "never" } });
    const requests = llm.requests.length;
    const created = await fetch(`${server.url}/api/conversations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        agent: { kind: "Agent", llm: { model: "openai/scripted", base_url: llm.baseUrl }, tools: [{ name: "terminal" }] },
        initial_message: { role: "user", content: [{ type: "text", text: "slow" }] },
      }),
    });
    expect(created.status).toBe(201);
    const body = (await created.json()) as { id: string; execution_status: string };
    expect(body.execution_status).toBe("running");
    const again = await fetch(`${server.url}/api/conversations/${body.id}/run`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(again.status).toBe(409);
    await llm.waitForRequests(requests + 1); // the agent is in its LLM call
    await fetch(`${server.url}/api/conversations/${body.id}/interrupt`, { method: "POST", headers: { "content-type": "application/json" } });
  });
});

describe("secrets over the API", () => {
  it("never appear in responses, events or the data directory, while the terminal can use them", async () => {
    const secret = "ghp_S3cretValue_4c9e1a";
    const sealed = await startTestServer({ secretKey: "server-secret-key" });
    let requestBody = "";
    try {
      const c = client(ConversationService, sealed.url, "grpc");
      llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "echo token=$GH_TOKEN" } }] }, (req) => {
        // Checked after the run (a throw here would make the agent retry the call).
        requestBody = JSON.stringify(req.body);
        return { text: `I used ${secret}` };
      });
      const { conversation } = await c.createConversation({
        agent: agent(),
        secrets: { GH_TOKEN: { source: { case: "staticSecret", value: { value: secret } } } },
        initialMessage: message("use the token"),
      });
      const id = conversation!.id;
      const seen: Event[] = [];
      for await (const item of client(EventService, sealed.url, "grpc").watchEvents({ conversationId: id })) {
        if (item.item.case !== "event") continue;
        seen.push(item.item.value);
        if (isStatus("finished", "error")(item.item.value)) break;
      }
      expect(requestBody).toContain("token=<secret-hidden>");
      expect(requestBody).not.toContain(secret);
      const observation = seen.find((e) => e.payload.case === "observationEvent");
      expect(JSON.stringify(observation?.payload.value)).toContain("token=<secret-hidden>");
      const rest = await Promise.all(
        [`/api/conversations/${id}`, `/api/conversations/${id}/events/search`, `/api/conversations/${id}/agent_final_response`, `/api/conversations/search`].map(async (p) => (await fetch(sealed.url + p)).text()),
      );
      for (const body of [...rest, JSON.stringify(seen, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))]) {
        expect(body).not.toContain(secret);
        expect(body).not.toContain("sk-test");
      }
      expect(rest[0]).toContain('"secret_names":["GH_TOKEN"]');
      const files: Buffer[] = [];
      const walk = async (d: string): Promise<void> => {
        const { readdir } = await import("node:fs/promises");
        for (const ent of await readdir(d, { withFileTypes: true })) {
          const p = path.join(d, ent.name);
          if (ent.isDirectory()) await walk(p);
          else files.push(await readFile(p));
        }
      };
      await walk(sealed.dataDir);
      const bytes = Buffer.concat(files);
      expect(bytes.includes(Buffer.from("use the token"))).toBe(true); // plaintext is visible to the scan
      expect(bytes.includes(Buffer.from(secret))).toBe(false);
      expect(bytes.includes(Buffer.from("sk-test"))).toBe(false);
    } finally {
      await sealed.close();
    }
  });
});

describe("tools", () => {
  it("ListTools names the usable tools", async () => {
    const res = await client(ServerService, server.url, "grpc").listTools({});
    expect(res.names).toEqual(expect.arrayContaining(["terminal", "file_editor", "task_tracker", "apply_patch", "think", "finish"]));
  });
});
