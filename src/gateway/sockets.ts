/**
 * The OpenHands WebSockets (reference §2), driven by the server-streaming RPCs through the
 * in-process caller:
 *
 *   /sockets/events/{conversation_id} → EventService.WatchEvents; client frames → SendMessage(run)
 *   /sockets/bash-events              → BashService.WatchBashEvents; client frames → StartBashCommand
 *
 * Auth (only when session keys are configured): `session_api_key` query or X-Session-API-Key /
 * Bearer header — a wrong one is refused before the upgrade with HTTP 401; without either, the
 * socket is accepted and the first frame must be `{"type":"auth","session_api_key":"..."}` within
 * 10 s, else close 4001 "Authentication failed". Later frames that look like auth frames are
 * ignored. The key is then forwarded on every call, so the RPC interceptors decide as everywhere.
 *
 * Frames carry agentd's extension fields (the event `seq`) when the client resumes by `after_seq`
 * or passes `agentd_extensions=true`.
 *
 * Replay (events socket): `after_seq=N` (our cursor: stored events with seq > N, then live, no gap,
 * no duplicate); `resend_mode=all` or `resend_all=true` → after_seq 0; `resend_mode=since` with
 * `after_timestamp=T` → after_seq = the number of events before T (seqs are dense from 1 and
 * timestamps never decrease along seq, so that count is the seq of the last event before T);
 * otherwise only the snapshot and live events. The bash socket replays with `resend_mode=all` or
 * `resend_all=true`.
 *
 * Frames: events as OpenHands JSON, exclude_none for the events socket (as OpenHands), nulls kept
 * for bash events (model_dump); keepalive items of the streams are not forwarded (the socket has
 * its own ping). A bad client frame is answered with a ServerErrorEvent / BashError frame and the
 * socket stays open. Stream errors close the socket with the error table's code (unknown
 * conversation 4004, fell behind / overload 1013); a stream that ends (server shutdown) closes
 * with 1001. Keepalive: a ws ping every 20 s; a socket that did not answer the previous ping is
 * terminated. Slow readers: the next event is only pulled from the stream once the socket's
 * buffer is below 1 MiB, so a stalled client makes the RPC end it with ResourceExhausted (1013).
 */
import { randomUUID } from "node:crypto";
import type http from "node:http";
import type { Duplex } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { BashService, BashCommandSpecSchema } from "../../gen/agentd/v1/bash_service_pb.js";
import { BashEventSchema } from "../../gen/agentd/v1/bash_pb.js";
import { EventService, SendMessageRequestSchema } from "../../gen/agentd/v1/event_service_pb.js";
import { EventSchema } from "../../gen/agentd/v1/event_pb.js";
import { formatTimestamp, fromOpenHandsJson, normalizeUuid, parseTimestamp, toOpenHandsJson } from "../codec/openhands-json.js";
import { AgentdError } from "../errors.js";
import { presentedKey } from "../server/auth.js";
import type { AnyResponse } from "../server/http-common.js";
import type { Logger } from "../server/logger.js";
import type { InProcessCaller } from "./caller.js";
import { splitPath } from "./rest-routes.js";
import { describeError, wsCloseOf } from "./rpc-errors.js";
import { timestampNow } from "@bufbuild/protobuf/wkt";

/** max_batch of the WatchEvents call behind an events socket. */
const SOCKET_WATCH_BATCH = 100;

/** What the socket gateway needs to know about session keys (SessionKeys fits). */
export interface KeyCheck {
  readonly disabled: boolean;
  accepts(candidate: string | null | undefined): boolean;
}

export interface SocketGatewayOptions {
  caller: InProcessCaller;
  keys: KeyCheck;
  maxMessageBytes: number;
  logger: Logger;
  /** Interval of ws pings. Default 20 s. */
  pingIntervalMs?: number;
  /** How long an unauthenticated socket may wait for its auth frame. Default 10 s. */
  authTimeoutMs?: number;
}

const SEND_HIGH_WATER = 1024 * 1024;

type Target = { type: "events"; conversationId: string } | { type: "bash" };

/** The socket paths, for the route coverage test and the OpenAPI document. */
export const SOCKET_PATHS = ["/sockets/events/{conversation_id}", "/sockets/bash-events"] as const;

export function socketTargetOf(pathname: string): Target | undefined {
  const segs = splitPath(pathname);
  if (segs === undefined || segs[0] !== "sockets") return undefined;
  if (segs.length === 3 && segs[1] === "events" && segs[2] !== "") return { type: "events", conversationId: segs[2]! };
  if (segs.length === 2 && segs[1] === "bash-events") return { type: "bash" };
  return undefined;
}

export class SocketGateway {
  readonly #wss: WebSocketServer;
  readonly #sockets = new Set<WebSocket>();
  readonly #alive = new WeakMap<WebSocket, boolean>();
  readonly #timer: NodeJS.Timeout;
  readonly #caller: InProcessCaller;
  readonly #keys: KeyCheck;
  readonly #logger: Logger;
  readonly #authTimeoutMs: number;
  #closed = false;

