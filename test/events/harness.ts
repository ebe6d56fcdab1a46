/**
 * Event tests' harness: the real agentd (startTestServer) plus in-process access to its event log
 * (`app.modules.domain`), so tests can write exact logs directly and read them over every surface.
 *
 * Conversations: created through ConversationService when it is implemented (so the conversation
 * engine knows them, and WatchEvents' full_state comes from it); until then only their event log
 * is created. Creation without an initial message appends no event, so seqs start at 1 either way.
 */
import { randomUUID } from "node:crypto";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ExecutionStatus } from "../../gen/agentd/v1/conversation_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import type { EventLog } from "../../src/domain/events/event-log.js";
import { createEventService, type ConversationStateSource, type EventServiceDeps } from "../../src/rpc/event-service.js";
import { errorInterceptor } from "../../src/server/interceptors.js";
import { createLogger } from "../../src/server/logger.js";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { EventSchema, EventSource } from "../../gen/agentd/v1/event_pb.js";
import type { Event } from "../../gen/agentd/v1/event_pb.js";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { MessageRole } from "../../gen/agentd/v1/message_pb.js";
import type { Domain } from "../../src/server/modules.js";
import { transport } from "../helpers/clients.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import type { Config } from "../../src/config.js";

export interface EventsServer extends TestServer {
  domain: Domain;
  /** A new, empty conversation; returns its id. */
  newConversation(): Promise<string>;
}

export async function startEventsServer(overrides: Partial<Config> = {}): Promise<EventsServer> {
  const server = await startTestServer(overrides);
  const domain = server.app.modules?.domain;
  if (domain === undefined) throw new Error("the server exposes no domain");
  const headers: Record<string, string> = overrides.sessionApiKeys?.[0] === undefined ? {} : { "x-session-api-key": overrides.sessionApiKeys[0] };
  const conversations = createClient(ConversationService, transport(server.url, "grpc", headers));
  let viaService: boolean | undefined;
  return {
    ...server,
    domain,
    async newConversation() {
      const id = randomUUID();
      if (viaService !== false) {
        try {
          await conversations.createConversation({ conversationId: id, agent: { llm: { model: "openai/events-test", apiKey: "sk-events-test" } } });
          viaService = true;
          return id;
        } catch (err) {
          if (viaService === true || ConnectError.from(err).code !== Code.Unimplemented) throw err;
          viaService = false;
        }
      }
      await domain.events.createLog(id);
      return id;
    },
  };
}

export function message(text: string, source: EventSource = EventSource.USER): Event {
  return create(EventSchema, {
    source,
    payload: {
      case: "messageEvent",
      value: { llmMessage: { role: source === EventSource.AGENT ? MessageRole.ASSISTANT : MessageRole.USER, content: [{ content: { case: "text", value: { text } } }] } },
    },
  });
}

export function action(tool: string): Event {
  return create(EventSchema, { source: EventSource.AGENT, payload: { case: "actionEvent", value: { toolName: tool, toolCallId: `call-${randomUUID()}` } } });
}

export function observation(tool: string): Event {
  return create(EventSchema, { source: EventSource.ENVIRONMENT, payload: { case: "observationEvent", value: { toolName: tool } } });
}

export function pause(): Event {
  return create(EventSchema, { source: EventSource.USER, payload: { case: "pauseEvent", value: {} } });
}

export function delta(content: string): Event {
  return create(EventSchema, { source: EventSource.AGENT, payload: { case: "streamingDeltaEvent", value: { content } } });
}

/** The text of a MessageEvent (the first text part). */
export function textOf(e: Event): string {
  if (e.payload.case !== "messageEvent") return "";
  const c = e.payload.value.llmMessage?.content[0]?.content;
  return c?.case === "text" ? c.value.text : "";
}

/** The error a promise rejects with, as a ConnectError (fails the test if it resolves). */
export async function connectErrorOf(p: Promise<unknown>): Promise<ConnectError> {
  const outcome = await p.then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error("expected the call to fail");
  return ConnectError.from(outcome.err);
}

/**
 * A stand-in for the conversation engine's state, built from what the event log knows: the
 * status is the value of the newest `execution_status` ConversationStateUpdateEvent ("idle"
 * without one), and the snapshot is `{id, execution_status}`.
 */
export function logConversationState(log: EventLog): ConversationStateSource {
  const statusName = async (id: string): Promise<string> => {
    const page = await log.search(id, { kind: "ConversationStateUpdateEvent", order: "desc", limit: 100 });
    for (const e of page.items) {
      if (e.payload.case !== "conversationStateUpdateEvent" || e.payload.value.key !== "execution_status") continue;
      const v = e.payload.value.value?.kind;
      if (v?.case === "stringValue") return v.value;
    }
    return "idle";
  };
  return {
    fullState: async (id) => ({ id, execution_status: await statusName(id) }),
    status: async (id) => STATUS_BY_NAME[await statusName(id)] ?? ExecutionStatus.UNSPECIFIED,
  };
}

const STATUS_BY_NAME: Readonly<Record<string, ExecutionStatus>> = {
  idle: ExecutionStatus.IDLE,
  running: ExecutionStatus.RUNNING,
  paused: ExecutionStatus.PAUSED,
  waiting_for_confirmation: ExecutionStatus.WAITING_FOR_CONFIRMATION,
  finished: ExecutionStatus.FINISHED,
  error: ExecutionStatus.ERROR,
  stuck: ExecutionStatus.STUCK,
};

export function stateUpdate(key: string, value: string): Event {
  return create(EventSchema, {
    source: EventSource.ENVIRONMENT,
    payload: { case: "conversationStateUpdateEvent", value: { key, value: { kind: { case: "stringValue", value } } } },
  });
}

/**
 * The event service alone on its own HTTP/2 server (h2c, real gRPC), over a given event log, with
 * options the agentd wiring fixes (e.g. a 50 ms keepalive).
 */
export async function startEventServiceServer(deps: Omit<EventServiceDeps, "shutdownSignal">): Promise<{ url: string; close(): Promise<void> }> {
  const shutdown = new AbortController();
  const handler = connectNodeAdapter({
    routes: (router) => router.service(EventService, createEventService({ ...deps, shutdownSignal: shutdown.signal })),
    interceptors: [errorInterceptor(createLogger("silent"))],
  });
  const h2 = http2.createServer(handler);
  await new Promise<void>((resolve) => h2.listen(0, "127.0.0.1", resolve));
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  return {
    url: `http://127.0.0.1:${(h2.address() as AddressInfo).port}`,
    async close() {
      shutdown.abort();
      const closed = new Promise<void>((resolve) => h2.close(() => resolve()));
      for (const s of sessions) s.close();
      await closed;
    },
  };
}
