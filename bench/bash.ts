/**
 * Bash benchmark (issue 5). agentd runs as a child process as `npm start` runs it (dist/agentd.mjs,
 * rebuilt from the current tree by bench/run.ts; default settings: fsync on, 128 running commands), the client in
 * this process over gRPC h2c. Raw figures are measured in the same run, on the same machine:
 *
 * 1. ExecuteBashCommand("echo hi"), 500 sequential calls (after 50 unmeasured), median and p99,
 *    against a raw `child_process.spawn('bash', ['-c', 'echo hi'])` from this process, read to
 *    its end — interleaved one by one so machine load hits both alike. Warm shells make ours a
 *    fork inside a running bash plus one round trip; the raw spawn pays a fork of node and a
 *    bash start-up. For context, a GetServerInfo on the same connection, interleaved too: what
 *    any RPC costs here.
 * 2. 100 concurrent ExecuteBashCommand("sleep 1; echo done"): total wall time from the first call
 *    to the last answer, and errors (an answer other than exit 0 with "done\n" counts as one).
 *    Raw: the ideal, 1 s.
 * 3. Output throughput: `head -c 200M /dev/zero | base64` (≈270 MB) started and watched from byte
 *    0 with WatchBashCommand until its exit item (the server stores the first 64 MiB, the rest is
 *    read and discarded, as the per-command cap says), in PTY mode (the default) and in pipe
 *    mode. Raw: the same command with its output to /dev/null (`> /dev/null`), i.e. how fast the
 *    command itself can produce; and for context the ceilings of a Node reader: the command on a
 *    bare node-pty terminal (the kernel's PTY layer caps it far below `> /dev/null`; `script -qfc`
 *    into /dev/null, with no Node at all, measures the same here) and a raw child whose stdout
 *    node reads and drops. Throughput = bytes the command produced / wall time. Best of 2 (the machine is shared).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import * as pty from "@lydell/node-pty";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BashMode } from "../gen/agentd/v1/bash_pb.js";
import { BashService } from "../gen/agentd/v1/bash_service_pb.js";
import { ServerService } from "../gen/agentd/v1/server_service_pb.js";
import { AGENTD_ENTRY, median, percentile, printTable, type Row } from "./lib.js";

type Bash = Client<typeof BashService>;

const FLOOD = "head -c 200M /dev/zero | base64";
/** Bytes `base64` writes for 200 MiB of input: 4/3 of it, plus a newline every 76 characters. */
const FLOOD_BYTES = (() => {
  const chars = Math.ceil((200 * 1024 * 1024) / 3) * 4;
  return chars + Math.ceil(chars / 76);
})();

async function startAgentd(root: string): Promise<{ child: ChildProcess; url: string }> {
  const workspace = path.join(root, "workspace");
  await mkdir(workspace, { recursive: true });
  const child = spawn(process.execPath, [AGENTD_ENTRY, "--port", "0", "--workspace", workspace, "--data-dir", path.join(root, "data")], {
    env: { ...process.env, LOG_LEVEL: "warn", TMPDIR: root },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (l) => resolve((JSON.parse(l) as { listening: string }).listening));
    child.once("exit", (code) => reject(new Error(`agentd exited with ${code}`)));
  });
  return { child, url };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

/** A raw spawn of `bash -c <command>`, stdout read to its end (or sent to /dev/null). */
function rawBash(command: string, stdout: "pipe" | "ignore" = "pipe"): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", command], { stdio: ["ignore", stdout, "inherit"] });
    let bytes = 0;
    child.stdout?.on("data", (d: Buffer) => (bytes += d.length));
    child.once("error", reject);
    child.once("close", () => resolve(bytes));
  });
}

/** Watches a command from byte 0 to its exit; returns the bytes received. */
async function watchToEnd(c: Bash, commandId: string): Promise<number> {
  let bytes = 0;
  let exited = false;
  for await (const r of c.watchBashCommand({ commandId })) {
    if (r.item.case === "output") bytes += r.item.value.data.byteLength;
    else if (r.item.case === "exit") exited = true;
  }
  if (!exited) throw new Error(`watch of ${commandId} ended without an exit`);
  return bytes;
}

async function echoLatency(c: Bash, server: Client<typeof ServerService>): Promise<{ ours: number[]; raw: number[]; rpcFloor: number[] }> {
  for (let i = 0; i < 50; i++) {
    await c.executeBashCommand({ spec: { command: "echo hi" } });
    await rawBash("echo hi");
  }
  const ours: number[] = [];
  const raw: number[] = [];
  const rpcFloor: number[] = [];
  for (let i = 0; i < 500; i++) {
    let t = performance.now();
    await server.getServerInfo({});
    rpcFloor.push(performance.now() - t);
    t = performance.now();
    const r = await c.executeBashCommand({ spec: { command: "echo hi" } });
    ours.push(performance.now() - t);
    if (r.output?.stdout !== "hi\n") throw new Error(`unexpected output ${JSON.stringify(r.output?.stdout)}`);
    t = performance.now();
    await rawBash("echo hi");
    raw.push(performance.now() - t);
  }
  return { ours, raw, rpcFloor };
}

