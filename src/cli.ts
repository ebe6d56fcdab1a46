#!/usr/bin/env node
/**
 * `agentd [serve] [flags]`: starts the server and stops it gracefully on SIGTERM/SIGINT (exit 0).
 * `agentd --check-browser`: launches Chromium, renders about:blank, exits 0 (or 1 with the reason).
 * A bad setting exits 2 with one line naming it.
 */
import { mkdir } from "node:fs/promises";
import { checkBindSafety, ConfigError, helpText, loadConfig, parseArgs } from "./config.js";
import { AgentdApp } from "./server/app.js";

async function main(argv: string[]): Promise<number> {
  let parsed;
  let config;
  try {
    parsed = parseArgs(argv);
    if (parsed.flags.has("--help") || parsed.flags.has("-h") || parsed.command === "help") {
      process.stdout.write(`${helpText()}\n`);
      return 0;
    }
    if (parsed.command !== "serve") throw new ConfigError(`unknown command ${JSON.stringify(parsed.command)} (see agentd --help)`);
    config = loadConfig(parsed.flags);
    if (parsed.flags.has("--check-browser")) {
      // Loaded only here: playwright must not slow down the server's start.
      const { checkBrowser } = await import("./domain/agent/browser/index.js");
      const check = await checkBrowser({ chromiumPath: config.chromiumPath });
      if (check.ok) {
        process.stdout.write(`browser ok: ${check.path} (${check.version})\n`);
        return 0;
      }
      process.stderr.write(`agentd: browser check failed: ${check.reason}\n`);
      return 1;
    }
    if (checkBindSafety(config) === "insecure") {
      process.stderr.write(`agentd: warning: listening on ${config.host} with no session key (--insecure-no-auth)\n`);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`agentd: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  await mkdir(config.workspaceBase, { recursive: true });
  const app = new AgentdApp(config);
  let running;
  try {
    running = await app.start();
  } catch (err) {
    process.stderr.write(`agentd: ${err instanceof Error ? err.message : String(err)}\n`);
    await app.stop();
    return 1;
  }
  // One machine-readable line on stdout so launchers (and tests) learn the bound port.
  process.stdout.write(`${JSON.stringify({ listening: running.url, port: running.port })}\n`);
  await new Promise<void>((resolve) => {
    const onSignal = () => resolve();
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
  await app.stop();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`agentd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
