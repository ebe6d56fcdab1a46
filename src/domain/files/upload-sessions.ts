// Upload sessions: the one write path of the file engine, used by every protocol.
//
// Contract
// - create(path) opens a temp file `.<name>.agentd-upload-<id>` in the target's (real) directory,
//   creating missing parent directories right away. Bytes never go to the target directly.
// - write(id, offset, bytes) writes a chunk at `offset` (positional write). `received` is the
//   contiguous prefix received so far: the SHA-256 is fed in offset order as the prefix grows.
//   Chunks may arrive out of order within a window ahead of the prefix (`maxAheadBytes`, default
//   32 MiB), so a client can keep several writes in flight; they are written at once and held
//   in memory only until the bytes before them arrive (memory ≤ the window per session and
//   `maxAheadBytesTotal` over all sessions). Writes to one session run concurrently on disk.
// - Retries are idempotent: a chunk overlapping bytes already received (in the prefix or a
//   pending chunk with the same range) is compared with them; equal → acknowledged without
//   rewriting, different → aborted (UPLOAD_RANGE_CONFLICT). A chunk past the window is
//   out_of_range (UPLOAD_WINDOW_EXCEEDED, metadata `expected_offset`): wait for earlier writes.
// - commit(id, {sha256}) waits for the writes in flight, refuses a gap (failed_precondition,
//   UPLOAD_INCOMPLETE naming the first missing byte), checks size and digest, truncates, fsyncs,
//   renames over the target (atomic replace) and fsyncs the directory; it returns the file's info
//   and the SHA-256 of its bytes. A reader sees the old file or the new one, never a mix or a
//   truncated file. Concurrent sessions to one path: the last commit wins, whole.
//   With overwrite=false the target is linked into place (atomic "create if absent").
// - abort(id), a failed commit, an idle timeout or close() remove the temp file.
// - Accepting a chunk, commit and abort are serialised per session in arrival order (a commit
//   sees every chunk accepted before it; a write queued behind a commit then finds no session).

