import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { client } from "../helpers/clients.js";
import { connectWs } from "../helpers/ws.js";

const CLI = path.resolve("src/cli.ts");
/** What `npm start` and the Docker image run (built by `npm run build`, which `npm ci` runs). */
const BUNDLE = path.resolve("dist/agentd.mjs");
const children: ChildProcess[] = [];
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "agentd-cli-"));
  dirs.push(d);
  return d;
}

function startCli(args: string[], env: NodeJS.ProcessEnv = {}, entry: string[] = ["--import", "tsx", CLI]): ChildProcess {
  const child = spawn(process.execPath, [...entry, ...args], {
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

  it("the bundle that npm start runs serves every part that loads from outside it or is bundled from CommonJS, and exits 0 on SIGTERM", async () => {
    expect(existsSync(BUNDLE), `${BUNDLE} is missing: run npm run build`).toBe(true);
    const ws = await tempDir();
    const child = startCli(["--port", "0", "--workspace", ws], {}, [BUNDLE]);
    const exited = exitOf(child);
    const url = await listeningUrl(child);
    expect((await client(Health, url, "grpc").check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    // Native addons (LevelDB, PTYs) load from node_modules beside the bundle.
    const run = await client(BashService, url, "connect-h1").executeBashCommand({ spec: { command: "echo bundled" } });
    expect(run.output?.stdout).toBe("bundled\n");
    // Static assets resolved relative to a package (Swagger UI) and to our sources (the demo script).
    const docs = await fetch(`${url}/docs/swagger-ui-bundle.js`);
    expect(docs.status).toBe(200);
    expect((await docs.text()).length).toBeGreaterThan(100_000);
    const demo = await fetch(`${url}/_demo/app.js`);
    expect(demo.status).toBe(200);
    expect(await demo.text()).toContain("agentdDemo");
    // CommonJS dependencies bundled into the ES module: ws (a WebSocket) and busboy (multipart).
    const socket = connectWs(`${url.replace(/^http/, "ws")}/sockets/bash-events`);
    expect(await socket.opened).toEqual({ ok: true });
    socket.send({ command: "echo via-socket" });
    const frames = await socket.until((f) => f.kind === "BashOutput" && f.exit_code !== null);
    expect(frames.some((f) => f.stdout === "via-socket\n")).toBe(true);
    await socket.close();
    const form = new FormData();
    form.append("file", new Blob(["uploaded through the bundle"]), "up.txt");
    const up = await fetch(`${url}/api/file/upload?path=up.txt`, { method: "POST", body: form });
    expect(up.status).toBe(200);
    expect(await readFile(path.join(ws, "up.txt"), "utf8")).toBe("uploaded through the bundle");
    child.kill("SIGTERM");
    expect((await exited).code).toBe(0);
  });
});
