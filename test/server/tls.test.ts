import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerService } from "../../gen/agentd/v1/server_service_pb.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

describe("TLS on the same port (ALPN h2 and http/1.1)", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "agentd-tls-"));
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  let server: TestServer;

  beforeAll(async () => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
    server = await startTestServer({ tlsCert: cert, tlsKey: key });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves gRPC over h2", async () => {
    expect(server.url.startsWith("https://")).toBe(true);
    const c = createClient(ServerService, createGrpcTransport({ baseUrl: server.url, nodeOptions: { ca: readFileSync(cert) } }));
    expect((await c.getServerInfo({})).info?.title).toBe("agentd");
  });

  it("serves HTTP/1.1 on the same port", async () => {
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(`${server.url}/health`, { ca: readFileSync(cert), agent: false }, (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => resolve(`${res.httpVersion} ${text}`));
        })
        .on("error", reject);
    });
    expect(body).toBe('1.1 {"status":"ok"}');
  });
});
