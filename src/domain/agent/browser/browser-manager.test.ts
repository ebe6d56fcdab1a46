import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrowserManager, RESTART_NOTE } from "./browser-manager.js";
import { createBrowserTools } from "./browser-tools.js";
import { CHROMIUM_LAUNCH_ARGS, SYSTEM_CHROMIUM_PATH } from "./find-chromium.js";
import type { BrowserObservation, BrowserTool, ToolContext } from "./types.js";

// ---- a small site served by the test ----------------------------------------------------------

const LONG_PARAGRAPHS = 600;

const PAGES: Record<string, string> = {
  "/form": `<!doctype html><title>Form</title>
    <h1>Sign up</h1>
    <form method="post" action="/submit">
      <label>Name <input name="name"></label>
      <input name="email" type="email" placeholder="Email">
      <select name="color"><option value="r">Red</option><option value="g">Green</option></select>
      <textarea name="note"></textarea>
      <input type="hidden" name="token" value="t0k">
      <input type="checkbox" name="agree" value="yes">
      <button type="submit">Send</button>
    </form>
    <div style="display:none"><button>Invisible</button></div>`,
  "/links": `<!doctype html><title>Links</title>
    <p>Some <b>links</b>:</p>
    <ul><li><a href="/page2">Go to page two</a></li><li><a href="/long">Long page</a></li></ul>
    <a href="/page2" target="_blank">Page two in a new tab</a>
    <button onclick="window.open('/popup')">Open popup</button>`,
  "/page2": `<!doctype html><title>Page Two</title><h2>This is page two</h2><p>Welcome to the second page.</p>`,
  "/popup": `<!doctype html><title>Popup</title><p>I am a popup.</p>`,
  // A named form shadows document.title in the page's own JavaScript world.
  "/shadowed-title": `<!doctype html><title>Real title</title><form name="title"><input name="q"></form><p>shadowed</p>`,
  "/long": `<!doctype html><title>Long</title><h1>A long page</h1>${Array.from(
    { length: LONG_PARAGRAPHS },
    (_, i) => `<p>Paragraph ${i}: the quick brown fox jumps over the lazy dog.</p>`,
  ).join("")}<p>THE END</p>`,
  "/cookie-show": "", // dynamic
};

interface Site {
  base: string;
  submissions: URLSearchParams[];
  nextSubmission(): Promise<URLSearchParams>;
  /** Resolves when the next /gate request arrives. */
  nextGateRequest(): Promise<void>;
  /** Answers every held /gate request. */
  releaseGates(): void;
  close(): Promise<void>;
}

async function startSite(): Promise<Site> {
  const submissions: URLSearchParams[] = [];
  const waiters: ((p: URLSearchParams) => void)[] = [];
  const gated: http.ServerResponse[] = [];
  const gateWaiters: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const html = (body: string, status = 200, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "text/html; charset=utf-8", ...headers });
      res.end(body);
    };
    if (url.pathname === "/submit" && req.method === "POST") {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        const params = new URLSearchParams(body);
        submissions.push(params);
        waiters.shift()?.(params);
        html(`<title>Thanks</title><p>Thanks ${params.get("name") ?? ""}</p>`);
      });
      return;
    }
    if (url.pathname === "/cookie-set") {
      html(`<title>Set</title><p>cookie set</p>`, 200, { "set-cookie": `sid=${url.searchParams.get("v") ?? ""}; Path=/` });
      return;
    }
    if (url.pathname === "/cookie-show") {
      html(`<title>Show</title><p>cookies=[${req.headers.cookie ?? ""}]</p>`);
      return;
    }
    if (url.pathname === "/hang") return; // never answers; the socket is destroyed at teardown
    if (url.pathname === "/gate") {
      // Held until the test releases it, so a test can act while the browser waits for us.
      gated.push(res);
      gateWaiters.shift()?.();
      return;
    }
    if (url.pathname === "/download") {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-disposition": 'attachment; filename="report.txt"' });
      res.end("hello download");
      return;
    }
    const page = PAGES[url.pathname];
    if (page !== undefined) html(page);
    else html("<title>404</title>not found", 404);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    submissions,
    nextSubmission: () => new Promise((resolve) => waiters.push(resolve)),
    nextGateRequest: () => new Promise<void>((resolve) => gateWaiters.push(resolve)),
    releaseGates: () => {
      for (const res of gated.splice(0)) {
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<title>Gate</title><p>gate opened</p>");
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---- helpers ----------------------------------------------------------------------------------

/** Live (non-zombie) processes whose process group is `pgid`. */
function liveGroupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") out.push(Number(entry));
    } catch {
      // The process exited while we looked.
    }
  }
  return out;
}

