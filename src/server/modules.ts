/**
 * Wires the domain (storage, event log, bash, files, conversations) to the RPC handlers and the
 * REST/WebSocket gateway. The single place where parts are constructed and closed.
 */
import path from "node:path";
import type { Duplex } from "node:stream";
import type http from "node:http";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";
import { ServerService } from "../../gen/agentd/v1/server_service_pb.js";
import { BrowserManager, BROWSER_TOOL_SET_NAME, createBrowserTools } from "../domain/agent/browser/index.js";
import { BashManager } from "../domain/bash/index.js";
import { LevelDbBashStore } from "../domain/bash/leveldb-bash-store.js";
import { SecretCipher } from "../domain/agent/secrets.js";
import { ConversationManager } from "../domain/conversations/conversation-manager.js";
import { listUsableTools } from "../domain/conversations/tool-catalog.js";
import { EventLog } from "../domain/events/event-log.js";
import { Webhooks } from "../domain/events/webhooks.js";
import { openStore, type Store } from "../storage/open-store.js";
import { createConversationEventMethods, createConversationService } from "../rpc/conversation-service.js";
import { createEventService } from "../rpc/event-service.js";
import { WorkspaceFiles } from "../domain/files/index.js";
import { createFileService } from "../rpc/file-service.js";
import { createServerService } from "../rpc/server-service.js";
import { createBashService } from "../rpc/bash-service.js";
import { AgentdError } from "../errors.js";
import { createGateway } from "../gateway/gateway.js";
import { registered, type AgentdApp, type RegisteredService } from "./app.js";
import type { AnyRequest, AnyResponse } from "./http-common.js";

