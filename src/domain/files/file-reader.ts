import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { AgentdError } from "../../errors.js";
import { type FileInfo, toFileInfo } from "./file-info.js";
import { mapFsError } from "./fs-errors.js";
import { assertOpenedInside, type ResolvedPath } from "./workspace-path.js";

/** Chunk size of a download when the caller names none. */
export const DEFAULT_READ_CHUNK_SIZE = 256 * 1024;
/** Largest chunk a caller may ask for (a chunk is one allocation held until it is consumed). */
export const MAX_READ_CHUNK_SIZE = 16 * 1024 * 1024;

export interface ReadOptions {
  /** First byte to serve; default 0. Must be ≤ the file size (equal serves nothing). */
  offset?: number;
  /** Bytes to serve from `offset`; default (and clamped to) the rest of the file. */
  length?: number;
  /** Bytes per chunk, 1 … 16 MiB; default 256 KiB. The last chunk may be shorter. */
  chunkSize?: number;
  /** Aborting ends the iteration with `canceled` and closes the file. */
  signal?: AbortSignal;
  /**
   * Recycle chunk buffers: 0 (default) gives every chunk a fresh buffer the consumer may keep;
   * N ≥ 2 reads into N buffers in turn, so a chunk's bytes stay valid only until the consumer
   * has asked for N − 1 further chunks (for consumers that copy or send each chunk right away:
   * no allocation, and no page faults on fresh memory, per chunk).
   */
  recycleBuffers?: number;
}

/** Reported once the iteration has served every byte. */
export interface ReadResult {
  /** Bytes served (equals `FileReadStream.length`). */
  bytesServed: number;
  /** Lower-case hex SHA-256 of exactly the bytes served (the range, not the whole file). */
  sha256: string;
}

function notAFile(path: string, isDir: boolean): AgentdError {
  const why = isDir ? `not a file: ${path} is a directory` : `not a regular file: ${path}`;
  return new AgentdError("failed_precondition", why, { path });
}

