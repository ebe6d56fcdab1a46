/**
 * A WebSocket test client: frames are queued as they arrive (`next()` awaits the next one, no
 * sleeps), `closed` resolves with the close code and reason, `opened` with the upgrade result (or
 * the HTTP status of a refused upgrade).
 */
import { WebSocket, type ClientOptions } from "ws";

export interface WsClient {
  ws: WebSocket;
  /** Resolves when the socket opens, or with the HTTP status when the upgrade is refused. */
  opened: Promise<{ ok: true } | { ok: false; status: number; body: string }>;
  /** Resolves when the socket closes. */
  closed: Promise<{ code: number; reason: string }>;
  /** The next JSON frame (rejects if the socket closes first, or after `timeoutMs`). */
  next(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Collects frames until `pred` holds for the last one. */
  until(pred: (frame: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>[]>;
  send(frame: unknown): void;
  close(): Promise<void>;
}

export function connectWs(url: string, options: ClientOptions = {}): WsClient {
  const ws = new WebSocket(url, options);
  const frames: Record<string, unknown>[] = [];
  const waiters: ((f: Record<string, unknown> | undefined) => void)[] = [];
  let isClosed = false;
  const opened = new Promise<{ ok: true } | { ok: false; status: number; body: string }>((resolve) => {
    ws.once("open", () => resolve({ ok: true }));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ ok: false, status: res.statusCode ?? 0, body }));
    });
    ws.once("error", () => resolve({ ok: false, status: 0, body: "" }));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.once("close", (code, reason) => {
      isClosed = true;
      for (const w of waiters.splice(0)) w(undefined);
      resolve({ code, reason: reason.toString() });
    });
  });
  ws.on("message", (data) => {
    const frame = JSON.parse(String(data)) as Record<string, unknown>;
    const w = waiters.shift();
    if (w !== undefined) w(frame);
    else frames.push(frame);
  });
  const next = (timeoutMs = 5000): Promise<Record<string, unknown>> => {
    const queued = frames.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (isClosed) return Promise.reject(new Error("socket closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = waiters.indexOf(waiter);
        if (i >= 0) waiters.splice(i, 1);
        reject(new Error(`no frame within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (f: Record<string, unknown> | undefined) => {
        clearTimeout(timer);
        if (f === undefined) reject(new Error("socket closed"));
        else resolve(f);
      };
      waiters.push(waiter);
    });
  };
  return {
    ws,
    opened,
    closed,
    next,
    async until(pred, timeoutMs = 5000) {
      const out: Record<string, unknown>[] = [];
      for (;;) {
        const f = await next(timeoutMs);
        out.push(f);
        if (pred(f)) return out;
      }
    },
    send(frame) {
      ws.send(JSON.stringify(frame));
    },
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      if (ws.readyState === WebSocket.CONNECTING) {
        ws.terminate();
      } else {
        ws.close(1000);
      }
      await closed;
    },
  };
}
