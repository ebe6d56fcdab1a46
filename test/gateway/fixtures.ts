/**
 * A gateway test bench: the real gateway, the real interceptors and ServerService, behind a plain
 * HTTP/1.1 server that also speaks Connect for the same router, with small implementations of the other services' contracts (an in-memory event
 * log with a replay-then-live WatchEvents, bash events, conversations, and file transfers on real
 * files in a temp dir). They exist so the gateway's REST/WebSocket translation can be tested
 * end-to-end now, independently of the domain services being built; they implement the proto's
 * documented semantics (seq cursor, NotFound, InvalidArgument for page sizes, created flag) and
 * nothing more. The compatibility suite (compat.test.ts) runs against the real agentd instead.
 */
import { createHash, randomUUID } from "node:crypto";
import { open, mkdir, mkdtemp, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs, timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { BashEventSchema, type BashEvent } from "../../gen/agentd/v1/bash_pb.js";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { ConversationSchema, ExecutionStatus, type Conversation } from "../../gen/agentd/v1/conversation_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import { EventSchema, type Event } from "../../gen/agentd/v1/event_pb.js";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";
import { FileType } from "../../gen/agentd/v1/file_pb.js";
import { ServerService } from "../../gen/agentd/v1/server_service_pb.js";
import { AgentdError } from "../../src/errors.js";
import { createGateway, type Gateway } from "../../src/gateway/gateway.js";
import { SessionKeys } from "../../src/server/auth.js";
import { sendJson } from "../../src/server/http-common.js";
import { authInterceptor, errorInterceptor } from "../../src/server/interceptors.js";
import { createLogger } from "../../src/server/logger.js";
import { createServerService } from "../../src/rpc/server-service.js";

/** A conversation whose WatchEvents fails with ResourceExhausted (a subscriber that fell behind). */
export const OVERLOADED_ID = "00000000-0000-4000-8000-00000000000b";

/** An unbounded async queue with a waiting consumer. */
class Queue<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }
  async next(signal: AbortSignal): Promise<T | undefined> {
    while (this.#items.length === 0) {
      if (signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      this.#wake = undefined;
    }
    return this.#items.shift();
  }
}

interface Log {
  conversation: Conversation;
  events: Event[];
  subscribers: Set<Queue<Event>>;
}

export class FixtureState {
  readonly logs = new Map<string, Log>();
  readonly bashEvents: BashEvent[] = [];
  readonly bashSubscribers = new Set<Queue<BashEvent>>();
  /** Sizes of the WriteUpload chunks received, in order (to check uploads stream). */
  readonly uploadChunks: number[] = [];
  lastTimestampMs = 0;

  constructor(readonly root: string) {}

  now(): Timestamp {
    const ms = Math.max(Date.now(), this.lastTimestampMs + 1);
    this.lastTimestampMs = ms;
    return timestampFromMs(ms);
  }

  log(conversationId: string): Log {
    const log = this.logs.get(conversationId);
    if (log === undefined) throw new AgentdError("not_found", `conversation ${conversationId} not found`, {}, "CONVERSATION_NOT_FOUND");
    return log;
  }

  createConversation(id: string = randomUUID()): Conversation {
    const conversation = create(ConversationSchema, { id, executionStatus: ExecutionStatus.IDLE, createdAt: this.now(), updatedAt: this.now(), maxIterations: 500 });
    this.logs.set(id, { conversation, events: [], subscribers: new Set() });
    return conversation;
  }

  append(conversationId: string, init: MessageInitShape<typeof EventSchema>): Event {
    const log = this.log(conversationId);
    const ev = create(EventSchema, { ...init, id: randomUUID(), seq: BigInt(log.events.length + 1), timestamp: this.now() });
    log.events.push(ev);
    log.conversation.lastSeq = ev.seq;
    log.conversation.eventCount = BigInt(log.events.length);
    for (const q of log.subscribers) q.push(ev);
    return ev;
  }

  appendBash(init: MessageInitShape<typeof BashEventSchema>): BashEvent {
    const ev = create(BashEventSchema, init);
    this.bashEvents.push(ev);
    for (const q of this.bashSubscribers) q.push(ev);
    return ev;
  }
}

