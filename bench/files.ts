/**
 * Files benchmark (issue 6): 1 GiB download and upload throughput through agentd — gRPC over h2c
 * (DownloadFile stream; one UploadFileStream of 1 MiB messages, the way a gRPC client uploads;
 * for comparison the session calls a browser must use, CreateUpload + WriteUpload in 1 MiB or
 * 4 MiB chunks, 4 calls in flight, + CommitUpload) and REST (GET /api/file/download, multipart
 * POST /api/file/upload) — against the raw limit measured in the same run: a child process
 * piping an `fs` read stream into a loopback TCP socket (download), or a socket into a file
 * followed by fsync (upload). Clients only count bytes (no hashing); the server hashes both
 * directions (sha256), writes through a temp file + fsync + rename, so the ratio shows what
 * agentd's stack costs.
 *
 * The gRPC client is connect-node's, tuned as a bulk-transfer client should be: 16 MiB HTTP/2
 * stream and connection receive windows (Node's default is 64 KiB for both, which caps a
 * download at one window per round trip), upload buffers reused once their call completed. One
 * extra row downloads with Node's default client settings, for comparison. Machine noise is
 * large on a shared host: compare ratios from the same run, not absolute figures across runs.
 *
 * agentd runs as a child process as `npm start` runs it (dist/agentd.mjs, rebuilt by bench/run.ts),
 * so its RSS can be sampled (every 20 ms) during each transfer; the growth over the RSS just
 * before the transfer is reported (target ≤ 64 MiB). Ours and raw alternate, RUNS times each, medians reported.
 * Environment: BENCH_FILES_RUNS (default 3), BENCH_FILES_ONLY (comma-separated transfer keys,
 * e.g. "raw-down,grpc-down"), BENCH_FILES_IN_FLIGHT (default 4), BENCH_FILES_VERBOSE (print
 * every sample to stderr, with the CPU time server and client spent on it).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createReadStream, readFileSync } from "node:fs";
import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FileService } from "../gen/agentd/v1/file_service_pb.js";
import { AGENTD_ENTRY, median, printTable, rssMiB, startProcess, stopProcess, windowedGrpcTransport, type Row } from "./lib.js";

const MiB = 1024 * 1024;
const SIZE = 1024 * MiB;
const RUNS = Number(process.env.BENCH_FILES_RUNS ?? 3);
/** Comma-separated subset of the transfers below (e.g. "raw-down,grpc-down"); default all. */
const ONLY = process.env.BENCH_FILES_ONLY?.split(",").filter((s) => s !== "");
/** WriteUpload calls a gRPC upload keeps in flight. */
const IN_FLIGHT = Number(process.env.BENCH_FILES_IN_FLIGHT ?? 4);
/** HTTP/2 receive window (stream and connection) of the tuned client. */
const CLIENT_WINDOW = 16 * MiB;

/** The raw limit: download port streams FILE to each connection; upload port writes to OUT, fsyncs, answers "ok". */
const RAW_SERVER = `
const fs = require("node:fs"), net = require("node:net");
const dl = net.createServer((s) => { fs.createReadStream(process.env.FILE, { highWaterMark: 256 * 1024 }).pipe(s); s.on("error", () => {}); });
const ul = net.createServer({ allowHalfOpen: true }, (s) => {
  const out = fs.createWriteStream(process.env.OUT);
  s.pipe(out);
  out.on("finish", () => fs.open(process.env.OUT, "r+", (e, fd) => fs.fsync(fd, () => fs.close(fd, () => s.end("ok")))));
});
let n = 0;
const ready = () => { if (++n === 2) process.stdout.write(JSON.stringify({ listening: "tcp://127.0.0.1:" + dl.address().port, up: String(ul.address().port) }) + "\\n"); };
dl.listen(0, "127.0.0.1", ready); ul.listen(0, "127.0.0.1", ready);
process.on("SIGTERM", () => process.exit(0));
`;

