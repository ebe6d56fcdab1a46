// ConversationEventLog directly over the storage layer's EventStore, with an in-process fan-out
// of appended and transient events. Used when no shared event log (src/domain/events) is wired,
// e.g. by unit tests and the benchmark; the server wires the shared one so that watchers on every
// surface see the agent's events.
//
// Stored body: protobuf binary of agentd.v1.Event with seq and timestamp cleared (they live in the
// storage record); kind = the OpenHands class name, source = the OpenHands source name.

import { randomUUID } from "node:crypto";
import { clone, fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { encodeMessage } from "../../codec/binary-encode.js";
import { EventSchema, EventSource } from "../../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";
import type { EventStore } from "../../storage/event-store.js";
import { eventKind } from "../agent/events.js";
import type { ConversationEventLog } from "./live-conversation.js";

const SOURCE_NAME: Record<EventSource, string> = {
  [EventSource.UNSPECIFIED]: "environment",
  [EventSource.AGENT]: "agent",
  [EventSource.USER]: "user",
  [EventSource.ENVIRONMENT]: "environment",
  [EventSource.HOOK]: "hook",
};

export type EventListener = (conversationId: string, event: Event) => void;

export class StoreEventLog implements ConversationEventLog {
  readonly #store: EventStore;
  readonly #listeners = new Set<EventListener>();

  constructor(store: EventStore) {
    this.#store = store;
  }

  /** Receives every appended (seq > 0) and transient (seq 0) event. Returns the unsubscribe. */
  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async append(conversationId: string, events: readonly Event[]): Promise<readonly Event[]> {
    const now = Date.now();
    const withIds = events.map((e) => (e.id === "" ? { ...e, id: randomUUID() } : e));
    const entries = withIds.map((e) => {
      const body = clone(EventSchema, e);
      body.seq = 0n;
      body.timestamp = undefined;
      return { id: e.id, kind: eventKind(e), source: SOURCE_NAME[e.source], timestampMs: now, body: encodeMessage(EventSchema, body) };
    });
    const appended = await this.#store.append(conversationId, entries);
    const stored = withIds.map((e, i) => {
      const a = appended[i]!;
      const s = clone(EventSchema, e);
      s.seq = BigInt(a.seq);
      s.timestamp = timestampFromMs(a.timestampMs);
      return s;
    });
    for (const s of stored) for (const l of this.#listeners) l(conversationId, s);
    return stored;
  }

  publishTransient(conversationId: string, event: Event): void {
    for (const l of this.#listeners) l(conversationId, event);
  }

  async *read(conversationId: string): AsyncIterable<Event> {
    for await (const r of this.#store.scan(conversationId, { chunk: 256 })) {
      const e = fromBinary(EventSchema, r.body);
      e.seq = BigInt(r.seq);
      e.timestamp = timestampFromMs(r.timestampMs);
      yield e;
    }
  }
}
