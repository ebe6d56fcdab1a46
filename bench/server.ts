/**
 * Server benchmark (issue 2): cold start to health SERVING, unary GetServerInfo round trip over
 * gRPC h2c and Connect/HTTP1.1 against bare connect-node in the same run (calls to the two
 * servers interleaved), RSS at idle.
 * agentd runs as `npm start` runs it (dist/agentd.mjs, rebuilt from the current tree by bench/run.ts).
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ServerService } from "../gen/agentd/v1/server_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { AGENTD_ENTRY, median, printTable, rssMiB, startProcess, stopProcess, timeInterleaved, type Row } from "./lib.js";


async function coldStartMs(workspace: string): Promise<{ ms: number; bareNodeMs: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [AGENTD_ENTRY, "--port", "0", "--workspace", workspace], { env: { ...process.env, LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once("line", (l) => resolve((JSON.parse(l) as { listening: string }).listening)));
  const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
  while ((await health.check({ service: "" })).status !== HealthCheckResponse_ServingStatus.SERVING) { /* until SERVING */ }
  const ms = performance.now() - t0;
  await stopProcess(child);
  // The floor: a bare `node -e` that prints and exits.
  const t1 = performance.now();
  await new Promise((r) => spawn(process.execPath, ["-e", "process.stdout.write('x')"], { stdio: "ignore" }).once("exit", r));
  return { ms, bareNodeMs: performance.now() - t1 };
}

export async function run(): Promise<void> {
  const workspace = await mkdtemp(path.join(os.tmpdir(), "agentd-bench-"));
  try {
    const starts = [];
    for (let i = 0; i < 10; i++) starts.push(await coldStartMs(workspace));

    const ours = await startProcess(process.execPath, [AGENTD_ENTRY, "--port", "0", "--workspace", workspace]);
    const raw = await startProcess(process.execPath, ["--import", "tsx", path.resolve("bench/echo-server.ts")]);
    const echoUrls = { h2: raw.url, h1: raw.line.h1! };
    // Let start-up garbage settle before reading the idle RSS.
    await new Promise((r) => setTimeout(r, 1000));
    const idleRss = rssMiB(ours.child.pid!);

    const N = 2000;
    const unary = async (kind: "grpc" | "connect-h1") => {
      const client = (baseUrl: string) =>
        createClient(ServerService, kind === "grpc" ? createGrpcTransport({ baseUrl }) : createConnectTransport({ baseUrl, httpVersion: "1.1" }));
      const o = client(ours.url);
      const r = client(kind === "grpc" ? echoUrls.h2 : echoUrls.h1);
      // One call to each per round: load drifting during the run hits both alike.
      const t = await timeInterleaved(N, 300, () => o.getServerInfo({}), () => r.getServerInfo({}));
      return { ours: median(t.ours), raw: median(t.raw) };
    };
    const grpc = await unary("grpc");
    const h1 = await unary("connect-h1");

    await stopProcess(ours.child);
    await stopProcess(raw.child);
    const rows: Row[] = [
      { what: "cold start to health SERVING (median of 10)", ours: median(starts.map((s) => s.ms)), raw: median(starts.map((s) => s.bareNodeMs)), unit: "ms", better: "lower", target: "≤ 400 ms (raw: bare node start/exit)" },
      { what: "GetServerInfo gRPC h2c (median of 2000, interleaved with raw)", ours: grpc.ours, raw: grpc.raw, unit: "ms", better: "lower", target: "≤ 1.2×" },
      { what: "GetServerInfo Connect HTTP/1.1 (median of 2000, interleaved with raw)", ours: h1.ours, raw: h1.raw, unit: "ms", better: "lower", target: "≤ 1.2×" },
      { what: "RSS at idle after start", ours: idleRss, raw: 0, unit: "MiB", better: "lower", target: "≤ 90 MB" },
    ];
    printTable(rows);
  } finally {
    await rm(workspace, { recursive: true, force: true });
  }
}

