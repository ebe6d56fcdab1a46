import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, open, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WorkspaceFiles } from "./workspace-files.js";
import { closeTestWorkspace, failure, openTestWorkspace, type TestWorkspace } from "../../../test/helpers/workspace-files.js";

const MiB = 1024 * 1024;

let base: string;
let ws: string;
let now: number;
let files: WorkspaceFiles;

let t: TestWorkspace;

beforeEach(async () => {
  now = 1_000_000;
  t = await openTestWorkspace("upload", () => ({ uploadIdleTimeoutMs: 30_000, clock: () => now }));
  ({ base, ws, files } = t);
});

afterEach(() => closeTestWorkspace(t));

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
    const { info, sha256 } = await files.commitUpload(session.uploadId, { sha256: sourceSha.toUpperCase() });
    expect(info).toMatchObject({ type: "file", size, path: join(ws, "deep/dir/big.bin") });
    expect(sha256).toBe(sourceSha);
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

  it("accepts chunks out of order within the window; received is the contiguous prefix; the digest follows the offsets", async () => {
    const data = randomBytes(5 * 1000);
    const part = (i: number) => data.subarray(i * 1000, (i + 1) * 1000);
    const s = await files.createUpload("ooo.bin", { expectedSize: data.byteLength });
    expect((await files.writeUpload(s.uploadId, 3000, part(3))).received).toBe(0);
    expect((await files.writeUpload(s.uploadId, 1000, part(1))).received).toBe(0);
    expect(files.getUpload(s.uploadId).received).toBe(0);
    expect((await files.writeUpload(s.uploadId, 0, part(0))).received).toBe(2000);
    // Several in flight at once, in any order, as a pipelining client sends them.
    const res = await Promise.all([files.writeUpload(s.uploadId, 4000, part(4)), files.writeUpload(s.uploadId, 2000, part(2))]);
    expect(Math.max(...res.map((r) => r.received))).toBe(5000);
    const done = await files.commitUpload(s.uploadId, { sha256: sha(data) });
    expect(done).toMatchObject({ sha256: sha(data), info: { size: 5000 } });
    expect((await readFile(join(ws, "ooo.bin"))).equals(data)).toBe(true);
  });

  it("a caller may reuse its buffer once a write resolves, also for a chunk still waiting for earlier bytes", async () => {
    const data = randomBytes(3000);
    const s = await files.createUpload("reuse.bin");
    const buf = Buffer.from(data.subarray(2000));
    expect((await files.writeUpload(s.uploadId, 2000, buf)).received).toBe(0);
    buf.fill(0); // reused by the caller before the prefix reaches the chunk
    await files.writeUpload(s.uploadId, 0, data.subarray(0, 2000));
    expect((await files.commitUpload(s.uploadId)).sha256).toBe(sha(data));
    expect((await readFile(join(ws, "reuse.bin"))).equals(data)).toBe(true);
  });

  it("retries are idempotent: identical bytes are acknowledged, different bytes refused (aborted), nothing changes", async () => {
    const s = await files.createUpload("f.txt");
    await files.writeUpload(s.uploadId, 0, Buffer.from("hello "));
    await files.writeUpload(s.uploadId, 10, Buffer.from("d!")); // ahead: "worl" is missing
    // The client's retry of chunks that already landed (their responses were lost).
    expect(await files.writeUpload(s.uploadId, 0, Buffer.from("hello "))).toEqual({ received: 6 });
    expect(await files.writeUpload(s.uploadId, 2, Buffer.from("ll"))).toEqual({ received: 6 });
    expect(await files.writeUpload(s.uploadId, 10, Buffer.from("d!"))).toEqual({ received: 6 });
    const prefix = await failure(files.writeUpload(s.uploadId, 0, Buffer.from("HELLO ")));
    expect(prefix.code).toBe("aborted");
    expect(prefix.reason).toBe("UPLOAD_RANGE_CONFLICT");
    expect(prefix.metadata.expected_offset).toBe("6");
    expect((await failure(files.writeUpload(s.uploadId, 10, Buffer.from("D!")))).reason).toBe("UPLOAD_RANGE_CONFLICT");
    // A chunk straddling the prefix: the known part is checked, the rest written.
    expect(await files.writeUpload(s.uploadId, 4, Buffer.from("o worl"))).toEqual({ received: 12 });
    expect((await files.commitUpload(s.uploadId, { sha256: sha(Buffer.from("hello world!")) })).info.size).toBe(12);
    expect(await readFile(join(ws, "f.txt"), "utf8")).toBe("hello world!");
  });

  it("refuses chunks past the window and chunks overlapping a pending one; at the prefix any size goes", async () => {
    const small = new WorkspaceFiles({ roots: [ws], defaultWorkingDir: ws, uploadIdleTimeoutMs: 30_000, uploadMaxAheadBytes: 100 });
    try {
      const s = await small.createUpload("w.bin");
      const far = await failure(small.writeUpload(s.uploadId, 50, Buffer.alloc(51)));
      expect(far).toMatchObject({ code: "out_of_range", reason: "UPLOAD_WINDOW_EXCEEDED", metadata: { expected_offset: "0" } });
      expect(far.message).toContain("[50, 101)");
      await small.writeUpload(s.uploadId, 50, Buffer.alloc(50, 2)); // ends exactly at the window
      const overlap = await failure(small.writeUpload(s.uploadId, 40, Buffer.alloc(20, 2)));
      expect(overlap).toMatchObject({ code: "out_of_range", reason: "UPLOAD_RANGE_OVERLAP" });
      expect(overlap.message).toContain("[50, 100)");
      expect((await small.writeUpload(s.uploadId, 0, Buffer.alloc(50, 1))).received).toBe(100);
      expect((await small.writeUpload(s.uploadId, 100, Buffer.alloc(1000, 3))).received).toBe(1100); // 10× the window
      expect((await small.commitUpload(s.uploadId)).info.size).toBe(1100);
    } finally {
      await small.close();
    }
  });

  it("bounds the bytes held ahead over all sessions (resource_exhausted)", async () => {
    const capped = new WorkspaceFiles({ roots: [ws], defaultWorkingDir: ws, uploadIdleTimeoutMs: 30_000, uploadMaxAheadBytesTotal: 150 });
    try {
      const a = await capped.createUpload("a.bin");
      const b = await capped.createUpload("b.bin");
      await capped.writeUpload(a.uploadId, 10, Buffer.alloc(100));
      const over = await failure(capped.writeUpload(b.uploadId, 10, Buffer.alloc(100)));
      expect(over).toMatchObject({ code: "resource_exhausted", reason: "UPLOAD_WINDOW_EXCEEDED" });
      await capped.writeUpload(b.uploadId, 0, Buffer.alloc(100)); // at the prefix: not held, accepted
      await capped.writeUpload(a.uploadId, 0, Buffer.alloc(10)); // releases a's 100 bytes
      await capped.writeUpload(b.uploadId, 110, Buffer.alloc(100));
      await capped.abortUpload(b.uploadId); // releases b's
      const c = await capped.createUpload("c.bin");
      await capped.writeUpload(c.uploadId, 10, Buffer.alloc(150));
    } finally {
      await capped.close();
    }
    expect(await temps(ws)).toEqual([]);
  });

  it("commit reports a gap (failed_precondition naming the missing bytes) and keeps the session", async () => {
    const s = await files.createUpload("gap.bin");
    await files.writeUpload(s.uploadId, 0, Buffer.from("abc"));
    await files.writeUpload(s.uploadId, 6, Buffer.from("ghi"));
    const gap = await failure(files.commitUpload(s.uploadId));
    expect(gap).toMatchObject({ code: "failed_precondition", reason: "UPLOAD_INCOMPLETE", metadata: { expected_offset: "3" } });
    expect(gap.message).toContain("[3, 6)");
    expect((await failure(files.stat("gap.bin"))).code).toBe("not_found");
    await files.writeUpload(s.uploadId, 3, Buffer.from("def"));
    expect((await files.commitUpload(s.uploadId)).sha256).toBe(sha(Buffer.from("abcdefghi")));
    expect(await readFile(join(ws, "gap.bin"), "utf8")).toBe("abcdefghi");
  });

  it("abort and close wait for writes in flight: no temp file is left behind", async () => {
    const s = await files.createUpload("inflight/a.bin");
    const writes = [0, 1, 2, 3].map((i) => files.writeUpload(s.uploadId, i * MiB, Buffer.alloc(MiB, i)));
    await files.abortUpload(s.uploadId);
    await Promise.allSettled(writes);
    expect(await readdir(join(ws, "inflight"))).toEqual([]);
    const t = await files.createUpload("inflight/b.bin");
    const more = [0, 1, 2, 3].map((i) => files.writeUpload(t.uploadId, (3 - i) * MiB, Buffer.alloc(MiB, i)));
    await files.close();
    await Promise.allSettled(more);
    expect(await readdir(join(ws, "inflight"))).toEqual([]);
  });

  it("concurrent writes to one session: the first bytes for a range win, a contradicting write is refused", async () => {
    const s = await files.createUpload("f.txt");
    const results = await Promise.allSettled([
      files.writeUpload(s.uploadId, 0, Buffer.from("aaaa")),
      files.writeUpload(s.uploadId, 0, Buffer.from("bbbb")),
      files.writeUpload(s.uploadId, 4, Buffer.from("cc")),
      files.writeUpload(s.uploadId, 0, Buffer.from("aaaa")),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect(results[1]).toMatchObject({ reason: { code: "aborted", reason: "UPLOAD_RANGE_CONFLICT" } });
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
      expect(ia.info.size).toBe(size);
      expect(ib.info.size).toBe(size);
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
    expect((await files.commitUpload(s.uploadId)).info.size).toBe(4);
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
    const { info, sha256 } = await files.writeFile("streamed.bin", createReadStream(source, { highWaterMark: 64 * 1024 }), { sha256: srcSha });
    expect(info.size).toBe(3 * MiB + 17);
    expect(sha256).toBe(srcSha);
    expect((await files.writeFile("empty.txt", "")).sha256).toBe(sha(new Uint8Array(0)));
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

describe("streamUpload", () => {
  /** `count` distinct chunks of `size` bytes (each filled with its index). */
  const chunks = (count: number, size: number) => Array.from({ length: count }, (_, i) => Buffer.alloc(size, i + 1));

  it("with overlap, writes every chunk in order into the session and reports the received prefix", async () => {
    const parts = chunks(9, 300_000);
    const { uploadId } = await files.createUpload("overlapped.bin");
    async function* source(): AsyncGenerator<Uint8Array> {
      yield* parts;
    }
    expect(await files.streamUpload(uploadId, 0, source(), { overlap: true })).toBe(9 * 300_000);
    const { sha256 } = await files.commitUpload(uploadId);
    expect(sha256).toBe(sha(Buffer.concat(parts)));
    expect(sha(await readFile(join(ws, "overlapped.bin")))).toBe(sha256);
  });

  it("a chunk ahead of the prefix that meets the window limits waits for the one before it", async () => {
    // Windows smaller than one chunk: every overlapped chunk is refused ahead, then written at the prefix.
    const tight = await openTestWorkspace("tight", () => ({ uploadIdleTimeoutMs: 30_000, uploadMaxAheadBytes: 1000, uploadMaxAheadBytesTotal: 1000 }));
    try {
      const parts = chunks(6, 64 * 1024);
      const { uploadId } = await tight.files.createUpload("tight.bin");
      expect(await tight.files.streamUpload(uploadId, 0, parts, { overlap: true })).toBe(6 * 64 * 1024);
      expect((await tight.files.commitUpload(uploadId)).sha256).toBe(sha(Buffer.concat(parts)));
    } finally {
      await closeTestWorkspace(tight);
    }
  });

  it("continues a session from its received prefix; a failed chunk leaves the session open there", async () => {
    const { uploadId } = await files.createUpload("partial.bin", { expectedSize: 10 });
    expect(await files.streamUpload(uploadId, 0, [Buffer.from("01234")], { overlap: true })).toBe(5);
    // The second chunk passes the expected size: refused, the first stays received.
    const err = await failure(files.streamUpload(uploadId, 5, [Buffer.from("567"), Buffer.from("89abc")], { overlap: true }));
    expect(err.reason).toBe("UPLOAD_SIZE_EXCEEDED");
    expect(files.getUpload(uploadId).received).toBe(8);
    expect(await files.streamUpload(uploadId, 8, [Buffer.from("89")])).toBe(10);
    expect((await files.commitUpload(uploadId)).info.size).toBe(10);
    expect(await readFile(join(ws, "partial.bin"), "utf8")).toBe("0123456789");
  });
});
