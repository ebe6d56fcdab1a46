/**
 * UploadFileStream over real sockets (connect-node's gRPC and Connect transports, and grpc-js): a
 * whole upload in one client stream (new session or an open one), streams without commit that
 * leave the session open and a second stream that resumes it, the sha256 check, cut and reset
 * streams that install nothing, and every malformed stream refused with the right code without
 * leaving a target or temp file behind.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import path from "node:path";
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FileService,
  UploadFileStreamRequestSchema,
  UploadFileStreamResponseSchema,
  type UploadFileStreamResponse,
} from "../../gen/agentd/v1/file_service_pb.js";
import { client, type TransportKind } from "../helpers/clients.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { failure, grpcEnvelope, uploadTemps } from "./file-test-kit.js";

type Message = MessageInitShape<typeof UploadFileStreamRequestSchema>;

const sha = (b: string | Uint8Array) => createHash("sha256").update(b).digest("hex");

async function* stream(...messages: Message[]): AsyncGenerator<Message> {
  yield* messages;
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

// Client streaming needs a streaming request body: HTTP/2 for gRPC and Connect; connect-node also
// streams one over HTTP/1.1 (browsers' fetch cannot, hence the session calls).
describe.each<TransportKind>(["grpc", "connect-h2", "connect-h1"])("UploadFileStream over %s", (kind) => {
  let files: ReturnType<typeof client<typeof FileService>>;
  let base: string;
  const abs = (p: string) => path.join(server.workspace, base, p);

  beforeAll(async () => {
    files = client(FileService, server.url, kind);
    base = `stream-${kind}`;
    await mkdir(path.join(server.workspace, base));
  });

  it("uploads a file in one stream: a new session, chunks in order, sha256 checked, committed", async () => {
    const parts = ["alpha|", "", "beta|", "gamma"];
    const whole = parts.join("");
    const res = await files.uploadFileStream(
      stream(
        { target: { case: "create", value: { path: `${base}/one/file.txt`, mode: 0o640, expectedSize: BigInt(whole.length) } }, data: Buffer.from(parts[0]!) },
        ...parts.slice(1).map((p) => ({ data: Buffer.from(p) })),
        { sha256: sha(whole), commit: true },
      ),
    );
    expect(res).toMatchObject({ committed: true, received: BigInt(whole.length), sha256: sha(whole) });
    expect(res.uploadId).not.toBe("");
    expect(res.info).toMatchObject({ path: abs("one/file.txt"), size: BigInt(whole.length), mode: 0o640 });
    expect(await readFile(abs("one/file.txt"), "utf8")).toBe(whole);
    expect(await uploadTemps(abs("one"))).toEqual([]);
    // The session is finished.
    expect((await failure(files.commitUpload({ uploadId: res.uploadId }))).code).toBe(Code.NotFound);
  });

  it("a stream without commit leaves the session open; a second stream resumes at the received offset and commits", async () => {
    await writeFile(abs("resumed.txt"), "old content");
    const first = await files.uploadFileStream(stream({ target: { case: "create", value: { path: `${base}/resumed.txt` } }, data: Buffer.from("01234") }, { data: Buffer.from("56789") }));
    const { uploadId } = first;
    expect(first).toMatchObject({ received: 10n, committed: false, sha256: "" });
    expect(first.info).toBeUndefined();
    expect(await readFile(abs("resumed.txt"), "utf8")).toBe("old content");
    // Resuming from an earlier offset: the bytes already received are compared, not rewritten.
    const second = await files.uploadFileStream(
      stream({ target: { case: "uploadId", value: uploadId }, offset: 5n, data: Buffer.from("56789abc") }, { data: Buffer.from("def"), commit: true }),
    );
    expect(second).toMatchObject({ uploadId, received: 16n, committed: true, sha256: sha("0123456789abcdef") });
    expect(await readFile(abs("resumed.txt"), "utf8")).toBe("0123456789abcdef");
    expect(await uploadTemps(abs(""))).toEqual([]);
  });

  it("a wrong sha256 installs nothing: the target keeps its content, the session is gone", async () => {
    await writeFile(abs("checked.txt"), "kept");
    const err = await failure(files.uploadFileStream(stream({ target: { case: "create", value: { path: `${base}/checked.txt` } }, data: Buffer.from("new"), sha256: sha("other"), commit: true })));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toContain("sha256 mismatch");
    expect(await readFile(abs("checked.txt"), "utf8")).toBe("kept");
    expect(await uploadTemps(abs(""))).toEqual([]);
  });

  it("refuses malformed streams with InvalidArgument and leaves no temp file", async () => {
    const refused = async (...messages: Message[]) => {
      const err = await failure(files.uploadFileStream(stream(...messages)));
      expect(err.code).toBe(Code.InvalidArgument);
      return err.message;
    };
    expect(await refused()).toContain("first message must name the upload");
    expect(await refused({ data: Buffer.from("x") })).toContain("first UploadFileStream message must name the upload");
    expect(await refused({ target: { case: "create", value: { path: `${base}/bad.txt` } }, offset: 3n, data: Buffer.from("x") })).toContain("offset must be 0 with create");
    // A later message naming an upload or an offset: the session the stream opened is discarded.
    expect(
      await refused({ target: { case: "create", value: { path: `${base}/bad.txt` } }, data: Buffer.from("x") }, { target: { case: "uploadId", value: "other" }, data: Buffer.from("y") }),
    ).toContain("only the first UploadFileStream message");
    expect(await refused({ target: { case: "create", value: { path: `${base}/bad.txt` } }, data: Buffer.from("x") }, { offset: 1n, data: Buffer.from("y") })).toContain(
      "only the first UploadFileStream message",
    );
    expect(await refused({ target: { case: "create", value: { path: `${base}/bad.txt` } }, data: Buffer.from("x"), commit: true }, { data: Buffer.from("y") })).toContain(
      "may follow the one that sets commit",
    );
    await expect(stat(abs("bad.txt"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(await uploadTemps(abs(""))).toEqual([]);
  });

  it("answers with the session calls' codes: unknown session, bytes past the expected size, a path outside", async () => {
    const unknown = await failure(files.uploadFileStream(stream({ target: { case: "uploadId", value: "no-such-upload" }, data: Buffer.from("x") })));
    expect(unknown.code).toBe(Code.NotFound);
    const tooBig = await failure(
      files.uploadFileStream(stream({ target: { case: "create", value: { path: `${base}/small.txt`, expectedSize: 4n } }, data: Buffer.from("abc") }, { data: Buffer.from("de"), commit: true })),
    );
    expect(tooBig.code).toBe(Code.OutOfRange);
    expect(tooBig.reason).toBe("UPLOAD_SIZE_EXCEEDED");
    const short = await failure(files.uploadFileStream(stream({ target: { case: "create", value: { path: `${base}/small.txt`, expectedSize: 4n } }, data: Buffer.from("abc"), commit: true })));
    expect(short.code).toBe(Code.FailedPrecondition);
    expect(short.reason).toBe("UPLOAD_INCOMPLETE");
    const outside = await failure(files.uploadFileStream(stream({ target: { case: "create", value: { path: "../outside.txt" } }, data: Buffer.from("x") })));
    expect(outside.code).toBe(Code.PermissionDenied);
    await expect(stat(path.join(server.workspace, "..", "outside.txt"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(abs("small.txt"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(await uploadTemps(abs(""))).toEqual([]);
  });
});

describe("UploadFileStream cut off mid-way (gRPC)", () => {
  const CHUNK = 256 * 1024;
  const TOTAL = 64;
  let files: ReturnType<typeof client<typeof FileService>>;
  const abs = (p: string) => path.join(server.workspace, "stream-cut", p);
  const chunk = (i: number) => Buffer.alloc(CHUNK, i);

  beforeAll(async () => {
    files = client(FileService, server.url, "grpc");
    await mkdir(abs(""));
  });

  /** Streams chunks 0..TOTAL-1 after `first`, and aborts the call once `cutAfter` chunks were yielded. */
  async function cutOff(first: Message, cutAfter: number): Promise<void> {
    const ac = new AbortController();
    async function* messages(): AsyncGenerator<Message> {
      yield { ...first, data: chunk(0) };
      for (let i = 1; i < TOTAL; i++) {
        if (i === cutAfter) {
          // The call is canceled and the request never ends cleanly (a generator that returned
          // would half-close it first: a complete upload, as far as the server can tell).
          ac.abort();
          throw new Error("client gone");
        }
        yield { data: chunk(i) };
      }
    }
    const err = await failure(files.uploadFileStream(messages(), { signal: ac.signal }));
    expect(err.code).toBe(Code.Canceled);
  }

  it("a stream that opened its session discards it: no partial target, no temp file", async () => {
    await writeFile(abs("kept.bin"), "old version");
    await cutOff({ target: { case: "create", value: { path: "stream-cut/kept.bin" } } }, TOTAL / 2);
    await cutOff({ target: { case: "create", value: { path: "stream-cut/fresh.bin" } } }, TOTAL / 2);
    await expect.poll(() => uploadTemps(abs(""))).toEqual([]);
    expect(await readFile(abs("kept.bin"), "utf8")).toBe("old version");
    await expect(stat(abs("fresh.bin"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a stream reset by the client (RST_STREAM) is never committed: its session stays open", async () => {
    // Node's HTTP/2 compatibility layer ends the request body of a reset stream like a finished
    // one, so only the explicit commit tells them apart. A bare HTTP/2 client, to control the frames.
    await writeFile(abs("reset.bin"), "old version");
    const session = http2.connect(server.url);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/agentd.v1.FileService/UploadFileStream",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => undefined); // the reset below
      const envelope = (m: Message) => grpcEnvelope(toBinary(UploadFileStreamRequestSchema, create(UploadFileStreamRequestSchema, m)));
      stream.write(envelope({ target: { case: "create", value: { path: "stream-cut/reset.bin" } }, data: chunk(1) }));
      stream.write(envelope({ data: chunk(2) }));
      // The session exists (its temp file carries its id): now the client goes away.
      await expect.poll(() => uploadTemps(abs(""))).toHaveLength(1);
      const uploadId = (await uploadTemps(abs("")))[0]!.split(".agentd-upload-")[1]!;
      const closed = new Promise((resolve) => stream.once("close", resolve));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await closed;
      // Both chunks land in the session, which stays open (an empty write answers its prefix)...
      const received = async () => (await files.writeUpload({ uploadId, offset: 0n, data: new Uint8Array(0) })).received;
      await expect.poll(received).toBe(BigInt(2 * CHUNK));
      // ...and the target keeps its old content until a commit nobody sent.
      expect(await readFile(abs("reset.bin"), "utf8")).toBe("old version");
      await files.abortUpload({ uploadId });
      expect(await uploadTemps(abs(""))).toEqual([]);
    } finally {
      session.close();
    }
  });

  it("a stream into an open session leaves it open; the next stream resumes it with identical bytes", async () => {
    const { uploadId } = await files.createUpload({ path: "stream-cut/resumed.bin", expectedSize: BigInt(CHUNK * TOTAL) });
    await cutOff({ target: { case: "uploadId", value: uploadId } }, TOTAL / 2);
    // The server may have written fewer chunks than were sent before the cut: an empty
    // WriteUpload answers where to resume.
    const resumeAt = Number((await files.writeUpload({ uploadId, offset: 0n, data: new Uint8Array(0) })).received);
    expect(resumeAt).toBeGreaterThan(0);
    expect(resumeAt % CHUNK).toBe(0);
    expect(resumeAt).toBeLessThanOrEqual((TOTAL / 2) * CHUNK);
    async function* rest(): AsyncGenerator<Message> {
      for (let i = resumeAt / CHUNK; i < TOTAL; i++) {
        const commit = i === TOTAL - 1;
        yield i === resumeAt / CHUNK ? { target: { case: "uploadId", value: uploadId }, offset: BigInt(resumeAt), data: chunk(i), commit } : { data: chunk(i), commit };
      }
    }
    const done = await files.uploadFileStream(rest());
    const whole = Buffer.concat(Array.from({ length: TOTAL }, (_, i) => chunk(i)));
    expect(done).toMatchObject({ committed: true, received: BigInt(whole.length), sha256: sha(whole) });
    expect((await readFile(abs("resumed.bin"))).equals(whole)).toBe(true);
  });
});

