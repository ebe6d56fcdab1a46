/**
 * Bench-only entry (not part of agentd): the real agentd server (AgentdApp, same modules, same
 * durability: fsync per group commit) in a child process, plus one thing the public API does not
 * offer yet — EventLog.append driven over the Node IPC channel by the parent (bench/events.ts), so
 * appends take the domain path the conversation engine and SendMessage use, without an LLM.
 *
 * argv: <dataDir> <workspace>. IPC, parent → child:
 *   {type: "append", count}  → `count` separate append() calls, issued at once (they group-commit);
 *                              each event is fanOutEvent() (bench/lib.ts), an agent message
 *                              carrying the wall-clock time of the call.
 *   {type: "stop"}           → graceful stop, exit 0.
 * child → parent: {type: "ready", url, conversationId}, {type: "appended", ok, failed} per batch.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { AgentSchema } from "../gen/agentd/v1/conversation_pb.js";
import { loadConfig } from "../src/config.js";
import { AgentdApp } from "../src/server/app.js";
import { fanOutEvent } from "./lib.js";

const [dataDir, workspace] = process.argv.slice(2);
if (dataDir === undefined || workspace === undefined || process.send === undefined) {
  console.error("usage: fork bench/events-server.ts <dataDir> <workspace> (with an IPC channel)");
  process.exit(2);
}
const send = (m: unknown): void => void process.send!(m);

const app = new AgentdApp({ ...loadConfig(new Map(), {}), host: "127.0.0.1", port: 0, dataDir, workspaceBase: workspace, logLevel: "warn" });
const running = await app.start();
const domain = app.modules?.domain;
if (domain === undefined) throw new Error("agentd exposes no domain");
// A conversation the conversation engine knows (WatchEvents' full_state comes from it); no
// initial message, so the log starts empty.
const conversationId = randomUUID();
await domain.conversations.create({ conversationId, agent: create(AgentSchema, { llm: { model: "openai/bench-model", apiKey: "sk-unused" } }) });

process.on("message", (m: { type: string; count?: number }) => {
  if (m.type === "append") {
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < (m.count ?? 1); i++) {
      calls.push(domain.events.append(conversationId, [fanOutEvent()]));
    }
    void Promise.allSettled(calls).then((r) => send({ type: "appended", ok: r.filter((x) => x.status === "fulfilled").length, failed: r.filter((x) => x.status === "rejected").length }));
  } else if (m.type === "stop") {
    void running.stop().then(() => process.exit(0));
  }
});
send({ type: "ready", url: running.url, conversationId });
