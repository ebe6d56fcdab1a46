/**
 * FileService over real sockets: stat/list/mkdir/move/remove/upload/download over Connect JSON
 * (HTTP/1.1) and gRPC (h2c), error codes, upload sessions on a protocol without client streaming,
 * and WatchDirectory (events, resume, clean end on shutdown).
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { compressionGzip, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileChangeKind, FileType } from "../../gen/agentd/v1/file_pb.js";
import { DownloadFileRequestSchema, FileService, ListFilesRequestSchema, type WatchDirectoryResponse } from "../../gen/agentd/v1/file_service_pb.js";
import { client, type TransportKind } from "../helpers/clients.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { collect, failure, grpcEnvelope, uploadTemps } from "./file-test-kit.js";

const sha = (b: string | Uint8Array) => createHash("sha256").update(b).digest("hex");

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

describe.each<TransportKind>(["connect-json-h1", "grpc"])("FileService over %s", (kind) => {
  let files: ReturnType<typeof client<typeof FileService>>;
  let base: string;
  const abs = (p: string) => path.join(server.workspace, base, p);

  beforeAll(async () => {
    files = client(FileService, server.url, kind);
    base = kind;
    await mkdir(path.join(server.workspace, base));
  });

  it("creates directories with parents, idempotently, and stats them", async () => {
    expect(await files.createDirectory({ path: `${base}/a/b/c` })).toMatchObject({ success: true });
    expect(await files.createDirectory({ path: `${base}/a/b/c` })).toMatchObject({ success: true });
    expect((await stat(abs("a/b/c"))).isDirectory()).toBe(true);
    const { info } = await files.statFile({ path: `${base}/a/b` });
    expect(info).toMatchObject({ path: abs("a/b"), name: "b", type: FileType.DIRECTORY });
    expect(info?.mode).toBe((await stat(abs("a/b"))).mode & 0o7777);
    expect(Number(info?.modifyTime?.seconds)).toBeGreaterThan(Date.now() / 1000 - 60);
  });

  it("uploads in one message (sha256 returned and checked) and downloads it back", async () => {
    const up = await files.uploadFile({ path: `${base}/a/b/c/hello.txt`, data: Buffer.from("hello world") });
    expect(up.success).toBe(true);
    expect(up.sha256).toBe(sha("hello world"));
    expect(up.info).toMatchObject({ path: abs("a/b/c/hello.txt"), name: "hello.txt", type: FileType.FILE, size: 11n });
    expect(await readFile(abs("a/b/c/hello.txt"), "utf8")).toBe("hello world");

    // A small file is one message carrying info, offset, data and sha256 together.
    const msgs = await collect(files.downloadFile({ path: `${base}/a/b/c/hello.txt` }));
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatchObject({ offset: 0n, sha256: sha("hello world"), info: { size: 11n, name: "hello.txt" } });
    expect(Buffer.from(msgs[0]!.data).toString()).toBe("hello world");

    const bad = await failure(files.uploadFile({ path: `${base}/nope.txt`, data: Buffer.from("x"), sha256: sha("y") }));
    expect(bad.code).toBe(Code.InvalidArgument);
    await expect(stat(abs("nope.txt"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("downloads an empty file as one message with info and the empty sha256", async () => {
    await writeFile(abs("empty"), "");
    const msgs = await collect(files.downloadFile({ path: `${base}/empty` }));
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatchObject({ offset: 0n, sha256: sha(""), info: { size: 0n } });
    expect(msgs[0]!.data.byteLength).toBe(0);
  });

  it("splits downloads into ≤ 1 MiB chunks with offsets; info first, sha256 last; ranges", async () => {
    const MiB = 1024 * 1024;
    const content = Buffer.alloc(2 * MiB + 600 * 1024 + 7);
    for (let i = 0; i < content.length; i++) content[i] = (i * 31) & 0xff;
    await writeFile(abs("mid.bin"), content);
    const msgs = await collect(files.downloadFile({ path: `${base}/mid.bin` }));
    expect(msgs.map((m) => m.data.byteLength)).toEqual([MiB, MiB, 600 * 1024 + 7]);
    expect(msgs.map((m) => m.offset)).toEqual([0n, BigInt(MiB), BigInt(2 * MiB)]);
    expect(msgs.map((m) => m.info !== undefined)).toEqual([true, false, false]);
    expect(msgs.map((m) => m.sha256)).toEqual(["", "", sha(content)]);
    expect(Buffer.concat(msgs.map((m) => m.data)).equals(content)).toBe(true);

    const range = await collect(files.downloadFile({ path: `${base}/mid.bin`, offset: 300_000n, length: 1000n }));
    expect(range).toHaveLength(1);
    expect(range[0]).toMatchObject({ offset: 300_000n, sha256: sha(content.subarray(300_000, 301_000)), info: { size: BigInt(content.length) } });
    expect(Buffer.from(range[0]!.data).equals(content.subarray(300_000, 301_000))).toBe(true);
    // Offset at the very end: nothing to send, still info and a checksum.
    const atEnd = await collect(files.downloadFile({ path: `${base}/mid.bin`, offset: BigInt(content.length) }));
    expect(atEnd).toMatchObject([{ sha256: sha(""), info: { size: BigInt(content.length) } }]);
  });

  it("lists a directory: depth, paging with tokens, hidden files", async () => {
    await mkdir(abs("l/sub"), { recursive: true });
    await Promise.all(["l/b.txt", "l/a.txt", "l/.hidden", "l/sub/x.txt"].map((p) => writeFile(abs(p), p)));
    const names = (r: { items: { path: string }[] }) => r.items.map((i) => path.relative(abs("l"), i.path));

    expect(names(await files.listFiles({ path: `${base}/l` }))).toEqual(["a.txt", "b.txt", "sub"]);
    expect(names(await files.listFiles({ path: `${base}/l`, depth: 2 }))).toEqual(["a.txt", "b.txt", "sub", "sub/x.txt"]);
    expect(names(await files.listFiles({ path: `${base}/l`, includeHidden: true }))).toEqual([".hidden", "a.txt", "b.txt", "sub"]);

    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await files.listFiles({ path: `${base}/l`, depth: 2, pageSize: 1, pageToken: token });
      seen.push(...names(page));
      token = page.nextPageToken;
      pages++;
    } while (token !== "");
    expect(seen).toEqual(["a.txt", "b.txt", "sub", "sub/x.txt"]);
    expect(pages).toBe(4);

    expect((await failure(files.listFiles({ path: `${base}/l`, depth: 11 }))).code).toBe(Code.InvalidArgument);
    expect((await failure(files.listFiles({ path: `${base}/l`, pageSize: 1001 }))).code).toBe(Code.InvalidArgument);
    expect((await failure(files.listFiles({ path: `${base}/l`, pageToken: "garbage" }))).code).toBe(Code.InvalidArgument);
  });

  it("stats a symlink as a link with its target", async () => {
    await writeFile(abs("target.txt"), "t");
    await symlink("target.txt", abs("link.txt"));
    const { info } = await files.statFile({ path: `${base}/link.txt` });
    expect(info).toMatchObject({ type: FileType.SYMLINK, symlinkTarget: "target.txt", name: "link.txt" });
  });

  it("moves and renames; refuses to replace unless overwrite is set", async () => {
    await writeFile(abs("m1.txt"), "one");
    await writeFile(abs("m2.txt"), "two");
    const moved = await files.moveFile({ source: `${base}/m1.txt`, destination: `${base}/a/m1-moved.txt` });
    expect(moved.info).toMatchObject({ path: abs("a/m1-moved.txt"), size: 3n, type: FileType.FILE });
    await expect(stat(abs("m1.txt"))).rejects.toMatchObject({ code: "ENOENT" });

    const exists = await failure(files.moveFile({ source: `${base}/a/m1-moved.txt`, destination: `${base}/m2.txt` }));
    expect(exists.code).toBe(Code.AlreadyExists);
    expect(await readFile(abs("m2.txt"), "utf8")).toBe("two");
    await files.moveFile({ source: `${base}/a/m1-moved.txt`, destination: `${base}/m2.txt`, overwrite: true });
    expect(await readFile(abs("m2.txt"), "utf8")).toBe("one");

    // Directories move with their content.
    await files.moveFile({ source: `${base}/a/b`, destination: `${base}/a/renamed` });
    expect(await readFile(abs("a/renamed/c/hello.txt"), "utf8")).toBe("hello world");
  });

  it("removes files and directories; a non-empty directory needs recursive", async () => {
    await mkdir(abs("r/deep"), { recursive: true });
    await writeFile(abs("r/deep/f"), "x");
    const notEmpty = await failure(files.removeFile({ path: `${base}/r` }));
    expect(notEmpty.code).toBe(Code.FailedPrecondition);
    expect((await stat(abs("r/deep/f"))).isFile()).toBe(true);
    expect(await files.removeFile({ path: `${base}/r/deep/f` })).toMatchObject({ success: true });
    await expect(stat(abs("r/deep/f"))).rejects.toMatchObject({ code: "ENOENT" });
    await writeFile(abs("r/deep/g"), "x");
    await files.removeFile({ path: `${base}/r`, recursive: true });
    await expect(stat(abs("r"))).rejects.toMatchObject({ code: "ENOENT" });
    expect((await failure(files.statFile({ path: `${base}/r` }))).code).toBe(Code.NotFound);
  });

  it("answers NotFound for unknown paths and FailedPrecondition for the wrong kind of entry", async () => {
    await writeFile(abs("plain.txt"), "p");
    await mkdir(abs("adir"), { recursive: true });
    const cases: [string, () => Promise<unknown>, Code][] = [
      ["stat unknown", () => files.statFile({ path: `${base}/missing` }), Code.NotFound],
      ["list unknown", () => files.listFiles({ path: `${base}/missing` }), Code.NotFound],
      ["download unknown", () => collect(files.downloadFile({ path: `${base}/missing` })), Code.NotFound],
      ["remove unknown", () => files.removeFile({ path: `${base}/missing` }), Code.NotFound],
      ["move unknown", () => files.moveFile({ source: `${base}/missing`, destination: `${base}/x` }), Code.NotFound],
      ["watch unknown", () => collect(files.watchDirectory({ path: `${base}/missing` })), Code.NotFound],
      ["list a file", () => files.listFiles({ path: `${base}/plain.txt` }), Code.FailedPrecondition],
      ["watch a file", () => collect(files.watchDirectory({ path: `${base}/plain.txt` })), Code.FailedPrecondition],
      ["download a directory", () => collect(files.downloadFile({ path: `${base}/adir` })), Code.FailedPrecondition],
      ["upload onto a directory", () => files.uploadFile({ path: `${base}/adir`, data: Buffer.from("x") }), Code.FailedPrecondition],
      ["session onto a directory", () => files.createUpload({ path: `${base}/adir` }), Code.FailedPrecondition],
      ["mkdir through a file", () => files.createDirectory({ path: `${base}/plain.txt/sub` }), Code.FailedPrecondition],
      ["mkdir over a file", () => files.createDirectory({ path: `${base}/plain.txt` }), Code.FailedPrecondition],
      ["empty path", () => files.statFile({ path: "" }), Code.InvalidArgument],
    ];
    for (const [what, call, code] of cases) {
      expect({ what, code: (await failure(call)).code }).toEqual({ what, code });
    }
  });

  it("resolves paths in a conversation only when the conversation exists (NotFound otherwise)", async () => {
    const err = await failure(files.statFile({ path: "x", conversationId: "no-such-conversation" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.reason).toBe("CONVERSATION_NOT_FOUND");
    expect((await failure(collect(files.downloadFile({ path: "x", conversationId: "c1" })))).code).toBe(Code.NotFound);
    expect((await failure(files.createUpload({ path: "x", conversationId: "c1" }))).code).toBe(Code.NotFound);
  });

  it("upload sessions work over this protocol: chunks at offsets, sha256 on commit, mode", async () => {
    const parts = ["first chunk|", "second chunk|", "third"];
    const { uploadId } = await files.createUpload({ path: `${base}/s/session.txt`, mode: 0o600 });
    let offset = 0n;
    for (const p of parts) {
      const r = await files.writeUpload({ uploadId, offset, data: Buffer.from(p) });
      offset += BigInt(p.length);
      expect(r.received).toBe(offset);
    }
    // Nothing at the target before commit.
    await expect(stat(abs("s/session.txt"))).rejects.toMatchObject({ code: "ENOENT" });
    // A retry of bytes already received is acknowledged; contradicting them is refused.
    expect((await files.writeUpload({ uploadId, offset: 0n, data: Buffer.from(parts[0]!) })).received).toBe(offset);
    const wrong = await failure(files.writeUpload({ uploadId, offset: 3n, data: Buffer.from("zz") }));
    expect(wrong.code).toBe(Code.Aborted);
    expect(wrong.reason).toBe("UPLOAD_RANGE_CONFLICT");
    const far = await failure(files.writeUpload({ uploadId, offset: 1n << 40n, data: Buffer.from("far") }));
    expect(far.code).toBe(Code.OutOfRange);
    expect(far.reason).toBe("UPLOAD_WINDOW_EXCEEDED");
    const done = await files.commitUpload({ uploadId });
    expect(done.sha256).toBe(sha(parts.join("")));
    expect(done.info).toMatchObject({ path: abs("s/session.txt"), size: BigInt(parts.join("").length), mode: 0o600 });
    expect(await readFile(abs("s/session.txt"), "utf8")).toBe(parts.join(""));
    expect(await uploadTemps(abs("s"))).toEqual([]);
    expect((await failure(files.writeUpload({ uploadId, offset, data: Buffer.from("late") }))).code).toBe(Code.NotFound);
    expect((await failure(files.abortUpload({ uploadId }))).code).toBe(Code.NotFound);
  });

  it("replaces a file atomically: concurrent sessions to one path end with one complete version", async () => {
    await writeFile(abs("race.txt"), "old");
    const versions = ["A".repeat(300_000), "B".repeat(200_000), "C".repeat(100_000)];
    const ids = await Promise.all(versions.map(() => files.createUpload({ path: `${base}/race.txt` })));
    await Promise.all(ids.map(({ uploadId }, i) => files.writeUpload({ uploadId, offset: 0n, data: Buffer.from(versions[i]!) })));
    await Promise.all(ids.map(({ uploadId }) => files.commitUpload({ uploadId })));
    expect(versions).toContain(await readFile(abs("race.txt"), "utf8"));
    expect(await uploadTemps(abs(""))).toEqual([]);
  });
});

describe("compression", () => {
  /** The flags byte of every gRPC envelope of a response to a gzip-accepting client. */
  async function responseEnvelopeFlags(method: string, body: Uint8Array): Promise<number[]> {
    const session = http2.connect(server.url);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": `/agentd.v1.FileService/${method}`,
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-accept-encoding": "gzip",
      });
      stream.end(grpcEnvelope(body));
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      const all = Buffer.concat(chunks);
      const flags: number[] = [];
      for (let off = 0; off < all.length; off += 5 + all.readUInt32BE(off + 1)) flags.push(all[off]!);
      return flags;
    } finally {
      session.close();
    }
  }
  const downloadEnvelopeFlags = (p: string) => responseEnvelopeFlags("DownloadFile", toBinary(DownloadFileRequestSchema, create(DownloadFileRequestSchema, { path: p })));

  it("never compresses file bytes in responses, but accepts gzip-compressed requests", async () => {
    const files = createClient(FileService, createGrpcTransport({ baseUrl: server.url, sendCompression: compressionGzip }));
    const text = "compressible ".repeat(200_000);
    const up = await files.uploadFile({ path: "gz/text.txt", data: Buffer.from(text) });
    expect(up.sha256).toBe(sha(text));
    const flags = await downloadEnvelopeFlags("gz/text.txt");
    expect(flags.length).toBe(3); // 2 600 000 bytes in 1 MiB chunks
    expect(flags.every((f) => (f & 1) === 0)).toBe(true);
  });

  it("answers every RPC uncompressed, also large compressible ones (a unary listing here)", async () => {
    for (let i = 0; i < 200; i++) await writeFile(path.join(server.workspace, `listing-${String(i).padStart(3, "0")}.txt`), "x");
    const flags = await responseEnvelopeFlags("ListFiles", toBinary(ListFilesRequestSchema, create(ListFilesRequestSchema, { path: "." })));
    expect(flags).toEqual([0]);
  });
});

