/**
 * A damaged stored event fails only the reads that meet it, with DataLoss, on every surface; the
 * server keeps serving everything else.
 */
import { randomUUID } from "node:crypto";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import { EventService, EventSortOrder } from "../../gen/agentd/v1/event_service_pb.js";
import { transport } from "../helpers/clients.js";
import { connectErrorOf, message, startEventsServer, textOf, type EventsServer } from "./harness.js";

let server: EventsServer;
let events: Client<typeof EventService>;
let conv: string;
let good: Event[];
const corruptId = randomUUID();

beforeAll(async () => {
  server = await startEventsServer();
  events = createClient(EventService, transport(server.url, "grpc"));
  conv = await server.newConversation();
  const [first] = await server.domain.events.append(conv, [message("before")]);
  // Seq 2: a value that is not a valid agentd.v1.Event, written below the event log (as a torn
  // or damaged record would be found on disk).
  await server.domain.store.events.append(conv, [{ id: corruptId, kind: "MessageEvent", source: "user", timestampMs: Date.now(), body: new Uint8Array([0x2a, 0x7f]) }]);
  const [third] = await server.domain.events.append(conv, [message("after")]);
  good = [first!, third!];
});

afterAll(async () => {
  await server.close();
});

describe("a corrupt event", () => {
  it("is DataLoss for the reads that meet it", async () => {
    const dataLoss = async (p: Promise<unknown>) => {
      const err = await connectErrorOf(p);
      expect(err.code, err.message).toBe(Code.DataLoss);
      expect(err.rawMessage).toMatch(/event 2 of conversation .* is unreadable \(corrupt storage\)/);
    };
    await dataLoss(events.getEvent({ conversationId: conv, eventId: corruptId }));
    await dataLoss(events.batchGetEvents({ conversationId: conv, eventIds: [good[0]!.id, corruptId] }));
    await dataLoss(events.searchEvents({ conversationId: conv }));
    await dataLoss(events.countEvents({ conversationId: conv, filter: { body: "before" } }));
    const rest = await fetch(`${server.url}/api/conversations/${conv}/events/${corruptId}`);
    expect(rest.status).toBe(500);
    expect(((await rest.json()) as { detail: string }).detail).toMatch(/corrupt storage/);
  });

  it("ends a watch that replays over it with DataLoss, after the events before it", async () => {
    const items: Event[] = [];
    const err = await connectErrorOf(
      (async () => {
        for await (const r of events.watchEvents({ conversationId: conv })) if (r.item.case === "event") items.push(r.item.value);
      })(),
    );
    expect(err.code).toBe(Code.DataLoss);
    expect(items.map((e) => e.seq)).toEqual([0n, 1n]);
  });

  it("leaves every other read working", async () => {
    expect(textOf((await events.getEvent({ conversationId: conv, eventId: good[1]!.id })).event!)).toBe("after");
    expect((await events.countEvents({ conversationId: conv })).count).toBe(3n);
    expect((await events.countEvents({ conversationId: conv, filter: { kind: "MessageEvent" } })).count).toBe(3n);
    // A page that ends before the damaged record, and the pages after it.
    const page = await events.searchEvents({ conversationId: conv, pageSize: 1 });
    expect(page.items.map((e) => e.seq)).toEqual([1n]);
    expect(page.nextPageToken).not.toBe("");
    const desc = await events.searchEvents({ conversationId: conv, pageSize: 1, sortOrder: EventSortOrder.TIMESTAMP_DESC });
    expect(desc.items.map((e) => textOf(e))).toEqual(["after"]);
    // A watch resuming past it.
    for await (const r of events.watchEvents({ conversationId: conv, afterSeq: 2n })) {
      if (r.item.case === "event" && r.item.value.seq > 0n) {
        expect(textOf(r.item.value)).toBe("after");
        break;
      }
    }
    // Other conversations, and the server itself.
    const other = await server.newConversation();
    await server.domain.events.append(other, [message("fine")]);
    expect((await events.searchEvents({ conversationId: other })).items.map(textOf)).toEqual(["fine"]);
    const alive = await fetch(`${server.url}/alive`);
    expect(alive.status).toBe(200);
    await alive.arrayBuffer();
  });
});