/** Writes SIZE pseudo-random bytes (a random MiB repeated, each copy stamped with its index). */
async function writeBigFile(file: string): Promise<void> {
  const base = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i += 4) base.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ (i >>> 7)) >>> 0, i);
  const fh = await open(file, "w");
  try {
    for (let off = 0, block = 0; off < SIZE; off += MiB, block++) {
      base.writeBigUInt64LE(BigInt(block), 0);
      await fh.write(base, 0, MiB, off);
    }
  } finally {
    await fh.close();
  }
}

interface Sample {
  mibPerS: number;
  rssGrowthMiB: number;
}

/** CPU time (user + system, all threads) a process has used, in seconds (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Runs `transfer` (which moves SIZE bytes) while sampling the RSS of `pid`. */
async function measure(pid: number, transfer: () => Promise<number>): Promise<Sample> {
  const base = rssMiB(pid);
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, 20);
  const t = performance.now();
  const serverCpu0 = cpuSeconds(pid);
  const clientCpu0 = process.cpuUsage();
  let bytes: number;
  try {
    bytes = await transfer();
  } finally {
    clearInterval(timer);
  }
  const s = (performance.now() - t) / 1000;
  const clientCpu = process.cpuUsage(clientCpu0);
  if (process.env.BENCH_FILES_VERBOSE !== undefined) {
    const cpu = `server ${(cpuSeconds(pid) - serverCpu0).toFixed(2)} s, client ${((clientCpu.user + clientCpu.system) / 1e6).toFixed(2)} s`;
    console.error(`  ${s.toFixed(2)} s; CPU (all threads): ${cpu}`);
  }
  peak = Math.max(peak, rssMiB(pid));
  if (bytes !== SIZE) throw new Error(`transferred ${bytes} bytes, expected ${SIZE}`);
  return { mibPerS: SIZE / MiB / s, rssGrowthMiB: peak - base };
}

function rawDownload(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    const s = net.connect(port, "127.0.0.1");
    s.on("data", (d: Buffer) => (n += d.length));
    s.on("end", () => resolve(n));
    s.on("error", reject);
  });
}

function rawUpload(port: number, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    let reply = "";
    s.on("data", (d: Buffer) => (reply += d.toString()));
    s.on("end", () => (reply === "ok" ? resolve(SIZE) : reject(new Error(`raw upload answered ${reply}`))));
    s.on("error", reject);
    createReadStream(file, { highWaterMark: MiB }).pipe(s);
  });
}

async function grpcDownload(files: Client<typeof FileService>): Promise<number> {
  let n = 0;
  for await (const m of files.downloadFile({ path: "big.bin" })) n += m.data.byteLength;
  return n;
}

async function grpcUpload(files: Client<typeof FileService>, file: string, chunk: number, inFlight: number): Promise<number> {
  const { uploadId } = await files.createUpload({ path: "up/grpc.bin", expectedSize: BigInt(SIZE) });
  const fh = await open(file, "r");
  try {
    // Up to `inFlight` WriteUpload calls at once (the server accepts chunks within a window ahead
    // of its received prefix), so the server never waits for the client's next chunk. A chunk's
    // buffer is reused once its call has completed (the request is serialised by then): inFlight
    // + 1 buffers, as a bulk-transfer client would do, rather than a fresh one per chunk.
    const pending = new Set<Promise<unknown>>();
    const spare: Buffer[] = [];
    let offset = 0;
    while (offset < SIZE) {
      const buf = spare.pop() ?? Buffer.allocUnsafe(chunk);
      const { bytesRead } = await fh.read(buf, 0, chunk, offset);
      const call = files.writeUpload({ uploadId, offset: BigInt(offset), data: buf.subarray(0, bytesRead) });
      const tracked: Promise<unknown> = call.then(() => spare.push(buf)).finally(() => pending.delete(tracked));
      pending.add(tracked);
      offset += bytesRead;
      if (pending.size >= inFlight) await Promise.race(pending);
    }
    await Promise.all(pending);
  } finally {
    await fh.close();
  }
  const done = await files.commitUpload({ uploadId });
  return Number(done.info?.size ?? 0n);
}

