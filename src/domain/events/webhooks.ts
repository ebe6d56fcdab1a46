/**
 * Webhooks, in the OpenHands shape (openhands-agent-server.md §7.3, §12.6).
 *
 * For each configured webhook (`config.webhooks`: base_url, headers, event_buffer_size,
 * flush_delay, num_retries, retry_delay, max_queue_size):
 *
 * - Events: every stored event of a conversation (seq > 0; transient events are not sent) is
 *   queued and POSTed in batches to `{base_url}/events/{conversation_id_hex}` as a JSON array of
 *   OpenHands JSON events with null fields included (`model_dump(mode="json")`). A batch is sent
 *   when `event_buffer_size` events wait, or `flush_delay` seconds after the first of them was
 *   queued (the timer is not reset by later events); once that delay has passed everything
 *   waiting is sent, in batches of at most `event_buffer_size`.
 * - Conversations: `notifyConversation(json)` POSTs one ConversationInfo object to
 *   `{base_url}/conversations` (no batching).
 * - Every request carries `Content-Type: application/json`, `X-Session-API-Key` with the first
 *   configured session key (when there is one), and the configured `headers`.
 * - Per conversation (and for conversation notifications) one request is in flight at a time, so
 *   the receiver sees events in seq order. A request that fails (network error, timeout after
 *   30 s, non-2xx status) is retried `num_retries` times, `retry_delay` seconds apart; if every
 *   attempt fails the batch goes back to the front of the queue and is tried again after
 *   `flush_delay`.
 * - Each queue holds at most `max_queue_size` items; beyond that the oldest are dropped (counted
 *   in `stats().dropped` and logged).
 * - Never blocking: `events()` and `notifyConversation()` only queue (O(1) per item, no I/O, no
 *   encoding); JSON is built when a batch is sent.
 * - `close()` sends what is still queued (with the same retries), gives up after `closeTimeoutMs`
 *   (default 10 s: in-flight requests are aborted, the rest is dropped), then releases sockets.
 */

import http from "node:http";
import https from "node:https";
import type { JsonValue } from "@bufbuild/protobuf";
import { toOpenHandsJson } from "../../codec/openhands-json.js";
import type { WebhookConfig } from "../../config.js";
import { EventSchema } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";

