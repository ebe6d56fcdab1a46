import { createHash } from "node:crypto";
import { mkdir, open, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentdError } from "../../errors.js";
import { DEFAULT_READ_CHUNK_SIZE } from "./file-reader.js";
import type { WorkspaceFiles } from "./workspace-files.js";
import { closeTestWorkspace, failure, openTestWorkspace, type TestWorkspace } from "../../../test/helpers/workspace-files.js";

const MiB = 1024 * 1024;

let ws: string;
let files: WorkspaceFiles;

let t: TestWorkspace;

beforeEach(async () => {
  t = await openTestWorkspace("read");
  ({ ws, files } = t);
});

afterEach(() => closeTestWorkspace(t));

async function openFds(): Promise<number> {
  return (await readdir("/proc/self/fd")).length;
}

describe("read", () => {
  it("serves 256 KiB chunks by default and reports the sha256 at the end", async () => {
    const data = Buffer.alloc(4 * DEFAULT_READ_CHUNK_SIZE + 5, 7);
    await writeFile(join(ws, "f.bin"), data);
    const stream = await files.read("f.bin");
    expect(stream.info).toMatchObject({ size: data.byteLength, type: "file", path: join(ws, "f.bin") });
    expect((() => stream.result)).toThrow(AgentdError);
    const sizes: number[] = [];
    for await (const chunk of stream) sizes.push(chunk.byteLength);
    expect(sizes).toEqual([262144, 262144, 262144, 262144, 5]);
    expect(stream.result).toEqual({ bytesServed: data.byteLength, sha256: createHash("sha256").update(data).digest("hex") });
  });

  it("recycleBuffers: reads into N buffers in turn; bytes and checksum are unchanged", async () => {
    const data = Buffer.alloc(10 * 1000 + 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    await writeFile(join(ws, "ring.bin"), data);
    const stream = await files.read("ring.bin", { chunkSize: 1000, recycleBuffers: 3, offset: 1 });
    const copies: Buffer[] = [];
    // Where each chunk's bytes live: its backing store and offset in it.
    const ids = new Map<ArrayBufferLike, number>();
    const where: string[] = [];
    for await (const chunk of stream) {
      copies.push(Buffer.from(chunk)); // the consumer copies right away, as the RPC does
      if (!ids.has(chunk.buffer)) ids.set(chunk.buffer, ids.size);
      where.push(`${ids.get(chunk.buffer)}:${chunk.byteOffset}`);
    }
    expect(Buffer.concat(copies).equals(data.subarray(1))).toBe(true);
    expect(stream.result.sha256).toBe(createHash("sha256").update(data.subarray(1)).digest("hex"));
    expect(where).toHaveLength(11);
    expect(new Set(where).size).toBe(3);
    expect(where.slice(3, 6)).toEqual(where.slice(0, 3));
    expect((await failure(files.read("ring.bin", { recycleBuffers: 1 }))).code).toBe("invalid_argument");
  });

  it("honours offset, length (clamped at the end) and chunkSize", async () => {
    await writeFile(join(ws, "abc"), "abcdefghij");
    const collect = async (opts: Parameters<WorkspaceFiles["read"]>[1]): Promise<string[]> => {
      const out: string[] = [];
      for await (const c of await files.read("abc", opts)) out.push(Buffer.from(c).toString());
      return out;
    };
    expect(await collect({ offset: 3, length: 4, chunkSize: 3 })).toEqual(["def", "g"]);
    expect(await collect({ offset: 8, length: 100 })).toEqual(["ij"]);
    expect(await collect({ offset: 10 })).toEqual([]);
    const err = await failure(files.read("abc", { offset: 11 }));
    expect(err.code).toBe("out_of_range");
    expect(err.message).toContain("size 10");
    expect((await failure(files.read("abc", { offset: -1 }))).code).toBe("invalid_argument");
    expect((await failure(files.read("abc", { chunkSize: 0 }))).code).toBe("invalid_argument");
  });

  it("reading a directory → failed_precondition", async () => {
    await mkdir(join(ws, "d"));
    const err = await failure(files.read("d"));
    expect(err.code).toBe("failed_precondition");
    expect(err.message).toContain("is a directory");
  });

  it("releases the file handle when the consumer stops early, closes, or aborts", async () => {
    await writeFile(join(ws, "f"), Buffer.alloc(MiB));
    const before = await openFds();
    const early = await files.read("f", { chunkSize: 1024 });
    for await (const _ of early) break;
    const unread = await files.read("f");
    await unread.close();
    const ac = new AbortController();
    const aborted = await files.read("f", { chunkSize: 1024, signal: ac.signal });
    let n = 0;
    const err = await (async () => {
      for await (const _ of aborted) if (++n === 3) ac.abort();
    })().catch((e: unknown) => e);
    expect((err as AgentdError).code).toBe("canceled");
    expect(n).toBe(3);
    // A consumer that walks away mid-stream without ending the iterator (as an RPC framework may
    // once its client is gone): the abort alone releases the file, with a read ahead in flight.
    const ac2 = new AbortController();
    const abandoned = await files.read("f", { chunkSize: 1024, signal: ac2.signal });
    const it = abandoned[Symbol.asyncIterator]();
    await it.next();
    const readAhead = it.next();
    ac2.abort();
    await abandoned.released; // nobody else closes it
    expect(await openFds()).toBe(before);
    expect((await readAhead).done).toBe(false); // the read already in flight completed first
    await expect(it.next()).rejects.toMatchObject({ code: "canceled" });
  });

  it("streams a 256 MiB file with rss growth under 64 MiB (the consumer pulls)", async () => {
    const size = 256 * MiB;
    const block = Buffer.alloc(MiB);
    const hash = createHash("sha256");
    const fh = await open(join(ws, "huge.bin"), "w");
    for (let i = 0; i < size / MiB; i++) {
      block.fill(i % 251);
      await fh.write(block);
      hash.update(block);
    }
    await fh.close();
    const expected = hash.digest("hex");

    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    let served = 0;
    const stream = await files.read("huge.bin");
    for await (const chunk of stream) {
      served += chunk.byteLength;
      if ((served / DEFAULT_READ_CHUNK_SIZE) % 16 === 0) peak = Math.max(peak, process.memoryUsage.rss());
    }
    peak = Math.max(peak, process.memoryUsage.rss());
    expect(served).toBe(size);
    expect(stream.result.sha256).toBe(expected);
    expect(peak - baseline).toBeLessThan(64 * MiB);
  });
});