export interface Modules {
  services: RegisteredService[];
  /** Receives the router definition and interceptors (the gateway builds its in-process client). */
  attachRoutes?(routes: (router: ConnectRouter) => void, interceptors: Interceptor[]): void;
  /** Serves a non-RPC HTTP request; returns false when the path is not its own. */
  handleHttp?(req: AnyRequest, res: AnyResponse): boolean;
  /** Takes a WebSocket upgrade; returns false when the path is not its own. */
  onUpgrade?(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** The domain parts in-process callers (tests, benchmarks) reach directly; never served. */
  domain?: Domain;
  close(): Promise<void>;
}

/** Parts of the domain built here, for in-process use (see {@link Modules.domain}). */
export interface Domain {
  readonly store: Store;
  readonly events: EventLog;
  readonly webhooks: Webhooks;
  readonly conversations: ConversationManager;
}

export async function buildModules(app: AgentdApp): Promise<Modules> {
  const config = app.config;
  // Storage first: a data directory held by another process stops start-up here, with
  // StoreLockedError's one-line message (printed by the CLI), before anything else is built.
  const store = await openStore(config.dataDir);
  try {
    return await buildOnStore(app, store);
  } catch (err) {
    await store.close();
    throw err;
  }
}

async function buildOnStore(app: AgentdApp, store: Store): Promise<Modules> {
  const config = app.config;
  // The conversation event log (search, count, get, replay-then-live watch) and the webhooks
  // that receive every committed event. Appends never wait for webhooks (they only queue).
  const events = new EventLog(store.events);
  const webhooks = new Webhooks({
    webhooks: config.webhooks,
    sessionApiKey: config.sessionApiKeys[0],
    log: (level, msg, fields) => app.logger[level](msg, fields),
  });
  if (webhooks.enabled) events.onAppend((conversationId, appended) => webhooks.events(conversationId, appended));
  // Conversations and the agent loop (src/domain/conversations). Secrets are sealed with a key
  // derived from OH_SECRET_KEY, or kept in memory only without it. Per-conversation tool state
  // (TASKS.json) lives under <data dir>/conversations/<id>. One Chromium for every conversation's
  // browser tools, launched on first use.
  const cipher = config.secretKey === undefined ? undefined : await SecretCipher.fromSecretKey(config.secretKey);
  if (cipher === undefined) app.logger.info("OH_SECRET_KEY is not set: conversation secrets and LLM keys are kept in memory only");
  const browser = new BrowserManager({ chromiumPath: config.chromiumPath, workspaceRoots: [config.workspaceBase] });
  const usableTools = await listUsableTools({ chromium: { chromiumPath: config.chromiumPath } });
  const conversations = new ConversationManager({
    conversations: store.conversations,
    eventStore: store.events,
    events,
    workspaceBase: config.workspaceBase,
    stateRoot: path.join(config.dataDir, "conversations"),
    cipher,
    llmDefaults: { model: config.llmModel, apiKey: config.llmApiKey, baseUrl: config.llmBaseUrl },
    idleTtlMs: config.conversationIdleTtlSeconds * 1000,
    // The agent's terminal inherits the same environment as bash commands: the server's, minus its
    // secrets. Foreground timeouts are capped at 90 % of the sandbox idle timeout, as in OpenHands.
    terminal: {
      baseEnv: config.childEnv,
      maxTimeoutSeconds: config.runtimeIdleTimeoutSeconds === undefined ? undefined : Math.floor(config.runtimeIdleTimeoutSeconds * 0.9),
    },
    externalToolSets: usableTools.includes(BROWSER_TOOL_SET_NAME) ? { [BROWSER_TOOL_SET_NAME]: () => createBrowserTools(browser) } : {},
    onDeleted: async (id) => {
      events.endWatchers(id);
      await browser.closeConversation(id);
    },
    onConversationChanged: webhooks.enabled ? (info) => webhooks.notifyConversation(info) : undefined,
    log: (level, msg, fields) => app.logger[level](msg, fields),
  });
  await conversations.start();
  const eventService = createEventService({
    events,
    conversationState: conversations,
    shutdownSignal: app.shutdownSignal,
    ...createConversationEventMethods({ conversations }),
  });
  // The file engine: every path confined to the workspace base (plus, per call, a conversation's
  // working directory). Upload sessions idle for 10 minutes are dropped; the last 10 000 watch
  // events are kept for resume (both promised by file_service.proto).
  const files = new WorkspaceFiles({
    roots: [config.workspaceBase],
    defaultWorkingDir: config.workspaceBase,
    uploadIdleTimeoutMs: 10 * 60_000,
    watch: { bufferSize: 10_000 },
  });
  // One instance for every router (server and gateway): it keeps per-upload state.
  const fileService = createFileService({
    files,
    workingDirOf: (id) => conversations.workingDirOf(id),
    shutdownSignal: app.shutdownSignal,
  });
  // Bash commands (src/domain/bash) on warm PTY shells, stored in LevelDB (the store opened
  // above). The engine is built once the server listens — its warm shells are spawned then, off
  // the cold-start path — or at the first bash call if that comes first; building it also marks
  // commands that were running when the server died as lost. Shutdown ends running commands at
  // once (SIGTERM, SIGKILL after 1 s), so a waiting ExecuteBashCommand answers with the final
  // state within the shutdown grace. Output chunks skip their own fsync (durable with the next
  // synced write, at the latest the command's final event; see src/domain/bash/README.md).
  const bashStore = new LevelDbBashStore(store.bash, { outputSync: false });
  let bashManager: BashManager | undefined;
  const bash = (): BashManager => {
    if (bashManager === undefined) {
      if (app.shutdownSignal.aborted) throw new AgentdError("unavailable", "the bash service is shutting down");
      bashManager = new BashManager({
        store: bashStore,
        baseEnv: config.childEnv,
        defaultCwd: config.workspaceBase,
        allowedRoots: [config.workspaceBase],
        limits: { maxRunningCommands: config.bashMaxRunningCommands },
      });
    }
    return bashManager;
  };
  void app.health.changed(app.shutdownSignal).then(() => {
    if (app.health.state === "serving" && !app.shutdownSignal.aborted) bash().warmUp().catch(() => {});
  });
  app.shutdownSignal.addEventListener("abort", () => bashManager?.close().catch(() => {}), { once: true }); // failures surface in close() below
  const bashService = createBashService({ bash, lastEventSeq: () => bashStore.lastEventSeq(), shutdownSignal: app.shutdownSignal });
  const services: RegisteredService[] = [
    registered(
      ServerService,
      createServerService({
        startTimeMs: Date.now(),
        lastActivityMs: () => app.lastActivityMs,
        usableTools: () => usableTools,
        capabilities: ["grpc", "connect", "grpc-web", "rest", "websocket", "seq-cursor"],
        workspaceBase: config.workspaceBase,
        runtimeIdleTimeoutSeconds: config.runtimeIdleTimeoutSeconds,
        buildGitSha: config.buildGitSha,
        buildGitRef: config.buildGitRef,
      }),
    ),
    registered(ConversationService, createConversationService({ conversations })),
    registered(EventService, eventService),
    registered(BashService, bashService),
    registered(FileService, fileService),
  ];
  // REST/WebSocket gateway over the same router (src/gateway/gateway.ts).
  const gateway = createGateway({
    services: services.map((s) => s.desc),
    keys: app.keys,
    maxMessageBytes: config.maxMessageBytes,
    logger: app.logger,
    shutdownSignal: app.shutdownSignal,
  });
  return {
    services,
    attachRoutes: gateway.attachRoutes,
    handleHttp: gateway.handleHttp,
    onUpgrade: gateway.onUpgrade,
    domain: { store, events, webhooks, conversations },
    close: async () => {
      await gateway.close();
      // Commands end (recorded as killed by the shutdown) before storage closes.
      await bashManager?.close();
      await files.close();
      // Runs stop (statuses stay, so the next start reports them) and tools close before storage.
      await conversations.close();
      await browser.close();
      // Last: webhooks deliver what is queued, watchers end, then storage closes.
      await webhooks.close();
      events.close();
      await store.close();
    },
  };
}