function text(obs: BrowserObservation): string {
  return obs.content.map((c) => c.text).join("\n");
}

/** Index of the first get_state line whose description matches. */
function indexOf(state: string, pattern: RegExp): number {
  for (const line of state.split("\n")) {
    const m = /^\*?\[(\d+)\] (.*)$/.exec(line);
    if (m && pattern.test(m[2] ?? "")) return Number(m[1]);
  }
  throw new Error(`no element matching ${pattern} in:\n${state}`);
}

/** The content part of a browser_get_content observation. */
function chunkOf(output: string): string {
  const start = output.indexOf(":\n\n", output.indexOf("Content (markdown)")) + 3;
  return output.slice(start, output.lastIndexOf("\n\n["));
}

function tabIds(list: string): string[] {
  return [...list.matchAll(/^- ([0-9a-f]{4})/gm)].map((m) => m[1] ?? "");
}

// ---- the suite --------------------------------------------------------------------------------

const ACTION_TIMEOUT_MS = 3_000;

let site: Site;
let workDirA: string;
let workDirB: string;
let manager: BrowserManager;
let tools: Map<string, BrowserTool>;
const controller = new AbortController();
const timings: Record<string, number> = {};

function ctx(conversationId: string): ToolContext {
  return { conversationId, workingDir: conversationId === "conv-b" ? workDirB : workDirA, signal: controller.signal };
}

async function call(conversationId: string, tool: string, args: Record<string, unknown> = {}): Promise<BrowserObservation> {
  const t = tools.get(tool);
  if (!t) throw new Error(`no tool ${tool}`);
  return t.execute(t.parseAction(JSON.stringify(args)), ctx(conversationId));
}

async function ok(conversationId: string, tool: string, args: Record<string, unknown> = {}): Promise<string> {
  const obs = await call(conversationId, tool, args);
  expect(obs.kind).toBe("BrowserObservation");
  expect(obs.is_error, text(obs)).toBe(false);
  return text(obs);
}

async function fails(conversationId: string, tool: string, args: Record<string, unknown>): Promise<string> {
  const obs = await call(conversationId, tool, args);
  expect(obs.is_error, text(obs)).toBe(true);
  return text(obs);
}

beforeAll(async () => {
  site = await startSite();
  workDirA = await mkdtemp(path.join(os.tmpdir(), "agentd-browser-a-"));
  workDirB = await mkdtemp(path.join(os.tmpdir(), "agentd-browser-b-"));
  manager = new BrowserManager({ chromiumPath: SYSTEM_CHROMIUM_PATH, actionTimeoutMs: ACTION_TIMEOUT_MS });
  tools = new Map(createBrowserTools(manager).map((t) => [t.name, t]));
});

afterAll(async () => {
  await manager.close();
  await site.close();
  await rm(workDirA, { recursive: true, force: true });
  await rm(workDirB, { recursive: true, force: true });
  console.log(`[browser timings] ${JSON.stringify(timings)}`);
});

