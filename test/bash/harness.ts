/**
 * Shared pieces of the bash integration tests: a real agentd (startTestServer, or a separate
 * process for kill and memory tests) with BashService clients over gRPC and Connect JSON, a
 * WatchBashCommand reader that checks offsets, and /proc probes for process checks (kernel state
 * has no event to await, so those poll with a deadline).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { ConnectError, type Client, type Code } from "@connectrpc/connect";
import { expect } from "vitest";
import type { BashCommandInfo } from "../../gen/agentd/v1/bash_pb.js";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import type { Config } from "../../src/config.js";
import { client } from "../helpers/clients.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

export type BashClient = Client<typeof BashService>;

export interface BashHarness {
  server: TestServer;
  /** gRPC over h2c. */
  grpc: BashClient;
  /** Connect with JSON over HTTP/1.1. */
  json: BashClient;
  close(): Promise<void>;
}

export async function startBashServer(overrides: Partial<Config> = {}): Promise<BashHarness> {
  // Commands see a PATH (the test server's config reads an empty environment).
  const server = await startTestServer({ childEnv: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, ...overrides });
  return {
    server,
    grpc: client(BashService, server.url, "grpc"),
    json: client(BashService, server.url, "connect-json-h1"),
    close: () => server.close(),
  };
}

/** The Connect code a promise rejects with (fails the test if it resolves). */
export async function codeOf(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err).code;
  }
  throw new Error("expected the call to fail");
}

export interface Drained {
  data: Buffer;
  info: BashCommandInfo;
}

/**
 * Reads WatchBashCommand from `offset` to the exit item, checking that every output message
 * starts where the previous one ended and holds at most 256 KiB (the contract of BashOutputChunk).
 */
export async function drain(c: BashClient, commandId: string, offset = 0): Promise<Drained> {
  const parts: Buffer[] = [];
  let next = offset;
  for await (const res of c.watchBashCommand({ commandId, offset: BigInt(offset) })) {
    const item = res.item;
    if (item.case === "output") {
      expect(Number(item.value.offset)).toBe(next);
      expect(item.value.data.byteLength).toBeGreaterThan(0);
      expect(item.value.data.byteLength).toBeLessThanOrEqual(256 * 1024);
      parts.push(Buffer.from(item.value.data));
      next += item.value.data.byteLength;
    } else if (item.case === "exit") {
      return { data: Buffer.concat(parts), info: item.value };
    }
  }
  throw new Error(`watch of ${commandId} ended without an exit item`);
}

/** State letter of a process ("R", "S", "Z", ...) from /proc, or null when it does not exist. */
export function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? null;
  } catch {
    return null;
  }
}

/** Command names of the live processes in process group `pgid`. */
export function groupMembers(pgid: number): string[] {
  const names: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") names.push(stat.slice(stat.indexOf("(") + 1, close));
    } catch {
      // gone meanwhile
    }
  }
  return names;
}

/** Polls `condition` every 10 ms until it holds; throws after `ms`. Only for kernel state. */
export async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface ChildServer {
  child: ChildProcess;
  url: string;
  pid: number;
  /** gRPC client of its BashService. */
  grpc: BashClient;
  /** Graceful stop (SIGTERM); resolves when the process exited. */
  stop(): Promise<void>;
  /** SIGKILL; resolves when the process exited. */
  kill(): Promise<void>;
}

/**
 * Runs agentd as a separate process (`node --import tsx src/cli.ts`) on a free port, so the test
 * can kill it or read its memory. Resolves once it listens.
 */
export async function spawnServer(workspace: string, dataDir: string, env: Record<string, string> = {}): Promise<ChildServer> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "--port", "0", "--workspace", workspace, "--data-dir", dataDir], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (line) => resolve((JSON.parse(line) as { listening: string }).listening));
    child.once("exit", (code) => reject(new Error(`agentd exited with ${code} before listening: ${stderr}`)));
  });
  return {
    child,
    url,
    pid: child.pid!,
    grpc: client(BashService, url, "grpc"),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Resident set size of a process in MiB (/proc). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? "0") / 1024;
}