function checkCount(name: string, v: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (v === undefined) return;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new AgentdError("invalid_argument", `${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}

/**
 * A download in progress: an async iterable of chunks that reads from disk only when the consumer
 * asks for the next chunk (pull-based backpressure; memory is one chunk whatever the file size).
 * The file was opened and checked before this object existed, so not_found / failed_precondition
 * surface before the first byte (a REST layer can still choose its status code).
 *
 * Iterate it once. If you decide not to iterate, call `close()` to release the file handle;
 * iteration (finished, failed or broken off) always closes it, and so does aborting `signal` —
 * also when the consumer abandons the iterator without ending it (an RPC framework that stops
 * pulling once its client has gone), which would otherwise leave the file open until GC.
 */
export class FileReadStream implements AsyncIterable<Uint8Array> {
  #fh: FileHandle | undefined;
  #started = false;
  #result: ReadResult | undefined;
  readonly #onAbort = (): void => void this.close().catch(() => undefined);
  #closed: Promise<void> | undefined;
  #release!: () => void;
  /** Settles once the file handle is closed, whoever closed it (iteration, close(), an abort). */
  readonly released = new Promise<void>((resolve) => (this.#release = resolve));

  private constructor(
    fh: FileHandle,
    /** Metadata of the file at open time (size is the size the range was checked against). */
    readonly info: FileInfo,
    /** First byte served. */
    readonly offset: number,
    /** Bytes that will be served (already clamped to the end of the file). */
    readonly length: number,
    private readonly chunkSize: number,
    private readonly signal: AbortSignal | undefined,
    private readonly recycle: number,
  ) {
    this.#fh = fh;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /**
   * Opens `resolved.real` for reading (final component not followed: it was resolved already)
   * and validates the range. Throws not_found, failed_precondition (not a regular file),
   * permission_denied (a symlink swap since the policy check), invalid_argument (bad option) or
   * out_of_range (offset past the end).
   */
  static async open(resolved: ResolvedPath, userPath: string, opts: ReadOptions = {}): Promise<FileReadStream> {
    checkCount("offset", opts.offset, 0);
    checkCount("length", opts.length, 0);
    checkCount("chunkSize", opts.chunkSize, 1, MAX_READ_CHUNK_SIZE);
    checkCount("recycleBuffers", opts.recycleBuffers, 0, 64);
    if (opts.recycleBuffers === 1) throw new AgentdError("invalid_argument", "recycleBuffers must be 0 or at least 2, got 1");
    let fh: FileHandle;
    try {
      // Refuse directories, FIFOs, sockets and devices before opening them (opening some of them
      // blocks or has side effects); the fstat after open re-checks against a swap.
      const pre = await stat(resolved.real);
      if (!pre.isFile()) throw notAFile(resolved.path, pre.isDirectory());
      // O_NONBLOCK: opening a FIFO must not hang the server; O_NOFOLLOW: `real` has no links left.
      fh = await open(resolved.real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      throw mapFsError(err, resolved.path);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw notAFile(resolved.path, st.isDirectory());
      await assertOpenedInside(resolved.root, resolved.real, st, userPath);
      const offset = opts.offset ?? 0;
      if (offset > st.size) {
        throw new AgentdError("out_of_range", `offset ${offset} is past the end of ${resolved.path} (size ${st.size})`, {
          path: resolved.path,
          size: String(st.size),
        }, "OFFSET_OUT_OF_RANGE");
      }
      const length = Math.min(opts.length ?? st.size - offset, st.size - offset);
      const info = await toFileInfo(st, resolved.real, resolved.path);
      return new FileReadStream(fh, info, offset, length, opts.chunkSize ?? DEFAULT_READ_CHUNK_SIZE, opts.signal, opts.recycleBuffers ?? 0);
    } catch (err) {
      await fh.close();
      throw mapFsError(err, resolved.path);
    }
  }

  /** Byte count and SHA-256 of what was served. Throws failed_precondition before the end. */
  get result(): ReadResult {
    if (this.#result === undefined) {
      throw new AgentdError("failed_precondition", `download of ${this.info.path} has not finished`);
    }
    return this.#result;
  }

  /** Releases the file handle (after a read in flight, if any); idempotent: every call resolves once it is closed. */
  close(): Promise<void> {
    if (this.#closed === undefined) {
      const fh = this.#fh;
      this.#fh = undefined;
      this.signal?.removeEventListener("abort", this.#onAbort);
      this.#closed = (fh === undefined ? Promise.resolve() : fh.close()).finally(() => this.#release());
    }
    return this.#closed;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#started) throw new AgentdError("failed_precondition", `download of ${this.info.path} is already being read`);
    this.#started = true;
    return this.#chunks();
  }

  async *#chunks(): AsyncGenerator<Uint8Array> {
    try {
      const fh = this.#fh;
      if (fh === undefined) throw new AgentdError("failed_precondition", `download of ${this.info.path} was closed`);
      const hash = createHash("sha256");
      const end = this.offset + this.length;
      let pos = this.offset;
      const ring: Buffer[] = [];
      let turn = 0;
      while (pos < end) {
        if (this.signal?.aborted) throw new AgentdError("canceled", `download of ${this.info.path} was canceled`);
        const n = Math.min(this.chunkSize, end - pos);
        let buf: Buffer;
        if (this.recycle === 0) {
          // A fresh buffer per chunk: the consumer may still hold the previous one (e.g. queued
          // in an HTTP/2 stream). Only as many chunks as the consumer holds are ever alive.
          buf = Buffer.allocUnsafe(n);
        } else {
          const slot = turn++ % this.recycle;
          ring[slot] ??= Buffer.allocUnsafe(Math.min(this.chunkSize, this.length));
          buf = ring[slot].subarray(0, n);
        }
        let filled = 0;
        while (filled < n) {
          const { bytesRead } = await fh.read(buf, filled, n - filled, pos + filled);
          if (bytesRead === 0) {
            throw new AgentdError("aborted", `${this.info.path} shrank while it was being read (at byte ${pos + filled})`);
          }
          filled += bytesRead;
        }
        // One synchronous update per chunk on the event loop. A worker thread was measured and
        // bought nothing here: with client and server sharing two cores, total CPU decides.
        hash.update(buf);
        pos += n;
        yield buf;
      }
      this.#result = { bytesServed: this.length, sha256: hash.digest("hex") };
    } catch (err) {
      // Aborting closes the file under a read in flight: report the abort, not the closed handle.
      if (this.signal?.aborted === true) throw new AgentdError("canceled", `download of ${this.info.path} was canceled`);
      throw mapFsError(err, this.info.path);
    } finally {
      await this.close();
    }
  }
}
