/**
 * The raw limit for the server benchmark: bare connect-node serving the same GetServerInfo response
 * with no sniffer, no interceptors, no logging. h2c on one port (gRPC) and HTTP/1.1 on another
 * (Connect), as a plain connect-node deployment would.
 */
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ServerService } from "../gen/agentd/v1/server_service_pb.js";

const info = {
  uptime: 1n, idleTime: 1n, title: "agentd", version: "1.39.0", agentdVersion: "0.1.0", sdkVersion: "1.39.0",
  toolsVersion: "1.39.0", workspaceVersion: "1.39.0", buildGitSha: "unknown", buildGitRef: "unknown",
  nodeVersion: process.version, usableTools: [], capabilities: ["grpc", "connect", "grpc-web", "rest", "websocket", "seq-cursor"],
  docs: "/docs", redoc: "/redoc", startTime: timestampFromMs(Date.now()),
};
const handler = connectNodeAdapter({
  routes: (router) => router.service(ServerService, { getServerInfo: () => ({ info }) }),
});
const h2 = http2.createServer(handler).listen(0, "127.0.0.1");
const h1 = http.createServer(handler).listen(0, "127.0.0.1");
await Promise.all([new Promise((r) => h2.once("listening", r)), new Promise((r) => h1.once("listening", r))]);
process.stdout.write(`${JSON.stringify({ listening: `http://127.0.0.1:${(h2.address() as AddressInfo).port}`, h1: `http://127.0.0.1:${(h1.address() as AddressInfo).port}` })}\n`);
process.on("SIGTERM", () => process.exit(0));