/** Reads a watch stream in the background; `next(pred)` waits for the next matching change. */
class WatchTap {
  readonly #queue: WatchDirectoryResponse[] = [];
  #wake: (() => void) | undefined;
  readonly done: Promise<"ended">;

  constructor(stream: AsyncIterable<WatchDirectoryResponse>) {
    this.done = (async () => {
      for await (const m of stream) {
        this.#queue.push(m);
        this.#wake?.();
      }
      this.#wake?.();
      return "ended" as const;
    })();
    this.done.catch(() => this.#wake?.());
  }

  /** Next queued change matching `pred` (earlier non-matching ones are dropped). */
  async next(pred: (m: WatchDirectoryResponse) => boolean): Promise<WatchDirectoryResponse> {
    for (;;) {
      const i = this.#queue.findIndex(pred);
      if (i >= 0) return this.#queue.splice(0, i + 1).pop()!;
      this.#queue.length = 0;
      const woken = new Promise<void>((r) => (this.#wake = r));
      const ended = await Promise.race([woken.then(() => false), this.done.then(() => true)]);
      if (ended && !this.#queue.some(pred)) throw new Error("watch ended before the expected change");
    }
  }

}

/**
 * The handler establishes its watch asynchronously and headers are sent with the first event, so
 * the client cannot observe readiness: touch probe files until the watch reports one.
 */
async function untilWatching(tap: WatchTap, dir: string): Promise<void> {
  const ready = tap.next((m) => (m.change?.path ?? "").includes(".probe-")).then(() => true);
  for (let i = 0; i < 100; i++) {
    await writeFile(path.join(dir, `.probe-${i}`), "p");
    let timer: NodeJS.Timeout | undefined;
    const seen = await Promise.race([ready, new Promise<false>((r) => (timer = setTimeout(() => r(false), 100)))]);
    clearTimeout(timer);
    if (seen) return;
  }
  throw new Error("watch never became ready");
}

const isChange = (kind: FileChangeKind, name: string) => (m: WatchDirectoryResponse) => m.change?.kind === kind && path.basename(m.change.path) === name;

describe("WatchDirectory", () => {
  it("streams create/modify/rename/delete and resumes from a seq without gaps", async () => {
    const dir = path.join(server.workspace, "watched");
    await mkdir(dir);
    const files = client(FileService, server.url, "grpc");
    const ac = new AbortController();
    const tap = new WatchTap(files.watchDirectory({ path: "watched" }, { signal: ac.signal }));
    await untilWatching(tap, dir);

    await writeFile(path.join(dir, "a.txt"), "1");
    const created = await tap.next(isChange(FileChangeKind.CREATE, "a.txt"));
    expect(created.change?.path).toBe(path.join(dir, "a.txt"));
    expect(Number(created.change?.time?.seconds)).toBeGreaterThan(Date.now() / 1000 - 60);
    await writeFile(path.join(dir, "a.txt"), "22");
    await tap.next(isChange(FileChangeKind.MODIFY, "a.txt"));
    await rename(path.join(dir, "a.txt"), path.join(dir, "b.txt"));
    await tap.next(isChange(FileChangeKind.RENAME, "b.txt"));
    await rm(path.join(dir, "b.txt"));
    const deleted = await tap.next(isChange(FileChangeKind.DELETE, "b.txt"));

    // The client goes away; a change happens; it comes back with the last seq it processed.
    ac.abort();
    await tap.done.catch(() => undefined);
    await writeFile(path.join(dir, "missed.txt"), "m");
    const again = new AbortController();
    const resumed = new WatchTap(files.watchDirectory({ path: "watched", afterSeq: deleted.change!.seq }, { signal: again.signal }));
    const missed = await resumed.next(isChange(FileChangeKind.CREATE, "missed.txt"));
    expect(missed.change!.seq).toBeGreaterThan(deleted.change!.seq);
    again.abort();
    await resumed.done.catch(() => undefined);

    // A cursor from the future is refused.
    const ahead = await failure(collect(files.watchDirectory({ path: "watched", afterSeq: 1_000_000n })));
    expect(ahead.code).toBe(Code.OutOfRange);
  });

  it("ends cleanly (no error) when the server shuts down", async () => {
    const own = await startTestServer();
    let closed = false;
    try {
      await mkdir(path.join(own.workspace, "w"));
      const tap = new WatchTap(client(FileService, own.url, "grpc").watchDirectory({ path: "w", recursive: true }));
      await untilWatching(tap, path.join(own.workspace, "w"));
      closed = true;
      await own.close();
      await expect(tap.done).resolves.toBe("ended");
    } finally {
      if (!closed) await own.close();
    }
  });
});
