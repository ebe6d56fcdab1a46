/**
 * The path-policy corpus over the RPC surface: every FileService operation that takes a path is
 * tried with paths that escape the workspace (`..`, absolute paths outside, symlinks and symlink
 * chains leading out, NUL bytes, over-long names). Each is refused with PermissionDenied, and a
 * canary directory outside the workspace is left exactly as it was: nothing read, nothing written.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";
import { client, type TransportKind } from "../helpers/clients.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { collect, failure } from "./file-test-kit.js";

const SECRET = "canary: must never leave this directory";

let server: TestServer;
let outside: string;

beforeAll(async () => {
  server = await startTestServer();
  outside = await mkdtemp(path.join(os.tmpdir(), "agentd-outside-"));
  await writeFile(path.join(outside, "secret.txt"), SECRET);
  const ws = server.workspace;
  await mkdir(path.join(ws, "dir"));
  await writeFile(path.join(ws, "inside.txt"), "inside");
  await symlink(outside, path.join(ws, "link-out")); // directory link leading out
  await symlink(path.join(outside, "secret.txt"), path.join(ws, "file-link")); // file link leading out
  await symlink("chain-2", path.join(ws, "chain-1")); // chain: chain-1 → chain-2 → outside
  await symlink(path.relative(ws, outside), path.join(ws, "chain-2"));
  await symlink("../../../../../../../../../../etc", path.join(ws, "dir", "etc-link")); // relative link out
});

afterAll(async () => {
  await server.close();
  await rm(outside, { recursive: true, force: true });
});

/** Paths that leave the workspace, relative to the workspace base unless absolute. */
function escapes(): [string, string][] {
  const rel = path.relative(server.workspace, outside);
  return [
    ["dot-dot to /etc/passwd", "../../etc/passwd"],
    ["deep dot-dot", "../../../../../../../../../../etc/passwd"],
    ["dot-dot after a real directory", "dir/../../secret.txt"],
    ["dot-dot to the canary", `${rel}/secret.txt`],
    ["absolute /etc/passwd", "/etc/passwd"],
    ["absolute canary", path.join(outside, "secret.txt")],
    ["absolute parent of the workspace", path.dirname(server.workspace)],
    ["directory symlink out", "link-out/secret.txt"],
    ["directory symlink itself", "link-out"],
    ["new file under a symlink out", "link-out/new.txt"],
    ["file symlink out", "file-link"],
    ["symlink chain out", "chain-1/secret.txt"],
    ["relative symlink out", "dir/etc-link/passwd"],
    ["NUL byte", "inside.txt\0../../etc/passwd"],
    ["NUL byte alone", "a\0b"],
    ["over-long name", `${"n".repeat(300)}.txt`],
    ["over-long path", `${"d/".repeat(2100)}f`],
  ];
}

describe.each<TransportKind>(["grpc", "connect-json-h1"])("traversal corpus over %s", (kind) => {
  let files: ReturnType<typeof client<typeof FileService>>;
  beforeAll(() => {
    files = client(FileService, server.url, kind);
  });

  it("refuses every escaping path on every operation with PermissionDenied", async () => {
    const ops: [string, (p: string) => Promise<unknown>][] = [
      ["stat", (p) => files.statFile({ path: p })],
      ["list", (p) => files.listFiles({ path: p })],
      ["mkdir", (p) => files.createDirectory({ path: p })],
      ["remove", (p) => files.removeFile({ path: p, recursive: true })],
      ["move from", (p) => files.moveFile({ source: p, destination: "moved-here" })],
      ["move to", (p) => files.moveFile({ source: "inside.txt", destination: p, overwrite: true })],
      ["download", (p) => collect(files.downloadFile({ path: p }))],
      ["upload", (p) => files.uploadFile({ path: p, data: Buffer.from("pwned") })],
      ["create upload", (p) => files.createUpload({ path: p })],
      ["watch", (p) => collect(files.watchDirectory({ path: p }))],
    ];
    const wrong: string[] = [];
    for (const [name, p] of escapes()) {
      for (const [op, call] of ops) {
        const f = await failure(() => call(p));
        if (f.code !== Code.PermissionDenied) wrong.push(`${op} ${name}: code ${Code[f.code]} (${f.message})`);
        else if (f.reason !== "PATH_OUTSIDE_WORKSPACE" && f.reason !== "PATH_INVALID") wrong.push(`${op} ${name}: reason ${f.reason}`);
      }
    }
    expect(wrong).toEqual([]);
    // Nothing outside was touched, and nothing moved out of the workspace.
    expect(await readdir(outside)).toEqual(["secret.txt"]);
    expect(await readFile(path.join(outside, "secret.txt"), "utf8")).toBe(SECRET);
    expect(await readFile(path.join(server.workspace, "inside.txt"), "utf8")).toBe("inside");
    await expect(stat(path.join(server.workspace, "moved-here"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("treats percent-encoded dots as a literal name inside the workspace (the RPC never decodes)", async () => {
    for (const p of ["..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd", "..%252f..%252fetc"]) {
      expect((await failure(files.statFile({ path: p }))).code).toBe(Code.NotFound);
    }
  });

  it("allows `..` that stays inside, and symlinks that stay inside", async () => {
    await symlink("inside.txt", path.join(server.workspace, `in-link-${kind}`)).catch(() => undefined);
    const viaDotDot = await collect(files.downloadFile({ path: "dir/../inside.txt" }));
    expect(Buffer.from(viaDotDot[0]!.data).toString()).toBe("inside");
    const viaLink = await collect(files.downloadFile({ path: `in-link-${kind}` }));
    expect(Buffer.from(viaLink[0]!.data).toString()).toBe("inside");
    const absolute = await files.statFile({ path: path.join(server.workspace, "inside.txt") });
    expect(absolute.info?.size).toBe(6n);
  });

  it("refuses to remove or move the workspace root itself", async () => {
    for (const p of [".", server.workspace, "dir/.."]) {
      expect((await failure(files.removeFile({ path: p, recursive: true }))).code).toBe(Code.PermissionDenied);
      expect((await failure(files.moveFile({ source: p, destination: "elsewhere" }))).code).toBe(Code.PermissionDenied);
    }
    expect((await stat(path.join(server.workspace, "inside.txt"))).isFile()).toBe(true);
  });
});
