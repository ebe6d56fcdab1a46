// A conversation engine on a real LevelDB in a temp dir, with the scripted LLM: for tests of the
// domain without the network surfaces.
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { AgentSchema, ExecutionStatus } from "../../gen/agentd/v1/conversation_pb.js";
import type { Agent } from "../../gen/agentd/v1/conversation_pb.js";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import { ContentSchema, MessageRole } from "../../gen/agentd/v1/message_pb.js";
import type { Content } from "../../gen/agentd/v1/message_pb.js";
import { eventKind } from "../../src/domain/agent/events.js";
import type { SecretCipher } from "../../src/domain/agent/secrets.js";
import { ConversationManager } from "../../src/domain/conversations/conversation-manager.js";
import type { ConversationManagerOptions, CreateConversationInput } from "../../src/domain/conversations/conversation-manager.js";
import { StoreEventLog } from "../../src/domain/conversations/store-event-log.js";
import { STATUS_NAME } from "../../src/domain/conversations/status.js";
import { openStore, type Store } from "../../src/storage/open-store.js";
import { startScriptedLlm, type ScriptedLlm } from "../helpers/scripted-llm.js";

export const FAST_RETRY = { minWaitMs: 5, maxWaitMs: 20, multiplier: 2 };

export function text(t: string): Content {
  return create(ContentSchema, { content: { case: "text", value: { text: t } } });
}

export function userMessage(t: string): { role: MessageRole; content: Content[] } {
  return { role: MessageRole.USER, content: [text(t)] };
}

export interface Harness {
  root: string;
  workspace: string;
  dataDir: string;
  store: Store;
  log: StoreEventLog;
  manager: ConversationManager;
  llm: ScriptedLlm;
  agent(tools?: string[], extra?: MessageInitShape<typeof AgentSchema>): Agent;
  create(input?: Partial<CreateConversationInput>): Promise<string>;
  /** Resolves when the conversation's status becomes one of `statuses` (checked after every event). */
  waitForStatus(id: string, ...statuses: ExecutionStatus[]): Promise<ExecutionStatus>;
  events(id: string): Promise<Event[]>;
  kinds(id: string): Promise<string[]>;
  /** Restarts the manager on the same data (simulates a server restart). */
  restart(opts?: Partial<ConversationManagerOptions>): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(opts: Partial<ConversationManagerOptions> & { cipher?: SecretCipher } = {}): Promise<Harness> {
  const root = await mkdtemp(path.join(os.tmpdir(), "agentd-conv-"));
  const workspace = path.join(root, "workspace");
  const dataDir = path.join(root, "data");
  await mkdir(workspace, { recursive: true });
  const llm = await startScriptedLlm();
  let store = await openStore(dataDir, { sync: false });
  let log = new StoreEventLog(store.events);
  const make = (o: Partial<ConversationManagerOptions>) =>
    new ConversationManager({
      conversations: store.conversations,
      eventStore: store.events,
      events: log,
      workspaceBase: workspace,
      stateRoot: path.join(root, "state"),
      retry: FAST_RETRY,
      terminal: { noChangeTimeoutMs: 3000 },
      ...opts,
      ...o,
    });
  let manager = make({});
  await manager.start();

  const h: Harness = {
    root,
    workspace,
    dataDir,
    get store() {
      return store;
    },
    get log() {
      return log;
    },
    get manager() {
      return manager;
    },
    llm,
    agent: (tools = ["terminal"], extra = {}) =>
      create(AgentSchema, { llm: { model: "openai/scripted", baseUrl: llm.baseUrl, apiKey: "sk-test-key" }, tools: tools.map((name) => ({ name })), ...extra } as MessageInitShape<typeof AgentSchema>),
    async create(input = {}) {
      const res = await manager.create({ agent: h.agent(), ...input });
      return res.conversation.id;
    },
    waitForStatus(id, ...statuses) {
      const names = statuses.map((s) => STATUS_NAME[s]);
      return new Promise((resolve) => {
        const check = (): boolean => {
          const s = manager.status(id);
          if (statuses.includes(s)) {
            resolve(s);
            return true;
          }
          return false;
        };
        if (check()) return;
        const off = log.subscribe((cid, e) => {
          if (cid !== id || e.payload.case !== "conversationStateUpdateEvent" || e.payload.value.key !== "execution_status") return;
          const v = e.payload.value.value?.kind;
          if (v?.case === "stringValue" && names.includes(v.value)) {
            off();
            // The status is set before the event is appended; resolve on the next tick so the
            // record save that follows has a chance to finish too.
            setImmediate(() => resolve(manager.status(id)));
          }
        });
      });
    },
    async events(id) {
      const out: Event[] = [];
      for await (const e of log.read(id)) out.push(e);
      return out;
    },
    async kinds(id) {
      return (await h.events(id)).map(eventKind);
    },
    async restart(o = {}) {
      await manager.close();
      await store.close();
      store = await openStore(dataDir, { sync: false });
      log = new StoreEventLog(store.events);
      manager = make(o);
      await manager.start();
    },
    async close() {
      await manager.close();
      await store.close();
      await llm.close();
      await rm(root, { recursive: true, force: true });
    },
  };
  return h;
}

export { ExecutionStatus };
