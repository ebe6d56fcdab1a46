import { chmod, mkdir, readFile, readdir, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { WorkspaceFiles } from "./workspace-files.js";
import { closeTestWorkspace, failure, openTestWorkspace, type TestWorkspace } from "../../../test/helpers/workspace-files.js";

let ws: string;
let files: WorkspaceFiles;

let t: TestWorkspace;

beforeEach(async () => {
  t = await openTestWorkspace("ops");
  ({ ws, files } = t);
});

afterEach(() => closeTestWorkspace(t));

describe("stat", () => {
  it("describes files, directories, symlinks and other entries", async () => {
    await writeFile(join(ws, "f.txt"), "hello");
    await chmod(join(ws, "f.txt"), 0o640);
    await utimes(join(ws, "f.txt"), 1_700_000_000, 1_700_000_000);
    await mkdir(join(ws, "d"));
    await symlink("f.txt", join(ws, "l"));
    const f = await files.stat("f.txt");
    expect(f).toEqual({ name: "f.txt", path: join(ws, "f.txt"), type: "file", size: 5, mode: 0o640, mtimeMs: 1_700_000_000_000 });
    expect(await files.stat("d")).toMatchObject({ type: "directory", name: "d" });
    expect(await files.stat(join(ws, "l"))).toMatchObject({ type: "symlink", symlinkTarget: "f.txt", size: 5 });

    const sock = join(ws, "s.sock");
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      expect(await files.stat("s.sock")).toMatchObject({ type: "other" });
      expect((await failure(files.read("s.sock"))).code).toBe("failed_precondition");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("unknown path → not_found naming the path", async () => {
    const err = await failure(files.stat("nope/missing.txt"));
    expect(err.code).toBe("not_found");
    expect(err.message).toBe(`file not found: ${join(ws, "nope/missing.txt")}`);
    expect(err.reason).toBe("FILE_NOT_FOUND");
    expect((await failure(files.read("missing"))).code).toBe("not_found");
    expect((await failure(files.list("missing"))).code).toBe("not_found");
    expect((await failure(files.remove("missing"))).code).toBe("not_found");
    expect((await failure(files.move("missing", "x"))).code).toBe("not_found");
    expect((await failure(files.watch("missing"))).code).toBe("not_found");
  });

  it("a file used as a directory → failed_precondition", async () => {
    await writeFile(join(ws, "f"), "x");
    expect((await failure(files.stat("f/inner"))).code).toBe("failed_precondition");
    expect((await failure(files.list("f"))).code).toBe("failed_precondition");
  });
});

describe("list", () => {
  beforeEach(async () => {
    // a/ (a/x, a/y/ (a/y/deep)), b, .hidden/ (.hidden/h), c.txt, .dot
    await mkdir(join(ws, "a", "y"), { recursive: true });
    await mkdir(join(ws, ".hidden"));
    await writeFile(join(ws, "a", "x"), "1");
    await writeFile(join(ws, "a", "y", "deep"), "2");
    await writeFile(join(ws, ".hidden", "h"), "3");
    await writeFile(join(ws, "b"), "4");
    await writeFile(join(ws, "c.txt"), "5");
    await writeFile(join(ws, ".dot"), "6");
  });

  async function names(opts: Parameters<WorkspaceFiles["list"]>[1] = {}): Promise<string[]> {
    const out: string[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 100; pages++) {
      const page = await files.list(".", { ...opts, ...(cursor === undefined ? {} : { cursor }) });
      out.push(...page.entries.map((e) => e.path.slice(ws.length + 1)));
      if (page.nextCursor === undefined) return out;
      expect(page.entries.length).toBe(opts.pageSize ?? 100);
      cursor = page.nextCursor;
    }
    throw new Error("paging did not end");
  }

  it("lists direct children sorted by name, hidden excluded by default", async () => {
    const page = await files.list(ws);
    expect(page.entries.map((e) => e.name)).toEqual(["a", "b", "c.txt"]);
    expect(page.nextCursor).toBeUndefined();
    expect(page.entries[0]).toMatchObject({ type: "directory", path: join(ws, "a") });
    expect(page.entries[1]).toMatchObject({ type: "file", size: 1 });
  });

  it("includes hidden entries when asked", async () => {
    expect(await names({ includeHidden: true })).toEqual([".dot", ".hidden", "a", "b", "c.txt"]);
  });

  it("depth 2 interleaves children after their directory; hidden dirs are not descended", async () => {
    expect(await names({ depth: 2 })).toEqual(["a", "a/x", "a/y", "b", "c.txt"]);
    expect(await names({ depth: 3 })).toEqual(["a", "a/x", "a/y", "a/y/deep", "b", "c.txt"]);
    expect(await names({ depth: 2, includeHidden: true })).toEqual([".dot", ".hidden", ".hidden/h", "a", "a/x", "a/y", "b", "c.txt"]);
  });

  it("pages with an opaque cursor and yields the same sequence for every page size", async () => {
    const all = await names({ depth: 3, includeHidden: true });
    expect(all).toHaveLength(9);
    for (const pageSize of [1, 2, 3, 4]) expect(await names({ depth: 3, includeHidden: true, pageSize })).toEqual(all);
  });

  it("a cursor survives changes: removed entries are skipped, nothing repeats", async () => {
    const first = await files.list(".", { pageSize: 2, depth: 2 });
    expect(first.entries.map((e) => e.name)).toEqual(["a", "x"]);
    await rm(join(ws, "a", "x"));
    await writeFile(join(ws, "a", "0-before-cursor"), "");
    await writeFile(join(ws, "bb"), "");
    const rest = await files.list(".", { depth: 2, cursor: first.nextCursor as string });
    expect(rest.entries.map((e) => e.path.slice(ws.length + 1))).toEqual(["a/y", "b", "bb", "c.txt"]);
  });

  it("refuses cursors from other parameters or forged ones", async () => {
    const first = await files.list(".", { pageSize: 1 });
    expect((await failure(files.list(".", { pageSize: 1, depth: 2, cursor: first.nextCursor as string }))).code).toBe("invalid_argument");
    expect((await failure(files.list("a", { cursor: first.nextCursor as string }))).code).toBe("invalid_argument");
    expect((await failure(files.list(".", { cursor: "garbage!" }))).code).toBe("invalid_argument");
    expect((await failure(files.list(".", { pageSize: 0 }))).code).toBe("invalid_argument");
    expect((await failure(files.list(".", { depth: 0 }))).code).toBe("invalid_argument");
  });

  it("never lists upload temp files, even with includeHidden", async () => {
    const up = await files.createUpload("b");
    const page = await files.list(".", { includeHidden: true });
    expect(page.entries.map((e) => e.name)).toEqual([".dot", ".hidden", "a", "b", "c.txt"]);
    expect((await readdir(ws)).some((n) => n.includes(".agentd-upload-"))).toBe(true);
    await files.abortUpload(up.uploadId);
  });
});

describe("mkdir", () => {
  it("creates parents and is idempotent", async () => {
    const info = await files.mkdir("p/q/r");
    expect(info).toMatchObject({ type: "directory", path: join(ws, "p/q/r"), name: "r" });
    expect((await stat(join(ws, "p/q/r"))).isDirectory()).toBe(true);
    await writeFile(join(ws, "p/q/r/keep"), "k");
    await files.mkdir("p/q/r");
    await files.mkdir("p/q");
    expect(await readFile(join(ws, "p/q/r/keep"), "utf8")).toBe("k");
  });

  it("a component that is a file → failed_precondition", async () => {
    await writeFile(join(ws, "file"), "x");
    const err = await failure(files.mkdir("file/sub"));
    expect(err.code).toBe("failed_precondition");
    expect(err.message).toContain("not a directory");
    expect((await failure(files.mkdir("file"))).code).toBe("failed_precondition");
  });

  it("creates through a symlink to a directory inside", async () => {
    await mkdir(join(ws, "real"));
    await symlink("real", join(ws, "alias"));
    await files.mkdir("alias/new");
    expect((await stat(join(ws, "real/new"))).isDirectory()).toBe(true);
  });
});

describe("move", () => {
  it("renames a file and refuses to overwrite unless asked", async () => {
    await writeFile(join(ws, "a"), "A");
    await writeFile(join(ws, "b"), "B");
    const err = await failure(files.move("a", "b"));
    expect(err.code).toBe("already_exists");
    expect(await readFile(join(ws, "a"), "utf8")).toBe("A");
    expect(await readFile(join(ws, "b"), "utf8")).toBe("B");
    const info = await files.move("a", "b", { overwrite: true });
    expect(info).toMatchObject({ path: join(ws, "b"), size: 1, type: "file" });
    expect(await readFile(join(ws, "b"), "utf8")).toBe("A");
    expect((await failure(files.stat("a"))).code).toBe("not_found");
  });

  it("moves to a new name, directories included", async () => {
    await mkdir(join(ws, "d1/sub"), { recursive: true });
    await writeFile(join(ws, "d1/sub/f"), "f");
    await files.move("d1", "d2");
    expect(await readFile(join(ws, "d2/sub/f"), "utf8")).toBe("f");
    await files.move("d2/sub/f", "g");
    expect(await readFile(join(ws, "g"), "utf8")).toBe("f");
    await mkdir(join(ws, "d3"));
    expect((await failure(files.move("d2", "d3"))).code).toBe("already_exists");
  });

  it("moves a symlink itself, not its target", async () => {
    await writeFile(join(ws, "t"), "t");
    await symlink("t", join(ws, "l"));
    await files.move("l", "l2");
    expect(await files.stat("l2")).toMatchObject({ type: "symlink", symlinkTarget: "t" });
    expect(await readFile(join(ws, "t"), "utf8")).toBe("t");
  });

  it("maps the invalid cases", async () => {
    await mkdir(join(ws, "d/inner"), { recursive: true });
    await writeFile(join(ws, "f"), "f");
    expect((await failure(files.move("d", "d/inner/x"))).code).toBe("invalid_argument");
    expect((await failure(files.move("f", "d", { overwrite: true }))).code).toBe("failed_precondition");
    expect((await failure(files.move("d", "f", { overwrite: true }))).code).toBe("failed_precondition");
    expect((await failure(files.move("f", "no/such/dir/f"))).code).toBe("not_found");
    expect((await failure(files.move("f", "d"))).code).toBe("already_exists");
  });
});

describe("remove", () => {
  it("removes files and empty directories; non-empty needs recursive", async () => {
    await writeFile(join(ws, "f"), "f");
    await mkdir(join(ws, "empty"));
    await mkdir(join(ws, "full/sub"), { recursive: true });
    await writeFile(join(ws, "full/sub/x"), "x");
    await files.remove("f");
    await files.remove("empty");
    const err = await failure(files.remove("full"));
    expect(err.code).toBe("failed_precondition");
    expect(err.message).toContain("recursive");
    expect(await readFile(join(ws, "full/sub/x"), "utf8")).toBe("x");
    await files.remove("full", { recursive: true });
    expect(await readdir(ws)).toEqual([]);
  });

  it("removes a symlink, never what it points to", async () => {
    await mkdir(join(ws, "target"));
    await writeFile(join(ws, "target/keep"), "k");
    await symlink("target", join(ws, "link"));
    await files.remove("link", { recursive: true });
    expect(await readFile(join(ws, "target/keep"), "utf8")).toBe("k");
    expect((await failure(files.stat("link"))).code).toBe("not_found");
  });
});

describe("lifecycle", () => {
  it("refuses calls after close", async () => {
    await files.close();
    expect((await failure(files.stat("."))).code).toBe("unavailable");
  });
});