import { createHash, randomUUID, type Hash } from "node:crypto";
import { constants } from "node:fs";
import { link, lstat, open, rename, statfs, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { AgentdError } from "../../errors.js";
import { type FileInfo, toFileInfo } from "./file-info.js";
import { errnoCode, mapFsError } from "./fs-errors.js";
import { makeDirs } from "./make-dirs.js";
import { isInside, resolveReal, type ResolvedPath } from "./workspace-path.js";

/** Options of an upload session. */
export interface UploadOptions {
  /** Total bytes the client will send. When set, writes past it are out_of_range and commit
   * requires exactly this many bytes; free space is checked up front (resource_exhausted). */
  expectedSize?: number;
  /** Replace an existing file (default true, as OpenHands' upload and E2B's write do). When false,
   * commit fails with already_exists if the target exists by then. */
  overwrite?: boolean;
  /** Permission bits of the new file (0 … 0o7777). Default: those of the file being replaced,
   * else 0o666 minus the process umask. */
  mode?: number;
}

/** State of an open upload session. */
export interface UploadSessionInfo {
  uploadId: string;
  /** Target path as the caller addressed it, absolute. */
  path: string;
  /** Bytes received so far = the offset the next write must use. */
  received: number;
  expectedSize?: number;
  /** When the session expires if nothing happens before (ms since the epoch, per the clock). */
  expiresAtMs: number;
}

export interface CommitOptions {
  /** Lower- or upper-case hex SHA-256 of the whole file; mismatch → invalid_argument, session discarded. */
  sha256?: string;
}

/** What a successful commit installed. */
export interface CommitResult {
  /** The new file's metadata at the target. */
  info: FileInfo;
  /** Lower-case hex SHA-256 of the bytes written (computed while they arrived). */
  sha256: string;
}

/** A chunk accepted past the received prefix: being written, or written and waiting for the bytes before it. */
interface PendingChunk {
  readonly start: number;
  readonly end: number;
  /** The bytes, kept for the hash until the prefix reaches them (the caller's until the write resolves, then a copy). */
  data: Uint8Array;
  /** Settles once the chunk is on disk and counted (rejects when the write failed; the chunk is then dropped). */
  settled: Promise<void>;
  written: boolean;
}

interface Session {
  readonly id: string;
  readonly shown: string;
  readonly target: string;
  readonly root: string;
  readonly temp: string;
  readonly fh: FileHandle;
  readonly hash: Hash;
  readonly expectedSize: number | undefined;
  readonly overwrite: boolean;
  readonly mode: number | undefined;
  /** Length of the contiguous prefix on disk and hashed. */
  received: number;
  /** Chunks at or past `received`, by start offset. */
  readonly pending: Map<number, PendingChunk>;
  /** Bytes of the chunks in `pending`. */
  pendingBytes: number;
  lastActivityMs: number;
  /** Operations queued or running; a busy session never expires. */
  busy: number;
  /** Tail of the per-session operation chain. */
  tail: Promise<void>;
  done: boolean;
}

const TEMP_MARK = ".agentd-upload-";
const TEMP_RE = /^\..*\.agentd-upload-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** True for the names of in-flight upload temp files (hidden from listings and watch events). */
export function isUploadTempName(name: string): boolean {
  return TEMP_RE.test(name);
}

function tempNameFor(name: string, id: string): string {
  // Keep the temp name within NAME_MAX (255 bytes): ".", ".agentd-upload-" and the id take 52.
  let base = name;
  while (Buffer.byteLength(base) > 200) base = Array.from(base).slice(0, -1).join("");
  return `.${base}${TEMP_MARK}${id}`;
}

function checkInt(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new AgentdError("invalid_argument", `${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename durable. Some file systems refuse fsync on a directory: best effort.
  try {
    const dh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* durability of the rename is best effort; the data itself was fsynced */
  }
}

/** Default window ahead of the received prefix in which a session accepts chunks. */
export const DEFAULT_MAX_AHEAD_BYTES = 32 * 1024 * 1024;
/** Default bound on bytes held for out-of-order chunks over all sessions. */
export const DEFAULT_MAX_AHEAD_BYTES_TOTAL = 256 * 1024 * 1024;

export interface UploadSessionsOptions {
  /** A session with no operation for this long is discarded (temp file removed). */
  idleTimeoutMs: number;
  /** Milliseconds since the epoch; injectable for tests. */
  clock: () => number;
  /** Open sessions at most; more → resource_exhausted. Default 256. */
  maxSessions?: number;
  /**
   * A chunk not starting at the received prefix must end within this many bytes past it
   * (default 32 MiB); held in memory until the prefix reaches it. A chunk at the prefix is
   * always accepted, whatever its size.
   */
  maxAheadBytes?: number;
  /** Bytes of chunks ahead of their prefix held over all sessions (default 256 MiB); more → resource_exhausted. */
  maxAheadBytesTotal?: number;
}

/** What accepting a chunk decided (see UploadSessions.write). */
type Accepted = { kind: "known" } | { kind: "wait"; chunk: PendingChunk };

/** The upload session table. Paths arrive already resolved by the path policy. */
export class UploadSessions {
  readonly #sessions = new Map<string, Session>();
  readonly #idleTimeoutMs: number;
  readonly #clock: () => number;
  readonly #maxSessions: number;
  readonly #maxAhead: number;
  readonly #maxAheadTotal: number;
  /** Bytes in every session's `pending`. */
  #pendingTotal = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: UploadSessionsOptions) {
    checkInt("uploadIdleTimeoutMs", opts.idleTimeoutMs, 1, 2 ** 31 - 1);
    this.#idleTimeoutMs = opts.idleTimeoutMs;
    this.#clock = opts.clock;
    this.#maxSessions = opts.maxSessions ?? 256;
    checkInt("maxAheadBytes", opts.maxAheadBytes, 0, Number.MAX_SAFE_INTEGER);
    checkInt("maxAheadBytesTotal", opts.maxAheadBytesTotal, 0, Number.MAX_SAFE_INTEGER);
    this.#maxAhead = opts.maxAheadBytes ?? DEFAULT_MAX_AHEAD_BYTES;
    this.#maxAheadTotal = opts.maxAheadBytesTotal ?? DEFAULT_MAX_AHEAD_BYTES_TOTAL;
  }

  /** Number of open sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Opens a session writing to `resolved` (the fully resolved target).
   * Throws failed_precondition when the target is a directory or not a regular file, or a parent
   * component is a file; resource_exhausted when too many sessions are open or `expectedSize`
   * exceeds the free space; invalid_argument for bad options.
   */
  async create(resolved: ResolvedPath, opts: UploadOptions = {}): Promise<UploadSessionInfo> {
    this.#assertOpen();
    checkInt("expectedSize", opts.expectedSize, 0, Number.MAX_SAFE_INTEGER);
    checkInt("mode", opts.mode, 0, 0o7777);
    if (this.#sessions.size >= this.#maxSessions) {
      throw new AgentdError("resource_exhausted", `too many open upload sessions (limit ${this.#maxSessions})`);
    }
    const shown = resolved.path;
    const target = resolved.real;
    let mode = opts.mode;
    try {
      const st = await lstat(target);
      if (st.isDirectory()) throw new AgentdError("failed_precondition", `is a directory: ${shown}`, { path: shown });
      if (!st.isFile()) throw new AgentdError("failed_precondition", `not a regular file: ${shown}`, { path: shown });
      if (opts.overwrite === false) throw new AgentdError("already_exists", `file already exists: ${shown}`, { path: shown });
      mode ??= st.mode & 0o7777;
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw mapFsError(err, shown);
    }
    const dir = dirname(target);
    await makeDirs(dir, dirname(shown));
    if (opts.expectedSize !== undefined && opts.expectedSize > 0) {
      const fsStat = await statfs(dir);
      const free = fsStat.bavail * fsStat.bsize;
      if (opts.expectedSize > free) {
        throw new AgentdError("resource_exhausted", `not enough free space for ${opts.expectedSize} bytes at ${shown} (${free} available)`, {
          path: shown,
        });
      }
    }
    const id = randomUUID();
    const temp = join(dir, tempNameFor(basename(target), id));
    let fh: FileHandle;
    try {
      // Read access too: a retried chunk is compared with the bytes already written.
      fh = await open(temp, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode ?? 0o666);
    } catch (err) {
      throw mapFsError(err, shown);
    }
    const now = this.#clock();
    const session: Session = {
      id,
      shown,
      target,
      root: resolved.root,
      temp,
      fh,
      hash: createHash("sha256"),
      expectedSize: opts.expectedSize,
      overwrite: opts.overwrite ?? true,
      mode,
      received: 0,
      pending: new Map(),
      pendingBytes: 0,
      lastActivityMs: now,
      busy: 0,
      tail: Promise.resolve(),
      done: false,
    };
    this.#sessions.set(id, session);
    this.#ensureSweeper();
    return this.#info(session);
  }

  /** The session's state. Throws not_found for an unknown, finished or expired id. */
  get(uploadId: string): UploadSessionInfo {
    return this.#info(this.#lookup(uploadId));
  }

  /**
   * Writes `bytes` at `offset`; resolves once they are on disk with the received prefix after it
   * (less than offset + length while an earlier chunk is missing). See the contract above for the
   * window and retries. Throws out_of_range when the chunk would pass `expectedSize`
   * (UPLOAD_SIZE_EXCEEDED), lies past the window (UPLOAD_WINDOW_EXCEEDED) or overlaps a pending
   * chunk with other bounds (UPLOAD_RANGE_OVERLAP), all with metadata `expected_offset`; aborted
   * when it contradicts bytes already received (UPLOAD_RANGE_CONFLICT); not_found for an
   * unknown/expired id; resource_exhausted when too many bytes wait ahead over all sessions, or on
   * ENOSPC (the session stays; the chunk does not count).
   */
  async write(uploadId: string, offset: number, bytes: Uint8Array): Promise<{ received: number }> {
    checkInt("offset", offset, 0, Number.MAX_SAFE_INTEGER);
    let session!: Session;
    const accepted = await this.#run(uploadId, (s) => {
      session = s;
      return this.#accept(s, offset, bytes);
    });
    if (accepted.kind === "wait") await accepted.chunk.settled;
    return { received: session.received };
  }

  /** Decides what to do with a chunk; starts its disk write when it is new. Runs serialised. */
  async #accept(s: Session, offset: number, bytes: Uint8Array): Promise<Accepted> {
    const end = offset + bytes.byteLength;
    const meta = (): Record<string, string> => ({ upload_id: s.id, expected_offset: String(s.received) });
    if (s.expectedSize !== undefined && end > s.expectedSize) {
      throw new AgentdError(
        "out_of_range",
        `upload ${s.id} would exceed its expected size ${s.expectedSize} (chunk [${offset}, ${end}))`,
        meta(),
        "UPLOAD_SIZE_EXCEEDED",
      );
    }
    let start = offset;
    let data = bytes;
    if (start < s.received) {
      // A retry of bytes in the prefix: acknowledged if identical, whatever part is new is written.
      const known = Math.min(end, s.received) - start;
      await this.#verifyOnDisk(s, start, data.subarray(0, known));
      if (end <= s.received) return { kind: "known" };
      data = data.subarray(known);
      start = s.received;
    }
    if (data.byteLength === 0) return { kind: "known" };
    if (start !== s.received && end > s.received + this.#maxAhead) {
      throw new AgentdError(
        "out_of_range",
        `upload ${s.id} accepts chunks ending at most ${this.#maxAhead} bytes past offset ${s.received}, got [${start}, ${end}); retry once earlier chunks have landed`,
        meta(),
        "UPLOAD_WINDOW_EXCEEDED",
      );
    }
    const same = s.pending.get(start);
    if (same !== undefined && same.end === end) {
      // A retry of a chunk still pending (in flight, or waiting for earlier bytes).
      if (!Buffer.from(same.data.buffer, same.data.byteOffset, same.data.byteLength).equals(data)) throw this.#conflict(s, start, end);
      return { kind: "wait", chunk: same };
    }
    for (const p of s.pending.values()) {
      if (p.start < end && start < p.end) {
        throw new AgentdError(
          "out_of_range",
          `upload ${s.id}: chunk [${start}, ${end}) overlaps the pending chunk [${p.start}, ${p.end}); resend that chunk with the same bounds`,
          meta(),
          "UPLOAD_RANGE_OVERLAP",
        );
      }
    }
    if (start !== s.received && this.#pendingTotal + data.byteLength > this.#maxAheadTotal) {
      throw new AgentdError(
        "resource_exhausted",
        `too many bytes waiting ahead of their uploads' received offsets (limit ${this.#maxAheadTotal}); retry once earlier chunks have landed`,
        meta(),
        "UPLOAD_WINDOW_EXCEEDED",
      );
    }
    return { kind: "wait", chunk: this.#startWrite(s, start, data) };
  }

  /** Reserves [start, start + data) in `s.pending` and writes it; counts it once on disk. */
  #startWrite(s: Session, start: number, data: Uint8Array): PendingChunk {
    const len = data.byteLength;
    s.busy++;
    s.pendingBytes += len;
    this.#pendingTotal += len;
    const write = async (): Promise<void> => {
      try {
        let done = 0;
        while (done < len) {
          const { bytesWritten } = await s.fh.write(data, done, len - done, start + done);
          done += bytesWritten;
        }
      } catch (err) {
        // Not counted: a later write of this range overwrites whatever part landed.
        s.pending.delete(start);
        s.pendingBytes -= len;
        this.#pendingTotal -= len;
        throw mapFsError(err, s.shown);
      } finally {
        s.busy--;
        s.lastActivityMs = this.#clock();
      }
      chunk.written = true;
      this.#advance(s);
      // Still waiting for earlier bytes: keep a copy for the hash, since the caller may reuse its
      // buffer once this write resolves (only out-of-order chunks pay for it).
      if (s.pending.get(start) === chunk) chunk.data = Buffer.from(data);
    };
    const chunk: PendingChunk = { start, end: start + len, data, settled: Promise.resolve(), written: false };
    s.pending.set(start, chunk);
    chunk.settled = write();
    chunk.settled.catch(() => undefined); // observed by the writer; commit/abort only wait for it
    return chunk;
  }

  /** Moves the prefix over every written chunk that now continues it, hashing in offset order. */
  #advance(s: Session): void {
    for (let c = s.pending.get(s.received); c !== undefined && c.written; c = s.pending.get(s.received)) {
      if (s.done) return;
      s.hash.update(c.data);
      s.pending.delete(c.start);
      s.pendingBytes -= c.data.byteLength;
      this.#pendingTotal -= c.data.byteLength;
      s.received = c.end;
    }
  }

  /** Throws UPLOAD_RANGE_CONFLICT unless the temp file holds `data` at `start` (a retried chunk). */
  async #verifyOnDisk(s: Session, start: number, data: Uint8Array): Promise<void> {
    const have = Buffer.allocUnsafe(data.byteLength);
    let got = 0;
    try {
      while (got < have.byteLength) {
        const { bytesRead } = await s.fh.read(have, got, have.byteLength - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
    } catch (err) {
      throw mapFsError(err, s.shown);
    }
    if (got !== have.byteLength || !have.equals(data)) throw this.#conflict(s, start, start + data.byteLength);
  }

  #conflict(s: Session, start: number, end: number): AgentdError {
    return new AgentdError(
      "aborted",
      `upload ${s.id}: chunk [${start}, ${end}) differs from the bytes already received for that range`,
      { upload_id: s.id, expected_offset: String(s.received) },
      "UPLOAD_RANGE_CONFLICT",
    );
  }

  /** Waits until no chunk of `s` is being written (failures are the writers' to report). */
  async #settle(s: Session): Promise<void> {
    await Promise.allSettled([...s.pending.values()].map((c) => c.settled));
  }

  /**
   * Verifies, fsyncs and atomically moves the upload into place; returns the new file's info.
   * Throws failed_precondition when fewer bytes than `expectedSize` arrived (session kept: keep
   * writing) or the target became a directory; invalid_argument for a malformed digest (kept) or
   * a digest mismatch (session discarded, target untouched); already_exists when overwrite=false
   * and the target appeared; permission_denied when the target directory moved out of the
   * workspace. Every failure after the checks discards the session. A gap (a chunk past the
   * prefix with bytes missing before it) is failed_precondition UPLOAD_INCOMPLETE naming the
   * missing range; the session is kept.
   */
  async commit(uploadId: string, opts: CommitOptions = {}): Promise<CommitResult> {
    const want = opts.sha256?.toLowerCase();
    if (want !== undefined && !/^[0-9a-f]{64}$/.test(want)) {
      throw new AgentdError("invalid_argument", `sha256 must be 64 hex digits, got ${JSON.stringify(opts.sha256?.slice(0, 80))}`);
    }
    return this.#run(uploadId, async (s) => {
      await this.#settle(s);
      if (s.pending.size > 0) {
        const next = Math.min(...s.pending.keys());
        throw new AgentdError(
          "failed_precondition",
          `upload ${s.id} is missing bytes [${s.received}, ${next}) before a chunk received at ${next}`,
          { upload_id: s.id, expected_offset: String(s.received) },
          "UPLOAD_INCOMPLETE",
        );
      }
      if (s.expectedSize !== undefined && s.received !== s.expectedSize) {
        throw new AgentdError(
          "failed_precondition",
          `upload ${s.id} has ${s.received} of ${s.expectedSize} expected bytes`,
          { upload_id: s.id, expected_offset: String(s.received) },
          "UPLOAD_INCOMPLETE",
        );
      }
      try {
        const got = s.hash.digest("hex"); // the session ends here, whatever happens next
        if (want !== undefined && got !== want) {
          throw new AgentdError(
            "invalid_argument",
            `sha256 mismatch for upload ${s.id} to ${s.shown}: expected ${want}, received data has ${got}`,
            { upload_id: s.id, expected_sha256: want, actual_sha256: got },
            "SHA256_MISMATCH",
          );
        }
        await s.fh.truncate(s.received);
        if (s.mode !== undefined) await s.fh.chmod(s.mode);
        await s.fh.sync();
        await s.fh.close();
        await this.#placeFile(s);
        s.done = true;
        this.#sessions.delete(s.id);
        await fsyncDir(dirname(s.target));
        return { info: await toFileInfo(await lstat(s.target), s.target, s.shown), sha256: got };
      } catch (err) {
        await this.#discard(s);
        throw mapFsError(err, s.shown);
      }
    });
  }

  /** Discards the session and its temp file. Throws not_found for an unknown/expired id. */
  async abort(uploadId: string): Promise<void> {
    await this.#run(uploadId, (s) => this.#discard(s));
  }

  /** Discards every session idle longer than the timeout; returns how many. Also runs on a timer. */
  async sweep(): Promise<number> {
    const now = this.#clock();
    const expired = [...this.#sessions.values()].filter((s) => this.#expired(s, now));
    await Promise.all(expired.map((s) => this.#discard(s)));
    if (this.#sessions.size === 0) this.#stopSweeper();
    return expired.length;
  }

  /** Discards every session (temp files removed) and refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopSweeper();
    const all = [...this.#sessions.values()];
    // Wait for in-flight operations so no write lands after the temp file is gone.
    await Promise.all(all.map((s) => s.tail.then(() => this.#discard(s))));
  }

  async #placeFile(s: Session): Promise<void> {
    // TOCTOU: the target directory must still be where the policy put it (not swapped for a link).
    const dir = dirname(s.target);
    const again = await resolveReal(dir);
    if (!again.exists || again.real !== dir || !isInside(s.root, again.real)) {
      throw new AgentdError("permission_denied", `path is outside the workspace: ${s.shown}`, { path: s.shown }, "PATH_OUTSIDE_WORKSPACE");
    }
    try {
      const st = await lstat(s.target);
      if (st.isDirectory()) throw new AgentdError("failed_precondition", `is a directory: ${s.shown}`, { path: s.shown });
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw err;
    }
    if (s.overwrite) {
      await rename(s.temp, s.target);
      return;
    }
    try {
      // link(2) fails with EEXIST if the name exists: an atomic "create only if absent".
      await link(s.temp, s.target);
    } catch (err) {
      const code = errnoCode(err);
      if (code === "EEXIST") throw new AgentdError("already_exists", `file already exists: ${s.shown}`, { path: s.shown });
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EMLINK") throw err;
      // No hard links on this file system: check, then rename (a narrow race remains).
      try {
        await lstat(s.target);
        throw new AgentdError("already_exists", `file already exists: ${s.shown}`, { path: s.shown });
      } catch (e) {
        if (errnoCode(e) !== "ENOENT") throw e;
      }
      await rename(s.temp, s.target);
      return;
    }
    await unlink(s.temp);
  }

  #assertOpen(): void {
    if (this.#closed) throw new AgentdError("unavailable", "file service is closed");
  }

  #expired(s: Session, now: number): boolean {
    return !s.done && s.busy === 0 && now - s.lastActivityMs > this.#idleTimeoutMs;
  }

  #lookup(uploadId: string): Session {
    const s = typeof uploadId === "string" ? this.#sessions.get(uploadId) : undefined;
    if (s === undefined || s.done) {
      throw new AgentdError(
        "not_found",
        `upload ${String(uploadId)} not found (unknown, expired, committed or aborted)`,
        { upload_id: String(uploadId) },
        "UPLOAD_NOT_FOUND",
      );
    }
    return s;
  }

  /** Runs `fn` after the session's earlier operations; the session must still be open then. */
  async #run<T>(uploadId: string, fn: (s: Session) => Promise<T>): Promise<T> {
    this.#assertOpen();
    const s = this.#lookup(uploadId);
    if (this.#expired(s, this.#clock())) {
      await this.#discard(s);
      this.#lookup(uploadId); // throws not_found
    }
    s.busy++;
    const prev = s.tail;
    let release!: () => void;
    s.tail = new Promise<void>((r) => (release = r));
    try {
      await prev;
      if (s.done) this.#lookup(uploadId); // finished by an operation queued before us
      return await fn(s);
    } finally {
      s.busy--;
      s.lastActivityMs = this.#clock();
      release();
    }
  }

  async #discard(s: Session): Promise<void> {
    this.#sessions.delete(s.id);
    if (s.done) return;
    s.done = true;
    // No write may land after the temp file is gone (and the handle is closed only once idle).
    await this.#settle(s);
    this.#pendingTotal -= s.pendingBytes;
    s.pendingBytes = 0;
    s.pending.clear();
    await s.fh.close().catch(() => undefined); // may be closed already by a failed commit
    await unlink(s.temp).catch((err: unknown) => {
      if (errnoCode(err) !== "ENOENT") throw mapFsError(err, s.shown);
    });
  }

  #info(s: Session): UploadSessionInfo {
    const info: UploadSessionInfo = {
      uploadId: s.id,
      path: s.shown,
      received: s.received,
      expiresAtMs: s.lastActivityMs + this.#idleTimeoutMs,
    };
    if (s.expectedSize !== undefined) info.expectedSize = s.expectedSize;
    return info;
  }

  #ensureSweeper(): void {
    if (this.#timer !== undefined) return;
    const every = Math.max(1_000, Math.min(Math.ceil(this.#idleTimeoutMs / 2), 60_000));
    this.#timer = setInterval(() => {
      // Best effort: an expired session is forgotten even if removing its temp file failed.
      this.sweep().catch(() => undefined);
    }, every);
    this.#timer.unref();
  }

  #stopSweeper(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
