/**
 * 1 GiB through FileService over gRPC (h2c): streamed download, a pipelined chunked upload
 * session and one UploadFileStream, with matching sha256 in bounded memory; a download resumed
 * from an unaligned offset, uploads cut off mid-way that never leave a partial target, and an
 * oversized message refused without losing the connection.
 */
import { createHash } from "node:crypto";
import { open, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";
import { client } from "../helpers/clients.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { failure, MiB, RssProbe, sha256OfFile, uploadTemps, writeTestFile } from "./file-test-kit.js";

const GiB = 1024 * MiB;
/** Upload chunk: well under the default 8 MiB message limit. */
const UPLOAD_CHUNK = MiB;
/** WriteUpload calls the 1 GiB upload keeps in flight (the session accepts chunks ahead). */
const IN_FLIGHT = 4;
/**
 * Growth of this process's RSS (client and in-process server together) allowed during a 1 GiB
 * transfer; about 25-50 MiB is typical, buffering the file would need over 1024.
 */
const RSS_BUDGET_MiB = 128;

describe("FileService: 1 GiB over gRPC", () => {
  let server: TestServer;
  let bigSha: string;
  let files: ReturnType<typeof client<typeof FileService>>;

  beforeAll(async () => {
    server = await startTestServer();
    files = client(FileService, server.url, "grpc");
    bigSha = await writeTestFile(path.join(server.workspace, "big.bin"), GiB);
  }, 60_000);
  afterAll(() => server.close());

  it("downloads 1 GiB in ≤ 1 MiB chunks with matching sha256 and bounded memory", async () => {
    const rss = new RssProbe();
    const hash = createHash("sha256");
    let expectOffset = 0n;
    let messages = 0;
    let serverSha = "";
    for await (const m of files.downloadFile({ path: "big.bin" })) {
      if (messages === 0) {
        expect(m.info?.size).toBe(BigInt(GiB));
        expect(m.info?.name).toBe("big.bin");
      } else {
        expect(m.info).toBeUndefined();
      }
      expect(m.offset).toBe(expectOffset);
      expect(m.data.byteLength).toBeLessThanOrEqual(MiB);
      hash.update(m.data);
      expectOffset += BigInt(m.data.byteLength);
      if (m.sha256 !== "") serverSha = m.sha256;
      if (++messages % 64 === 0) rss.sample();
    }
    rss.sample();
    expect(expectOffset).toBe(BigInt(GiB));
    expect(messages).toBe(GiB / MiB);
    expect(hash.digest("hex")).toBe(bigSha);
    expect(serverSha).toBe(bigSha);
    expect(rss.peakGrowthMiB).toBeLessThan(RSS_BUDGET_MiB);
  }, 30_000);

  it("uploads 1 GiB through an upload session, 4 chunks in flight, with matching sha256 and bounded memory", async () => {
    const rss = new RssProbe();
    const { uploadId } = await files.createUpload({ path: "copy/big.bin", expectedSize: BigInt(GiB) });
    const fh = await open(path.join(server.workspace, "big.bin"), "r");
    try {
      const pending = new Set<Promise<unknown>>();
      const unfinished = new Set<number>();
      const spare: Buffer[] = [];
      let highest = 0n;
      for (let offset = 0; offset < GiB; ) {
        const buf = spare.pop() ?? Buffer.allocUnsafe(UPLOAD_CHUNK);
        const { bytesRead } = await fh.read(buf, 0, UPLOAD_CHUNK, offset);
        const start = offset;
        unfinished.add(start);
        const call = files.writeUpload({ uploadId, offset: BigInt(offset), data: buf.subarray(0, bytesRead) }).then((res) => {
          // The received prefix never passes what was sent, and covers every byte before the lowest
          // chunk still unanswered (every chunk below it has been answered, so it is on disk and
          // part of the prefix). Chunks may be answered out of order, so that is the bound.
          expect(res.received).toBeLessThanOrEqual(BigInt(GiB));
          expect(res.received).toBeGreaterThanOrEqual(BigInt(Math.min(...unfinished)));
          unfinished.delete(start);
          if (res.received > highest) highest = res.received;
          spare.push(buf); // the call is done with it
        });
        const tracked: Promise<unknown> = call.finally(() => pending.delete(tracked));
        pending.add(tracked);
        offset += bytesRead;
        if (pending.size >= IN_FLIGHT) await Promise.race(pending);
        if ((offset / UPLOAD_CHUNK) % 16 === 0) rss.sample();
      }
      await Promise.all(pending);
      expect(highest).toBe(BigInt(GiB));
    } finally {
      await fh.close();
    }
    const done = await files.commitUpload({ uploadId, sha256: bigSha });
    rss.sample();
    expect(done.sha256).toBe(bigSha);
    expect(done.info?.size).toBe(BigInt(GiB));
    expect(done.info?.path).toBe(path.join(server.workspace, "copy/big.bin"));
    expect((await stat(path.join(server.workspace, "copy/big.bin"))).size).toBe(GiB);
    expect(await uploadTemps(path.join(server.workspace, "copy"))).toEqual([]);
    expect(rss.peakGrowthMiB).toBeLessThan(RSS_BUDGET_MiB);
  }, 60_000);

  it("uploads 1 GiB in one UploadFileStream with matching sha256 and bounded memory", async () => {
    const rss = new RssProbe();
    const fh = await open(path.join(server.workspace, "big.bin"), "r");
    let sent = 0;
    async function* messages() {
      for (let offset = 0; offset < GiB; offset += UPLOAD_CHUNK) {
        // A fresh buffer per message: the call holds on to a message until it has been sent.
        const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(UPLOAD_CHUNK), 0, UPLOAD_CHUNK, offset);
        sent += bytesRead;
        if ((offset / UPLOAD_CHUNK) % 16 === 0) rss.sample();
        const data = buffer.subarray(0, bytesRead);
        yield offset === 0 ? { target: { case: "create" as const, value: { path: "copy/streamed.bin", expectedSize: BigInt(GiB) } }, data } : { data };
      }
      yield { sha256: bigSha, commit: true };
    }
    let done;
    try {
      done = await files.uploadFileStream(messages());
    } finally {
      await fh.close();
    }
    rss.sample();
    expect(sent).toBe(GiB);
    expect(done).toMatchObject({ committed: true, received: BigInt(GiB), sha256: bigSha });
    expect(done.info?.size).toBe(BigInt(GiB));
    expect((await stat(path.join(server.workspace, "copy/streamed.bin"))).size).toBe(GiB);
    expect(await uploadTemps(path.join(server.workspace, "copy"))).toEqual([]);
    expect(rss.peakGrowthMiB).toBeLessThan(RSS_BUDGET_MiB);
  }, 60_000);

  it("resumes a broken download from an unaligned offset with identical bytes", async () => {
    // First attempt: stop after ~300 MiB, keeping only the bytes before an odd offset.
    const resumeAt = 300 * MiB + 12_345;
    const hash = createHash("sha256");
    let got = 0;
    const ac = new AbortController();
    try {
      for await (const m of files.downloadFile({ path: "big.bin" }, { signal: ac.signal })) {
        const keep = Math.min(m.data.byteLength, resumeAt - got);
        hash.update(m.data.subarray(0, keep));
        got += keep;
        if (got === resumeAt) ac.abort(); // the connection "breaks"
      }
    } catch (err) {
      expect((await failure(Promise.reject(err))).code).toBe(Code.Canceled);
    }
    expect(got).toBe(resumeAt);

    const tail = createHash("sha256");
    let first = true;
    let tailSha = "";
    for await (const m of files.downloadFile({ path: "big.bin", offset: BigInt(resumeAt) })) {
      if (first) expect(m.offset).toBe(BigInt(resumeAt));
      first = false;
      hash.update(m.data);
      tail.update(m.data);
      got += m.data.byteLength;
      if (m.sha256 !== "") tailSha = m.sha256;
    }
    expect(got).toBe(GiB);
    expect(hash.digest("hex")).toBe(bigSha);
    // The server's checksum covers exactly the bytes this call sent.
    expect(tailSha).toBe(tail.digest("hex"));
  }, 30_000);

  it("serves a middle range (offset + length) exactly, and OutOfRange past the end", async () => {
    const offset = 512 * MiB - 7;
    const length = 3 * MiB + 11;
    const hash = createHash("sha256");
    let sent = "";
    for await (const m of files.downloadFile({ path: "big.bin", offset: BigInt(offset), length: BigInt(length) })) {
      hash.update(m.data);
      if (m.sha256 !== "") sent = m.sha256;
    }
    const want = await sha256OfFile(path.join(server.workspace, "big.bin"), offset, length);
    expect(hash.digest("hex")).toBe(want);
    expect(sent).toBe(want);
    const past = await failure(async () => {
      for await (const _ of files.downloadFile({ path: "big.bin", offset: BigInt(GiB + 1) })) break;
    });
    expect(past.code).toBe(Code.OutOfRange);
    expect(past.reason).toBe("OFFSET_OUT_OF_RANGE");
  });
});