describe("BrowserManager with real Chromium", () => {
  it("fills in and submits a form: navigate → get_state → type → click", async () => {
    const t0 = performance.now();
    const nav = await ok("conv-a", "browser_navigate", { url: `${site.base}/form` });
    timings.coldLaunchAndFirstNavigateMs = Math.round(performance.now() - t0);
    expect(nav).toContain(`Navigated to ${site.base}/form`);
    expect(nav).toContain("Title: Form");

    const state = await ok("conv-a", "browser_get_state");
    expect(state).toContain(`URL: ${site.base}/form`);
    expect(state).toContain("Title: Form");
    expect(state).toContain("Viewport: 1280x720");
    expect(state).not.toContain("Invisible");
    expect(state).not.toContain('name="token"');
    const name = indexOf(state, /<input name="name" label="Name"/);
    const email = indexOf(state, /<input type="email" name="email" placeholder="Email"/);
    const color = indexOf(state, /<select name="color".*options: Red \| Green/);
    const note = indexOf(state, /<textarea name="note"/);
    const agree = indexOf(state, /<input type="checkbox" name="agree".*checked="false"/);
    const send = indexOf(state, /<button type="submit"> Send$/);

    expect(await ok("conv-a", "browser_type", { index: name, text: "Ada Lovelace" })).toContain(`Typed 12 character(s) into element ${name} <input`);
    await ok("conv-a", "browser_type", { index: email, text: "ada@example.org" });
    expect(await ok("conv-a", "browser_type", { index: color, text: "Green" })).toContain('Selected option "Green"');
    await ok("conv-a", "browser_type", { index: note, text: "line one\nline two" });
    expect(await fails("conv-a", "browser_type", { index: agree, text: "x" })).toContain("use browser_click");
    expect(await fails("conv-a", "browser_type", { index: color, text: "Purple" })).toContain('no option labelled or valued "Purple"');
    await ok("conv-a", "browser_click", { index: agree });

    // The state reflects what was typed (values are shown, so the agent can verify its input).
    expect(await ok("conv-a", "browser_get_state")).toContain('value="Ada Lovelace"');

    const submitted = site.nextSubmission();
    const click = await ok("conv-a", "browser_click", { index: send });
    const values = await submitted;
    expect(Object.fromEntries(values)).toEqual({
      name: "Ada Lovelace",
      email: "ada@example.org",
      color: "g",
      note: "line one\r\nline two",
      token: "t0k",
      agree: "yes",
    });
    expect(click).toContain(`The tab navigated to ${site.base}/submit`);
    expect(click).toContain("Title: Thanks");
  });

  it("follows a link, reads the content and goes back", async () => {
    await ok("conv-a", "browser_navigate", { url: `${site.base}/links` });
    const state = await ok("conv-a", "browser_get_state");
    const link = indexOf(state, /<a href="\/page2"> Go to page two$/);

    const click = await ok("conv-a", "browser_click", { index: link });
    expect(click).toContain(`The tab navigated to ${site.base}/page2`);
    const content = await ok("conv-a", "browser_get_content");
    expect(content).toContain("Title: Page Two");
    expect(content).toContain("## This is page two");
    expect(content).toContain("Welcome to the second page.");
    expect(content).toContain("[End of page content.]");

    const back = await ok("conv-a", "browser_go_back");
    expect(back).toContain(`Went back to ${site.base}/links`);
    const withLinks = await ok("conv-a", "browser_get_content", { extract_links: true });
    expect(withLinks).toContain(`- [Go to page two](${site.base}/page2)`);
    expect(withLinks).toContain("Some **links**:");
    expect(await ok("conv-a", "browser_get_content")).not.toContain("](");
  });

  it("reports the document's title even when a named element shadows document.title", async () => {
    expect(await ok("conv-a", "browser_navigate", { url: `${site.base}/shadowed-title` })).toContain("Title: Real title");
    expect(await ok("conv-a", "browser_get_state")).toContain("Title: Real title");
    expect(await ok("conv-a", "browser_get_content")).toContain("Title: Real title");
    expect(await ok("conv-a", "browser_list_tabs")).toContain(`Real title — ${site.base}/shadowed-title`);
  });

  it("tracks tabs opened by target=_blank, window.open and new_tab; lists, switches and closes them", async () => {
    await ok("conv-a", "browser_navigate", { url: `${site.base}/links` });
    const firstList = await ok("conv-a", "browser_list_tabs");
    expect(tabIds(firstList)).toHaveLength(1);
    const main = tabIds(firstList)[0] ?? "";

    const state = await ok("conv-a", "browser_get_state");
    const blank = await ok("conv-a", "browser_click", { index: indexOf(state, /target="_blank"/) });
    const blankId = /opened new tab ([0-9a-f]{4}): (\S+)/.exec(blank);
    expect(blankId?.[2]).toBe(`${site.base}/page2`);
    expect(blank).toContain(`Tab ${blankId?.[1]} is now the active tab`);
    expect(await ok("conv-a", "browser_get_state")).toContain(`URL: ${site.base}/page2`);

    await ok("conv-a", "browser_switch_tab", { tab_id: main });
    const popup = await ok("conv-a", "browser_click", { index: indexOf(state, /<button> Open popup$/) });
    const popupId = /opened new tab ([0-9a-f]{4}): (\S+)/.exec(popup);
    expect(popupId?.[2]).toBe(`${site.base}/popup`);

    const opened = await ok("conv-a", "browser_navigate", { url: `${site.base}/page2`, new_tab: true });
    expect(opened).toMatch(/Opened in new tab [0-9a-f]{4}/);

    const list = await ok("conv-a", "browser_list_tabs");
    expect(tabIds(list)).toHaveLength(4);
    expect(list).toMatch(new RegExp(`- ${popupId?.[1]}: Popup — ${site.base}/popup`));

    const switched = await ok("conv-a", "browser_switch_tab", { tab_id: popupId?.[1] ?? "" });
    expect(switched).toContain(`Switched to tab ${popupId?.[1]}: ${site.base}/popup`);
    expect(await ok("conv-a", "browser_get_content")).toContain("I am a popup.");

    const closed = await ok("conv-a", "browser_close_tab", { tab_id: popupId?.[1] ?? "" });
    expect(closed).toContain(`Closed tab ${popupId?.[1]}. The active tab is now`);
    expect(await fails("conv-a", "browser_switch_tab", { tab_id: popupId?.[1] ?? "" })).toContain(`no tab with id '${popupId?.[1]}'`);

    for (const id of tabIds(await ok("conv-a", "browser_list_tabs"))) {
      if (id !== main) await ok("conv-a", "browser_close_tab", { tab_id: id });
    }
    const remaining = await ok("conv-a", "browser_list_tabs");
    expect(tabIds(remaining)).toEqual([main]);
    expect(remaining).toContain(`- ${main} (active): Links`);
  });

  it("pages long content, scrolls, and screenshots the viewport", async () => {
    await ok("conv-a", "browser_navigate", { url: `${site.base}/long` });
    const first = await ok("conv-a", "browser_get_content");
    const total = Number(/characters 0–10000 of (\d+)/.exec(first)?.[1]);
    expect(total).toBeGreaterThan(20_000);
    expect(first).toContain("# A long page");
    expect(first).toContain("Paragraph 0: the quick brown fox");
    expect(first).toContain("Call browser_get_content with start_from_char=10000");
    expect(first).not.toContain("THE END");

    const second = await ok("conv-a", "browser_get_content", { start_from_char: 10_000 });
    expect(second).toContain(`characters 10000–20000 of ${total}`);
    // The pages join up exactly: a page starting 10 characters early overlaps both.
    expect(chunkOf(first)).toHaveLength(10_000);
    expect(chunkOf(second)).toHaveLength(10_000);
    const overlap = chunkOf(await ok("conv-a", "browser_get_content", { start_from_char: 9_990 }));
    expect(overlap.slice(0, 10)).toBe(chunkOf(first).slice(-10));
    expect(overlap.slice(10)).toBe(chunkOf(second).slice(0, 9_990));

    const last = await ok("conv-a", "browser_get_content", { start_from_char: total - 50 });
    expect(last).toContain("THE END");
    expect(last).toContain("[End of page content.]");
    expect(await fails("conv-a", "browser_get_content", { start_from_char: total + 1 })).toContain(`past the end of the page content (${total} characters)`);

    const down = await ok("conv-a", "browser_scroll", { direction: "down" });
    expect(down).toMatch(/Scrolled down: now at y=576 of \d+ px/);
    expect(await ok("conv-a", "browser_get_state")).toContain("scrolled to y=576");
    expect(await ok("conv-a", "browser_scroll", { direction: "up" })).toMatch(/Scrolled up: now at y=0 .*top of the page/);
    expect(await ok("conv-a", "browser_scroll", { direction: "up" })).toContain("Already at the top");

    const shot = await call("conv-a", "browser_get_state", { include_screenshot: true });
    expect(shot.is_error).toBe(false);
    const png = Buffer.from(shot.screenshot_data ?? "", "base64");
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1280, 720]);
    expect((await call("conv-a", "browser_get_state")).screenshot_data).toBeUndefined();
  });

  it("keeps two conversations apart: cookies and tabs", async () => {
    // The two conversations run in parallel.
    await Promise.all([
      ok("conv-a", "browser_navigate", { url: `${site.base}/cookie-set?v=alpha` }),
      ok("conv-b", "browser_navigate", { url: `${site.base}/page2` }),
    ]);
    await ok("conv-b", "browser_navigate", { url: `${site.base}/cookie-show` });
    expect(await ok("conv-b", "browser_get_content")).toContain("cookies=[]");
    await ok("conv-a", "browser_navigate", { url: `${site.base}/cookie-show` });
    expect(await ok("conv-a", "browser_get_content")).toContain("cookies=[sid=alpha]");

    const tabsA = tabIds(await ok("conv-a", "browser_list_tabs"));
    const tabsB = tabIds(await ok("conv-b", "browser_list_tabs"));
    expect(tabsA).toHaveLength(1);
    expect(tabsB).toHaveLength(1);
    expect(tabsA[0]).not.toBe(tabsB[0]);
    expect(await fails("conv-b", "browser_switch_tab", { tab_id: tabsA[0] ?? "" })).toContain("no tab with id");
  });

  it("saves downloads inside the conversation's working dir", async () => {
    const obs = await ok("conv-b", "browser_navigate", { url: `${site.base}/download` });
    const saved = path.join(workDirB, "downloads", "report.txt");
    expect(obs).toContain(`saved it to ${saved}`);
    expect(await readFile(saved, "utf8")).toBe("hello download");
  });

  it("answers bad input with error observations and stays usable", async () => {
    expect(await fails("conv-a", "browser_navigate", { url: "not a url" })).toContain("has no scheme");
    expect(await fails("conv-a", "browser_navigate", { url: "http://exa mple.com" })).toContain("invalid URL");
    expect(await fails("conv-a", "browser_navigate", { url: "file:///etc/passwd" })).toContain("outside the workspace");
    expect(await fails("conv-a", "browser_navigate", { url: "data:text/html,<p>x</p>" })).toContain("'data:' is not allowed");
    expect(await fails("conv-a", "browser_navigate", { url: "javascript:alert(1)" })).toContain("'javascript:' is not allowed");
    expect(await fails("conv-a", "browser_navigate", { url: "chrome://settings" })).toContain("'chrome:' is not allowed");
    const closedPort = await freePort();
    expect(await fails("conv-a", "browser_navigate", { url: `http://127.0.0.1:${closedPort}/` })).toContain(
      `navigation to http://127.0.0.1:${closedPort}/ failed: net::ERR_CONNECTION_REFUSED`,
    );

    // A file inside the working dir is fine, and links on it cannot lead out of the workspace.
    const local = path.join(workDirA, "local.html");
    await writeFile(local, `<title>Local</title><p>local file</p><a href="file:///etc/passwd">passwd</a>`);
    await ok("conv-a", "browser_navigate", { url: pathToFileURL(local).href });
    expect(await ok("conv-a", "browser_get_content")).toContain("local file");
    const escape = await fails("conv-a", "browser_click", { index: indexOf(await ok("conv-a", "browser_get_state"), /passwd/) });
    expect(escape).toContain("outside the workspace; the tab was reset to about:blank");

    await ok("conv-a", "browser_navigate", { url: `${site.base}/links` });
    expect(await fails("conv-a", "browser_click", { index: 99 })).toMatch(/element index 99 does not exist on this page \(valid indexes: 0–\d+\)/);
    expect(await fails("conv-a", "browser_type", { index: 42, text: "x" })).toContain("element index 42 does not exist");
    await ok("conv-a", "browser_navigate", { url: "about:blank" });
    expect(await fails("conv-a", "browser_click", { index: 0 })).toContain("the page has no interactive elements");
    expect(await fails("conv-c", "browser_go_back", {})).toMatch(/cannot go back: tab [0-9a-f]{4} has no earlier page/);

    const t0 = performance.now();
    const hang = await fails("conv-a", "browser_navigate", { url: `${site.base}/hang` });
    expect(hang).toContain(`navigation to ${site.base}/hang timed out after ${ACTION_TIMEOUT_MS} ms`);
    expect(performance.now() - t0).toBeLessThan(ACTION_TIMEOUT_MS + 1_500);

    // Still usable.
    expect(await ok("conv-a", "browser_navigate", { url: `${site.base}/page2` })).toContain("Title: Page Two");

    // An aborted call rejects with "canceled" at once; the conversation carries on.
    const abort = new AbortController();
    const t = tools.get("browser_navigate");
    const canceled = t?.execute(t.parseAction({ url: `${site.base}/hang` }), { ...ctx("conv-a"), signal: abort.signal });
    abort.abort();
    await expect(canceled).rejects.toMatchObject({ code: "canceled" });
    expect(await ok("conv-a", "browser_navigate", { url: `${site.base}/page2` })).toContain("Title: Page Two");
  });

  it("relaunches a killed browser on the next call and says so", async () => {
    const pid = manager.browserPid;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid ?? 0, "SIGKILL");

    const obs = await ok("conv-a", "browser_navigate", { url: `${site.base}/page2` });
    expect(obs.startsWith(RESTART_NOTE)).toBe(true);
    expect(obs).toContain("restarted");
    expect(obs).toContain("Title: Page Two");
    // The new pid is looked up alongside the first action and known once it returned.
    expect(manager.browserPid).toBeGreaterThan(0);
    expect(manager.browserPid).not.toBe(pid);
    // The dead browser left nothing behind.
    expect(liveGroupMembers(pid ?? 0)).toEqual([]);

    // The note is given once per conversation: conv-b learns about it on its next call only.
    expect(await ok("conv-a", "browser_list_tabs")).not.toContain("restarted");
    const b = await ok("conv-b", "browser_list_tabs");
    expect(b).toContain(RESTART_NOTE);
    expect(b).toContain("No tabs are open");
  });

  it("retries an action whose browser dies under it", async () => {
    const pid = manager.browserPid ?? 0;
    const firstRequest = site.nextGateRequest();
    const pending = call("conv-a", "browser_navigate", { url: `${site.base}/gate` });
    await firstRequest; // Chromium is now waiting for our response
    const retried = site.nextGateRequest();
    process.kill(pid, "SIGKILL");
    await retried; // the manager relaunched and sent the navigation again
    site.releaseGates();
    const obs = await pending;
    expect(obs.is_error, text(obs)).toBe(false);
    expect(text(obs).startsWith(RESTART_NOTE)).toBe(true);
    expect(text(obs)).toContain("Title: Gate");
    expect(manager.browserPid).toBeGreaterThan(0);
    expect(manager.browserPid).not.toBe(pid);
    expect(liveGroupMembers(pid)).toEqual([]);
  });

  it("closes a conversation's context and, on close(), leaves no Chromium process", async () => {
    await ok("conv-b", "browser_navigate", { url: `${site.base}/cookie-set?v=beta` });
    await manager.closeConversation("conv-b");
    expect(await ok("conv-b", "browser_list_tabs")).toContain("No tabs are open");
    await ok("conv-b", "browser_navigate", { url: `${site.base}/cookie-show` });
    expect(await ok("conv-b", "browser_get_content")).toContain("cookies=[]");

    const pid = manager.browserPid ?? 0;
    expect(liveGroupMembers(pid).length).toBeGreaterThan(1);
    await manager.close();
    expect(liveGroupMembers(pid)).toEqual([]);
    expect(manager.isBrowserRunning).toBe(false);
    await expect(call("conv-a", "browser_list_tabs")).rejects.toMatchObject({ code: "unavailable" });
  });

  it("reports timings against raw playwright-core (printed, not asserted)", async () => {
    // Raw playwright-core: launch, then warm navigate + text extraction.
    let t0 = performance.now();
    const browser = await chromium.launch({ executablePath: SYSTEM_CHROMIUM_PATH, args: [...CHROMIUM_LAUNCH_ARGS] });
    const page = await browser.newPage();
    await page.goto("about:blank");
    timings.rawLaunchToBlankPageMs = Math.round(performance.now() - t0);
    await page.goto(`${site.base}/long`);
    const rawRuns: number[] = [];
    for (let i = 0; i < 5; i++) {
      t0 = performance.now();
      await page.goto(`${site.base}/long`, { waitUntil: "domcontentloaded" });
      await page.evaluate("document.body.innerText.length");
      rawRuns.push(performance.now() - t0);
    }
    await browser.close();
    timings.rawWarmNavigatePlusTextMs = Math.round(median(rawRuns));

    const fresh = new BrowserManager({ chromiumPath: SYSTEM_CHROMIUM_PATH });
    const freshTools = new Map(createBrowserTools(fresh).map((t) => [t.name, t]));
    const run = async (tool: string, args: Record<string, unknown>) => {
      const t = freshTools.get(tool);
      if (!t) throw new Error(tool);
      const obs = await t.execute(t.parseAction(args), ctx("timing"));
      expect(obs.is_error, text(obs)).toBe(false);
    };
    try {
      t0 = performance.now();
      await run("browser_navigate", { url: "about:blank" });
      timings.managerLaunchToBlankPageMs = Math.round(performance.now() - t0);
      await run("browser_navigate", { url: `${site.base}/long` });
      const runs: number[] = [];
      for (let i = 0; i < 5; i++) {
        t0 = performance.now();
        await run("browser_navigate", { url: `${site.base}/long` });
        await run("browser_get_content", {});
        runs.push(performance.now() - t0);
      }
      timings.managerWarmNavigatePlusContentMs = Math.round(median(runs));
    } finally {
      await fresh.close();
    }
    expect(timings.managerWarmNavigatePlusContentMs).toBeGreaterThan(0);
  });
});

/** A loopback port nobody listens on (bound once, then released). */
async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}