  constructor(options: SocketGatewayOptions) {
    this.#caller = options.caller;
    this.#keys = options.keys;
    this.#logger = options.logger;
    this.#authTimeoutMs = options.authTimeoutMs ?? 10_000;
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes, perMessageDeflate: false });
    this.#timer = setInterval(() => this.#ping(), options.pingIntervalMs ?? 20_000);
    this.#timer.unref();
  }

  /** Number of open sockets. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Takes an upgrade for a socket path; false for other paths. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, pathname: string): boolean {
    const target = socketTargetOf(pathname);
    if (target === undefined) return false;
    if (this.#closed) {
      rejectUpgrade(socket, 503, "server shutting down");
      return true;
    }
    const query = new URLSearchParams((req.url ?? "").split("?")[1] ?? "");
    const given = query.get("session_api_key") ?? presentedKey((n) => {
      const v = req.headers[n];
      return Array.isArray(v) ? v[0] : v;
    });
    if (!this.#keys.disabled && given !== undefined && given !== null && !this.#keys.accepts(given)) {
      rejectUpgrade(socket, 401, "Unauthorized");
      return true;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#track(ws);
      const authed = this.#keys.disabled || (given !== undefined && given !== null);
      if (authed) this.#start(ws, target, query, given ?? undefined);
      else this.#awaitAuth(ws, target, query);
    });
    return true;
  }

  /** A plain GET on a socket path: 426 Upgrade Required (the path exists, but only as a socket). */
  handlePlain(res: AnyResponse, pathname: string): boolean {
    if (socketTargetOf(pathname) === undefined) return false;
    const body = JSON.stringify({ detail: "Upgrade Required: this path is a WebSocket" });
    (res as http.ServerResponse).writeHead(426, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), upgrade: "websocket" });
    res.end(body);
    return true;
  }

  /** Closes every socket (1001) and stops pinging. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const ws of this.#sockets) ws.close(1001, "server shutting down");
    // Sockets that do not complete the closing handshake promptly are cut.
    const stragglers = [...this.#sockets];
    setTimeout(() => {
      for (const ws of stragglers) ws.terminate();
    }, 1000).unref();
    this.#wss.close();
  }

  #track(ws: WebSocket): void {
    this.#sockets.add(ws);
    this.#alive.set(ws, true);
    ws.on("pong", () => this.#alive.set(ws, true));
    ws.on("close", () => this.#sockets.delete(ws));
    ws.on("error", () => ws.terminate());
  }

  #ping(): void {
    for (const ws of this.#sockets) {
      if (this.#alive.get(ws) !== true) {
        ws.terminate();
        continue;
      }
      this.#alive.set(ws, false);
      ws.ping();
    }
  }

  #awaitAuth(ws: WebSocket, target: Target, query: URLSearchParams): void {
    const fail = () => ws.close(4001, "Authentication failed");
    const timer = setTimeout(fail, this.#authTimeoutMs);
    ws.once("close", () => clearTimeout(timer));
    ws.once("message", (data) => {
      clearTimeout(timer);
      const frame = parseFrame(data);
      if (!isAuthFrame(frame)) return fail();
      const key = (frame as { session_api_key?: unknown }).session_api_key;
      if (typeof key !== "string" || !this.#keys.accepts(key)) return fail();
      this.#start(ws, target, query, key);
    });
  }

  #start(ws: WebSocket, target: Target, query: URLSearchParams, key: string | undefined): void {
    const ac = new AbortController();
    ws.once("close", () => ac.abort());
    // Client frames are handled one after the other, in arrival order.
    let chain = Promise.resolve();
    ws.on("message", (data) => {
      chain = chain.then(() => this.#onFrame(ws, target, data, key));
    });
    this.#pump(ws, target, query, key, ac.signal).catch((err: unknown) => {
      if (ws.readyState !== ws.OPEN) return;
      const { code, reason } = wsCloseOf(err);
      ws.close(code, reason);
    });
  }

  async #pump(ws: WebSocket, target: Target, query: URLSearchParams, key: string | undefined, signal: AbortSignal): Promise<void> {
    if (target.type === "events") {
      const conversationId = normalizeUuid(target.conversationId, "conversation_id");
      // Batches (one frame per event all the same): a socket that is behind then costs the
      // in-process call one message per batch rather than per event.
      const request = create(EventService.method.watchEvents.input, {
        conversationId,
        maxBatch: SOCKET_WATCH_BATCH,
        ...(await this.#replayFrom(conversationId, query, key, signal)),
      });
      // A client that resumes by `after_seq` speaks our cursor and gets `seq` in every frame.
      const extensions = query.has("after_seq") || /^(1|true|yes)$/i.test(query.get("agentd_extensions") ?? "");
      const stream = await this.#caller.stream(EventService.method.watchEvents, request, key, signal);
      for await (const { item } of stream) {
        const events = item.case === "events" ? item.value.events : item.case === "event" ? [item.value] : [];
        for (const event of events) await send(ws, JSON.stringify(toOpenHandsJson(EventSchema, event, { excludeNone: true, extensions })));
      }
    } else {
      const resendAll = resendMode(query) === "all";
      const request = create(BashService.method.watchBashEvents.input, { resendAll });
      const stream = await this.#caller.stream(BashService.method.watchBashEvents, request, key, signal);
      for await (const item of stream) {
        if (item.item.case !== "event") continue;
        await send(ws, JSON.stringify(toOpenHandsJson(BashEventSchema, item.item.value)));
      }
    }
    if (ws.readyState === ws.OPEN) ws.close(1001, "stream ended");
  }

  /** WatchEvents' after_seq / live_only from the OpenHands resend options and our after_seq. */
  async #replayFrom(conversationId: string, query: URLSearchParams, key: string | undefined, signal: AbortSignal): Promise<{ afterSeq: bigint; liveOnly: boolean }> {
    const afterSeq = query.get("after_seq");
    if (afterSeq !== null) {
      if (!/^\d+$/.test(afterSeq)) throw new AgentdError("invalid_argument", `after_seq: expected a non-negative integer, got ${JSON.stringify(afterSeq)}`);
      return { afterSeq: BigInt(afterSeq), liveOnly: false };
    }
    const mode = resendMode(query);
    if (mode === "all") return { afterSeq: 0n, liveOnly: false };
    if (mode === "since") {
      const after = query.get("after_timestamp");
      if (after === null || after === "") return { afterSeq: 0n, liveOnly: true };
      const ts = parseTimestamp(after, "after_timestamp");
      const count = await this.#caller.unary(
        EventService.method.countEvents,
        create(EventService.method.countEvents.input, { conversationId, filter: { timestampLt: ts } }),
        key,
        signal,
      );
      return { afterSeq: count.count < 0n ? 0n : count.count, liveOnly: false };
    }
    return { afterSeq: 0n, liveOnly: true };
  }

  async #onFrame(ws: WebSocket, target: Target, data: RawData, key: string | undefined): Promise<void> {
    const frame = parseFrame(data);
    if (isAuthFrame(frame)) return; // clients may always send one; ignored after auth
    try {
      if (frame === INVALID) throw new AgentdError("invalid_argument", "frame: invalid JSON");
      if (target.type === "events") {
        const msg = fromOpenHandsJson(SendMessageRequestSchema, frame, "message");
        msg.conversationId = normalizeUuid(target.conversationId, "conversation_id");
        msg.run = true;
        await this.#caller.unary(EventService.method.sendMessage, msg, key);
      } else {
        const spec = fromOpenHandsJson(BashCommandSpecSchema, frame, "request");
        await this.#caller.unary(BashService.method.startBashCommand, create(BashService.method.startBashCommand.input, { spec }), key);
      }
    } catch (err) {
      if (ws.readyState !== ws.OPEN) return;
      const d = describeError(err);
      if (d.code === "internal") this.#logger.warn("websocket frame failed", { error: d.message });
      const code = d.code === "invalid_argument" ? "ValidationError" : (d.reason ?? d.code.toUpperCase());
      const now = formatTimestamp(timestampNow());
      const reply =
        target.type === "events"
          ? { kind: "ServerErrorEvent", id: randomUUID(), timestamp: now, source: "environment", code, detail: d.message }
          : { kind: "BashError", id: randomUUID().replaceAll("-", ""), timestamp: now, code, detail: d.message };
      try {
        await send(ws, JSON.stringify(reply));
      } catch {
        ws.close(1000);
      }
    }
  }
}

