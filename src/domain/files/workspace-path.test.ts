import { mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentdError } from "../../errors.js";
import { WorkspaceFiles } from "./workspace-files.js";
import { resolveWorkspacePath } from "./workspace-path.js";

// Layout (base is a fresh temp dir; only base/ws is a root, base/ws/conv the working dir):
//   base/outside/secret.txt              the file nothing may read or change
//   base/ws2/file.txt                    a sibling whose name extends the root's name
//   base/ws/conv/data/file.txt           ordinary content
//   base/ws/conv/link-out   -> base/outside            (directory symlink escaping)
//   base/ws/conv/chain1     -> chain2 -> chain3 -> base/outside/secret.txt
//   base/ws/conv/link-in    -> base/ws/conv/data       (symlink inside: allowed)
//   base/ws/conv/rel-in     -> data/file.txt           (relative symlink inside)
//   base/ws/conv/dangling-out -> base/outside/not-yet  (dangling, escaping)
let base: string;
let ws: string;
let conv: string;
let outside: string;
let files: WorkspaceFiles;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), "agentd-files-path-")));
  ws = join(base, "ws");
  conv = join(ws, "conv");
  outside = join(base, "outside");
  await mkdir(join(conv, "data"), { recursive: true });
  await mkdir(outside);
  await mkdir(join(base, "ws2"));
  await writeFile(join(base, "ws2", "file.txt"), "sibling");
  await writeFile(join(outside, "secret.txt"), "secret");
  await writeFile(join(conv, "data", "file.txt"), "inside");
  await symlink(outside, join(conv, "link-out"));
  await symlink("chain2", join(conv, "chain1"));
  await symlink("chain3", join(conv, "chain2"));
  await symlink(join(outside, "secret.txt"), join(conv, "chain3"));
  await symlink(join(conv, "data"), join(conv, "link-in"));
  await symlink("data/file.txt", join(conv, "rel-in"));
  await symlink(join(outside, "not-yet"), join(conv, "dangling-out"));
  await symlink("loop-b", join(conv, "loop-a"));
  await symlink("loop-a", join(conv, "loop-b"));
  files = new WorkspaceFiles({ roots: [ws], defaultWorkingDir: conv, uploadIdleTimeoutMs: 60_000 });
});

afterAll(async () => {
  await files.close();
  await rm(base, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AgentdError) return err.code;
    throw err;
  }
  return "ok";
}

async function readAll(path: string): Promise<string> {
  const stream = await files.read(path);
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts).toString("utf8");
}

type Op = "read" | "write" | "stat" | "list" | "mkdir" | "remove" | "moveOut" | "moveIn" | "watch" | "upload";

function run(op: Op, p: string): Promise<unknown> {
  switch (op) {
    case "read":
      return readAll(p);
    case "write":
      return files.writeFile(p, "pwned");
    case "upload":
      return files.createUpload(p);
    case "stat":
      return files.stat(p);
    case "list":
      return files.list(p);
    case "mkdir":
      return files.mkdir(p);
    case "remove":
      return files.remove(p, { recursive: true });
    case "moveOut":
      return files.move("data/file.txt", p);
    case "moveIn":
      return files.move(p, "data/moved-in");
    case "watch":
      return files.watch(p).then((w) => w.close());
  }
}

