import { constants as fsConstants } from "node:fs";
import { access, readdir, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadPlaywright } from "./playwright.js";

/**
 * Chromium flags for a machine without general network access (reference/toolchain.md §6):
 * headless, no sandbox (we run as root in a container/VM), no GPU, and no background traffic
 * (component updates, sync, QUIC probes) that would only time out. `--disable-dev-shm-usage`
 * because /dev/shm is small in containers.
 */
export const CHROMIUM_LAUNCH_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** Debian's apt package (a shell wrapper that execs /usr/lib/chromium/chromium). */
export const SYSTEM_CHROMIUM_PATH = "/usr/bin/chromium";

export interface FindChromiumOptions {
  /**
   * Explicit executable (config / CHROMIUM_PATH). When set it is authoritative: if it is not an
   * executable file, no other location is tried (a typo must not silently pick another browser).
   */
  chromiumPath?: string | undefined;
  /** Playwright's browser cache; default `~/.cache/ms-playwright`. */
  playwrightCacheDir?: string | undefined;
  /** Override of the system location (tests); default /usr/bin/chromium. */
  systemPath?: string | undefined;
}

export interface ChromiumLocation {
  path: string;
  source: "option" | "system" | "playwright-cache";
}

type Search = { found: ChromiumLocation } | { found: undefined; reason: string };

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return false;
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Revision number of a cache entry such as `chromium-1200`; -1 when it has none. */
function revisionOf(dirName: string): number {
  const m = /^chromium-(\d+)$/.exec(dirName);
  return m ? Number(m[1]) : -1;
}

async function searchChromium(opts: FindChromiumOptions): Promise<Search> {
  if (opts.chromiumPath !== undefined && opts.chromiumPath !== "") {
    if (await isExecutableFile(opts.chromiumPath)) {
      return { found: { path: opts.chromiumPath, source: "option" } };
    }
    return { found: undefined, reason: `configured Chromium path ${opts.chromiumPath} is not an executable file` };
  }
  const system = opts.systemPath ?? SYSTEM_CHROMIUM_PATH;
  if (await isExecutableFile(system)) return { found: { path: system, source: "system" } };

  const cacheDir = opts.playwrightCacheDir ?? path.join(os.homedir(), ".cache", "ms-playwright");
  let entries: string[] = [];
  try {
    entries = await readdir(cacheDir);
  } catch {
    // No cache directory: fall through to "not found".
  }
  // Newest revision first; `chrome-linux64` is the layout of newer Playwright builds.
  const revisions = entries.filter((e) => revisionOf(e) >= 0).sort((a, b) => revisionOf(b) - revisionOf(a));
  for (const rev of revisions) {
    for (const sub of ["chrome-linux", "chrome-linux64"]) {
      const candidate = path.join(cacheDir, rev, sub, "chrome");
      if (await isExecutableFile(candidate)) return { found: { path: candidate, source: "playwright-cache" } };
    }
  }
  return {
    found: undefined,
    reason: `no Chromium found (looked at ${system} and ${path.join(cacheDir, "chromium-*")}); install the Debian chromium package or set CHROMIUM_PATH`,
  };
}

/**
 * Locates a Chromium executable: the explicit option, then /usr/bin/chromium, then Playwright's
 * cache (newest revision). Returns undefined when none is found. Never downloads a browser.
 */
export async function findChromium(opts: FindChromiumOptions = {}): Promise<ChromiumLocation | undefined> {
  return (await searchChromium(opts)).found;
}

/** One-line reason why findChromium found nothing, or undefined when it finds a browser. */
export async function explainMissingChromium(opts: FindChromiumOptions = {}): Promise<string | undefined> {
  const s = await searchChromium(opts);
  return s.found ? undefined : s.reason;
}

export type BrowserCheck = { ok: true; path: string; version: string } | { ok: false; reason: string };

/**
 * Proves the browser works: finds it, launches it with CHROMIUM_LAUNCH_ARGS, renders about:blank
 * and closes it. Never throws; a failure comes back as `{ok:false, reason}` with a one-line reason.
 * Takes about 0.3–0.6 s on the build machine.
 */
export async function checkBrowser(opts: FindChromiumOptions & { timeoutMs?: number } = {}): Promise<BrowserCheck> {
  const search = await searchChromium(opts);
  if (!search.found) return { ok: false, reason: search.reason };
  const executablePath = search.found.path;
  let browser;
  try {
    const { chromium } = await loadPlaywright();
    browser = await chromium.launch({
      executablePath,
      args: [...CHROMIUM_LAUNCH_ARGS],
      headless: true,
      timeout: opts.timeoutMs ?? 30_000,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
    const page = await browser.newPage();
    await page.goto("about:blank", { timeout: opts.timeoutMs ?? 30_000 });
    const version = browser.version();
    return { ok: true, path: executablePath, version };
  } catch (err) {
    return { ok: false, reason: `Chromium at ${executablePath} failed to start: ${firstLine(err)}` };
  } finally {
    await browser?.close().catch(() => undefined);
  }
}

/** First line of an error's message (Playwright errors carry multi-line call logs). */
export function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split("\n").find((l) => l.trim() !== "") ?? msg).trim();
}
