/**
 * Browser side of the /_demo page (bundled by esbuild on first request, see ../demo.ts): proves a
 * browser reaches agentd on one port through every surface — Connect-web unary and server
 * streaming, REST, and the OpenHands WebSockets. Results are shown on the page and exposed as
 * `window.agentdDemo` for the Playwright test. The session key, if any, comes from `?key=`.
 */
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { BashService } from "../../../gen/agentd/v1/bash_service_pb.js";
import { EventService } from "../../../gen/agentd/v1/event_service_pb.js";
import { ServerService } from "../../../gen/agentd/v1/server_service_pb.js";

const params = new URLSearchParams(location.search);
const key = params.get("key") ?? undefined;

const withKey: Interceptor = (next) => (req) => {
  if (key !== undefined) req.header.set("x-session-api-key", key);
  return next(req);
};
const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [withKey] });
const server = createClient(ServerService, transport);
const events = createClient(EventService, transport);
const bash = createClient(BashService, transport);

type StreamResult = { items: { case: string; seq?: string; kind?: string }[]; error?: string };

function errorName(err: unknown): string {
  const e = ConnectError.from(err);
  return Code[e.code] ?? String(e.code);
}

const demo = {
  /** GetServerInfo over Connect (JSON, HTTP/1.1 from the browser). */
  async unary(): Promise<{ title: string; version: string; error?: string }> {
    try {
      const res = await server.getServerInfo({});
      return { title: res.info?.title ?? "", version: res.info?.version ?? "" };
    } catch (err) {
      return { title: "", version: "", error: errorName(err) };
    }
  },

  /** Reads up to `count` items of WatchEvents (keepalives included) after `afterSeq`. */
  async watchEvents(conversationId: string, count: number, afterSeq = 0): Promise<StreamResult> {
    const items: StreamResult["items"] = [];
    const abort = new AbortController();
    try {
      for await (const res of events.watchEvents({ conversationId, afterSeq: BigInt(afterSeq) }, { signal: abort.signal })) {
        const item = res.item;
        if (item.case === "event") items.push({ case: "event", seq: String(item.value.seq), kind: item.value.payload.case ?? "" });
        else items.push({ case: item.case ?? "" });
        if (items.length >= count) break;
      }
      return { items };
    } catch (err) {
      return { items, error: errorName(err) };
    } finally {
      abort.abort();
    }
  },

  /** Reads up to `count` items of WatchBashEvents (with replay). */
  async watchBash(count: number): Promise<StreamResult> {
    const items: StreamResult["items"] = [];
    const abort = new AbortController();
    try {
      for await (const res of bash.watchBashEvents({ resendAll: true }, { signal: abort.signal })) {
        const item = res.item;
        if (item.case === "event") items.push({ case: "event", kind: item.value.event.case ?? "" });
        else items.push({ case: item.case ?? "" });
        if (items.length >= count) break;
      }
      return { items };
    } catch (err) {
      return { items, error: errorName(err) };
    } finally {
      abort.abort();
    }
  },

  /** A REST call with fetch. */
  async rest(path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
    const headers = new Headers(init.headers);
    if (key !== undefined) headers.set("X-Session-API-Key", key);
    const res = await fetch(path, { ...init, headers });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, body };
  },

  /**
   * Opens a WebSocket (key in the query), optionally sends `send` frames once open, and collects
   * `count` frames or the close, whichever comes first (or `timeoutMs`).
   */
  socket(path: string, options: { send?: unknown[]; count?: number; timeoutMs?: number; query?: string } = {}): Promise<{ frames: unknown[]; close?: { code: number; reason: string } }> {
    const url = new URL(path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams(options.query ?? "");
    if (key !== undefined) q.set("session_api_key", key);
    url.search = q.toString();
    const frames: unknown[] = [];
    return new Promise((resolve) => {
      const ws = new WebSocket(url);
      const done = (close?: { code: number; reason: string }) => {
        clearTimeout(timer);
        resolve(close === undefined ? { frames } : { frames, close });
        if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      };
      const timer = setTimeout(() => done(), options.timeoutMs ?? 5000);
      ws.onopen = () => {
        for (const f of options.send ?? []) ws.send(JSON.stringify(f));
      };
      ws.onmessage = (ev) => {
        frames.push(JSON.parse(String(ev.data)));
        if (frames.length >= (options.count ?? 1)) done();
      };
      ws.onclose = (ev) => done({ code: ev.code, reason: ev.reason });
    });
  },
};

declare global {
  interface Window {
    agentdDemo: typeof demo;
  }
}
window.agentdDemo = demo;

async function main(): Promise<void> {
  const out = document.getElementById("server-info");
  const info = await demo.unary();
  if (out !== null) out.textContent = info.error !== undefined ? `error: ${info.error}` : `${info.title} ${info.version}`;
  document.body.dataset.ready = "true";
}
void main();
