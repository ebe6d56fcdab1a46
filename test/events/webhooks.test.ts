/** Webhooks wired into the real server: committed events reach a real HTTP receiver. */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { message, startEventsServer, type EventsServer } from "./harness.js";

interface Hit {
  path: string;
  key: string | undefined;
  body: { kind: string; llm_message: { content: { text: string }[] } }[];
}

let receiver: http.Server;
let url: string;
const hits: Hit[] = [];
let onHit: (() => void) | undefined;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => (data += c.toString()));
    req.on("end", () => {
      hits.push({ path: req.url ?? "", key: req.headers["x-session-api-key"] as string | undefined, body: JSON.parse(data) as Hit["body"] });
      res.end();
      onHit?.();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

afterAll(async () => {
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

function untilEvents(n: number): Promise<void> {
  const count = () => hits.reduce((k, h) => k + (h.path.startsWith("/events/") ? h.body.length : 0), 0);
  return new Promise((resolve) => {
    const check = () => {
      if (count() >= n) resolve();
    };
    onHit = check;
    check();
  });
}

describe("the server's webhooks", () => {
  let server: EventsServer;

  beforeAll(async () => {
    server = await startEventsServer({
      sessionApiKeys: ["first-key", "second-key"],
      webhooks: [{ base_url: url, headers: {}, event_buffer_size: 2, flush_delay: 0.05, num_retries: 1, retry_delay: 0.01, max_queue_size: 100 }],
    });
  });

  it("POSTs committed events in seq order to /events/{hex id} with the first session key, and flushes on stop", async () => {
    const conv = await server.newConversation();
    const log = server.domain.events;
    for (let i = 0; i < 5; i++) await log.append(conv, [message(`m${i}`)]);
    await untilEvents(4); // two full batches; the fifth waits for the delay or the stop
    await server.close();
    await untilEvents(5);
    const mine = hits.filter((h) => h.path === `/events/${conv.replaceAll("-", "")}`);
    expect(mine.flatMap((h) => h.body.map((e) => e.llm_message.content[0]!.text))).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(mine.every((h) => h.key === "first-key")).toBe(true);
    expect(mine[0]!.body[0]!.kind).toBe("MessageEvent");
    // The conversation engine reports the created conversation through the same webhook.
    const created = hits.find((h) => h.path === "/conversations" && (h.body as unknown as { id: string }).id === conv);
    expect(created?.key).toBe("first-key");
  });
});
