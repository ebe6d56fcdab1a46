/**
 * Starts the real agentd in-process on port 0 with fresh temp workspace and data directories.
 * `close()` stops it gracefully, checks that no client connection is left open, and removes the
 * directories. Every integration test goes through this.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadConfig, type Config } from "../../src/config.js";
import { AgentdApp, type RunningApp } from "../../src/server/app.js";

export interface TestServer {
  app: AgentdApp;
  running: RunningApp;
  url: string;
  port: number;
  workspace: string;
  dataDir: string;
  config: Config;
  /** Stops the server; resolves once every connection and resource is closed. */
  close(): Promise<void>;
}

export async function startTestServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const root = await mkdtemp(path.join(os.tmpdir(), "agentd-test-"));
  const workspace = path.join(root, "workspace");
  const dataDir = path.join(root, "data");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(workspace, { recursive: true });
  const config: Config = {
    ...loadConfig(new Map(), {}),
    host: "127.0.0.1",
    port: 0,
    workspaceBase: workspace,
    dataDir,
    logLevel: "silent",
    shutdownGraceMs: 2000,
    ...overrides,
  };
  const app = new AgentdApp(config);
  const running = await app.start();
  return {
    app,
    running,
    url: running.url,
    port: running.port,
    workspace,
    dataDir,
    config,
    async close() {
      await app.stop();
      const left = running.openConnections();
      await rm(root, { recursive: true, force: true });
      if (left !== 0) throw new Error(`${left} connection(s) still open after stop`);
    },
  };
}