describe("FileService: uploads cut off mid-way", () => {
  const SIZE = 64 * MiB;
  let server: TestServer;
  let files: ReturnType<typeof client<typeof FileService>>;
  let source: Buffer;

  beforeAll(async () => {
    server = await startTestServer();
    files = client(FileService, server.url, "grpc");
    await writeTestFile(path.join(server.workspace, "src.bin"), SIZE);
    source = await readFile(path.join(server.workspace, "src.bin"));
  });
  afterAll(() => server?.close());

  /** Sends the first half of `source` to a new session for `target`. */
  async function sendHalf(target: string): Promise<string> {
    const { uploadId } = await files.createUpload({ path: target, expectedSize: BigInt(SIZE) });
    for (let off = 0; off < SIZE / 2; off += UPLOAD_CHUNK) {
      await files.writeUpload({ uploadId, offset: BigInt(off), data: source.subarray(off, off + UPLOAD_CHUNK) });
    }
    return uploadId;
  }

  it("abort after half: no target file, no temp file, an existing target keeps its old content", async () => {
    await writeFile(path.join(server.workspace, "kept.bin"), "old version");
    const fresh = await sendHalf("fresh.bin");
    const kept = await sendHalf("kept.bin");
    expect(await uploadTemps(server.workspace)).toHaveLength(2); // the bytes went to temp files
    await files.abortUpload({ uploadId: fresh });
    await files.abortUpload({ uploadId: kept });
    await expect(stat(path.join(server.workspace, "fresh.bin"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(await readFile(path.join(server.workspace, "kept.bin"), "utf8")).toBe("old version");
    expect(await uploadTemps(server.workspace)).toEqual([]);
    // The session is gone for good.
    expect((await failure(files.commitUpload({ uploadId: fresh }))).code).toBe(Code.NotFound);
  });

  it("commit of a half upload fails (FailedPrecondition) and installs nothing; the session can finish later", async () => {
    const uploadId = await sendHalf("later.bin");
    const early = await failure(files.commitUpload({ uploadId }));
    expect(early.code).toBe(Code.FailedPrecondition);
    expect(early.reason).toBe("UPLOAD_INCOMPLETE");
    await expect(stat(path.join(server.workspace, "later.bin"))).rejects.toMatchObject({ code: "ENOENT" });
    // A retried chunk whose bytes already landed is acknowledged with the offset to continue
    // from; one contradicting them is refused, naming that offset too.
    const retry = await files.writeUpload({ uploadId, offset: 0n, data: source.subarray(0, UPLOAD_CHUNK) });
    expect(retry.received).toBe(BigInt(SIZE / 2));
    const stale = await failure(files.writeUpload({ uploadId, offset: 0n, data: Buffer.alloc(10) }));
    expect(stale.code).toBe(Code.Aborted);
    expect(stale.reason).toBe("UPLOAD_RANGE_CONFLICT");
    expect(stale.message).toContain("[0, 10)");
    expect(await uploadTemps(server.workspace)).toHaveLength(1);
    for (let off = SIZE / 2; off < SIZE; off += UPLOAD_CHUNK) {
      await files.writeUpload({ uploadId, offset: BigInt(off), data: source.subarray(off, off + UPLOAD_CHUNK) });
    }
    const done = await files.commitUpload({ uploadId });
    expect(done.sha256).toBe(createHash("sha256").update(source).digest("hex"));
    expect(await sha256OfFile(path.join(server.workspace, "later.bin"))).toBe(done.sha256);
  });

  it("a wrong checksum at commit installs nothing", async () => {
    const uploadId = await sendHalf("bad.bin");
    for (let off = SIZE / 2; off < SIZE; off += UPLOAD_CHUNK) {
      await files.writeUpload({ uploadId, offset: BigInt(off), data: source.subarray(off, off + UPLOAD_CHUNK) });
    }
    const bad = await failure(files.commitUpload({ uploadId, sha256: "0".repeat(64) }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.reason).toBe("SHA256_MISMATCH");
    await expect(stat(path.join(server.workspace, "bad.bin"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(await uploadTemps(server.workspace)).toEqual([]);
  });

  it("an oversized WriteUpload (12 MiB, limit 8 MiB) gets ResourceExhausted and the connection keeps serving", async () => {
    const { uploadId } = await files.createUpload({ path: "oversized.bin" });
    const big = await failure(files.writeUpload({ uploadId, offset: 0n, data: Buffer.alloc(12 * MiB, 1) }));
    expect(big.code).toBe(Code.ResourceExhausted);
    // Same client, same HTTP/2 connection: the session and the connection are still usable.
    expect((await files.writeUpload({ uploadId, offset: 0n, data: Buffer.from("fits") })).received).toBe(4n);
    expect((await files.commitUpload({ uploadId })).info?.size).toBe(4n);
  });

  it("server shutdown with a half upload open leaves neither target nor temp file", async () => {
    const own = await startTestServer();
    try {
      const c = client(FileService, own.url, "grpc");
      const { uploadId } = await c.createUpload({ path: "dir/cut.bin", expectedSize: BigInt(SIZE) });
      for (let off = 0; off < SIZE / 2; off += UPLOAD_CHUNK) {
        await c.writeUpload({ uploadId, offset: BigInt(off), data: source.subarray(off, off + UPLOAD_CHUNK) });
      }
      expect(await uploadTemps(path.join(own.workspace, "dir"))).toHaveLength(1);
      await own.app.stop();
      // stop() closed the file engine: its sessions are aborted with their temp files.
      expect(await uploadTemps(path.join(own.workspace, "dir"))).toEqual([]);
      await expect(stat(path.join(own.workspace, "dir/cut.bin"))).rejects.toMatchObject({ code: "ENOENT" });
    } finally {
      await own.close();
    }
  });
});