const INVALID = Symbol("invalid frame");

function parseFrame(data: RawData): unknown {
  const text = Array.isArray(data) ? Buffer.concat(data).toString("utf8") : Buffer.from(data as ArrayBuffer).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return INVALID;
  }
}

/** `{"type":"auth", "session_api_key"?: ...}` and nothing else (OpenHands' rule). */
function isAuthFrame(frame: unknown): boolean {
  if (typeof frame !== "object" || frame === null || Array.isArray(frame)) return false;
  const keys = Object.keys(frame);
  return (frame as { type?: unknown }).type === "auth" && keys.every((k) => k === "type" || k === "session_api_key");
}

/** `resend_mode` wins over the deprecated `resend_all`. */
function resendMode(query: URLSearchParams): string | undefined {
  const mode = query.get("resend_mode");
  if (mode !== null && mode !== "") return mode.toLowerCase();
  const all = query.get("resend_all");
  return all !== null && /^(1|true|yes)$/i.test(all) ? "all" : undefined;
}

/** Sends a text frame; waits for the socket to flush when its buffer is above the high water mark. */
function send(ws: WebSocket, text: string): Promise<void> {
  if (ws.readyState !== ws.OPEN) return Promise.reject(new AgentdError("canceled", "socket closed"));
  if (ws.bufferedAmount < SEND_HIGH_WATER) {
    ws.send(text);
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => ws.send(text, (err) => (err ? reject(err) : resolve())));
}

function rejectUpgrade(socket: Duplex, status: number, detail: string): void {
  const body = JSON.stringify({ detail });
  const reason = status === 401 ? "Unauthorized" : "Service Unavailable";
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
