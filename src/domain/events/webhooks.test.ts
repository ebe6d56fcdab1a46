import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { WebhookConfig } from "../../config.js";
import { EventSchema, EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../../gen/agentd/v1/message_pb.js";
import { openStore, type Store } from "../../storage/open-store.js";
import { EventLog } from "./event-log.js";
import { Webhooks } from "./webhooks.js";

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

/**
 * A real HTTP receiver on 127.0.0.1. `respond` decides each request's status (and may hold the
 * response by returning a promise); requests are recorded when they arrive, `answered` once the
 * response is sent.
 */
class Receiver {
  readonly requests: Received[] = [];
  readonly answered: Received[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private waiters: { ready: () => boolean; resolve: () => void }[] = [];
  private server: http.Server;
  url = "";

  constructor(private respond: (r: Received, index: number) => number | Promise<number> = () => 200) {
    this.server = http.createServer((req, res) => {
      let data = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (data += c));
      req.on("end", () => {
        const r: Received = { path: req.url ?? "", headers: req.headers, body: JSON.parse(data) as unknown };
        const index = this.requests.length;
        this.requests.push(r);
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        void Promise.resolve(this.respond(r, index)).then((status) => {
          this.inFlight--;
          if (status === 200) this.answered.push(r);
          res.writeHead(status, { "content-type": "application/json" }).end("{}");
          this.notify();
        });
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Resolves once `ready()` holds (checked whenever a request arrives or is answered). */
  until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ ready, resolve }));
  }

  /** Resolves once `n` requests were answered with 200. */
  untilAnswered(n: number): Promise<void> {
    return this.until(() => this.answered.length >= n);
  }

  /** Resolves once `n` requests have arrived (answered or not). */
  untilRequests(n: number): Promise<void> {
    return this.until(() => this.requests.length >= n);
  }

  private notify(): void {
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.ready()) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /** Wakes untilRequests() waiters (called on arrival too). */
  arrived(): void {
    this.notify();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function message(text: string): Event {
  return create(EventSchema, {
    source: EventSource.USER,
    payload: { case: "messageEvent", value: { llmMessage: { role: MessageRole.USER, content: [{ content: { case: "text", value: { text } } }] } } },
  });
}

function hook(url: string, over: Partial<WebhookConfig> = {}): WebhookConfig {
  return { base_url: url, headers: {}, event_buffer_size: 5, flush_delay: 3600, num_retries: 3, retry_delay: 0.01, max_queue_size: 1000, ...over };
}

/** Texts of the events in the bodies of `requests`, in arrival order. */
function texts(requests: readonly Received[]): string[] {
  return requests.flatMap((r) => (r.body as { llm_message: { content: { text: string }[] } }[]).map((e) => e.llm_message.content[0]!.text));
}

describe("Webhooks", () => {
  let dir: string;
  let store: Store;
  let log: EventLog;
  let receiver: Receiver | undefined;
  let webhooks: Webhooks | undefined;
  const conv = randomUUID();
  const hex = conv.replaceAll("-", "");

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "agentd-webhooks-"));
    store = await openStore(dir, { sync: false });
    log = new EventLog(store.events);
    await log.createLog(conv);
  });

  afterEach(async () => {
    await webhooks?.close();
    webhooks = undefined;
    await receiver?.close();
    receiver = undefined;
    log.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  function wire(w: Webhooks): Webhooks {
    webhooks = w;
    log.onAppend((id, events) => w.events(id, events));
    return w;
  }

  async function start(respond?: ConstructorParameters<typeof Receiver>[0]): Promise<Receiver> {
    const r = new Receiver((req, i) => {
      r.arrived();
      return respond === undefined ? 200 : respond(req, i);
    });
    receiver = r;
    return r.start();
  }

  it("batches by size and POSTs OpenHands JSON (nulls kept) with the session key and headers", async () => {
    const r = await start();
    const w = wire(new Webhooks({ webhooks: [hook(`${r.url}/hooks/`, { event_buffer_size: 3, headers: { "X-Tenant": "t1" } })], sessionApiKey: "key-1" }));
    for (let i = 1; i <= 7; i++) await log.append(conv, [message(`m${i}`)]);
    await r.untilAnswered(2);
    expect(r.requests.map((q) => q.path)).toEqual([`/hooks/events/${hex}`, `/hooks/events/${hex}`]);
    expect(texts(r.requests)).toEqual(["m1", "m2", "m3", "m4", "m5", "m6"]);
    const first = (r.requests[0]!.body as Record<string, unknown>[])[0]!;
    expect(first).toMatchObject({ kind: "MessageEvent", source: "user" });
    expect(first).not.toHaveProperty("seq"); // plain OpenHands JSON: no agentd extensions
    expect(first).toHaveProperty("parent_id", null); // model_dump(mode="json"): None fields included
    const h = r.requests[0]!.headers;
    expect(h["x-session-api-key"]).toBe("key-1");
    expect(h["x-tenant"]).toBe("t1");
    expect(h["content-type"]).toBe("application/json");
    // The seventh waits for a full batch or the (hour-long) delay; close delivers it.
    expect(r.requests).toHaveLength(2);
    await w.close();
    expect(texts(r.requests)).toEqual(["m1", "m2", "m3", "m4", "m5", "m6", "m7"]);
    expect(w.stats()).toMatchObject({ eventsSent: 7, dropped: 0, pending: 0 });
  });

  it("batches by delay: flush_delay after the first buffered event, not reset by later ones", async () => {
    const r = await start();
    wire(new Webhooks({ webhooks: [hook(r.url, { event_buffer_size: 100, flush_delay: 0.15 })] }));
    const t0 = performance.now();
    await log.append(conv, [message("a")]);
    await log.append(conv, [message("b")]);
    await r.untilAnswered(1);
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(r.requests).toHaveLength(1);
    expect(texts(r.requests)).toEqual(["a", "b"]);
    await log.append(conv, [message("c")]);
    await r.untilAnswered(2);
    expect(texts(r.requests)).toEqual(["a", "b", "c"]);
  });

  it("retries a batch after 500s and delivers it once", async () => {
    const r = await start((_req, i) => (i < 2 ? 500 : 200));
    const w = wire(new Webhooks({ webhooks: [hook(r.url, { event_buffer_size: 2, num_retries: 3, retry_delay: 0.02 })] }));
    await log.append(conv, [message("x"), message("y")]);
    await r.untilAnswered(1);
    expect(r.requests).toHaveLength(3);
    expect(r.requests.map((q) => texts([q]))).toEqual([["x", "y"], ["x", "y"], ["x", "y"]]);
    expect(texts(r.answered)).toEqual(["x", "y"]);
    await w.close(); // nothing left to send: waits for the acknowledged request to settle
    expect(w.stats()).toMatchObject({ eventsSent: 2, failedRequests: 2, pending: 0 });
  });

  it("puts a batch whose retries are exhausted back in front and delivers everything in order", async () => {
    const r = await start((_req, i) => (i < 3 ? 503 : 200));
    const w = wire(new Webhooks({ webhooks: [hook(r.url, { event_buffer_size: 2, num_retries: 1, retry_delay: 0.01, flush_delay: 0.05 })] }));
    for (let i = 1; i <= 6; i++) await log.append(conv, [message(`e${i}`)]);
    await r.until(() => texts(r.answered).length >= 6);
    expect(texts(r.answered)).toEqual(["e1", "e2", "e3", "e4", "e5", "e6"]);
    await w.close();
    expect(w.stats().failedRequests).toBe(3);
  });

  it("keeps one request in flight per conversation and preserves seq order under concurrent appends", async () => {
    const r = await start(() => new Promise((resolve) => setTimeout(() => resolve(200), 5)));
    const w = wire(new Webhooks({ webhooks: [hook(r.url, { event_buffer_size: 7, flush_delay: 0.01 })] }));
    await Promise.all(
      Array.from({ length: 8 }, async (_, writer) => {
        for (let i = 0; i < 25; i++) await log.append(conv, [message(`w${writer}-${i}`)]);
      }),
    );
    const stored: string[] = [];
    for await (const e of log.read(conv)) stored.push((e.payload.value as { llmMessage: { content: { content: { value: { text: string } } }[] } }).llmMessage.content[0]!.content.value.text);
    await w.close();
    expect(r.maxInFlight).toBe(1);
    expect(stored).toHaveLength(200);
    expect(texts(r.answered)).toEqual(stored);
  });

  it("bounds the queue, dropping the oldest, while the receiver is stuck", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const r = await start(async () => {
      await gate;
      return 200;
    });
    const w = wire(new Webhooks({ webhooks: [hook(r.url, { event_buffer_size: 1, max_queue_size: 5 })] }));
    await log.append(conv, [message("e1")]);
    await r.untilRequests(1); // e1 is in flight and held
    for (let i = 2; i <= 20; i++) await log.append(conv, [message(`e${i}`)]);
    expect(w.stats()).toMatchObject({ dropped: 14, pending: 6 });
    release();
    await r.untilAnswered(6);
    expect(texts(r.answered)).toEqual(["e1", "e16", "e17", "e18", "e19", "e20"]);
  });

  it("never delays appends: 300 appends complete while the receiver has not answered once", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const r = await start(async () => {
      await gate;
      return 200;
    });
    const w = wire(new Webhooks({ webhooks: [hook(r.url, { event_buffer_size: 1, max_queue_size: 10_000 })] }));
    const t0 = performance.now();
    for (let i = 0; i < 300; i++) await log.append(conv, [message(`s${i}`)]);
    const appendMs = performance.now() - t0;
    expect(r.answered).toHaveLength(0);
    expect(r.requests).toHaveLength(1); // one request in flight, the rest queued
    expect(w.stats().pending).toBe(300);
    release();
    await w.close();
    expect(r.answered).toHaveLength(300);
    expect(appendMs).toBeLessThan(10_000);
  });

  it("POSTs conversation changes to {base_url}/conversations, one object each, in order", async () => {
    const r = await start();
    const w = wire(new Webhooks({ webhooks: [hook(r.url)], sessionApiKey: "k" }));
    w.notifyConversation({ id: conv, execution_status: "running" });
    w.notifyConversation({ id: conv, execution_status: "deleting" });
    await r.untilAnswered(2);
    expect(r.requests.map((q) => [q.path, q.body, q.headers["x-session-api-key"]])).toEqual([
      ["/conversations", { id: conv, execution_status: "running" }, "k"],
      ["/conversations", { id: conv, execution_status: "deleting" }, "k"],
    ]);
  });

  it("gives up at close after closeTimeoutMs when the receiver is down, counting the drops", async () => {
    const r = await start();
    const url = r.url;
    await r.close();
    receiver = undefined;
    const w = wire(new Webhooks({ webhooks: [hook(url, { event_buffer_size: 1, num_retries: 1000, retry_delay: 0.01 })], closeTimeoutMs: 200 }));
    await log.append(conv, [message("lost-1"), message("lost-2")]);
    const t0 = performance.now();
    await w.close();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(w.stats()).toMatchObject({ eventsSent: 0, dropped: 2, pending: 0 });
    expect(w.stats().failedRequests).toBeGreaterThan(0);
  });
});
