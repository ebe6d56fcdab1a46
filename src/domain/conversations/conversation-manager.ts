// The conversation engine behind ConversationService (and EventService.SendMessage /
// RespondToConfirmation): creates, lists, loads, runs and deletes conversations.
//
// Catalog: every conversation has a small in-memory entry (id, times, status, head seq) built at
// start-up from the stored records, so search, count and status filters never touch storage;
// a page's rows are read from storage (or from the loaded conversation).
//
// Loading: a conversation's state, events and tools are loaded on first use and unloaded after
// `idleTtlMs` without use when it has no run (the terminal's shell ends with it; `cd` and
// exported variables do not survive an unload). Reloading is transparent.
//
// Restart: a conversation whose stored status is `running` was cut off by a crash or a restart;
// at start-up its unanswered actions get an AgentErrorEvent, a ConversationErrorEvent
// ("ServerRestarted") is appended and its status becomes `error`. Its other events are untouched,
// and a new message runs it again.
//
// Titles: with `autotitle` (default), the first user message gives the title at once (its first
// line, at most 50 characters) without an LLM call, so titling costs nothing and never competes
// with the agent's own calls; GenerateTitle asks the LLM (falling back to the same rule).

import { randomUUID } from "node:crypto";
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { clone, create } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { toOpenHandsJson } from "../../codec/openhands-json.js";
import { AgentdError } from "../../errors.js";
import {
  AgentSchema,
  ConfirmationPolicySchema,
  ConversationSchema,
  ConversationStatsSchema,
  ExecutionStatus,
  SecurityAnalyzerSchema,
} from "../../../gen/agentd/v1/conversation_pb.js";
import type {
  Agent,
  ConfirmationPolicy,
  Conversation,
  LocalWorkspace,
  SecretSource,
  SecurityAnalyzer,
} from "../../../gen/agentd/v1/conversation_pb.js";
import { EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../../gen/agentd/v1/message_pb.js";
import type { Content } from "../../../gen/agentd/v1/message_pb.js";
import type { ConversationStore } from "../../storage/conversation-store.js";
import type { EventStore } from "../../storage/event-store.js";
import { BROWSER_TOOL_SET_NAME } from "../agent/browser/browser-tools.js";
import { MIN_CONDENSER_MAX_SIZE } from "../agent/condenser.js";
import { neverConfirm } from "../agent/confirmation.js";
import { agentErrorEvent, classification, contentText, conversationErrorEvent, newEvent, stateUpdateEvent, userMessageEvent, withId } from "../agent/events.js";
import { LlmCallError, resolveLlmEndpoint } from "../agent/llm.js";
import type { RetryPolicy } from "../agent/llm.js";
import { condenseNow, pendingActions } from "../agent/loop.js";
import { buildChatMessages } from "../agent/messages.js";
import { computeView } from "../agent/condenser.js";
import { ASK_AGENT_PROMPT, titlePrompt } from "../agent/prompt.js";
import { checkSecretNames, REDACTED } from "../agent/secrets.js";
import type { SecretBundle, SecretCipher, SecretSourceValue } from "../agent/secrets.js";
import type { TerminalOptions } from "../agent/tools/terminal/terminal-tool.js";
import { BUILTIN_TOOL_NAMES, createToolset, TOOL_ALIASES, usableBuiltinToolNames } from "../agent/tools/toolset.js";
import type { Toolset } from "../agent/tools/toolset.js";
import type { AnyTool } from "../agent/tools/types.js";
import { resolveWorkspacePath } from "../files/workspace-path.js";
import { LiveConversation } from "./live-conversation.js";
import type { ConversationEventLog, LiveDeps } from "./live-conversation.js";
import { decodeRecord, encodeRecord } from "./record.js";
import { STATUS_NAME } from "./status.js";

export const DEFAULT_MAX_ITERATIONS = 500;
export const DEFAULT_TITLE_LENGTH = 50;
export const MAX_BATCH_IDS = 100;
export const MAX_PAGE_SIZE = 100;
const TAG_KEY = /^[a-z0-9]+$/;
const MAX_TAG_VALUE = 256;
const UUID_DASHED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UUID_HEX = /^[0-9a-f]{32}$/;

/**
 * A conversation id in canonical form (dashed, lower-case).
 * @throws AgentdError invalid_argument when it is not a UUID (dashed or 32 hex digits).
 */
export function normalizeConversationId(id: string): string {
  const s = id.trim().toLowerCase();
  if (UUID_DASHED.test(s)) return s;
  if (UUID_HEX.test(s)) return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  throw new AgentdError("invalid_argument", `invalid conversation id ${JSON.stringify(id.slice(0, 80))}: expected a UUID`, { conversation_id: id.slice(0, 80) });
}

function notFound(id: string): AgentdError {
  return new AgentdError("not_found", `Conversation not found: ${id}`, { conversation_id: id }, "CONVERSATION_NOT_FOUND");
}

/** The title rule without an LLM: the first non-empty line, at most `max` characters ("..." when cut). */
export function fallbackTitle(text: string, max = DEFAULT_TITLE_LENGTH): string {
  const line = text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
  if (line.length <= max) return line;
  return `${line.slice(0, Math.max(1, max - 3)).trimEnd()}...`;
}

/** What CreateConversation takes (the request's fields). */
export interface CreateConversationInput {
  agent?: Agent | undefined;
  workspace?: LocalWorkspace | undefined;
  conversationId?: string | undefined;
  initialMessage?: { role: MessageRole; content: Content[] } | undefined;
  maxIterations?: number | undefined;
  stuckDetection?: boolean | undefined;
  secrets?: Record<string, SecretSource> | undefined;
  confirmationPolicy?: ConfirmationPolicy | undefined;
  securityAnalyzer?: SecurityAnalyzer | undefined;
  tags?: Record<string, string> | undefined;
  autotitle?: boolean | undefined;
  title?: string | undefined;
}

/** Orders of SearchConversations (default newest first). */
export type ConversationOrder = "created_at" | "created_at_desc" | "updated_at" | "updated_at_desc";

export interface SearchInput {
  pageSize?: number;
  pageToken?: string;
  status?: ExecutionStatus;
  order?: ConversationOrder;
}

export interface ConversationManagerOptions {
  conversations: ConversationStore;
  eventStore: EventStore;
  events: ConversationEventLog;
  /** Absolute workspace base; working directories must lie inside it. */
  workspaceBase: string;
  /** Directory holding per-conversation tool state (`<stateRoot>/<id>/TASKS.json`). */
  stateRoot: string;
  /** Encrypts secrets at rest; without it they are kept in memory only. */
  cipher?: SecretCipher | undefined;
  llmDefaults?: { model?: string | undefined; apiKey?: string | undefined; baseUrl?: string | undefined };
  /** Unload idle conversations after this long (default 1200 s). */
  idleTtlMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Told the duration of every LLM call (metrics, benchmarks). */
  onLlmCall?: (durationMs: number, usageId: string) => void;
  terminal?: TerminalOptions;
  /** Tool sets implemented elsewhere (e.g. "browser_tool_set"), per conversation. */
  externalToolSets?: Record<string, (conversationId: string, workingDir: string) => AnyTool[]>;
  /** Called when a conversation is deleted (e.g. to close its browser context). */
  onDeleted?: (conversationId: string) => Promise<void> | void;
  /**
   * Told the conversation (OpenHands ConversationInfo JSON, secrets redacted) when it is created,
   * paused, interrupted, updated or deleted (status "deleting"): the conversation webhooks.
   * Must not block.
   */
  onConversationChanged?: (conversation: JsonValue) => void;
  log?: LiveDeps["log"];
  now?: () => number;
}

interface Entry {
  id: string;
  createdAtMs: number;
  updatedAtMs: number;
  status: ExecutionStatus;
  lastSeq: number;
  live?: LiveConversation | undefined;
  loading?: Promise<LiveConversation> | undefined;
}

function sourceValue(s: SecretSource, name: string): SecretSourceValue {
  switch (s.source.case) {
    case "staticSecret":
      return { kind: "static", value: s.source.value.value };
    case "lookupSecret":
      if (!/^https?:\/\//.test(s.source.value.url)) throw new AgentdError("invalid_argument", `secret ${name}: lookup url must be http(s)`);
      return { kind: "lookup", url: s.source.value.url, headers: { ...s.source.value.headers } };
    default:
      throw new AgentdError("invalid_argument", `secret ${name}: no value given (StaticSecret or LookupSecret)`, { secret_name: name });
  }
}

function checkTags(tags: Record<string, string>): void {
  for (const [k, v] of Object.entries(tags)) {
    if (!TAG_KEY.test(k)) throw new AgentdError("invalid_argument", `invalid tag key ${JSON.stringify(k.slice(0, 80))}: expected ^[a-z0-9]+$`, { tag: k.slice(0, 80) });
    if (v.length > MAX_TAG_VALUE) throw new AgentdError("invalid_argument", `tag ${k}: value longer than ${MAX_TAG_VALUE} characters`, { tag: k });
  }
}

function checkTitle(title: string): void {
  if (title.length < 1 || title.length > 200) throw new AgentdError("invalid_argument", `invalid title: expected 1..200 characters, got ${title.length}`);
}

export class ConversationManager {
  readonly #o: ConversationManagerOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #deps: LiveDeps;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #warnedNoCipher = false;

  constructor(options: ConversationManagerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const log = options.log ?? (() => {});
    this.#deps = {
      events: options.events,
      saveRecord: (c) => this.#save(c),
      createToolset: (c) => this.#createToolset(c),
      llmDefaults: options.llmDefaults ?? {},
      retry: options.retry,
      onLlmCall: options.onLlmCall,
      onAppended: (c, stored) => {
        const e = this.#entries.get(c.conversationId);
        if (e === undefined) return;
        const last = stored[stored.length - 1];
        if (last !== undefined) e.lastSeq = Number(last.seq);
        if (c.conversation.updatedAt !== undefined) e.updatedAtMs = timestampMs(c.conversation.updatedAt);
        e.status = c.status;
      },
      log,
      now: this.#now,
    };
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  /** Builds the catalog from storage and recovers conversations cut off while running. */
  async start(): Promise<void> {
    const crashed: string[] = [];
    let after: { createdAtMs: number; id: string } | undefined;
    for (;;) {
      const page = await this.#o.conversations.list({ limit: 1000, ...(after ? { after } : {}) });
      for (const item of page.items) {
        let conv: Conversation;
        try {
          conv = decodeRecord(item.record, undefined).conversation;
        } catch (err) {
          this.#deps.log("error", "unreadable conversation record skipped", { conversation_id: item.id, error: String(err) });
          continue;
        }
        let lastSeq = 0;
        try {
          lastSeq = (await this.#o.eventStore.head(item.id)).lastSeq;
        } catch {
          // Head missing: counted as empty.
        }
        this.#entries.set(item.id, {
          id: item.id,
          createdAtMs: item.createdAtMs,
          updatedAtMs: conv.updatedAt !== undefined ? timestampMs(conv.updatedAt) : item.createdAtMs,
          status: conv.executionStatus,
          lastSeq,
        });
        if (conv.executionStatus === ExecutionStatus.RUNNING) crashed.push(item.id);
      }
      if (page.next === undefined) break;
      after = page.next;
    }
    for (const id of crashed) {
      try {
        await this.#recoverFromRestart(id);
      } catch (err) {
        this.#deps.log("error", "recovering a conversation after restart failed", { conversation_id: id, error: String(err) });
      }
    }
    const ttl = this.#o.idleTtlMs ?? 1_200_000;
    const interval = Math.min(60_000, Math.max(50, ttl / 2));
    this.#timer = setInterval(() => void this.#unloadIdle(ttl), interval);
    this.#timer.unref();
  }

  async #recoverFromRestart(id: string): Promise<void> {
    const live = await this.#load(id);
    const orphans = pendingActions(live.history).map((a) => {
      const v = a.payload.case === "actionEvent" ? a.payload.value : undefined;
      return agentErrorEvent(
        "A restart occurred while this tool was in progress. It may or may not have completed; check its effects before repeating it.",
        v?.toolName ?? "",
        v?.toolCallId ?? "",
        classification("transient", true, "retry"),
      );
    });
    await live.append([
      ...orphans,
      conversationErrorEvent("ServerRestarted", "The server restarted while the agent was running; the run was stopped. Send a message or run the conversation to continue.", classification("transient", true, "retry")),
    ]);
    live.conversation.executionStatus = ExecutionStatus.RUNNING;
    await live.setStatus(ExecutionStatus.ERROR);
  }

  /** Tells onConversationChanged about the conversation's current state (never throws). */
  #notify(conversation: Conversation | undefined): void {
    const hook = this.#o.onConversationChanged;
    if (hook === undefined || conversation === undefined) return;
    try {
      hook(toOpenHandsJson(ConversationSchema, conversation));
    } catch (err) {
      this.#deps.log("warn", "conversation change notification failed", { conversation_id: conversation.id, error: String(err) });
    }
  }

  async #notifyById(id: string): Promise<void> {
    if (this.#o.onConversationChanged === undefined) return;
    const e = this.#entries.get(id);
    if (e !== undefined) this.#notify(await this.#read(e).catch(() => undefined));
  }

  /** Stops every run (statuses stay as they are, so a restart reports them) and releases tools. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await Promise.all([...this.#entries.values()].map((e) => e.live?.close()));
  }

  async #unloadIdle(ttl: number): Promise<void> {
    const now = this.#now();
    for (const e of this.#entries.values()) {
      const live = e.live;
      if (live === undefined || live.running || now - live.lastAccessMs < ttl) continue;
      e.live = undefined;
      try {
        await live.close();
      } catch (err) {
        this.#deps.log("warn", "unloading a conversation failed", { conversation_id: e.id, error: String(err) });
      }
    }
  }

  /** Number of conversations loaded in memory (tests, benchmarks). */
  get loadedCount(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.live !== undefined) n++;
    return n;
  }

  // ---- loading -----------------------------------------------------------------------------------

  #entry(id: string): Entry {
    const e = this.#entries.get(id);
    if (e === undefined) throw notFound(id);
    return e;
  }

  async #load(id: string): Promise<LiveConversation> {
    if (this.#closed) throw new AgentdError("unavailable", "the server is shutting down");
    const e = this.#entry(id);
    if (e.live !== undefined) {
      e.live.lastAccessMs = this.#now();
      return e.live;
    }
    e.loading ??= (async () => {
      try {
        const item = await this.#o.conversations.get(id);
        if (item === null) throw notFound(id);
        const rec = decodeRecord(item.record, this.#o.cipher);
        if (rec.secretsLost) this.#deps.log("warn", "the conversation's secrets could not be restored (OH_SECRET_KEY missing or changed)", { conversation_id: id });
        const history: Event[] = [];
        for await (const ev of this.#o.events.read(id)) history.push(ev);
        rec.conversation.lastSeq = BigInt(e.lastSeq);
        rec.conversation.eventCount = BigInt(e.lastSeq);
        const live = new LiveConversation(rec.conversation, rec.secrets, history, this.#deps);
        await live.refreshSecrets(false);
        e.live = live;
        return live;
      } finally {
        e.loading = undefined;
      }
    })();
    return e.loading;
  }

  /** The loaded conversation (loading it if needed). @throws not_found. */
  async live(conversationId: string): Promise<LiveConversation> {
    return this.#load(normalizeConversationId(conversationId));
  }

  // ---- persistence -------------------------------------------------------------------------------

  async #save(c: LiveConversation): Promise<void> {
    if (!this.#o.cipher && !this.#warnedNoCipher && (Object.keys(c.secrets.secrets).length > 0 || c.secrets.llmApiKey)) {
      this.#warnedNoCipher = true;
      this.#deps.log("warn", "OH_SECRET_KEY is not set: conversation secrets and LLM keys are kept in memory only and are lost on restart");
    }
    await this.#o.conversations.update(c.conversationId, encodeRecord(c.conversation, c.secrets, this.#o.cipher));
    const e = this.#entries.get(c.conversationId);
    if (e !== undefined) {
      e.status = c.status;
      if (c.conversation.updatedAt !== undefined) e.updatedAtMs = timestampMs(c.conversation.updatedAt);
    }
  }

  #createToolset(c: LiveConversation): Toolset {
    const agent = c.conversation.agent;
    const names = (agent?.tools ?? []).map((t) => t.name);
    const workingDir = c.conversation.workspace?.workingDir ?? this.#o.workspaceBase;
    const external: Record<string, () => AnyTool[]> = {};
    for (const [name, make] of Object.entries(this.#o.externalToolSets ?? {})) external[name] = () => make(c.conversationId, workingDir);
    return createToolset(names, {
      conversationId: c.conversationId,
      workingDir,
      stateDir: path.join(this.#o.stateRoot, c.conversationId),
      secrets: c.masker,
      terminal: this.#o.terminal,
      externalToolSets: external,
    });
  }

  /** Names the agent may ask for (registry names, aliases, external tool sets). */
  knownToolNames(): string[] {
    return [...BUILTIN_TOOL_NAMES, ...Object.keys(TOOL_ALIASES), ...Object.keys(this.#o.externalToolSets ?? {})];
  }

  // ---- responses ---------------------------------------------------------------------------------

  /** The conversation as clients see it: secret values redacted, head seq filled in. */
  #present(conv: Conversation, secrets: SecretBundle | undefined, entry: Entry): Conversation {
    const out = clone(ConversationSchema, conv);
    const hasKey = secrets?.llmApiKey !== undefined && secrets.llmApiKey !== "";
    if (out.agent?.llm !== undefined) out.agent.llm.apiKey = hasKey ? REDACTED : undefined;
    const cond = out.agent?.condenser?.condenser;
    if (cond?.case === "llmSummarizing" && cond.value.llm !== undefined) cond.value.llm.apiKey = secrets?.condenserApiKey ? REDACTED : undefined;
    out.lastSeq = BigInt(entry.lastSeq);
    out.eventCount = BigInt(entry.lastSeq);
    out.executionStatus = entry.live?.status ?? entry.status;
    return out;
  }

  async #read(entry: Entry): Promise<Conversation | undefined> {
    if (entry.live !== undefined) return this.#present(entry.live.snapshot(), entry.live.secrets, entry);
    const item = await this.#o.conversations.get(entry.id);
    if (item === null) return undefined;
    const rec = decodeRecord(item.record, this.#o.cipher);
    return this.#present(rec.conversation, rec.secrets, entry);
  }

  async get(conversationId: string): Promise<Conversation> {
    const id = normalizeConversationId(conversationId);
    const conv = await this.#read(this.#entry(id));
    if (conv === undefined) throw notFound(id);
    return conv;
  }

  /** Conversations by id in request order, undefined for unknown ids. */
  async batchGet(ids: readonly string[]): Promise<(Conversation | undefined)[]> {
    if (ids.length > MAX_BATCH_IDS) throw new AgentdError("invalid_argument", `too many ids: ${ids.length} (at most ${MAX_BATCH_IDS})`);
    const norm = ids.map(normalizeConversationId);
    return Promise.all(
      norm.map(async (id) => {
        const e = this.#entries.get(id);
        return e === undefined ? undefined : this.#read(e);
      }),
    );
  }

  #sorted(status: ExecutionStatus | undefined, order: ConversationOrder = "created_at_desc"): Entry[] {
    const statusOf = (e: Entry): ExecutionStatus => e.live?.status ?? e.status;
    const list = [...this.#entries.values()].filter((e) => status === undefined || status === ExecutionStatus.UNSPECIFIED || statusOf(e) === status);
    const key = order === "updated_at" || order === "updated_at_desc" ? (e: Entry) => e.updatedAtMs : (e: Entry) => e.createdAtMs;
    const desc = order.endsWith("_desc");
    list.sort((a, b) => {
      const d = key(a) - key(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      return desc ? -d : d;
    });
    return list;
  }

  /**
   * One page. The page token is the hex id of the page's first conversation (OpenHands'
   * `page_id`); a token naming a conversation that is gone restarts from the first page.
   */
  async search(input: SearchInput): Promise<{ items: Conversation[]; nextPageToken: string }> {
    const size = input.pageSize === undefined || input.pageSize === 0 ? MAX_PAGE_SIZE : input.pageSize;
    if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
      throw new AgentdError("invalid_argument", `invalid page size ${size}: expected 1..${MAX_PAGE_SIZE}`);
    }
    const list = this.#sorted(input.status, input.order);
    let start = 0;
    if (input.pageToken) {
      let id: string;
      try {
        id = normalizeConversationId(input.pageToken);
      } catch {
        throw new AgentdError("invalid_argument", `invalid page token ${JSON.stringify(input.pageToken.slice(0, 80))}`);
      }
      const i = list.findIndex((e) => e.id === id);
      start = i < 0 ? 0 : i;
    }
    const page = list.slice(start, start + size);
    const next = list[start + size];
    const items = (await Promise.all(page.map((e) => this.#read(e)))).filter((c): c is Conversation => c !== undefined);
    return { items, nextPageToken: next === undefined ? "" : next.id.replace(/-/g, "") };
  }

  count(status?: ExecutionStatus): number {
    if (status === undefined || status === ExecutionStatus.UNSPECIFIED) return this.#entries.size;
    let n = 0;
    for (const e of this.#entries.values()) if ((e.live?.status ?? e.status) === status) n++;
    return n;
  }

  // ---- create / update / delete ------------------------------------------------------------------

  async #workingDir(given: string | undefined, id: string): Promise<string> {
    const base = this.#o.workspaceBase;
    await mkdir(base, { recursive: true });
    const wanted = given === undefined || given.trim() === "" ? id : given.trim();
    const resolved = await resolveWorkspacePath([base], base, wanted);
    try {
      await mkdir(resolved.real, { recursive: true });
      const st = await stat(resolved.real);
      if (!st.isDirectory()) throw new Error("not a directory");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new AgentdError(
        "invalid_argument",
        `invalid workspace.working_dir ${JSON.stringify(wanted.slice(0, 200))}: ${code === "EEXIST" || code === "ENOTDIR" || (err as Error).message === "not a directory" ? "exists and is not a directory" : `cannot create it (${code ?? "error"})`}`,
      );
    }
    return resolved.real;
  }

  #checkAgent(agent: Agent | undefined): void {
    if (agent === undefined) throw new AgentdError("invalid_argument", "agent is required");
    const d = this.#o.llmDefaults ?? {};
    const llm = agent.llm;
    const model = llm?.model || d.model;
    if (!model) throw new AgentdError("invalid_argument", "agent.llm.model is required (the server has no default model; set LLM_MODEL)");
    resolveLlmEndpoint(model, llm?.baseUrl || (!llm?.model ? d.baseUrl : undefined));
    const known = new Set(this.knownToolNames());
    const usable = new Set(usableBuiltinToolNames());
    for (const t of agent.tools) {
      if (t.name === BROWSER_TOOL_SET_NAME && !known.has(t.name)) {
        throw new AgentdError("failed_precondition", `tool ${BROWSER_TOOL_SET_NAME} is not usable on this machine (no Chromium found)`, { tool: t.name });
      }
      if (!known.has(t.name)) {
        throw new AgentdError("invalid_argument", `unknown tool ${JSON.stringify(t.name.slice(0, 80))}; known tools: ${[...BUILTIN_TOOL_NAMES, ...Object.keys(this.#o.externalToolSets ?? {})].join(", ")}`, { tool: t.name.slice(0, 80) });
      }
      const target = TOOL_ALIASES[t.name] ?? t.name;
      if ((BUILTIN_TOOL_NAMES as readonly string[]).includes(target) && !usable.has(target)) {
        throw new AgentdError("failed_precondition", `tool ${target} is not usable on this machine`, { tool: target });
      }
    }
    const cond = agent.condenser?.condenser;
    if (cond?.case === "llmSummarizing") {
      const maxSize = cond.value.maxSize || 240;
      const keepFirst = cond.value.keepFirst || 2;
      if (maxSize < MIN_CONDENSER_MAX_SIZE) throw new AgentdError("invalid_argument", `condenser max_size ${maxSize} is below ${MIN_CONDENSER_MAX_SIZE}`);
      if (keepFirst >= Math.floor(maxSize / 2)) throw new AgentdError("invalid_argument", `condenser keep_first ${keepFirst} must be < max_size / 2 (${Math.floor(maxSize / 2)})`);
      if (cond.value.llm?.model) resolveLlmEndpoint(cond.value.llm.model, cond.value.llm.baseUrl);
    }
  }

  /**
   * Creates a conversation (or returns the existing one for a known `conversationId`).
   * With an initial message, the agent is running when this resolves.
   */
  async create(input: CreateConversationInput): Promise<{ conversation: Conversation; created: boolean }> {
    if (this.#closed) throw new AgentdError("unavailable", "the server is shutting down");
    const id = input.conversationId ? normalizeConversationId(input.conversationId) : randomUUID();
    if (this.#entries.has(id)) return { conversation: await this.get(id), created: false };

    this.#checkAgent(input.agent);
    const agent = input.agent!;
    if (input.maxIterations !== undefined && (!Number.isInteger(input.maxIterations) || input.maxIterations < 1)) {
      throw new AgentdError("invalid_argument", `invalid max_iterations ${input.maxIterations}: expected an integer >= 1`);
    }
    const tags = { ...(input.tags ?? {}) };
    checkTags(tags);
    if (input.title !== undefined) checkTitle(input.title);
    const secretSources = input.secrets ?? {};
    checkSecretNames(Object.keys(secretSources));
    const secrets: SecretBundle = { secrets: {} };
    for (const [name, src] of Object.entries(secretSources)) secrets.secrets[name] = sourceValue(src, name);
    if (input.initialMessage !== undefined) this.#checkMessage(input.initialMessage.role, input.initialMessage.content);

    const workingDir = await this.#workingDir(input.workspace?.workingDir, id);
    const nowMs = this.#now();
    const storedAgent = clone(AgentSchema, agent);
    if (storedAgent.llm !== undefined) {
      if (storedAgent.llm.apiKey && storedAgent.llm.apiKey !== REDACTED) secrets.llmApiKey = storedAgent.llm.apiKey;
      storedAgent.llm.apiKey = undefined;
    }
    const cond = storedAgent.condenser?.condenser;
    if (cond?.case === "llmSummarizing" && cond.value.llm !== undefined) {
      if (cond.value.llm.apiKey && cond.value.llm.apiKey !== REDACTED) secrets.condenserApiKey = cond.value.llm.apiKey;
      cond.value.llm.apiKey = undefined;
    }
    if (storedAgent.includeDefaultTools.length === 0) storedAgent.includeDefaultTools = ["FinishTool", "ThinkTool"];
    const conversation = create(ConversationSchema, {
      id,
      agent: storedAgent,
      workspace: { workingDir },
      persistenceDir: path.join(this.#o.stateRoot, id),
      maxIterations: input.maxIterations ?? DEFAULT_MAX_ITERATIONS,
      stuckDetection: input.stuckDetection ?? true,
      executionStatus: ExecutionStatus.IDLE,
      confirmationPolicy: input.confirmationPolicy ?? neverConfirm(),
      securityAnalyzer: input.securityAnalyzer,
      title: input.title,
      tags,
      stats: create(ConversationStatsSchema, {}),
      secretNames: Object.keys(secrets.secrets).sort(),
      createdAt: timestampFromMs(nowMs),
      updatedAt: timestampFromMs(nowMs),
      autotitle: input.autotitle ?? true,
    });
    try {
      await this.#o.conversations.create(id, nowMs, encodeRecord(conversation, secrets, this.#o.cipher));
    } catch (err) {
      if (err instanceof AgentdError && err.code === "already_exists") return { conversation: await this.#waitAndGet(id), created: false };
      throw err;
    }
    const entry: Entry = { id, createdAtMs: nowMs, updatedAtMs: nowMs, status: ExecutionStatus.IDLE, lastSeq: 0 };
    const live = new LiveConversation(conversation, secrets, [], this.#deps);
    await live.refreshSecrets(false);
    entry.live = live;
    this.#entries.set(id, entry);
    if (input.initialMessage !== undefined) {
      await this.#sendMessage(live, input.initialMessage.content, true);
    }
    const created = this.#present(live.snapshot(), live.secrets, entry);
    this.#notify(created);
    return { conversation: created, created: true };
  }

  async #waitAndGet(id: string): Promise<Conversation> {
    // A concurrent create of the same id won the race; its catalog entry appears right after.
    for (let i = 0; i < 100 && !this.#entries.has(id); i++) await new Promise((r) => setTimeout(r, 10));
    return this.get(id);
  }

  async update(conversationId: string, patch: { title?: string | undefined; tags?: Record<string, string> | undefined }): Promise<void> {
    const live = await this.live(conversationId);
    if (patch.title !== undefined) checkTitle(patch.title);
    if (patch.tags !== undefined) checkTags(patch.tags);
    if (patch.title !== undefined) live.conversation.title = patch.title;
    if (patch.tags !== undefined) {
      live.conversation.tags = { ...patch.tags };
      await live.emitState("tags", { ...patch.tags });
    }
    live.conversation.updatedAt = timestampFromMs(this.#now());
    await this.#save(live);
    await this.#notifyById(live.conversationId);
  }

  /** Stops the run, closes tools, removes the record, the events and the tool state. */
  async delete(conversationId: string): Promise<void> {
    const id = normalizeConversationId(conversationId);
    const e = this.#entry(id);
    if (this.#o.onConversationChanged !== undefined) {
      const last = await this.#read(e).catch(() => undefined);
      if (last !== undefined) last.executionStatus = ExecutionStatus.DELETING;
      this.#notify(last);
    }
    const live = e.live ?? (e.loading !== undefined ? await e.loading.catch(() => undefined) : undefined);
    this.#entries.delete(id);
    await live?.close();
    await this.#o.conversations.delete(id);
    await rm(path.join(this.#o.stateRoot, id), { recursive: true, force: true });
    await this.#o.onDeleted?.(id);
  }

  // ---- running -----------------------------------------------------------------------------------

  async run(conversationId: string): Promise<void> {
    const live = await this.live(conversationId);
    await live.run();
  }

  async pause(conversationId: string): Promise<void> {
    const live = await this.live(conversationId);
    await live.pause();
    await this.#notifyById(live.conversationId);
  }

  async interrupt(conversationId: string): Promise<void> {
    const live = await this.live(conversationId);
    await live.interrupt();
    await this.#notifyById(live.conversationId);
  }

  #checkMessage(role: MessageRole, content: readonly Content[]): void {
    if (role !== MessageRole.UNSPECIFIED && role !== MessageRole.USER) {
      throw new AgentdError("invalid_argument", `invalid message role ${MessageRole[role]?.toLowerCase() ?? role}: only user messages can be sent`);
    }
    const hasContent = content.some((c) => (c.content.case === "text" && c.content.value.text !== "") || (c.content.case === "image" && c.content.value.imageUrls.length > 0));
    if (!hasContent) throw new AgentdError("invalid_argument", "the message has no content (give at least one non-empty text or image part)");
  }

  /** UserRejectObservations for every pending action. */
  #rejections(live: LiveConversation, reason: string): Event[] {
    return pendingActions(live.history).map((a) => {
      const v = a.payload.case === "actionEvent" ? a.payload.value : undefined;
      return newEvent(EventSource.ENVIRONMENT, {
        case: "userRejectObservation",
        value: { rejectionReason: reason, rejectionSource: "user", actionId: a.id, toolName: v?.toolName ?? "", toolCallId: v?.toolCallId ?? "" },
      });
    });
  }

  async #sendMessage(live: LiveConversation, content: Content[], run: boolean): Promise<bigint> {
    if (!live.running && live.status === ExecutionStatus.WAITING_FOR_CONFIRMATION) {
      // A new message instead of a confirmation: the pending actions are not run.
      await live.append(this.#rejections(live, "The user sent a new message instead of confirming the action."));
    }
    const msg = withId(userMessageEvent(content, EventSource.USER));
    live.conversation.lastUserMessageId = msg.id;
    await live.append([msg, stateUpdateEvent("last_user_message_id", msg.id)]);
    const stored = live.history[live.history.length - 2]!;
    if (live.conversation.autotitle && !live.conversation.title) {
      const title = fallbackTitle(contentText(content));
      if (title !== "") live.conversation.title = title;
    }
    if (!live.running && (live.status === ExecutionStatus.FINISHED || live.status === ExecutionStatus.STUCK || live.status === ExecutionStatus.WAITING_FOR_CONFIRMATION)) {
      await live.setStatus(ExecutionStatus.IDLE);
    } else {
      await this.#save(live);
    }
    if (run) await live.requestRun();
    return stored.seq;
  }

  /** Appends a user message; with `run`, the agent runs it (a running agent picks it up). Returns its seq. */
  async sendMessage(conversationId: string, input: { role: MessageRole; content: Content[]; run: boolean }): Promise<bigint> {
    this.#checkMessage(input.role, input.content);
    const live = await this.live(conversationId);
    return this.#sendMessage(live, input.content, input.run);
  }

  async respondToConfirmation(conversationId: string, accept: boolean, reason: string): Promise<void> {
    const live = await this.live(conversationId);
    if (live.status !== ExecutionStatus.WAITING_FOR_CONFIRMATION) {
      throw new AgentdError("failed_precondition", `conversation ${live.conversationId} is not waiting for confirmation (status ${STATUS_NAME[live.status]})`, { conversation_id: live.conversationId });
    }
    if (accept) {
      await live.run();
      return;
    }
    await live.append(this.#rejections(live, reason || "User rejected the action."));
    await live.setStatus(ExecutionStatus.IDLE);
  }

  // ---- settings ----------------------------------------------------------------------------------

  async updateSecrets(conversationId: string, sources: Record<string, SecretSource>): Promise<void> {
    checkSecretNames(Object.keys(sources));
    const values: Record<string, SecretSourceValue> = {};
    for (const [name, src] of Object.entries(sources)) values[name] = sourceValue(src, name);
    const live = await this.live(conversationId);
    Object.assign(live.secrets.secrets, values);
    await live.refreshSecrets(true);
    const registry: Record<string, JsonValue> = {};
    for (const [name, v] of Object.entries(live.secrets.secrets)) registry[name] = v.kind === "static" ? { kind: "StaticSecret", value: REDACTED } : { kind: "LookupSecret", url: v.url };
    await live.emitState("secret_registry", { secret_sources: registry });
    await this.#save(live);
  }

  async setConfirmationPolicy(conversationId: string, policy: ConfirmationPolicy | undefined): Promise<void> {
    if (policy === undefined || policy.policy.case === undefined) throw new AgentdError("invalid_argument", "policy is required (NeverConfirm, AlwaysConfirm or ConfirmRisky)");
    const live = await this.live(conversationId);
    live.conversation.confirmationPolicy = policy;
    await live.emitState("confirmation_policy", toOpenHandsJson(ConfirmationPolicySchema, policy));
    await this.#save(live);
  }

  async setSecurityAnalyzer(conversationId: string, analyzer: SecurityAnalyzer | undefined): Promise<void> {
    const live = await this.live(conversationId);
    const value = analyzer !== undefined && analyzer.analyzer.case !== undefined ? analyzer : undefined;
    live.conversation.securityAnalyzer = value;
    await live.emitState("security_analyzer", value === undefined ? null : toOpenHandsJson(SecurityAnalyzerSchema, value));
    await this.#save(live);
  }

  // ---- LLM side calls ----------------------------------------------------------------------------

  /** Titles the conversation with the LLM (fallback: the first line of the first message). */
  async generateTitle(conversationId: string, maxLength = DEFAULT_TITLE_LENGTH): Promise<string> {
    const max = maxLength === 0 ? DEFAULT_TITLE_LENGTH : maxLength;
    if (!Number.isInteger(max) || max < 1 || max > 200) throw new AgentdError("invalid_argument", `invalid max_length ${max}: expected 1..200`);
    const live = await this.live(conversationId);
    const first = live.firstUserMessage();
    if (first === undefined) throw new AgentdError("failed_precondition", `conversation ${live.conversationId} has no user message to title`);
    let title = "";
    try {
      const res = await live.llm().complete({
        messages: [
          { role: "system", content: titlePrompt(max) },
          { role: "user", content: first.slice(0, 4000) },
        ],
        noStream: true,
        maxOutputTokens: 64,
      });
      title = res.content.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
      title = live.mask(title.replace(/^["'`]+|["'`.]+$/g, "").trim());
    } catch (err) {
      this.#deps.log("info", "title generation fell back to the first message", { conversation_id: live.conversationId, error: err instanceof Error ? err.message : String(err) });
    }
    if (title === "") title = live.mask(fallbackTitle(first, max));
    if (title.length > max) title = fallbackTitle(title, max);
    live.conversation.title = title;
    await this.#save(live);
    return title;
  }

  /** Answers a side question from the conversation's context; adds no event, changes no state. */
  async askAgent(conversationId: string, question: string): Promise<string> {
    if (question.trim() === "") throw new AgentdError("invalid_argument", "question is empty");
    const live = await this.live(conversationId);
    const toolset = await live.toolset();
    const messages = buildChatMessages(computeView(live.history).items, live.render);
    messages.push({ role: "user", content: `${ASK_AGENT_PROMPT}\n\nQuestion: ${question}` });
    try {
      const res = await live.llm().complete({ messages, tools: live.toolDefinitions(toolset), toolChoice: "none", noStream: true });
      return live.mask(res.content);
    } catch (err) {
      if (err instanceof LlmCallError) throw new AgentdError("unavailable", `ask_agent: ${err.message}`);
      throw err;
    }
  }

  /** Appends a CondensationRequest; condenses now when the agent is not running. */
  async condense(conversationId: string): Promise<void> {
    const live = await this.live(conversationId);
    if (live.config.condenser === undefined) {
      throw new AgentdError("failed_precondition", `conversation ${live.conversationId} has no condenser (set agent.condenser)`);
    }
    await live.append([newEvent(EventSource.ENVIRONMENT, { case: "condensationRequest", value: {} })]);
    await live.waitForTail();
    if (!live.running) await live.exclusive((signal) => condenseNow(live, signal));
  }

  async agentFinalResponse(conversationId: string): Promise<string> {
    return (await this.live(conversationId)).finalResponse();
  }

  /** The OpenHands `full_state` value of a conversation (secrets redacted). */
  async fullState(conversationId: string): Promise<JsonValue> {
    return toOpenHandsJson(ConversationSchema, await this.get(conversationId));
  }

  /** The current status (for keepalives). @throws not_found. */
  status(conversationId: string): ExecutionStatus {
    const e = this.#entry(normalizeConversationId(conversationId));
    return e.live?.status ?? e.status;
  }

  /**
   * The conversation's working directory (absolute), or undefined when there is no such
   * conversation (for the file service's per-conversation scope).
   */
  async workingDirOf(conversationId: string): Promise<string | undefined> {
    let id: string;
    try {
      id = normalizeConversationId(conversationId);
    } catch {
      return undefined;
    }
    const e = this.#entries.get(id);
    if (e === undefined) return undefined;
    if (e.live !== undefined) return e.live.conversation.workspace?.workingDir;
    const item = await this.#o.conversations.get(id);
    return item === null ? undefined : decodeRecord(item.record, undefined).conversation.workspace?.workingDir;
  }

  /** True when the conversation exists. */
  has(conversationId: string): boolean {
    try {
      return this.#entries.has(normalizeConversationId(conversationId));
    } catch {
      return false;
    }
  }
}