/**
 * One UploadFileStream call in `chunk`-sized messages. Two read buffers alternate: the next chunk
 * is read from disk while the current one is sent (connect-node has serialised a message by the
 * time it asks for the next one, so a buffer is free again once the one after it is yielded).
 */
async function grpcStreamUpload(files: Client<typeof FileService>, file: string, chunk: number): Promise<number> {
  const fh = await open(file, "r");
  try {
    async function* messages() {
      const buffers = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
      let offset = 0;
      let reading = fh.read(buffers[0]!, 0, chunk, 0);
      for (let i = 0; offset < SIZE; i++) {
        const { bytesRead, buffer } = await reading;
        offset += bytesRead;
        if (offset < SIZE) reading = fh.read(buffers[(i + 1) % 2]!, 0, chunk, offset);
        const data = buffer.subarray(0, bytesRead);
        const commit = offset === SIZE;
        yield i === 0 ? { target: { case: "create" as const, value: { path: "up/stream.bin", expectedSize: BigInt(SIZE) } }, data, commit } : { data, commit };
      }
    }
    const done = await files.uploadFileStream(messages());
    return Number(done.info?.size ?? 0n);
  } finally {
    await fh.close();
  }
}

/** The bench's gRPC client: connect-node with 16 MiB receive windows ("tuned"), or Node's defaults. */
function grpcClient(baseUrl: string, tuning: "tuned" | "default"): Client<typeof FileService> {
  if (tuning === "default") return createClient(FileService, createGrpcTransport({ baseUrl }));
  return createClient(FileService, windowedGrpcTransport(baseUrl, CLIENT_WINDOW));
}