async function concurrentSleeps(c: Bash): Promise<{ wallMs: number; errors: number }> {
  const t = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: 100 }, async () => {
      const r = await c.executeBashCommand({ spec: { command: "sleep 1; echo done" } });
      if (r.output?.exitCode !== 0 || r.output.stdout !== "done\n") throw new Error(`command ${r.output?.commandId} ended with ${r.output?.exitCode}`);
    }),
  );
  const wallMs = performance.now() - t;
  const errors = results.filter((r) => r.status === "rejected");
  if (errors.length > 0) console.error(`first error: ${String((errors[0] as PromiseRejectedResult).reason)}`);
  return { wallMs, errors: errors.length };
}

async function floodMs(c: Bash, mode: BashMode): Promise<number> {
  const t = performance.now();
  const { command } = await c.startBashCommand({ spec: { command: FLOOD, mode } });
  await watchToEnd(c, command!.id);
  return performance.now() - t;
}

/**
 * The command on a bare node-pty terminal (80×24, like agentd's default), its output read and
 * dropped: the most a Node process can take from a PTY on this kernel.
 */
async function rawPtyFloodMs(): Promise<number> {
  const t = performance.now();
  await new Promise<void>((resolve) => {
    const term = pty.spawn("bash", ["-c", FLOOD], { name: "xterm-256color", cols: 80, rows: 24, cwd: os.tmpdir(), env: process.env, encoding: null });
    term.onData(() => {});
    term.onExit(() => resolve());
  });
  return performance.now() - t;
}

async function rawFloodMs(stdout: "devnull" | "read"): Promise<number> {
  const t = performance.now();
  if (stdout === "devnull") await rawBash(`${FLOOD} > /dev/null`, "ignore");
  else await rawBash(FLOOD);
  return performance.now() - t;
}

export async function run(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), "agentd-bench-bash-"));
  const { child, url } = await startAgentd(root);
  try {
    const transport = createGrpcTransport({ baseUrl: url });
    const c = createClient(BashService, transport);
    const echo = await echoLatency(c, createClient(ServerService, transport));
    const sleeps = await concurrentSleeps(c);
    const best = async (f: () => Promise<number>) => Math.min(await f(), await f());
    const pty = await best(() => floodMs(c, BashMode.PTY));
    const pipe = await best(() => floodMs(c, BashMode.PIPE));
    const devnull = await best(() => rawFloodMs("devnull"));
    const read = await best(() => rawFloodMs("read"));
    const rawPty = await best(rawPtyFloodMs);
    const mbps = (ms: number) => FLOOD_BYTES / 1e6 / (ms / 1000);

    const rows: Row[] = [
      { what: 'ExecuteBashCommand("echo hi") gRPC, median of 500 (raw: spawn bash -c)', ours: median(echo.ours), raw: median(echo.raw), unit: "ms", better: "lower", target: "ratio ≤ 0.8, ≤ 2.5 ms" },
      { what: "… p99", ours: percentile(echo.ours, 99), raw: percentile(echo.raw, 99), unit: "ms", better: "lower", target: "—" },
      { what: "context: GetServerInfo on the same connection, median (the RPC stack's floor; raw: spawn)", ours: median(echo.rpcFloor), raw: median(echo.raw), unit: "ms", better: "lower", target: "—" },
      { what: `100 concurrent "sleep 1; echo done", wall (${sleeps.errors} errors; raw: ideal)`, ours: sleeps.wallMs, raw: 1000, unit: "ms", better: "lower", target: "≤ 1600 ms, 0 errors" },
      { what: `${FLOOD} watched from byte 0, PTY (raw: > /dev/null)`, ours: mbps(pty), raw: mbps(devnull), unit: "MB/s", better: "higher", target: "≥ 0.5×" },
      { what: `… PTY mode (raw: the command on a bare node-pty terminal, read and dropped)`, ours: mbps(pty), raw: mbps(rawPty), unit: "MB/s", better: "higher", target: "context" },
      { what: `… pipe mode (raw: > /dev/null)`, ours: mbps(pipe), raw: mbps(devnull), unit: "MB/s", better: "higher", target: "≥ 0.5×" },
      { what: `… pipe mode (raw: child stdout read by node)`, ours: mbps(pipe), raw: mbps(read), unit: "MB/s", better: "higher", target: "context" },
    ];
    printTable(rows);
    console.log(`(flood: ${(FLOOD_BYTES / 1e6).toFixed(0)} MB produced, 64 MiB stored; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores)`);
  } finally {
    await stop(child);
    await rm(root, { recursive: true, force: true });
  }
}
