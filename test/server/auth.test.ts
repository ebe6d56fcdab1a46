import { create, type DescMethod, type DescMethodStreaming, type DescMethodUnary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";
import { ServerService } from "../../gen/agentd/v1/server_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { isOpenRpc } from "../../src/server/auth.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { transport, type TransportKind } from "../helpers/clients.js";

const KEY = "k-test-1";
const OTHER_KEY = "k-rotated-2";
const ALL_SERVICES = [ServerService, ConversationService, EventService, BashService, FileService, Health, ServerReflection];

/** Calls any method generically with an empty request; returns the ConnectError code or "ok". */
async function callAny(method: DescMethod, kind: TransportKind, url: string, headers: Record<string, string>): Promise<Code | "ok"> {
  const t = transport(url, kind, headers);
  const input = create(method.input);
  try {
    if (method.methodKind === "unary") {
      await t.unary(method as DescMethodUnary, undefined, undefined, undefined, input);
    } else {
      const res = await t.stream(method as DescMethodStreaming, undefined, undefined, undefined, (async function* () { yield input; })());
      for await (const _ of res.message) break;
    }
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("session keys on every RPC", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ sessionApiKeys: [KEY, OTHER_KEY] });
  });
  afterAll(() => server.close());

  const methods = ALL_SERVICES.flatMap((s) => s.methods);

  it("enumerates every method of every served service", () => {
    expect(methods.length).toBeGreaterThan(50);
  });

  for (const m of methods) {
    const kind: TransportKind = m.methodKind === "bidi_streaming" ? "grpc" : "connect-h1";
    const open = isOpenRpc(m.parent.typeName, m.name);
    it(`${m.parent.typeName}/${m.name} ${open ? "is open" : "refuses a missing or wrong key"}`, async () => {
      const missing = await callAny(m, kind, server.url, {});
      const wrong = await callAny(m, kind, server.url, { "x-session-api-key": "nope" });
      if (open) {
        expect(missing).not.toBe(Code.Unauthenticated);
      } else {
        expect(missing).toBe(Code.Unauthenticated);
        expect(wrong).toBe(Code.Unauthenticated);
        // Both keys (rotation), by header and by bearer token, get past auth.
        expect(await callAny(m, kind, server.url, { "x-session-api-key": OTHER_KEY })).not.toBe(Code.Unauthenticated);
        expect(await callAny(m, kind, server.url, { authorization: `Bearer ${KEY}` })).not.toBe(Code.Unauthenticated);
      }
    });
  }

  it("accepts the key as gRPC metadata through grpc-js", async () => {
    const { grpcJsUnary } = await import("../helpers/clients.js");
    const { ListToolsRequestSchema, ListToolsResponseSchema } = await import("../../gen/agentd/v1/server_service_pb.js");
    await expect(
      grpcJsUnary(server.port, "/agentd.v1.ServerService/ListTools", ListToolsRequestSchema, ListToolsResponseSchema, create(ListToolsRequestSchema)),
    ).rejects.toMatchObject({ code: 16 });
    const ok = await grpcJsUnary(server.port, "/agentd.v1.ServerService/ListTools", ListToolsRequestSchema, ListToolsResponseSchema, create(ListToolsRequestSchema), { "x-session-api-key": KEY });
    expect(Array.isArray(ok.names)).toBe(true);
  });

  it("keeps the probes and server info open, and refuses other HTTP paths without a key", async () => {
    for (const p of ["/alive", "/health", "/ready"]) expect((await fetch(server.url + p)).status).toBe(200);
    const info = createClient(ServerService, transport(server.url, "connect-json-h1"));
    expect((await info.getServerInfo({})).info?.title).toBe("agentd");
    const api = await fetch(`${server.url}/api/conversations/search`);
    expect(api.status).toBe(401);
    expect(await api.json()).toEqual({ detail: "Unauthorized" });
  });
});
