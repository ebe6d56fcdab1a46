import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { client } from "../helpers/clients.js";

const CLI = path.resolve("src/cli.ts");
const children: ChildProcess[] = [];
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "agentd-cli-"));
  dirs.push(d);
  return d;
}

function startCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "silent", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return child;
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stderr })));
}

/** Resolves with the URL the server prints on its first stdout line. */
function listeningUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", (line) => resolve((JSON.parse(line) as { listening: string }).listening));
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
}

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe("agentd CLI", () => {
  it("refuses to bind 0.0.0.0 without a key or --insecure-no-auth, with one clear line", async () => {
    const ws = await tempDir();
    const result = await exitOf(startCli(["serve", "--host", "0.0.0.0", "--port", "0", "--workspace", ws]));
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without a session key/);
  });

  it("stops start-up on a bad setting with one line naming it", async () => {
    const ws = await tempDir();
    const result = await exitOf(startCli(["--port", "http", "--workspace", ws]));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^agentd: invalid --port: expected an integer/);
    const envResult = await exitOf(startCli(["--workspace", ws], { AGENTD_MAX_MESSAGE_BYTES: "12" }));
    expect(envResult.code).toBe(2);
    expect(envResult.stderr).toMatch(/invalid --max-message-bytes/);
  });

  it("documents every flag in --help", async () => {
    const child = startCli(["--help"]);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const result = await exitOf(child);
    expect(result.code).toBe(0);
    for (const flag of ["--host", "--port", "--data-dir", "--workspace", "--tls-cert", "--insecure-no-auth", "OH_SESSION_API_KEYS_<n>", "LLM_MODEL"]) {
      expect(out).toContain(flag);
    }
  });

  it("--check-browser renders about:blank and exits 0, or exits 1 with one line", async () => {
    const ok = startCli(["--check-browser"]);
    let out = "";
    ok.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    expect((await exitOf(ok)).code).toBe(0);
    expect(out).toMatch(/^browser ok: \S+/);
    const missing = await exitOf(startCli(["--check-browser"], { CHROMIUM_PATH: "/no/such/chromium" }));
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    expect(missing.stderr).toContain("/no/such/chromium");
  });

  it("ends an open server stream cleanly on SIGTERM and exits 0", async () => {
    const ws = await tempDir();
    const child = startCli(["--port", "0", "--workspace", ws]);
    const exited = exitOf(child);
    const url = await listeningUrl(child);
    const seen: HealthCheckResponse_ServingStatus[] = [];
    const stream = (async () => {
      for await (const res of client(Health, url, "grpc").watch({ service: "" })) {
        seen.push(res.status);
        if (res.status === HealthCheckResponse_ServingStatus.SERVING) child.kill("SIGTERM");
      }
    })();
    await expect(stream).resolves.toBeUndefined();
    expect(seen).toEqual([HealthCheckResponse_ServingStatus.SERVING, HealthCheckResponse_ServingStatus.NOT_SERVING]);
    expect((await exited).code).toBe(0);
  });
});