function pageSize(n: number): number {
  if (n === 0) return 100;
  if (n < 1 || n > 100) throw new AgentdError("invalid_argument", `page_size must be 1..100, got ${n}`);
  return n;
}

function kindOf(ev: Event): string {
  const v = ev.payload.value;
  if (ev.payload.case === "genericEvent") return ev.payload.value.kind;
  return v === undefined ? "" : v.$typeName.split(".").pop()!;
}

function eventService(s: FixtureState): Partial<ServiceImpl<typeof EventService>> {
  const matches = (ev: Event, f: { kind: string; timestampGte?: Timestamp; timestampLt?: Timestamp } | undefined) => {
    if (f === undefined) return true;
    if (f.kind !== "" && kindOf(ev) !== f.kind.split(".").pop()) return false;
    const t = timestampDate(ev.timestamp!).getTime();
    if (f.timestampGte !== undefined && t < timestampDate(f.timestampGte).getTime()) return false;
    if (f.timestampLt !== undefined && t >= timestampDate(f.timestampLt).getTime()) return false;
    return true;
  };
  return {
    searchEvents(req) {
      const log = s.log(req.conversationId);
      const size = pageSize(req.pageSize);
      let items = log.events.filter((e) => matches(e, req.filter));
      if (req.sortOrder === 2) items = [...items].reverse();
      const start = req.pageToken === "" ? 0 : Math.max(0, items.findIndex((e) => e.id === req.pageToken));
      const page = items.slice(start, start + size);
      return { items: page, nextPageToken: items[start + size]?.id ?? "" };
    },
    countEvents(req) {
      return { count: BigInt(s.log(req.conversationId).events.filter((e) => matches(e, req.filter)).length) };
    },
    getEvent(req) {
      const ev = s.log(req.conversationId).events.find((e) => e.id === req.eventId);
      if (ev === undefined) throw new AgentdError("not_found", `event ${req.eventId} not found`, {}, "EVENT_NOT_FOUND");
      return { event: ev };
    },
    batchGetEvents(req) {
      const log = s.log(req.conversationId);
      if (req.eventIds.length > 100) throw new AgentdError("invalid_argument", "at most 100 event_ids");
      return { events: req.eventIds.map((id) => ({ event: log.events.find((e) => e.id === id) })) };
    },
    sendMessage(req) {
      s.log(req.conversationId);
      if (req.content.length === 0) throw new AgentdError("invalid_argument", "content: at least one part is required");
      const ev = s.append(req.conversationId, { source: 2, payload: { case: "messageEvent", value: { llmMessage: { role: req.role || 1, content: req.content } } } });
      return { success: true, seq: ev.seq };
    },
    async *watchEvents(req, ctx: HandlerContext) {
      if (req.conversationId === OVERLOADED_ID) throw new AgentdError("resource_exhausted", "subscriber fell behind; resume from seq 1", { resume_seq: "1" }, "SUBSCRIBER_BEHIND");
      const log = s.log(req.conversationId);
      const queue = new Queue<Event>();
      log.subscribers.add(queue); // subscribe first: nothing appended during the replay is lost
      try {
        yield {
          item: {
            case: "event",
            value: create(EventSchema, {
              id: randomUUID(),
              seq: 0n,
              timestamp: timestampNow(),
              source: 3,
              payload: { case: "conversationStateUpdateEvent", value: { key: "full_state", value: { kind: { case: "stringValue", value: "snapshot" } } } },
            }),
          },
        };
        let last = req.afterSeq;
        if (req.liveOnly) last = BigInt(log.events.length);
        else {
          for (const ev of log.events) {
            if (ev.seq <= last) continue;
            yield { item: { case: "event", value: ev } };
            last = ev.seq;
          }
        }
        yield { item: { case: "keepalive", value: { headSeq: last, executionStatus: ExecutionStatus.IDLE } } };
        for (;;) {
          const ev = await queue.next(ctx.signal);
          if (ev === undefined) return;
          if (ev.seq <= last) continue;
          last = ev.seq;
          yield { item: { case: "event", value: ev } };
        }
      } finally {
        log.subscribers.delete(queue);
      }
    },
  };
}

