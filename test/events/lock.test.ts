/** A second agentd on a data directory another one holds stops at start-up with one clear line. */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/server.js";

const CLI = path.resolve("src/cli.ts");
let server: TestServer;
let workspace: string;

beforeAll(async () => {
  server = await startTestServer();
  workspace = await mkdtemp(path.join(os.tmpdir(), "agentd-lock-"));
});

afterAll(async () => {
  await server.close();
  await rm(workspace, { recursive: true, force: true });
});

describe("the data directory lock", () => {
  it("makes a second server on the same data directory exit non-zero with one line naming it", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", CLI, "serve", "--port", "0", "--workspace", workspace, "--data-dir", server.dataDir], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "silent" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(stdout).toBe(""); // it never listened
    expect(stderr.trim().split("\n")).toEqual([`agentd: another agentd process is using the data directory ${path.resolve(server.dataDir)}`]);
    // The first server is unaffected.
    const res = await fetch(`${server.url}/alive`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });
});