describe("UploadFileStream from @grpc/grpc-js (another gRPC implementation)", () => {
  it("uploads through a client-streaming call and gets the committed file's sha256", async () => {
    const c = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const parts = [Buffer.alloc(200_000, 1), Buffer.alloc(300_000, 2), Buffer.from("end")];
    try {
      const res = await new Promise<UploadFileStreamResponse>((resolve, reject) => {
        const call = c.makeClientStreamRequest(
          "/agentd.v1.FileService/UploadFileStream",
          (m: Message) => Buffer.from(toBinary(UploadFileStreamRequestSchema, create(UploadFileStreamRequestSchema, m))),
          (b: Buffer) => fromBinary(UploadFileStreamResponseSchema, b),
          (err, value) => (err ? reject(err) : resolve(value!)),
        );
        call.write({ target: { case: "create", value: { path: "grpc-js/streamed.bin" } }, data: parts[0] });
        call.write({ data: parts[1] });
        call.write({ data: parts[2], sha256: sha(Buffer.concat(parts)), commit: true });
        call.end();
      });
      expect(res).toMatchObject({ committed: true, received: 500_003n, sha256: sha(Buffer.concat(parts)) });
      expect((await readFile(path.join(server.workspace, "grpc-js/streamed.bin"))).equals(Buffer.concat(parts))).toBe(true);
    } finally {
      c.close();
    }
  });
});
