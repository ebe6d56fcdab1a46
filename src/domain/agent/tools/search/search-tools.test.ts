import { mkdir, mkdtemp, realpath, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { SecretMasker } from "../secret-masker.js";
import { observationText } from "../text.js";
import type { ToolExecutionContext } from "../types.js";
import { GlobTool } from "./glob-tool.js";
import { GrepTool } from "./grep-tool.js";
import { MAX_SEARCH_RESULTS } from "./ripgrep.js";

describe("glob and grep tools (ripgrep)", () => {
  let dir: string;
  let ctx: ToolExecutionContext;
  const glob = new GlobTool();
  const grep = new GrepTool();

  /** Writes a file with an mtime `age` seconds in the past, so mtime order is deterministic. */
  const put = async (rel: string, content: string, age: number): Promise<string> => {
    const path = join(dir, rel);
    await mkdir(join(path, ".."), { recursive: true });
    await writeFile(path, content);
    const t = new Date(Date.now() - age * 1000);
    await utimes(path, t, t);
    return path;
  };

  beforeAll(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), "agentd-search-")));
    ctx = { conversationId: "c", workingDir: dir, signal: new AbortController().signal, secrets: new SecretMasker() };
    await put("old.py", "def handler():\n    return 'Needle'\n", 300);
    await put("src/newest.py", "x = 'needle'\n", 10);
    await put("src/middle.py", "NEEDLE = 1\n", 100);
    await put("src/notes.txt", "a needle in text\n", 50);
    await put("src/app.ts", "const haystack = 1;\n", 20);
    await mkdir(join(dir, "src", "dir.py")); // a directory named like a match
    await put(".hidden/secret.py", "needle\n", 5);
    for (let i = 0; i < 150; i++) await put(`many/f${String(i).padStart(3, "0")}.log`, "needle\n", 1000 + i);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reports being usable with ripgrep installed, and not usable without it", () => {
    expect(glob.isUsable()).toBe(true);
    expect(grep.isUsable()).toBe(true);
    const missing = new GrepTool("/nonexistent/rg");
    expect(missing.isUsable()).toBe(false);
    return expect(missing.execute(missing.parseAction({ pattern: "x" }), ctx)).rejects.toMatchObject({ code: "failed_precondition" });
  });

  it("glob: absolute paths of files, newest first, directories excluded", async () => {
    const obs = await glob.execute(glob.parseAction({ pattern: "*.py" }), ctx);
    expect(obs).toMatchObject({ kind: "GlobObservation", is_error: false, pattern: "*.py", search_path: dir, truncated: false });
    expect(obs.files).toEqual([join(dir, "src/newest.py"), join(dir, "src/middle.py"), join(dir, "old.py")]);
    expect(observationText(obs)).toContain(`Found 3 files matching pattern '*.py' in ${dir}:`);
  });

  it("glob: patterns with directories, relative search paths, and no matches", async () => {
    const nested = await glob.execute(glob.parseAction({ pattern: "src/**/*.ts" }), ctx);
    expect(nested.files).toEqual([join(dir, "src/app.ts")]);
    const inSrc = await glob.execute(glob.parseAction({ pattern: "*.py", path: "src" }), ctx);
    expect(inSrc.search_path).toBe(join(dir, "src"));
    expect(inSrc.files).toHaveLength(2);
    const none = await glob.execute(glob.parseAction({ pattern: "*.rs" }), ctx);
    expect(none.files).toEqual([]);
    expect(observationText(none)).toContain("No files found matching pattern '*.rs'");
    const bad = await glob.execute(glob.parseAction({ pattern: "*", path: join(dir, "nope") }), ctx);
    expect(bad.is_error).toBe(true);
    expect(observationText(bad)).toContain("is not a valid directory");
  });

  it("glob: caps at 100 results and says it truncated", async () => {
    const obs = await glob.execute(glob.parseAction({ pattern: "*.log" }), ctx);
    expect(obs.files).toHaveLength(MAX_SEARCH_RESULTS);
    expect(obs.truncated).toBe(true);
    expect(obs.files[0]).toBe(join(dir, "many/f000.log")); // the newest of them
    expect(observationText(obs)).toContain("most recently modified of 150 files");
  });

  it("grep: case-insensitive, files with matches, newest first", async () => {
    const obs = await grep.execute(grep.parseAction({ pattern: "needle", path: "src" }), ctx);
    expect(obs).toMatchObject({ kind: "GrepObservation", is_error: false, pattern: "needle", include_pattern: null, truncated: false });
    expect(obs.matches).toEqual([join(dir, "src/newest.py"), join(dir, "src/notes.txt"), join(dir, "src/middle.py")]);
  });

  it("grep: include restricts file names; regex syntax works", async () => {
    const obs = await grep.execute(grep.parseAction({ pattern: "needle", include: "*.py" }), ctx);
    expect(obs.include_pattern).toBe("*.py");
    expect(obs.matches).toEqual([join(dir, "src/newest.py"), join(dir, "src/middle.py"), join(dir, "old.py")]);
    const regex = await grep.execute(grep.parseAction({ pattern: "def \\w+\\(\\)" }), ctx);
    expect(regex.matches).toEqual([join(dir, "old.py")]);
  });

  it("grep: caps at 100, and reports an invalid regex as an error observation", async () => {
    const many = await grep.execute(grep.parseAction({ pattern: "needle", include: "*.log" }), ctx);
    expect(many.matches).toHaveLength(MAX_SEARCH_RESULTS);
    expect(many.truncated).toBe(true);
    const bad = await grep.execute(grep.parseAction({ pattern: "(unclosed" }), ctx);
    expect(bad.is_error).toBe(true);
    expect(observationText(bad)).toContain("regex parse error");
    const none = await grep.execute(grep.parseAction({ pattern: "zzz-not-there" }), ctx);
    expect(none.is_error).toBe(false);
    expect(none.matches).toEqual([]);
  });
});
