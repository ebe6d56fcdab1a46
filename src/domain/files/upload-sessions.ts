// Upload sessions: the one write path of the file engine, used by every protocol.
//
// Contract
// - create(path) opens a temp file `.<name>.agentd-upload-<id>` in the target's (real) directory,
//   creating parent directories. Bytes never go to the target directly.
// - write(id, offset, bytes) appends; `offset` must equal the bytes received so far, otherwise
//   out_of_range naming the expected offset (metadata `expected_offset`). A client that does not
//   know whether its last write landed retries at the same offset and learns where to continue.
// - commit(id, {sha256}) checks size and digest, truncates, fsyncs, renames over the target
//   (atomic replace) and fsyncs the directory. A reader sees the old file or the new one, never a
//   mix or a truncated file. Concurrent sessions to one path: the last commit wins, whole.
//   With overwrite=false the target is linked into place (atomic "create if absent").
// - abort(id), a failed commit, an idle timeout or close() remove the temp file.
// - Operations on one session are serialised (a write racing a commit waits for it).

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
  received: number;
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

export interface UploadSessionsOptions {
  /** A session with no operation for this long is discarded (temp file removed). */
  idleTimeoutMs: number;
  /** Milliseconds since the epoch; injectable for tests. */
  clock: () => number;
  /** Open sessions at most; more → resource_exhausted. Default 256. */
  maxSessions?: number;
}

/** The upload session table. Paths arrive already resolved by the path policy. */
export class UploadSessions {
  readonly #sessions = new Map<string, Session>();
  readonly #idleTimeoutMs: number;
  readonly #clock: () => number;
  readonly #maxSessions: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: UploadSessionsOptions) {
    checkInt("uploadIdleTimeoutMs", opts.idleTimeoutMs, 1, 2 ** 31 - 1);
    this.#idleTimeoutMs = opts.idleTimeoutMs;
    this.#clock = opts.clock;
    this.#maxSessions = opts.maxSessions ?? 256;
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
      fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode ?? 0o666);
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
   * Appends `bytes` at `offset`. Returns the new received count.
   * Throws out_of_range when `offset` ≠ bytes received (metadata `expected_offset`) or the write
   * would pass `expectedSize`; not_found for an unknown/expired id; resource_exhausted on ENOSPC
   * (the session stays; nothing past `received` counts).
   */
  async write(uploadId: string, offset: number, bytes: Uint8Array): Promise<{ received: number }> {
    checkInt("offset", offset, 0, Number.MAX_SAFE_INTEGER);
    return this.#run(uploadId, async (s) => {
      if (offset !== s.received) {
        throw new AgentdError(
          "out_of_range",
          `upload ${s.id} expects offset ${s.received}, got ${offset}`,
          { upload_id: s.id, expected_offset: String(s.received) },
          "OFFSET_OUT_OF_RANGE",
        );
      }
      if (s.expectedSize !== undefined && s.received + bytes.byteLength > s.expectedSize) {
        throw new AgentdError(
          "out_of_range",
          `upload ${s.id} would exceed its expected size ${s.expectedSize} (received ${s.received}, chunk ${bytes.byteLength})`,
          { upload_id: s.id, expected_offset: String(s.received) },
          "UPLOAD_SIZE_EXCEEDED",
        );
      }
      let done = 0;
      try {
        while (done < bytes.byteLength) {
          const { bytesWritten } = await s.fh.write(bytes, done, bytes.byteLength - done, s.received + done);
          done += bytesWritten;
        }
      } catch (err) {
        throw mapFsError(err, s.shown);
      }
      // Counted only once fully written: a failed write leaves `received` where it was and the
      // next write at that offset overwrites whatever part landed.
      s.hash.update(bytes);
      s.received += bytes.byteLength;
      return { received: s.received };
    });
  }

  /**
   * Verifies, fsyncs and atomically moves the upload into place; returns the new file's info.
   * Throws failed_precondition when fewer bytes than `expectedSize` arrived (session kept: keep
   * writing) or the target became a directory; invalid_argument for a malformed digest (kept) or
   * a digest mismatch (session discarded, target untouched); already_exists when overwrite=false
   * and the target appeared; permission_denied when the target directory moved out of the
   * workspace. Every failure after the checks discards the session.
   */
  async commit(uploadId: string, opts: CommitOptions = {}): Promise<FileInfo> {
    const want = opts.sha256?.toLowerCase();
    if (want !== undefined && !/^[0-9a-f]{64}$/.test(want)) {
      throw new AgentdError("invalid_argument", `sha256 must be 64 hex digits, got ${JSON.stringify(opts.sha256?.slice(0, 80))}`);
    }
    return this.#run(uploadId, async (s) => {
      if (s.expectedSize !== undefined && s.received !== s.expectedSize) {
        throw new AgentdError(
          "failed_precondition",
          `upload ${s.id} has ${s.received} of ${s.expectedSize} expected bytes`,
          { upload_id: s.id, expected_offset: String(s.received) },
          "UPLOAD_INCOMPLETE",
        );
      }
      try {
        const got = s.hash.copy().digest("hex");
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
        return await toFileInfo(await lstat(s.target), s.target, s.shown);
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
