/** Shared pieces of the FileService integration tests: big test files, error inspection, hashing. */
import { createHash } from "node:crypto";
import { open, readdir } from "node:fs/promises";
import { ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/agentd/v1/error_detail_pb.js";

export const MiB = 1024 * 1024;

/**
 * Writes `sizeBytes` of pseudo-random bytes to `path` quickly: one random 1 MiB block repeated,
 * each copy stamped with its index in its first 8 bytes so no two MiB are equal (an off-by-a-MiB
 * bug cannot hide). Returns the sha256 of the content.
 */
export async function writeTestFile(path: string, sizeBytes: number): Promise<string> {
  const base = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i += 4) base.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ (i >>> 7)) >>> 0, i);
  const hash = createHash("sha256");
  const fh = await open(path, "w");
  try {
    for (let off = 0, block = 0; off < sizeBytes; off += MiB, block++) {
      const n = Math.min(MiB, sizeBytes - off);
      const buf = Buffer.from(base.subarray(0, n));
      if (n >= 8) buf.writeBigUInt64LE(BigInt(block), 0);
      hash.update(buf);
      await fh.write(buf, 0, n, off);
    }
  } finally {
    await fh.close();
  }
  return hash.digest("hex");
}

/** sha256 of a byte range of a file, read from disk. */
export async function sha256OfFile(path: string, offset = 0, length = Number.MAX_SAFE_INTEGER): Promise<string> {
  const hash = createHash("sha256");
  const fh = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(4 * MiB);
    let pos = offset;
    const end = offset + length;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
      if (pos >= end) break;
    }
  } finally {
    await fh.close();
  }
  return hash.digest("hex");
}

/** The Connect code and ErrorDetail reason a call fails with (throws if it succeeds). */
export async function failure(p: Promise<unknown> | (() => Promise<unknown>)): Promise<{ code: number; reason: string | undefined; message: string }> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: ce.code, reason: ce.findDetails(ErrorDetailSchema)[0]?.reason, message: ce.rawMessage };
  }
  throw new Error("expected the call to fail, it succeeded");
}

/** Drains an async iterable (a server stream), returning the messages. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of it) out.push(m);
  return out;
}

/** A message as gRPC frames it on the wire: flags byte 0 (uncompressed), 4-byte big-endian length, the bytes. */
export function grpcEnvelope(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.byteLength);
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/** Names in `dir` that are upload temp files (`.<name>.agentd-upload-<uuid>`). */
export async function uploadTemps(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.includes(".agentd-upload-"));
}

/** Re-checks `cond` (on later event-loop turns) until it holds or `timeoutMs` passes. */
export async function eventually(cond: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Samples this process's RSS; `peakGrowthMiB` is the largest growth over the baseline seen. */
export class RssProbe {
  readonly #base = process.memoryUsage.rss();
  #peak = this.#base;
  sample(): void {
    const r = process.memoryUsage.rss();
    if (r > this.#peak) this.#peak = r;
  }
  get peakGrowthMiB(): number {
    return (this.#peak - this.#base) / MiB;
  }
}
