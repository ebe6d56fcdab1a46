/**
 * Browser benchmark: what the browser tool set adds on top of driving Chromium with playwright-core
 * directly, measured in the same run against a page served from 127.0.0.1.
 *
 * 1. Cold: the first browser call of a conversation (a fresh BrowserManager launching Chromium and
 *    navigating) vs raw `chromium.launch` + newContext + newPage + goto, same executable and flags.
 * 2. Warm: browser_navigate + browser_get_content on a running manager vs raw goto + reading
 *    `document.body.innerText` on a warm page. The two halves are also reported separately.
 *
 * Ours and raw runs alternate (order flipped every iteration) to spread machine noise. Every
 * Chromium started here is closed at the end, and the run fails if any of their process groups
 * is still alive.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { BrowserManager, CHROMIUM_LAUNCH_ARGS, findChromium } from "../src/domain/agent/browser/index.js";
import type { BrowserAction, BrowserObservation, ToolContext } from "../src/domain/agent/browser/index.js";
import { median, printTable, type Row } from "./lib.js";

const COLD_RUNS = 7;
const WARM_RUNS = 50;
const WARM_UP = 5;

/** A small article: a heading, paragraphs with inline markup, a list of links. */
function pageHtml(): string {
  const paras = Array.from(
    { length: 12 },
    (_, i) =>
      `<p>Paragraph ${i + 1}: the quick brown fox jumps over the lazy dog, <em>again</em> and <strong>again</strong>; ` +
      `see <a href="/doc/${i}">document ${i}</a> for the details of step ${i + 1}.</p>`,
  ).join("\n");
  const links = Array.from({ length: 15 }, (_, i) => `<li><a href="/link/${i}">Link number ${i}</a></li>`).join("\n");
  return `<!doctype html><html><head><meta charset="utf-8"><title>Bench page</title></head><body>
<h1>Benchmark article</h1>
${paras}
<h2>More links</h2>
<ul>
${links}
</ul>
<footer>End of the benchmark page.</footer>
</body></html>`;
}

async function startPageServer(): Promise<{ server: Server; url: string }> {
  const body = Buffer.from(pageHtml());
  const server = createServer((req, res) => {
    // no-store: every navigation reaches the server, for ours and raw alike.
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": body.length, "cache-control": "no-store" });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}/article` };
}

interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  comm: string;
}

/** Live (non-zombie) processes from /proc. Zombies are skipped: they hold no resources and are reaped by init. */
async function liveProcesses(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while scanning
    }
    // "pid (comm) state ppid pgrp …": comm may contain spaces and parentheses, so split at the last ')'.
    const close = stat.lastIndexOf(")");
    const [state, ppid, pgid] = stat.slice(close + 2).split(" ");
    if (state === "Z") continue;
    out.push({ pid: Number(entry), ppid: Number(ppid), pgid: Number(pgid), comm: stat.slice(stat.indexOf("(") + 1, close) });
  }
  return out;
}

/** PIDs of the Chromium processes this process spawned directly (each leads its process group). */
async function chromiumChildren(): Promise<number[]> {
  return (await liveProcesses()).filter((p) => p.ppid === process.pid && p.comm.startsWith("chrom")).map((p) => p.pid);
}

/** The recorded process groups that still have a live member. */
async function aliveGroups(groups: ReadonlySet<number>): Promise<number[]> {
  const live = new Set((await liveProcesses()).map((p) => p.pgid));
  return [...groups].filter((g) => live.has(g));
}

/** Throws unless every recorded Chromium process group has exited (polled for at most 5 s). */
async function assertNoChromiumLeft(groups: ReadonlySet<number>): Promise<void> {
  const until = Date.now() + 5_000;
  let alive = await aliveGroups(groups);
  while (alive.length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    alive = await aliveGroups(groups);
  }
  const strays = await chromiumChildren();
  if (alive.length > 0 || strays.length > 0) {
    throw new Error(`Chromium left running after the benchmark: groups ${alive.join(", ") || "-"}, children ${strays.join(", ") || "-"}`);
  }
}

function expectPage(obs: BrowserObservation, what: string, needle: string): void {
  const text = obs.content.map((c) => c.text).join("\n");
  if (obs.is_error || !text.includes(needle)) throw new Error(`${what} did not succeed: ${text.slice(0, 300)}`);
}

async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

