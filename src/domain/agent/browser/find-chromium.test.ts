import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkBrowser, findChromium, SYSTEM_CHROMIUM_PATH } from "./find-chromium.js";

let dir: string;

async function fakeExecutable(file: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, "#!/bin/sh\nexit 1\n");
  await chmod(file, 0o755);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "agentd-find-chromium-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("findChromium", () => {
  it("prefers the explicit option, then the system path, then the newest Playwright cache entry", async () => {
    const cache = path.join(dir, "cache");
    await fakeExecutable(path.join(cache, "chromium-1100", "chrome-linux", "chrome"));
    await fakeExecutable(path.join(cache, "chromium-1200", "chrome-linux64", "chrome"));
    await mkdir(path.join(cache, "chromium_headless_shell-1300"), { recursive: true });
    const explicit = path.join(dir, "my-chrome");
    await fakeExecutable(explicit);
    const missingSystem = path.join(dir, "no-such-chromium");

    expect(await findChromium({ chromiumPath: explicit, systemPath: missingSystem, playwrightCacheDir: cache })).toEqual({ path: explicit, source: "option" });
    expect(await findChromium({ systemPath: explicit, playwrightCacheDir: cache })).toEqual({ path: explicit, source: "system" });
    expect(await findChromium({ systemPath: missingSystem, playwrightCacheDir: cache })).toEqual({
      path: path.join(cache, "chromium-1200", "chrome-linux64", "chrome"),
      source: "playwright-cache",
    });
    expect(await findChromium({ systemPath: missingSystem, playwrightCacheDir: path.join(dir, "empty") })).toBeUndefined();
  });

  it("treats a configured path that is not executable as not found (no silent fallback)", async () => {
    const notExec = path.join(dir, "plain-file");
    await writeFile(notExec, "x");
    expect(await findChromium({ chromiumPath: notExec })).toBeUndefined();
    const check = await checkBrowser({ chromiumPath: notExec });
    expect(check).toEqual({ ok: false, reason: `configured Chromium path ${notExec} is not an executable file` });
  });

  it("reports a launch failure in one line", async () => {
    const broken = path.join(dir, "broken-chrome");
    await fakeExecutable(broken);
    const check = await checkBrowser({ chromiumPath: broken, timeoutMs: 5_000 });
    expect(check.ok).toBe(false);
    if (!check.ok) {
      expect(check.reason).toContain(`Chromium at ${broken} failed to start`);
      expect(check.reason).not.toContain("\n");
    }
  });

  it("finds and launches the real Chromium", async () => {
    const check = await checkBrowser({ chromiumPath: SYSTEM_CHROMIUM_PATH });
    expect(check).toMatchObject({ ok: true, path: SYSTEM_CHROMIUM_PATH });
    if (check.ok) expect(check.version).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });
});
