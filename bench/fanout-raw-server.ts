/**
 * Bench-only: the raw limit of the fan-out benchmark (bench/events.ts). A bare node:http2 server
 * that answers every request as a never-ending gRPC WatchEvents stream and broadcasts the same
 * events agentd's bench server appends — same protobuf bytes, same gRPC framing, same batching
 * rule (everything that arrived in one event-loop turn goes out as one response) — with no
 * storage, no connect-node and no per-subscriber queue: one encoding per event, one buffer per
 * turn written to every stream. The subscribers are the same connect-node clients that watch
 * agentd, so the difference between the two runs is the server.
 *
 * Same IPC protocol as bench/events-server.ts (argv: max_batch, 0/1 = one event per response):
 *   parent → child: {type: "append", count}, {type: "stop"}
 *   child → parent: {type: "ready", url, conversationId}, {type: "appended", ok, failed}
 */
import { randomUUID } from "node:crypto";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { EventSchema, EventSource, type Event } from "../gen/agentd/v1/event_pb.js";
import { WatchEventsResponseSchema } from "../gen/agentd/v1/event_service_pb.js";
import { fanOutEvent } from "./lib.js";

const maxBatch = Number(process.argv[2] ?? "0");
if (process.send === undefined) {
  console.error("usage: fork bench/fanout-raw-server.ts <max_batch> (with an IPC channel)");
  process.exit(2);
}
const send = (m: unknown): void => void process.send!(m);

/** One gRPC length-prefixed message (uncompressed). */
function envelope(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** The responses agentd sends for these events: one per event, or batches of up to max_batch. */
function responses(events: Event[]): Buffer {
  const out: Buffer[] = [];
  if (maxBatch <= 1) {
    for (const event of events) out.push(envelope(toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, { item: { case: "event", value: event } }))));
  } else {
    for (let i = 0; i < events.length; i += maxBatch) {
      const batch = events.slice(i, i + maxBatch);
      out.push(envelope(toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, { item: { case: "events", value: { events: batch } } }))));
    }
  }
  return Buffer.concat(out);
}

const streams = new Set<http2.ServerHttp2Stream>();
// The readiness marker agentd's streams start with (its full_state event has seq 0).
const greeting = responses([create(EventSchema, { seq: 0n, source: EventSource.ENVIRONMENT })]);
const server = http2.createServer();
server.on("stream", (stream) => {
  stream.respond({ ":status": 200, "content-type": "application/grpc+proto" });
  stream.on("error", () => streams.delete(stream));
  stream.on("close", () => streams.delete(stream));
  stream.resume(); // the request message is not needed
  stream.write(greeting);
  streams.add(stream);
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

let seq = 0;
let pending: Event[] = [];
let flushScheduled = false;
process.on("message", (m: { type: string; count?: number }) => {
  if (m.type === "append") {
    for (let i = 0; i < (m.count ?? 1); i++) {
      // As agentd stores it: with an id, a seq and a timestamp.
      const event = fanOutEvent();
      event.id = randomUUID();
      event.seq = BigInt(++seq);
      event.timestamp = timestampFromMs(Date.now());
      pending.push(event);
    }
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(() => {
        flushScheduled = false;
        const bytes = responses(pending);
        pending = [];
        for (const stream of streams) stream.write(bytes);
      });
    }
    send({ type: "appended", ok: m.count ?? 1, failed: 0 });
  } else if (m.type === "stop") {
    for (const stream of streams) stream.close();
    server.close();
    process.exit(0);
  }
});
send({ type: "ready", url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, conversationId: "raw" });
