import { execFile } from "node:child_process";
import http2 from "node:http2";
import net from "node:net";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GetServerInfoRequestSchema,
  GetServerInfoResponseSchema,
  ServerService,
} from "../../gen/agentd/v1/server_service_pb.js";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { client, grpcJsUnary, TRANSPORT_KINDS } from "../helpers/clients.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const run = promisify(execFile);
const BUF = "node_modules/.bin/buf";

describe("one port serves every kind of client", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ maxMessageBytes: 64 * 1024 });
  });
  afterAll(() => server.close());

  it("answers @grpc/grpc-js over h2c", async () => {
    const res = await grpcJsUnary(
      server.port,
      "/agentd.v1.ServerService/GetServerInfo",
      GetServerInfoRequestSchema,
      GetServerInfoResponseSchema,
      create(GetServerInfoRequestSchema),
    );
    expect(res.info?.title).toBe("agentd");
    expect(res.info?.version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  for (const kind of TRANSPORT_KINDS) {
    it(`answers connect-node's ${kind} transport (unary and server streaming)`, async () => {
      const info = await client(ServerService, server.url, kind).getServerInfo({});
      expect(info.info?.title).toBe("agentd");
      const updates = [];
      for await (const res of client(Health, server.url, kind).watch({ service: "" })) {
        updates.push(res.status);
        break;
      }
      expect(updates).toEqual([HealthCheckResponse_ServingStatus.SERVING]);
    });
  }

  it("answers fetch with Connect JSON over HTTP/1.1", async () => {
    const res = await fetch(`${server.url}/agentd.v1.ServerService/GetServerInfo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { info: { title: string; usableTools?: string[] } };
    expect(body.info.title).toBe("agentd");
  });

  it("serves the plain HTTP probes", async () => {
    for (const p of ["/alive", "/health"]) {
      const res = await fetch(server.url + p);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
    }
    const ready = await fetch(`${server.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
  });

  it("lists every service through reflection and calls without a schema (buf curl)", async () => {
    const list = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-services", server.url]);
    const names = list.stdout.trim().split("\n").sort();
    expect(names).toEqual([
      "agentd.v1.BashService",
      "agentd.v1.ConversationService",
      "agentd.v1.EventService",
      "agentd.v1.FileService",
      "agentd.v1.ServerService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
    const methods = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", server.url]);
    expect(methods.stdout).toContain("agentd.v1.EventService/WatchEvents");
    const call = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", "{}", `${server.url}/agentd.v1.ServerService/GetServerInfo`]);
    expect(JSON.parse(call.stdout).info.title).toBe("agentd");
    // Reflection over the Connect protocol on HTTP/1.1 cannot work (bidi stream); gRPC-Web neither.
    // v1alpha is exercised by `buf curl --reflect-protocol grpc-v1alpha`.
    const alpha = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", "grpc-v1alpha", "-d", "{}", `${server.url}/agentd.v1.ServerService/GetServerInfo`]);
    expect(JSON.parse(alpha.stdout).info.title).toBe("agentd");
  });

  it("answers the gRPC health service (Check, List)", async () => {
    const health = client(Health, server.url);
    expect((await health.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: "agentd.v1.EventService" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    await expect(health.check({ service: "no.such.Service" })).rejects.toMatchObject({ code: Code.NotFound });
    const list = await health.list({});
    expect(Object.keys(list.statuses)).toContain("agentd.v1.ServerService");
  });

  it("answers an unimplemented RPC with Unimplemented and keeps serving", async () => {
    // ListBashCommands answers Unimplemented until the bash service lands; then NotFound for this id.
    const err = await client(BashService, server.url).getBashCommand({ commandId: "0".repeat(32) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect([Code.Unimplemented, Code.NotFound]).toContain((err as ConnectError).code);
    expect((await client(ServerService, server.url).getServerInfo({})).info?.title).toBe("agentd");
  });

  it("rejects an unknown method with the right code on every protocol", async () => {
    const h1 = await fetch(`${server.url}/agentd.v1.ServerService/NoSuchMethod`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(h1.status).toBe(404);
    const grpcStatus = await h2Call(server.port, "/agentd.v1.ServerService/NoSuchMethod", Buffer.from([0, 0, 0, 0, 0]));
    expect(grpcStatus.status === "12" || grpcStatus.httpStatus === 404).toBe(true);
  });

  it("rejects malformed protobuf with InvalidArgument/Internal and keeps serving", async () => {
    // A gRPC frame whose payload is not a valid GetServerInfoRequest (field 1, wire type 7 is invalid).
    const payload = Buffer.from([0x0f, 0xff, 0xff]);
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);
    const res = await h2Call(server.port, "/agentd.v1.ServerService/GetServerInfo", frame);
    expect(["3", "13"]).toContain(res.status);
    expect((await client(ServerService, server.url).getServerInfo({})).info?.title).toBe("agentd");
  });

  it("rejects invalid JSON with invalid_argument and keeps serving", async () => {
    const res = await fetch(`${server.url}/agentd.v1.ServerService/GetServerInfo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    expect((await client(ServerService, server.url).getServerInfo({})).info?.title).toBe("agentd");
  });

  it("rejects an oversized message with ResourceExhausted and keeps serving", async () => {
    const big = JSON.stringify({ pad: "x".repeat(200 * 1024) });
    const res = await fetch(`${server.url}/agentd.v1.ServerService/GetServerInfo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: big,
    });
    expect(res.status).toBe(429);
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    const payload = Buffer.alloc(100 * 1024, 0);
    const frame = Buffer.concat([Buffer.from([0, 0, 1, 0x90, 0]), payload]);
    const grpcRes = await h2Call(server.port, "/agentd.v1.ServerService/GetServerInfo", frame);
    expect(grpcRes.status).toBe("8");
    expect((await client(ServerService, server.url).getServerInfo({})).info?.title).toBe("agentd");
  });

  it("handles a preface split over several writes and pipelined HTTP/1.1", async () => {
    const body = await rawExchange(server.port, [
      "GET /alive HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    expect(body.match(/HTTP\/1\.1 200 OK/g)?.length).toBe(2);
    const info = await grpcJsUnary(server.port, "/agentd.v1.ServerService/GetServerInfo", GetServerInfoRequestSchema, GetServerInfoResponseSchema, create(GetServerInfoRequestSchema));
    expect(info.info?.title).toBe("agentd");
  });

  it("answers CORS preflights for local origins and exposes gRPC-Web headers", async () => {
    const res = await fetch(`${server.url}/agentd.v1.ServerService/GetServerInfo`, {
      method: "OPTIONS",
      headers: { origin: "http://localhost:3000", "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-grpc-web" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://localhost:3000");
    const denied = await fetch(`${server.url}/health`, { headers: { origin: "https://evil.example" } });
    expect(denied.headers.get("access-control-allow-origin")).toBeNull();
  });
});

/** Sends one raw HTTP/2 request; returns the grpc-status trailer (or header) and the HTTP status. */
function h2Call(port: number, path: string, body: Buffer): Promise<{ status: string | undefined; httpStatus: number }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    let httpStatus = 0;
    req.on("response", (h) => {
      httpStatus = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    req.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) status = String(t["grpc-status"]);
    });
    req.on("data", () => {});
    req.on("end", () => {
      session.close();
      resolve({ status, httpStatus });
    });
    req.on("error", reject);
    req.end(body);
  });
}

function rawExchange(port: number, writes: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let out = "";
    socket.on("data", (d) => (out += d.toString("latin1")));
    socket.on("end", () => resolve(out));
    socket.on("error", reject);
    for (const w of writes) socket.write(w);
  });
}