export type WebhookLog = (level: "debug" | "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;

export interface WebhooksOptions {
  /** The configured webhooks (OpenHands field names; delays in seconds). */
  readonly webhooks: readonly WebhookConfig[];
  /** Sent as X-Session-API-Key (OpenHands sends the first configured session key). */
  readonly sessionApiKey?: string | undefined;
  /** Per-request timeout (default 30 000 ms, as OpenHands). */
  readonly requestTimeoutMs?: number;
  /** How long close() keeps trying to deliver what is queued (default 10 000 ms). */
  readonly closeTimeoutMs?: number;
  readonly log?: WebhookLog;
}

/** Counters over every webhook. */
export interface WebhookStats {
  /** Events delivered (acknowledged with a 2xx). */
  readonly eventsSent: number;
  /** Conversation notifications delivered. */
  readonly conversationsSent: number;
  /** Items dropped: queue overflow, or still undelivered when close() gave up. */
  readonly dropped: number;
  /** Requests that failed (each attempt counts). */
  readonly failedRequests: number;
  /** Items waiting or in flight. */
  readonly pending: number;
}

/** Largest JSON body a batch may have before it is split (OpenHands: max_batch_bytes 5 MiB). */
const MAX_BATCH_BYTES = 5 * 1024 * 1024;

export class Webhooks {
  private readonly targets: Target[];
  private readonly shared: Shared;
  private readonly closeTimeoutMs: number;
  private closed: Promise<void> | undefined;

  constructor(options: WebhooksOptions) {
    const shared: Shared = {
      sessionApiKey: options.sessionApiKey,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      log: options.log ?? (() => {}),
      closing: false,
      abort: new AbortController(),
      counters: { eventsSent: 0, conversationsSent: 0, dropped: 0, failedRequests: 0 },
    };
    this.targets = options.webhooks.map((w) => new Target(w, shared));
    this.closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.shared = shared;
  }

  /** True when at least one webhook is configured. */
  get enabled(): boolean {
    return this.targets.length > 0;
  }

  /**
   * Queues stored events of a conversation for every webhook. Never blocks; safe to call from an
   * EventLog append listener. Events must not be mutated afterwards (they are encoded later).
   */
  events(conversationId: string, events: readonly Event[]): void {
    if (this.shared.closing) return;
    for (const t of this.targets) t.events(conversationId, events);
  }

  /** Queues a ConversationInfo (OpenHands JSON) for `{base_url}/conversations`. Never blocks. */
  notifyConversation(conversation: JsonValue): void {
    if (this.shared.closing) return;
    for (const t of this.targets) t.conversation(conversation);
  }

  stats(): WebhookStats {
    const pending = this.targets.reduce((n, t) => n + t.pending(), 0);
    return { ...this.shared.counters, pending };
  }

  /** Delivers what is queued (bounded by closeTimeoutMs), then releases every socket. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.shared.closing = true;
      const drained = Promise.all(this.targets.map((t) => t.flushAll()));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        drained.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.closeTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.shared.abort.abort();
        await drained;
      }
      for (const t of this.targets) t.destroy();
      const left = this.targets.reduce((n, t) => n + t.discard(), 0);
      if (left > 0) {
        this.shared.counters.dropped += left;
        this.shared.log("warn", "webhook items dropped at shutdown", { dropped: left });
      }
    })();
    return this.closed;
  }
}

// ---- internals ----------------------------------------------------------------------------------

interface Counters {
  eventsSent: number;
  conversationsSent: number;
  dropped: number;
  failedRequests: number;
}

interface Shared {
  readonly sessionApiKey: string | undefined;
  readonly requestTimeoutMs: number;
  readonly log: WebhookLog;
  closing: boolean;
  /** Aborted when close() gives up: in-flight requests and retry waits end at once. */
  readonly abort: AbortController;
  readonly counters: Counters;
}

/** One configured webhook: an event channel per conversation and one conversation channel. */
class Target {
  private readonly base: string;
  private readonly agent: http.Agent;
  private readonly channels = new Map<string, Channel<Event>>();
  private readonly conversations: Channel<JsonValue>;

  constructor(
    private readonly config: WebhookConfig,
    private readonly shared: Shared,
  ) {
    this.base = config.base_url.replace(/\/+$/, "");
    this.agent = this.base.startsWith("https:") ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    this.conversations = new Channel<JsonValue>(this, {
      url: `${this.base}/conversations`,
      batchSize: 1,
      delayMs: 0,
      maxQueue: config.max_queue_size,
      encode: (items) => JSON.stringify(items[0]),
      onSent: (n) => (this.shared.counters.conversationsSent += n),
    });
  }

  events(conversationId: string, events: readonly Event[]): void {
    let ch = this.channels.get(conversationId);
    if (ch === undefined) {
      ch = new Channel<Event>(this, {
        url: `${this.base}/events/${conversationId.replaceAll("-", "")}`,
        batchSize: this.config.event_buffer_size,
        delayMs: this.config.flush_delay * 1000,
        maxQueue: this.config.max_queue_size,
        encode: (items) => JSON.stringify(items.map((e) => toOpenHandsJson(EventSchema, e))),
        onSent: (n) => (this.shared.counters.eventsSent += n),
        onIdle: (c) => {
          if (this.channels.get(conversationId) === c) this.channels.delete(conversationId);
        },
      });
      this.channels.set(conversationId, ch);
    }
    for (const e of events) ch.push(e);
  }

  conversation(json: JsonValue): void {
    this.conversations.push(json);
  }

  pending(): number {
    let n = this.conversations.pending();
    for (const ch of this.channels.values()) n += ch.pending();
    return n;
  }

  flushAll(): Promise<void> {
    return Promise.all([this.conversations.flush(), ...[...this.channels.values()].map((c) => c.flush())]).then(() => {});
  }

  /** Drops whatever is still queued; returns how many items that was. */
  discard(): number {
    let n = this.conversations.discard();
    for (const ch of this.channels.values()) n += ch.discard();
    this.channels.clear();
    return n;
  }

  destroy(): void {
    this.agent.destroy();
  }

  get log(): WebhookLog {
    return this.shared.log;
  }

  get closing(): boolean {
    return this.shared.closing;
  }

  countDropped(n: number, url: string): void {
    this.shared.counters.dropped += n;
    this.shared.log("warn", "webhook queue full: dropped the oldest items", { url, dropped: n });
  }

  /**
   * POSTs `body`, retrying num_retries times retry_delay apart. Resolves true on a 2xx, false
   * when every attempt failed (or close() gave up).
   */
  async post(url: string, body: string): Promise<boolean> {
    const attempts = 1 + this.config.num_retries;
    const signal = this.shared.abort.signal;
    for (let attempt = 1; attempt <= attempts && !signal.aborted; attempt++) {
      const result = await this.request(url, body, signal);
      if (result.ok) return true;
      this.shared.counters.failedRequests++;
      this.shared.log("warn", "webhook request failed", { url, attempt, attempts, error: result.error });
      if (attempt < attempts) await delay(this.config.retry_delay * 1000, signal);
    }
    return false;
  }

  private request(url: string, body: string, signal: AbortSignal): Promise<{ ok: true } | { ok: false; error: string }> {
    const headers: Record<string, string> = { ...this.config.headers, "Content-Type": "application/json" };
    if (this.shared.sessionApiKey !== undefined) headers["X-Session-API-Key"] = this.shared.sessionApiKey;
    const client = url.startsWith("https:") ? https : http;
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: { ok: true } | { ok: false; error: string }): void => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
      let req: http.ClientRequest;
      try {
        req = client.request(url, { method: "POST", headers, agent: this.agent, signal, timeout: this.shared.requestTimeoutMs }, (res) => {
          res.resume(); // the body is not used
          res.once("end", () => {
            const status = res.statusCode ?? 0;
            done(status >= 200 && status < 300 ? { ok: true } : { ok: false, error: `HTTP ${status}` });
          });
          res.once("error", (err) => done({ ok: false, error: err.message }));
        });
      } catch (err) {
        done({ ok: false, error: err instanceof Error ? err.message : String(err) });
        return;
      }
      req.once("timeout", () => req.destroy(new Error(`no response within ${this.shared.requestTimeoutMs} ms`)));
      req.once("error", (err) => done({ ok: false, error: err.message }));
      req.end(body);
    });
  }
}