function bashService(s: FixtureState): Partial<ServiceImpl<typeof BashService>> {
  return {
    startBashCommand(req) {
      const spec = req.spec;
      if (spec === undefined || spec.command === "") throw new AgentdError("invalid_argument", "command: must not be empty");
      const id = randomUUID().replaceAll("-", "");
      const command = { id, timestamp: s.now(), command: spec.command, cwd: spec.cwd, timeout: spec.timeout || 300 };
      s.appendBash({ event: { case: "command", value: command } });
      s.appendBash({ event: { case: "output", value: { id: randomUUID().replaceAll("-", ""), timestamp: s.now(), commandId: id, order: 0, exitCode: 0, stdout: `ran: ${spec.command}\n` } } });
      return { command };
    },
    searchBashEvents(req) {
      const size = pageSize(req.pageSize);
      return { items: s.bashEvents.slice(0, size), nextPageToken: "" };
    },
    async *watchBashEvents(req, ctx: HandlerContext) {
      const queue = new Queue<BashEvent>();
      s.bashSubscribers.add(queue);
      try {
        if (req.resendAll) for (const ev of s.bashEvents) yield { item: { case: "event", value: ev } };
        yield { item: { case: "keepalive", value: { runningCommands: 0 } } };
        for (;;) {
          const ev = await queue.next(ctx.signal);
          if (ev === undefined) return;
          yield { item: { case: "event", value: ev } };
        }
      } finally {
        s.bashSubscribers.delete(queue);
      }
    },
  };
}

function conversationService(s: FixtureState): Partial<ServiceImpl<typeof ConversationService>> {
  return {
    createConversation(req) {
      if (req.conversationId !== undefined && s.logs.has(req.conversationId)) return { conversation: s.logs.get(req.conversationId)!.conversation, created: false };
      const c = s.createConversation(req.conversationId);
      if (req.title !== undefined) c.title = req.title;
      c.tags = req.tags;
      return { conversation: c, created: true };
    },
    getConversation(req) {
      return { conversation: s.log(req.conversationId).conversation };
    },
    batchGetConversations(req) {
      if (req.ids.length > 100) throw new AgentdError("invalid_argument", "at most 100 ids");
      return { conversations: req.ids.map((id) => ({ conversation: s.logs.get(id)?.conversation })) };
    },
    countConversations() {
      return { count: BigInt(s.logs.size) };
    },
    searchConversations(req) {
      const size = pageSize(req.pageSize);
      return { items: [...s.logs.values()].slice(0, size).map((l) => l.conversation), nextPageToken: "" };
    },
    runConversation(req) {
      s.log(req.conversationId);
      return { success: true };
    },
  };
}