describe("traversal corpus", () => {
  const long5000 = "d/".repeat(2500);
  const cases: { name: string; path: () => string; ops: Op[]; code: string }[] = [
    { name: "dot-dot relative", path: () => "../../etc/passwd", ops: ["read", "write", "stat", "remove", "moveOut"], code: "permission_denied" },
    { name: "dot-dot to a real outside file", path: () => "../../outside/secret.txt", ops: ["read", "write", "stat", "remove", "moveIn", "upload"], code: "permission_denied" },
    { name: "deep dot-dot", path: () => "../../../../../../../../../../etc/passwd", ops: ["read", "stat"], code: "permission_denied" },
    { name: "absolute outside", path: () => "/etc/passwd", ops: ["read", "write", "stat", "remove"], code: "permission_denied" },
    { name: "absolute outside file under base", path: () => join(outside, "secret.txt"), ops: ["read", "write", "remove", "moveIn"], code: "permission_denied" },
    { name: "root /", path: () => "/", ops: ["read", "list", "stat", "remove", "watch", "mkdir"], code: "permission_denied" },
    { name: "sibling sharing the root's prefix", path: () => join(base, "ws2", "file.txt"), ops: ["read", "write", "stat"], code: "permission_denied" },
    { name: "symlink dir inside pointing out", path: () => "link-out/secret.txt", ops: ["read", "write", "stat", "remove", "moveIn", "upload"], code: "permission_denied" },
    { name: "new file under an escaping symlinked dir", path: () => "link-out/new.txt", ops: ["write", "mkdir", "moveOut", "upload"], code: "permission_denied" },
    { name: "the escaping symlink itself", path: () => "link-out", ops: ["list", "stat", "watch", "remove"], code: "permission_denied" },
    { name: "symlink chain ending outside", path: () => "chain1", ops: ["read", "write", "stat", "remove"], code: "permission_denied" },
    { name: "dangling symlink pointing out", path: () => "dangling-out", ops: ["write", "mkdir", "upload"], code: "permission_denied" },
    { name: "NUL byte", path: () => "data/file.txt\0.png", ops: ["read", "write", "stat"], code: "permission_denied" },
    { name: "300-byte name", path: () => "n".repeat(300), ops: ["read", "write", "mkdir"], code: "permission_denied" },
    { name: "5000-byte path", path: () => long5000, ops: ["read", "write", "mkdir"], code: "permission_denied" },
    { name: "a directory where a file is expected", path: () => "data", ops: ["read"], code: "failed_precondition" },
    { name: "write over a directory", path: () => "data", ops: ["write"], code: "failed_precondition" },
    { name: "symlink loop", path: () => "loop-a", ops: ["read", "stat"], code: "failed_precondition" },
    { name: "the working dir root itself", path: () => ".", ops: ["remove"], code: "permission_denied" },
    { name: "the workspace root itself", path: () => "..", ops: ["remove", "moveIn"], code: "permission_denied" },
  ];

  for (const c of cases) {
    for (const op of c.ops) {
      it(`${c.name}: ${op} → ${c.code}`, async () => {
        expect(await codeOf(run(op, c.path()))).toBe(c.code);
      });
    }
  }

  it("left everything outside the workspace untouched", async () => {
    expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe("secret");
    expect((await readdir(outside)).sort()).toEqual(["secret.txt"]);
    expect(await readFile(join(base, "ws2", "file.txt"), "utf8")).toBe("sibling");
    expect((await readdir(base)).sort()).toEqual(["outside", "ws", "ws2"]);
  });

  it("treats %2f literally: a weird name inside the working dir, never a traversal", async () => {
    expect(await codeOf(readAll("..%2f..%2fetc/passwd"))).toBe("not_found");
    await files.writeFile("..%2f..%2fetc/passwd", "literal");
    expect(await readFile(join(conv, "..%2f..%2fetc", "passwd"), "utf8")).toBe("literal");
    await files.remove("..%2f..%2fetc", { recursive: true });
  });

  it("allows symlinks that stay inside, absolute or relative", async () => {
    expect(await readAll("link-in/file.txt")).toBe("inside");
    expect(await readAll("rel-in")).toBe("inside");
    const info = await files.stat("rel-in");
    expect(info).toMatchObject({ type: "symlink", symlinkTarget: "data/file.txt", path: join(conv, "rel-in") });
  });

  it("allows .. that stays inside and absolute paths inside", async () => {
    expect(await readAll("data/../data/./file.txt")).toBe("inside");
    expect(await readAll(join(conv, "data", "file.txt"))).toBe("inside");
  });

  it("writes through a symlinked dir land in its target, inside", async () => {
    await files.writeFile("link-in/new/deeper.txt", "deep");
    expect(await readFile(join(conv, "data", "new", "deeper.txt"), "utf8")).toBe("deep");
    await files.remove("data/new", { recursive: true });
  });

  it("an escaping symlink is refused even if its final target links back in", async () => {
    await symlink(join(conv, "data", "file.txt"), join(outside, "back-in"));
    try {
      expect(await codeOf(files.stat("link-out/back-in"))).toBe("permission_denied");
      expect(await codeOf(files.remove("link-out/back-in"))).toBe("permission_denied");
    } finally {
      await rm(join(outside, "back-in"));
    }
  });
});

describe("resolveWorkspacePath", () => {
  it("judges a not-yet-existing path by the real path of its existing prefix", async () => {
    const r = await resolveWorkspacePath([ws], conv, "link-in/a/b.txt");
    expect(r).toMatchObject({ path: join(conv, "link-in/a/b.txt"), real: join(conv, "data/a/b.txt"), root: ws, exists: false });
  });

  it("keeps a final symlink in `entry` and follows it in `real`", async () => {
    const r = await resolveWorkspacePath([ws], conv, "rel-in");
    expect(r).toMatchObject({ entry: join(conv, "rel-in"), real: join(conv, "data/file.txt"), exists: true });
  });

  it("follows a dangling symlink to where it points", async () => {
    await expect(resolveWorkspacePath([ws], conv, "dangling-out")).rejects.toMatchObject({
      code: "permission_denied",
      reason: "PATH_OUTSIDE_WORKSPACE",
    });
  });

  it("accepts a root that does not exist yet", async () => {
    const r = await resolveWorkspacePath([join(base, "later")], join(base, "later"), "x/y");
    expect(r.real).toBe(join(base, "later", "x", "y"));
  });

  it("rejects empty paths and names the bad ones without echoing huge input", async () => {
    await expect(resolveWorkspacePath([ws], conv, "")).rejects.toMatchObject({ code: "invalid_argument" });
    const err = await resolveWorkspacePath([ws], conv, "d/".repeat(2500)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentdError);
    expect((err as AgentdError).message.length).toBeLessThan(400);
    expect((err as AgentdError).reason).toBe("PATH_INVALID");
  });
});