export async function run(): Promise<void> {
  const found = await findChromium();
  if (!found) {
    console.log("no Chromium found (install the Debian chromium package or set CHROMIUM_PATH); browser benchmark skipped");
    return;
  }
  const executablePath = found.path;
  const { server, url } = await startPageServer();
  const workingDir = await mkdtemp(path.join(os.tmpdir(), "agentd-bench-browser-"));
  const groups = new Set<number>();
  const record = async () => {
    for (const pid of await chromiumChildren()) groups.add(pid);
  };
  const navigate: BrowserAction = { kind: "BrowserNavigateAction", url, new_tab: false };
  const getContent: BrowserAction = { kind: "BrowserGetContentAction", extract_links: false, start_from_char: 0 };
  const ctx: ToolContext = { conversationId: "bench", workingDir, signal: new AbortController().signal };
  const rawLaunch = () =>
    chromium.launch({ executablePath, args: [...CHROMIUM_LAUNCH_ARGS], headless: true, handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false });

  const managers: BrowserManager[] = [];
  const browsers: Browser[] = [];
  try {
    // ---- 1. cold: first call of a conversation ------------------------------------------------
    const coldOurs = async (): Promise<number> => {
      const manager = new BrowserManager();
      managers.push(manager);
      const { ms, value } = await time(() => manager.execute(navigate, ctx));
      expectPage(value, "cold browser_navigate", "Title: Bench page");
      await record();
      await manager.close();
      return ms;
    };
    const coldRaw = async (): Promise<number> => {
      const { ms, value: browser } = await time(async () => {
        const b = await rawLaunch();
        browsers.push(b);
        const page = await (await b.newContext()).newPage();
        await page.goto(url);
        return b;
      });
      await record();
      await browser.close();
      return ms;
    };
    // One unmeasured launch each: the first start reads Chromium from disk.
    await coldOurs();
    await coldRaw();
    const cold = { ours: [] as number[], raw: [] as number[] };
    for (let i = 0; i < COLD_RUNS; i++) {
      if (i % 2 === 0) {
        cold.ours.push(await coldOurs());
        cold.raw.push(await coldRaw());
      } else {
        cold.raw.push(await coldRaw());
        cold.ours.push(await coldOurs());
      }
    }

    // ---- 2. warm: navigate + read the text on a running browser -------------------------------
    const manager = new BrowserManager();
    managers.push(manager);
    const browser = await rawLaunch();
    browsers.push(browser);
    const page: Page = await (await browser.newContext()).newPage();
    await record();

    const warm = { ours: [] as number[], oursNav: [] as number[], oursContent: [] as number[], raw: [] as number[], rawNav: [] as number[], rawContent: [] as number[] };
    const warmOurs = async (keep: boolean) => {
      const nav = await time(() => manager.execute(navigate, ctx));
      expectPage(nav.value, "browser_navigate", "Title: Bench page");
      const content = await time(() => manager.execute(getContent, ctx));
      expectPage(content.value, "browser_get_content", "End of the benchmark page.");
      if (!keep) return;
      warm.oursNav.push(nav.ms);
      warm.oursContent.push(content.ms);
      warm.ours.push(nav.ms + content.ms);
    };
    const warmRaw = async (keep: boolean) => {
      const nav = await time(() => page.goto(url));
      const content = await time(() => page.evaluate("document.body.innerText") as Promise<string>);
      if (!content.value.includes("End of the benchmark page.")) throw new Error(`raw innerText is incomplete: ${content.value.slice(0, 200)}`);
      if (!keep) return;
      warm.rawNav.push(nav.ms);
      warm.rawContent.push(content.ms);
      warm.raw.push(nav.ms + content.ms);
    };
    for (let i = 0; i < WARM_UP; i++) {
      await warmOurs(false);
      await warmRaw(false);
    }
    for (let i = 0; i < WARM_RUNS; i++) {
      if (i % 2 === 0) {
        await warmOurs(true);
        await warmRaw(true);
      } else {
        await warmRaw(true);
        await warmOurs(true);
      }
    }

    const rows: Row[] = [
      {
        what: `first browser call, cold launch + navigate (median of ${COLD_RUNS})`,
        ours: median(cold.ours),
        raw: median(cold.raw),
        unit: "ms",
        better: "lower",
        target: "≤ 1.2× (raw: launch + newContext + newPage + goto)",
      },
      {
        what: `warm navigate + get_content (median of ${WARM_RUNS})`,
        ours: median(warm.ours),
        raw: median(warm.raw),
        unit: "ms",
        better: "lower",
        target: "≤ 1.2× (raw: goto + body innerText)",
      },
      { what: "  of which navigate (median)", ours: median(warm.oursNav), raw: median(warm.rawNav), unit: "ms", better: "lower", target: "info (raw: goto)" },
      { what: "  of which get_content (median)", ours: median(warm.oursContent), raw: median(warm.rawContent), unit: "ms", better: "lower", target: "info (raw: innerText)" },
    ];
    printTable(rows);
  } finally {
    await Promise.all(managers.map((m) => m.close().catch(() => undefined)));
    await Promise.all(browsers.map((b) => b.close().catch(() => undefined)));
    const closed = new Promise((r) => server.close(r));
    server.closeAllConnections();
    await closed;
    await rm(workingDir, { recursive: true, force: true });
  }
  await assertNoChromiumLeft(groups);
}