function restDownload(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}/api/file/download?path=big.bin`, (res) => {
        if (res.statusCode !== 200) reject(new Error(`REST download answered ${res.statusCode}`));
        let n = 0;
        res.on("data", (d: Buffer) => (n += d.length));
        res.on("end", () => resolve(n));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

function restUpload(url: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const boundary = "agentd-bench-boundary";
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="rest.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const req = http.request(
      `${url}/api/file/upload?path=up/rest.bin`,
      {
        method: "POST",
        headers: { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": String(head.length + SIZE + tail.length) },
      },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`REST upload answered ${res.statusCode}: ${body}`));
          resolve(Number((JSON.parse(body) as { info: { size: number } }).info.size));
        });
      },
    );
    req.on("error", reject);
    req.write(head);
    const src = createReadStream(file, { highWaterMark: MiB });
    src.pipe(req, { end: false });
    src.on("end", () => req.end(tail));
  });
}

export async function run(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), "agentd-bench-files-"));
  const workspace = path.join(root, "workspace");
  const rawDir = path.join(root, "raw");
  const children: ChildProcess[] = [];
  try {
    await Promise.all([mkdir(workspace), mkdir(rawDir)]);
    const big = path.join(workspace, "big.bin");
    await writeBigFile(big);

    const ours = await startProcess(process.execPath, [AGENTD_ENTRY, "--port", "0", "--workspace", workspace]);
    children.push(ours.child);
    const raw = await startRaw(big, path.join(rawDir, "out.bin"));
    children.push(raw.child);
    const files = grpcClient(ours.url, "tuned");
    const untuned = grpcClient(ours.url, "default");
    const oursPid = ours.child.pid!;
    const rawPid = raw.child.pid!;

    const results = new Map<string, Sample[]>();
    const transfers: [string, number, () => Promise<number>][] = [
      ["raw-down", rawPid, () => rawDownload(raw.downPort)],
      ["grpc-down", oursPid, () => grpcDownload(files)],
      ["grpc-down-default", oursPid, () => grpcDownload(untuned)],
      ["rest-down", oursPid, () => restDownload(ours.url)],
      ["raw-up", rawPid, () => rawUpload(raw.upPort, big)],
      ["grpc-up-stream", oursPid, () => grpcStreamUpload(files, big, MiB)],
      ["grpc-up", oursPid, () => grpcUpload(files, big, MiB, IN_FLIGHT)],
      ["grpc-up-4m", oursPid, () => grpcUpload(files, big, 4 * MiB, IN_FLIGHT)],
      ["rest-up", oursPid, () => restUpload(ours.url, big)],
    ];
    for (let i = 0; i < RUNS; i++) {
      for (const [key, pid, transfer] of transfers) {
        if (ONLY !== undefined && !ONLY.includes(key)) continue;
        const sample = await measure(pid, transfer);
        results.set(key, [...(results.get(key) ?? []), sample]);
        if (process.env.BENCH_FILES_VERBOSE !== undefined) console.error(key, sample.mibPerS.toFixed(0), "MiB/s", sample.rssGrowthMiB.toFixed(1), "MiB");
      }
    }
    const mbps = (k: string) => median((results.get(k) ?? []).map((s) => s.mibPerS));
    const rss = (k: string) => Math.max(...(results.get(k) ?? []).map((s) => s.rssGrowthMiB));
    const speed = (key: string, raw: string, what: string): [string, Row] => [
      key,
      { what: `1 GiB ${what} (median of ${RUNS})`, ours: mbps(key), raw: results.has(raw) ? mbps(raw) : 0, unit: "MiB/s", better: "higher", target: "≥ 0.5× raw" },
    ];
    const memory = (key: string, raw: string, what: string): [string, Row] => [
      key,
      { what: `server RSS growth, ${what} (max)`, ours: rss(key), raw: results.has(raw) ? rss(raw) : 0, unit: "MiB", better: "lower", target: "≤ 64 MiB" },
    ];
    const upChunks = `${IN_FLIGHT} WriteUpload in flight`;
    const rows: [string, Row][] = [
      speed("grpc-down", "raw-down", "download, gRPC h2c, client with 16 MiB windows"),
      speed("grpc-down-default", "raw-down", "download, gRPC h2c, client with Node's default HTTP/2 windows"),
      speed("rest-down", "raw-down", "download, REST"),
      speed("grpc-up-stream", "raw-up", "upload, gRPC h2c, one UploadFileStream of 1 MiB messages"),
      speed("grpc-up", "raw-up", `upload, gRPC h2c, 1 MiB chunks, ${upChunks}`),
      speed("grpc-up-4m", "raw-up", `upload, gRPC h2c, 4 MiB chunks, ${upChunks}`),
      speed("rest-up", "raw-up", "upload, REST multipart"),
      memory("grpc-down", "raw-down", "gRPC download"),
      memory("rest-down", "raw-down", "REST download"),
      memory("grpc-up-stream", "raw-up", "gRPC upload stream"),
      memory("grpc-up", "raw-up", "gRPC upload 1 MiB chunks"),
      memory("grpc-up-4m", "raw-up", "gRPC upload 4 MiB chunks"),
      memory("rest-up", "raw-up", "REST upload"),
    ];
    printTable(rows.filter(([key]) => results.has(key)).map(([, row]) => row));
  } finally {
    for (const c of children) await stopProcess(c);
    await rm(root, { recursive: true, force: true });
  }
}

async function startRaw(file: string, out: string): Promise<{ child: ChildProcess; downPort: number; upPort: number }> {
  const child = spawn(process.execPath, ["-e", RAW_SERVER], { env: { ...process.env, FILE: file, OUT: out }, stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<{ listening: string; up: string }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (l) => resolve(JSON.parse(l) as { listening: string; up: string }));
    child.once("exit", (code) => reject(new Error(`raw server exited with ${code}`)));
  });
  return { child, downPort: Number(new URL(line.listening.replace("tcp:", "http:")).port), upPort: Number(line.up) };
}