interface ChannelOptions<T> {
  readonly url: string;
  readonly batchSize: number;
  readonly delayMs: number;
  readonly maxQueue: number;
  readonly encode: (items: readonly T[]) => string;
  readonly onSent: (n: number) => void;
  /** Called when the channel has nothing queued, in flight or scheduled. */
  readonly onIdle?: (c: Channel<T>) => void;
}

/**
 * A queue of items for one URL with one request in flight. Invariants: `queue` holds the items
 * not in flight, oldest first, at most `maxQueue`; `timer` runs only while items wait and the
 * flush delay has not passed; `due` is set once it has, and cleared when the queue empties.
 */
class Channel<T> {
  private queue: T[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private due = false;
  private pumping: Promise<void> | undefined;

  constructor(
    private readonly target: Target,
    private readonly o: ChannelOptions<T>,
  ) {}

  pending(): number {
    return this.queue.length + this.inFlight;
  }

  push(item: T): void {
    this.queue.push(item);
    if (this.queue.length > this.o.maxQueue) this.trim();
    if (this.queue.length >= this.o.batchSize || this.due) this.kick();
    else this.schedule();
  }

  /** Sends everything queued now (close). */
  flush(): Promise<void> {
    this.due = true;
    this.kick();
    return this.pumping ?? Promise.resolve();
  }

  discard(): number {
    const n = this.queue.length;
    this.queue = [];
    clearTimeout(this.timer);
    this.timer = undefined;
    return n;
  }

  private trim(): void {
    const n = this.queue.length - this.o.maxQueue;
    this.queue.splice(0, n);
    this.target.countDropped(n, this.o.url);
  }

  private schedule(): void {
    if (this.timer !== undefined || this.pumping !== undefined || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.due = true;
      this.kick();
    }, this.o.delayMs);
  }

  private kick(): void {
    if (this.pumping !== undefined) return; // the running pump re-checks the queue after each send
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pumping = this.pump();
  }

  private async pump(): Promise<void> {
    try {
      // Start on a later turn: push() runs inside the event log's append listener, and building a
      // batch (encoding) must not happen there.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.queue.length > 0) {
        const ready = this.queue.length >= this.o.batchSize || this.due || this.target.closing;
        if (!ready) break;
        const batch = this.takeBatch();
        this.inFlight = batch.items.length;
        const ok = await this.target.post(this.o.url, batch.body);
        this.inFlight = 0;
        if (ok) {
          this.o.onSent(batch.items.length);
          if (this.queue.length === 0) this.due = false;
          continue;
        }
        if (this.target.closing) {
          this.target.countDropped(batch.items.length, this.o.url);
          continue;
        }
        // Every attempt failed: back to the front of the queue (still bounded), tried again after
        // the flush delay.
        this.queue.unshift(...batch.items);
        if (this.queue.length > this.o.maxQueue) this.trim();
        this.due = false;
        break;
      }
    } finally {
      // Synchronously with the loop's end: a push() after this starts a new pump.
      this.pumping = undefined;
    }
    if (this.queue.length > 0) this.schedule();
    else this.o.onIdle?.(this);
  }

  /** Up to batchSize items from the front, fewer if the body would pass MAX_BATCH_BYTES. */
  private takeBatch(): { items: T[]; body: string } {
    let n = Math.min(this.o.batchSize, this.queue.length);
    for (;;) {
      const items = this.queue.slice(0, n);
      const body = this.o.encode(items);
      if (n === 1 || Buffer.byteLength(body) <= MAX_BATCH_BYTES) {
        this.queue.splice(0, n);
        return { items, body };
      }
      n = Math.max(1, n >> 1);
    }
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
