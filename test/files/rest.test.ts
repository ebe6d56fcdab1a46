/**
 * The OpenHands-compatible REST file routes, served by the gateway over FileService:
 * `POST /api/file/upload?path=` (multipart field `file`, streamed through an upload session),
 * `GET /api/file/download?path=` (raw bytes, Content-Disposition, HTTP Range → 206),
 * `POST /api/file/create_directory?path=`; status codes from the error table; a 1 GiB round trip;
 * an upload cut off mid-body leaves nothing behind.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";
import { client } from "../helpers/clients.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { eventually, MiB, RssProbe, uploadTemps, writeTestFile } from "./file-test-kit.js";

const sha = (b: string | Uint8Array) => createHash("sha256").update(b).digest("hex");
const BOUNDARY = "agentd-test-boundary-7f3a";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

const q = (p: string) => encodeURIComponent(p);

function multipartParts(fileName: string): { head: Buffer; tail: Buffer } {
  return {
    head: Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${fileName}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    tail: Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  };
}

interface RestReply {
  status: number;
  body: string;
}

/**
 * Streams `source` (a file path) as a multipart upload to `/api/file/upload?path=target` without
 * holding it in memory.
 */
function uploadStream(target: string, source: string, size: number, onChunk?: () => void): Promise<RestReply> {
  const { head, tail } = multipartParts(path.basename(target));
  return new Promise((resolve, reject) => {
    const req = http.request(`${server.url}/api/file/upload?path=${q(target)}`, {
      method: "POST",
      headers: { "content-type": `multipart/form-data; boundary=${BOUNDARY}`, "content-length": String(head.length + size + tail.length) },
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.write(head);
    const src = createReadStream(source, { highWaterMark: MiB });
    if (onChunk !== undefined) src.on("data", onChunk);
    src.pipe(req, { end: false });
    src.on("end", () => req.end(tail));
  });
}

describe("REST file routes", () => {
  it("POST /api/file/create_directory creates parents, idempotently", async () => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${server.url}/api/file/create_directory?path=${q("made/with/parents")}`, { method: "POST" });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ success: true });
    }
    expect((await stat(path.join(server.workspace, "made/with/parents"))).isDirectory()).toBe(true);
    await writeFile(path.join(server.workspace, "a-file"), "f");
    const over = await fetch(`${server.url}/api/file/create_directory?path=a-file/sub`, { method: "POST" });
    expect(over.status).toBe(400);
  });

  it("POST /api/file/upload takes multipart field `file` and answers with info and sha256", async () => {
    const form = new FormData();
    form.append("file", new Blob(["uploaded through multipart"]), "up.txt");
    const res = await fetch(`${server.url}/api/file/upload?path=${q("rest/up.txt")}`, { method: "POST", body: form });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { success: boolean; sha256: string; info: { path: string; size: number } };
    expect(body.success).toBe(true);
    expect(body.sha256).toBe(sha("uploaded through multipart"));
    expect(body.info).toMatchObject({ path: path.join(server.workspace, "rest/up.txt"), size: 26 });
    expect(await readFile(path.join(server.workspace, "rest/up.txt"), "utf8")).toBe("uploaded through multipart");
  });

  it("GET /api/file/download sends raw bytes with Content-Disposition and Content-Length", async () => {
    await mkdir(path.join(server.workspace, "dl"), { recursive: true });
    await writeFile(path.join(server.workspace, "dl/report final.txt"), "0123456789abcdef");
    const res = await fetch(`${server.url}/api/file/download?path=${q("dl/report final.txt")}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="report final.txt"');
    expect(res.headers.get("content-length")).toBe("16");
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(await res.text()).toBe("0123456789abcdef");
  });

  it("honours HTTP Range: 206 with Content-Range, suffix and open ranges, 416 past the end", async () => {
    const url = `${server.url}/api/file/download?path=${q("dl/report final.txt")}`;
    const get = (range: string) => fetch(url, { headers: { range } });
    const mid = await get("bytes=2-5");
    expect(mid.status).toBe(206);
    expect(mid.headers.get("content-range")).toBe("bytes 2-5/16");
    expect(mid.headers.get("content-length")).toBe("4");
    expect(await mid.text()).toBe("2345");
    const open = await get("bytes=10-");
    expect(open.status).toBe(206);
    expect(open.headers.get("content-range")).toBe("bytes 10-15/16");
    expect(await open.text()).toBe("abcdef");
    const suffix = await get("bytes=-3");
    expect(suffix.status).toBe(206);
    expect(await suffix.text()).toBe("def");
    const past = await get("bytes=100-");
    expect(past.status).toBe(416);
    await past.arrayBuffer();
  });

  it("maps errors: unknown → 404, directory where a file is expected → 400, escapes → 403", async () => {
    await mkdir(path.join(server.workspace, "a-dir"), { recursive: true });
    const status = async (p: string) => {
      const res = await fetch(`${server.url}/api/file/download?${p}`);
      await res.arrayBuffer();
      return res.status;
    };
    expect(await status(`path=missing.bin`)).toBe(404);
    expect(await status(`path=a-dir`)).toBe(400);
    expect(await status(`path=${q("../../etc/passwd")}`)).toBe(403);
    expect(await status(`path=/etc/passwd`)).toBe(403);
    // The query is decoded exactly once: an encoded escape is an escape, a double-encoded one is a name.
    expect(await status(`path=..%2f..%2fetc%2fpasswd`)).toBe(403);
    expect(await status(`path=..%252f..%252fetc%252fpasswd`)).toBe(404);
    const up = new FormData();
    up.append("file", new Blob(["x"]), "x");
    const res = await fetch(`${server.url}/api/file/upload?path=${q("../escape.txt")}`, { method: "POST", body: up });
    expect(res.status).toBe(403);
    await expect(stat(path.join(path.dirname(server.workspace), "escape.txt"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("one upload session is usable from every surface (REST create, gRPC write, Connect commit)", async () => {
    const created = await fetch(`${server.url}/api/file/uploads`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ path: "mixed/session.bin" }),
    });
    expect(created.status).toBe(200);
    const { upload_id: uploadId } = (await created.json()) as { upload_id: string };
    const data = Buffer.from("written over gRPC, committed over Connect");
    await client(FileService, server.url, "grpc").writeUpload({ uploadId, offset: 0n, data });
    const done = await client(FileService, server.url, "connect-json-h1").commitUpload({ uploadId });
    expect(done.sha256).toBe(sha(data));
    expect(await readFile(path.join(server.workspace, "mixed/session.bin"), "utf8")).toBe(data.toString());
  });

  // The gateway ends the multipart file stream when the client goes away (req.pipe(busboy) would
  // not pass the disconnect on) and aborts the upload session, so the temp file goes at once
  // rather than at the 10-minute idle expiry.
  it("an upload cut off mid-body leaves neither the target nor a temp file", async () => {
    const dir = path.join(server.workspace, "cut");
    await mkdir(dir);
    await writeFile(path.join(dir, "kept.bin"), "old version");
    const { head } = multipartParts("kept.bin");
    const half = Buffer.alloc(8 * MiB, 7);
    for (const target of ["cut/fresh.bin", "cut/kept.bin"]) {
      const req = http.request(`${server.url}/api/file/upload?path=${q(target)}`, {
        method: "POST",
        headers: { "content-type": `multipart/form-data; boundary=${BOUNDARY}`, "content-length": String(head.length + 16 * MiB + 100) },
      });
      const gone = new Promise<void>((resolve) => req.on("error", () => resolve()).on("close", () => resolve()));
      req.write(head);
      req.write(half);
      // The server has started writing the session's temp file: now the client vanishes.
      await eventually(async () => (await uploadTemps(dir)).length > 0);
      req.destroy();
      await gone;
    }
    await eventually(async () => (await uploadTemps(dir)).length === 0);
    expect(await readdir(dir)).toEqual(["kept.bin"]);
    expect(await readFile(path.join(dir, "kept.bin"), "utf8")).toBe("old version");
  });
});

describe("REST: 1 GiB round trip", () => {
  const GiB = 1024 * MiB;
  let bigSha: string;
  beforeAll(async () => {
    bigSha = await writeTestFile(path.join(server.workspace, "big.bin"), GiB);
  }, 60_000);

  it("downloads 1 GiB as raw bytes with the right checksum", async () => {
    const rss = new RssProbe();
    const res = await fetch(`${server.url}/api/file/download?path=big.bin`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(GiB));
    const hash = createHash("sha256");
    let n = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      if ((n += chunk.byteLength) % (64 * MiB) < chunk.byteLength) rss.sample();
    }
    expect(n).toBe(GiB);
    expect(hash.digest("hex")).toBe(bigSha);
    expect(rss.peakGrowthMiB).toBeLessThan(128);
  }, 30_000);

  it("uploads 1 GiB as a streamed multipart body with the right checksum", async () => {
    const rss = new RssProbe();
    let chunks = 0;
    const reply = await uploadStream("rest-copy/big.bin", path.join(server.workspace, "big.bin"), GiB, () => {
      if (++chunks % 64 === 0) rss.sample();
    });
    expect(reply.status).toBe(200);
    const body = JSON.parse(reply.body) as { sha256: string; info: { size: number } };
    expect(body.sha256).toBe(bigSha);
    expect(body.info.size).toBe(GiB);
    expect((await stat(path.join(server.workspace, "rest-copy/big.bin"))).size).toBe(GiB);
    expect(rss.peakGrowthMiB).toBeLessThan(128);
  }, 60_000);
});