function fileService(s: FixtureState): Partial<ServiceImpl<typeof FileService>> {
  const sessions = new Map<string, { target: string; temp: string; handle: FileHandle; received: bigint; hash: ReturnType<typeof createHash> }>();
  const resolve = (p: string) => {
    const abs = path.resolve(s.root, p);
    if (!abs.startsWith(s.root + path.sep)) throw new AgentdError("permission_denied", `path ${p} is outside the workspace`);
    return abs;
  };
  return {
    async *downloadFile(req) {
      const file = resolve(req.path);
      const st = await stat(file).catch(() => {
        throw new AgentdError("not_found", `file ${req.path} not found`);
      });
      if (!st.isFile()) throw new AgentdError("failed_precondition", `${req.path} is not a file`);
      const size = BigInt(st.size);
      if (req.offset > size) throw new AgentdError("out_of_range", `offset ${req.offset} is past the end (${size})`);
      const end = req.length === 0n ? size : req.offset + req.length > size ? size : req.offset + req.length;
      const info = { path: file, name: path.basename(file), type: FileType.FILE, size };
      const handle = await open(file, "r");
      try {
        let pos = req.offset;
        let first = true;
        const hash = createHash("sha256");
        do {
          const n = Number(end - pos < 65536n ? end - pos : 65536n);
          const buf = Buffer.alloc(n);
          if (n > 0) await handle.read(buf, 0, n, Number(pos));
          hash.update(buf);
          const last = pos + BigInt(n) >= end;
          yield { info: first ? info : undefined, offset: pos, data: buf, sha256: last ? hash.digest("hex") : "" };
          first = false;
          pos += BigInt(n);
        } while (pos < end);
      } finally {
        await handle.close();
      }
    },
    async createUpload(req) {
      const target = resolve(req.path);
      await mkdir(path.dirname(target), { recursive: true });
      const temp = `${target}.${randomUUID()}.part`;
      const handle = await open(temp, "w");
      const id = randomUUID();
      sessions.set(id, { target, temp, handle, received: 0n, hash: createHash("sha256") });
      return { uploadId: id };
    },
    async writeUpload(req) {
      const u = sessions.get(req.uploadId);
      if (u === undefined) throw new AgentdError("not_found", `upload ${req.uploadId} not found`);
      if (req.offset !== u.received) throw new AgentdError("out_of_range", `expected offset ${u.received}`);
      await u.handle.write(req.data);
      u.hash.update(req.data);
      u.received += BigInt(req.data.length);
      s.uploadChunks.push(req.data.length);
      return { received: u.received };
    },
    async commitUpload(req) {
      const u = sessions.get(req.uploadId);
      if (u === undefined) throw new AgentdError("not_found", `upload ${req.uploadId} not found`);
      sessions.delete(req.uploadId);
      await u.handle.close();
      const digest = u.hash.digest("hex");
      if (req.sha256 !== "" && req.sha256 !== digest) {
        await rm(u.temp, { force: true });
        throw new AgentdError("invalid_argument", "sha256 mismatch");
      }
      await rename(u.temp, u.target);
      return { info: { path: u.target, name: path.basename(u.target), type: FileType.FILE, size: u.received }, sha256: digest };
    },
    async abortUpload(req) {
      const u = sessions.get(req.uploadId);
      if (u === undefined) throw new AgentdError("not_found", `upload ${req.uploadId} not found`);
      sessions.delete(req.uploadId);
      await u.handle.close();
      await rm(u.temp, { force: true });
      return { success: true };
    },
  };
}

export interface Harness {
  url: string;
  port: number;
  state: FixtureState;
  gateway: Gateway;
  root: string;
  close(): Promise<void>;
}

export interface HarnessOptions {
  keys?: string[];
  maxMessageBytes?: number;
  pingIntervalMs?: number;
  authTimeoutMs?: number;
}

export async function startGatewayHarness(options: HarnessOptions = {}): Promise<Harness> {
  const root = await mkdtemp(path.join(os.tmpdir(), "agentd-gw-"));
  const state = new FixtureState(root);
  const logger = createLogger("silent");
  const keys = new SessionKeys(options.keys ?? []);
  const shutdown = new AbortController();
  const services = [ServerService, ConversationService, EventService, BashService, FileService];
  const gateway = createGateway({
    services,
    keys,
    maxMessageBytes: options.maxMessageBytes ?? 1024 * 1024,
    logger,
    shutdownSignal: shutdown.signal,
    pingIntervalMs: options.pingIntervalMs,
    authTimeoutMs: options.authTimeoutMs,
  });
  const routes = (router: ConnectRouter) => {
    router.service(
      ServerService,
      createServerService({ startTimeMs: Date.now(), lastActivityMs: () => Date.now(), usableTools: () => ["terminal"], capabilities: [], workspaceBase: root, buildGitSha: "x", buildGitRef: "y" }),
    );
    router.service(ConversationService, conversationService(state));
    router.service(EventService, eventService(state));
    router.service(BashService, bashService(state));
    router.service(FileService, fileService(state));
  };
  const interceptors = [authInterceptor(keys), errorInterceptor(logger)];
  gateway.attachRoutes(routes, interceptors);
  // Connect/gRPC-Web for the same routes (the browser demo uses connect-web), the gateway behind.
  const rpc = connectNodeAdapter({
    routes,
    interceptors,
    fallback: (req, res) => {
      if (!gateway.handleHttp(req, res)) sendJson(res, 404, { detail: "Not Found" });
    },
  });
  const server = http.createServer(rpc);
  server.on("upgrade", (req, socket, head) => {
    if (!gateway.onUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    state,
    gateway,
    root,
    async close() {
      shutdown.abort();
      await gateway.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Writes a file under the harness root and returns its absolute path. */
export async function fixtureFile(h: Harness, name: string, content: Buffer | string): Promise<string> {
  const p = path.join(h.root, name);
  await writeFile(p, content);
  return p;
}
