import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, mkdir, mkdtemp, open, readdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentdError } from "../../errors.js";
import { WorkspaceFiles } from "./workspace-files.js";

const MiB = 1024 * 1024;

let base: string;
let ws: string;
let now: number;
let files: WorkspaceFiles;

beforeEach(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), "agentd-files-upload-")));
  ws = join(base, "ws");
  await mkdir(ws);
  now = 1_000_000;
  files = new WorkspaceFiles({ roots: [ws], defaultWorkingDir: ws, uploadIdleTimeoutMs: 30_000, clock: () => now });
});

afterEach(async () => {
  await files.close();
  await rm(base, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<AgentdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof AgentdError)) throw new Error(`expected an AgentdError, got ${String(err)}`);
  return err;
}

/** Names in `dir` that are upload temp files. */
async function temps(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.includes(".agentd-upload-"));
}

function sha(buf: Uint8Array): string {
  return createHash("sha256").update(buf).digest("hex");
}

/** Writes `size` random bytes to `path` in 1 MiB blocks; returns the sha256. */
async function makeRandomFile(path: string, size: number): Promise<string> {
  const fh = await open(path, "w");
  const hash = createHash("sha256");
  try {
    for (let done = 0; done < size; ) {
      const block = randomBytes(Math.min(MiB, size - done));
      await fh.write(block);
      hash.update(block);
      done += block.byteLength;
    }
  } finally {
    await fh.close();
  }
  return hash.digest("hex");
}

async function readRange(path: string, opts: { offset?: number; length?: number } = {}): Promise<{ sha: string; bytes: number; reported: string }> {
  const stream = await files.read(path, opts);
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { sha: hash.digest("hex"), bytes, reported: stream.result.sha256 };
}

describe("large round trip", () => {
  it("uploads 64 MiB in 1 MiB chunks and downloads the same bytes, resumable from any offset", async () => {
    const size = 64 * MiB + 12345;
    const source = join(base, "source.bin");
    const sourceSha = await makeRandomFile(source, size);

    const session = await files.createUpload("deep/dir/big.bin", { expectedSize: size });
    expect(session).toMatchObject({ path: join(ws, "deep/dir/big.bin"), received: 0, expectedSize: size });
    const src = await open(source, "r");
    try {
      const buf = Buffer.alloc(MiB);
      for (let offset = 0; offset < size; ) {
        const { bytesRead } = await src.read(buf, 0, MiB, offset);
        const res = await files.writeUpload(session.uploadId, offset, buf.subarray(0, bytesRead));
        offset += bytesRead;
        expect(res.received).toBe(offset);
      }
    } finally {
      await src.close();
    }
    const info = await files.commitUpload(session.uploadId, { sha256: sourceSha.toUpperCase() });
    expect(info).toMatchObject({ type: "file", size, path: join(ws, "deep/dir/big.bin") });
    expect(await temps(join(ws, "deep/dir"))).toEqual([]);

    const whole = await readRange("deep/dir/big.bin");
    expect(whole).toEqual({ sha: sourceSha, bytes: size, reported: sourceSha });

    // A broken download resumed at an arbitrary offset: the two parts are the file.
    const cut = 10 * MiB + 123;
    const head = await files.read("deep/dir/big.bin", { length: cut });
    const tail = await files.read("deep/dir/big.bin", { offset: cut });
    const joined = createHash("sha256");
    for await (const c of head) joined.update(c);
    for await (const c of tail) joined.update(c);
    expect(joined.digest("hex")).toBe(sourceSha);
    expect(tail.length).toBe(size - cut);

    // A range in the middle matches the same range of the source.
    const mid = await readRange("deep/dir/big.bin", { offset: 33 * MiB + 7, length: 3 * MiB + 1 });
    const expected = Buffer.alloc(3 * MiB + 1);
    const fh = await open(source, "r");
    await fh.read(expected, 0, expected.byteLength, 33 * MiB + 7);
    await fh.close();
    expect(mid).toEqual({ sha: sha(expected), bytes: expected.byteLength, reported: sha(expected) });
  });
});

describe("sessions", () => {
  it("abort mid-way leaves no target and no temp file", async () => {
    const s = await files.createUpload("sub/file.bin");
    await files.writeUpload(s.uploadId, 0, randomBytes(1000));
    await files.writeUpload(s.uploadId, 1000, randomBytes(1000));
    expect(await temps(join(ws, "sub"))).toHaveLength(1);
    await files.abortUpload(s.uploadId);
    expect(await readdir(join(ws, "sub"))).toEqual([]);
    expect((await failure(files.writeUpload(s.uploadId, 2000, Buffer.from("x")))).code).toBe("not_found");
    expect((await failure(files.commitUpload(s.uploadId))).code).toBe("not_found");
    expect((await failure(files.abortUpload(s.uploadId))).code).toBe("not_found");
  });

  it("a write at the wrong offset → out_of_range naming the expected offset; a retry is harmless", async () => {
    const s = await files.createUpload("f.txt");
    await files.writeUpload(s.uploadId, 0, Buffer.from("hello "));
    const ahead = await failure(files.writeUpload(s.uploadId, 100, Buffer.from("x")));
    expect(ahead.code).toBe("out_of_range");
    expect(ahead.message).toContain("expects offset 6");
    expect(ahead.metadata.expected_offset).toBe("6");
    expect(ahead.reason).toBe("OFFSET_OUT_OF_RANGE");
    // The client's retry of the chunk that already landed (its response was lost).
    const retry = await failure(files.writeUpload(s.uploadId, 0, Buffer.from("hello ")));
    expect(retry.metadata.expected_offset).toBe("6");
    expect(files.getUpload(s.uploadId).received).toBe(6);
    await files.writeUpload(s.uploadId, 6, Buffer.from("world"));
    await files.commitUpload(s.uploadId, { sha256: sha(Buffer.from("hello world")) });
    expect(await readFile(join(ws, "f.txt"), "utf8")).toBe("hello world");
  });

  it("concurrent writes to one session are serialised by offset", async () => {
    const s = await files.createUpload("f.txt");
    const results = await Promise.allSettled([
      files.writeUpload(s.uploadId, 0, Buffer.from("aaaa")),
      files.writeUpload(s.uploadId, 0, Buffer.from("bbbb")),
      files.writeUpload(s.uploadId, 4, Buffer.from("cc")),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    await files.commitUpload(s.uploadId);
    expect(await readFile(join(ws, "f.txt"), "utf8")).toBe("aaaacc");
  });

  it("commit with a wrong sha256 → invalid_argument; the existing target is untouched", async () => {
    await writeFile(join(ws, "keep.txt"), "old content");
    const s = await files.createUpload("keep.txt");
    await files.writeUpload(s.uploadId, 0, Buffer.from("new content"));
    const err = await failure(files.commitUpload(s.uploadId, { sha256: sha(Buffer.from("something else")) }));
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toContain("sha256 mismatch");
    expect(err.reason).toBe("SHA256_MISMATCH");
    expect(await readFile(join(ws, "keep.txt"), "utf8")).toBe("old content");
    expect(await temps(ws)).toEqual([]);
    expect((await failure(files.commitUpload(s.uploadId))).code).toBe("not_found");

    const fresh = await files.createUpload("never.txt");
    await files.writeUpload(fresh.uploadId, 0, Buffer.from("x"));
    expect((await failure(files.commitUpload(fresh.uploadId, { sha256: "0".repeat(64) }))).code).toBe("invalid_argument");
    expect((await failure(files.stat("never.txt"))).code).toBe("not_found");
  });

  it("a malformed sha256 is refused without discarding the session", async () => {
    const s = await files.createUpload("f.txt");
    await files.writeUpload(s.uploadId, 0, Buffer.from("abc"));
    expect((await failure(files.commitUpload(s.uploadId, { sha256: "xyz" }))).code).toBe("invalid_argument");
    await files.commitUpload(s.uploadId, { sha256: sha(Buffer.from("abc")) });
    expect(await readFile(join(ws, "f.txt"), "utf8")).toBe("abc");
  });

  it("two concurrent sessions to one path end with one complete version", async () => {
    const size = 4 * MiB;
    const a = Buffer.alloc(size, "a");
    const b = Buffer.alloc(size, "b");
    for (let round = 0; round < 3; round++) {
      const [sa, sb] = await Promise.all([files.createUpload("shared.bin"), files.createUpload("shared.bin")]);
      for (let off = 0; off < size; off += 256 * 1024) {
        await Promise.all([
          files.writeUpload(sa.uploadId, off, a.subarray(off, off + 256 * 1024)),
          files.writeUpload(sb.uploadId, off, b.subarray(off, off + 256 * 1024)),
        ]);
      }
      const [ia, ib] = await Promise.all([files.commitUpload(sa.uploadId), files.commitUpload(sb.uploadId)]);
      expect(ia.size).toBe(size);
      expect(ib.size).toBe(size);
      const final = await readFile(join(ws, "shared.bin"));
      expect(final.byteLength).toBe(size);
      expect([sha(a), sha(b)]).toContain(sha(final));
      expect(await temps(ws)).toEqual([]);
    }
  });

  it("expectedSize bounds writes and is required at commit", async () => {
    const s = await files.createUpload("f.bin", { expectedSize: 4 });
    expect((await failure(files.writeUpload(s.uploadId, 0, Buffer.from("12345")))).code).toBe("out_of_range");
    await files.writeUpload(s.uploadId, 0, Buffer.from("12"));
    const early = await failure(files.commitUpload(s.uploadId));
    expect(early.code).toBe("failed_precondition");
    expect(early.metadata.expected_offset).toBe("2");
    await files.writeUpload(s.uploadId, 2, Buffer.from("34"));
    expect((await files.commitUpload(s.uploadId)).size).toBe(4);
    expect((await failure(files.createUpload("huge", { expectedSize: 2 ** 52 }))).code).toBe("resource_exhausted");
  });

  it("overwrite=false refuses an existing target, also one that appears before commit", async () => {
    await writeFile(join(ws, "exists"), "x");
    expect((await failure(files.createUpload("exists", { overwrite: false }))).code).toBe("already_exists");
    const s = await files.createUpload("later", { overwrite: false });
    await files.writeUpload(s.uploadId, 0, Buffer.from("mine"));
    await writeFile(join(ws, "later"), "theirs");
    expect((await failure(files.commitUpload(s.uploadId))).code).toBe("already_exists");
    expect(await readFile(join(ws, "later"), "utf8")).toBe("theirs");
    expect(await temps(ws)).toEqual([]);
    const ok = await files.createUpload("fresh", { overwrite: false });
    await files.writeUpload(ok.uploadId, 0, Buffer.from("new"));
    await files.commitUpload(ok.uploadId);
    expect(await readFile(join(ws, "fresh"), "utf8")).toBe("new");
    expect(await temps(ws)).toEqual([]);
  });

  it("applies an explicit mode, else keeps the replaced file's mode", async () => {
    await files.writeFile("script.sh", "#!/bin/sh\n", { mode: 0o750 });
    expect((await stat(join(ws, "script.sh"))).mode & 0o7777).toBe(0o750);
    await chmod(join(ws, "script.sh"), 0o700);
    await files.writeFile("script.sh", "#!/bin/sh\necho\n");
    expect((await stat(join(ws, "script.sh"))).mode & 0o7777).toBe(0o700);
    expect((await failure(files.createUpload("x", { mode: 0o10000 }))).code).toBe("invalid_argument");
  });

  it("idle sessions expire and their temp files are removed", async () => {
    const idle = await files.createUpload("idle.bin");
    const busy = await files.createUpload("busy.bin");
    await files.writeUpload(idle.uploadId, 0, Buffer.from("abc"));
    expect(files.getUpload(idle.uploadId).expiresAtMs).toBe(now + 30_000);
    now += 20_000;
    await files.writeUpload(busy.uploadId, 0, Buffer.from("x"));
    now += 15_000; // idle: 35 s without activity; busy: 15 s
    expect(await files.sweepExpiredUploads()).toBe(1);
    expect(await temps(ws)).toHaveLength(1);
    expect((await failure(files.writeUpload(idle.uploadId, 3, Buffer.from("d")))).code).toBe("not_found");
    // Expiry is also checked on access, without waiting for the sweep.
    now += 31_000;
    expect((await failure(files.commitUpload(busy.uploadId))).code).toBe("not_found");
    expect(await temps(ws)).toEqual([]);
    expect(files.activity.uploads).toBe(0);
  });

  it("a parent component that is a file → failed_precondition, nothing created", async () => {
    await writeFile(join(ws, "plain"), "p");
    expect((await failure(files.createUpload("plain/child.txt"))).code).toBe("failed_precondition");
    expect((await failure(files.writeFile("plain/deeper/child.txt", "x"))).code).toBe("failed_precondition");
    expect(await readdir(ws)).toEqual(["plain"]);
  });

  it("close() discards open sessions and their temp files", async () => {
    const s = await files.createUpload("a/b.bin");
    await files.writeUpload(s.uploadId, 0, Buffer.from("partial"));
    await files.close();
    expect(await readdir(join(ws, "a"))).toEqual([]);
  });

  it("refuses more sessions than the limit", async () => {
    const limited = new WorkspaceFiles({ roots: [ws], defaultWorkingDir: ws, uploadIdleTimeoutMs: 1000, maxUploads: 2 });
    try {
      await limited.createUpload("1");
      await limited.createUpload("2");
      expect((await failure(limited.createUpload("3"))).code).toBe("resource_exhausted");
    } finally {
      await limited.close();
    }
    expect(await temps(ws)).toEqual([]);
  });
});

describe("writeFile", () => {
  it("writes bytes, strings and streams, creating parents", async () => {
    await files.writeFile("a/b/c.txt", "text");
    await files.writeFile("bytes.bin", new Uint8Array([1, 2, 3]));
    const source = join(base, "src.bin");
    const srcSha = await makeRandomFile(source, 3 * MiB + 17);
    const info = await files.writeFile("streamed.bin", createReadStream(source, { highWaterMark: 64 * 1024 }), { sha256: srcSha });
    expect(info.size).toBe(3 * MiB + 17);
    expect(await readFile(join(ws, "a/b/c.txt"), "utf8")).toBe("text");
    expect([...(await readFile(join(ws, "bytes.bin")))]).toEqual([1, 2, 3]);
    expect(sha(await readFile(join(ws, "streamed.bin")))).toBe(srcSha);
  });

  it("an interrupted stream never leaves a truncated target", async () => {
    await writeFile(join(ws, "target.bin"), "previous version");
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(MiB, 1);
      yield Buffer.alloc(MiB, 2);
      throw new Error("connection reset");
    }
    await expect(files.writeFile("target.bin", broken())).rejects.toThrow("connection reset");
    expect(await readFile(join(ws, "target.bin"), "utf8")).toBe("previous version");
    expect(await temps(ws)).toEqual([]);
    await expect(files.writeFile("new.bin", broken())).rejects.toThrow("connection reset");
    expect((await failure(files.stat("new.bin"))).code).toBe("not_found");
    expect(files.activity.uploads).toBe(0);
  });

  it("an aborted signal cancels the write and discards the upload", async () => {
    const ac = new AbortController();
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield Buffer.from("first");
      ac.abort();
      yield Buffer.from("second");
    }
    expect((await failure(files.writeFile("c.txt", slow(), { signal: ac.signal }))).code).toBe("canceled");
    expect(await readdir(ws)).toEqual([]);
  });
});
