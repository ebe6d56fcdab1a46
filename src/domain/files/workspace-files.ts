// The file service of agentd: the domain core behind the File RPCs, the REST upload/download
// routes and the agent's file tools. Every path goes through the path policy
// (workspace-path.ts); every byte written goes through an upload session (upload-sessions.ts).

import { link, lstat, rename, rm, rmdir, unlink } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { AgentdError } from "../../errors.js";
import { DirWatchService, type DirWatchServiceOptions, type WatchOptions, type WatchStream } from "./dir-watch.js";
import { type FileInfo, toFileInfo } from "./file-info.js";
import { FileReadStream, type ReadOptions } from "./file-reader.js";
import { errnoCode, mapFsError } from "./fs-errors.js";
import { listDirectory, type ListOptions, type ListPage } from "./list-directory.js";
import { makeDirs } from "./make-dirs.js";
import { type CommitOptions, type CommitResult, type UploadOptions, type UploadSessionInfo, UploadSessions } from "./upload-sessions.js";
import { isInside, resolveReal, resolveWorkspacePath, type ResolvedPath } from "./workspace-path.js";

export interface WorkspaceFilesOptions {
  /** Absolute directories every path must resolve into (e.g. the workspace base). Need not exist yet. */
  roots: readonly string[];
  /** Where relative paths resolve when a call names no `workingDir`; also a root. Absolute. */
  defaultWorkingDir: string;
  /** An upload session with no operation for this long is discarded with its temp file. */
  uploadIdleTimeoutMs: number;
  /** ms since the epoch; default Date.now. Drives upload expiry and watch event times. */
  clock?: () => number;
  /** Open upload sessions at most (default 256). */
  maxUploads?: number;
  /** Window ahead of an upload's received prefix in which chunks are accepted (default 32 MiB). */
  uploadMaxAheadBytes?: number;
  /** Bytes of out-of-order chunks held over all uploads (default 256 MiB). */
  uploadMaxAheadBytesTotal?: number;
  /** Tuning of directory watches (buffer size, linger, polling); see DirWatchServiceOptions. */
  watch?: Omit<DirWatchServiceOptions, "clock">;
}

/**
 * Per-call scope. `workingDir` is a conversation's working directory: relative paths resolve
 * against it and it is an extra root for the call. It must come from trusted server state (the
 * conversation record), never from the request, since it widens what the call may touch.
 */
export interface PathScope {
  workingDir?: string;
}

export interface MoveOptions extends PathScope {
  /** Replace an existing destination (default false → already_exists). */
  overwrite?: boolean;
}

export interface RemoveOptions extends PathScope {
  /** Required to remove a non-empty directory (default false → failed_precondition). */
  recursive?: boolean;
}

export interface WriteFileOptions extends UploadOptions, PathScope {
  /** Verified at commit like CommitOptions.sha256. */
  sha256?: string;
  /** Aborting stops the write; the upload is discarded and the target left untouched. */
  signal?: AbortSignal;
}

/** Bytes for writeFile: a whole buffer/string, or a stream of chunks (e.g. a Node Readable). */
export type WriteSource = Uint8Array | string | AsyncIterable<Uint8Array | string>;

/**
 * Chunk writes streamUpload keeps in flight when it may overlap them: two (measured on a 1 GiB
 * UploadFileStream of 1 MiB messages: one 145-175 MiB/s, two 160-200, three 158). The
 * second is one chunk ahead of the received prefix, far inside the session's window.
 */
const STREAM_WRITES_IN_FLIGHT = 2;

function canceled(what: string): AgentdError {
  return new AgentdError("canceled", `${what} was canceled`);
}

function toBytes(chunk: Uint8Array | string): Uint8Array {
  return typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
}

/**
 * File operations confined to the workspace roots. One instance per server; it owns the upload
 * session table and the directory watches, released by `close()`.
 */
export class WorkspaceFiles {
  readonly #roots: readonly string[];
  readonly #defaultWorkingDir: string;
  readonly #uploads: UploadSessions;
  readonly #watches: DirWatchService;
  #closed = false;

  constructor(opts: WorkspaceFilesOptions) {
    if (opts.roots.some((r) => !isAbsolute(r)) || !isAbsolute(opts.defaultWorkingDir)) {
      throw new AgentdError("invalid_argument", "file service roots and working directory must be absolute paths");
    }
    this.#defaultWorkingDir = resolve(opts.defaultWorkingDir);
    this.#roots = [...opts.roots.map((r) => resolve(r)), this.#defaultWorkingDir];
    const clock = opts.clock ?? Date.now;
    const uploadOpts: ConstructorParameters<typeof UploadSessions>[0] = { idleTimeoutMs: opts.uploadIdleTimeoutMs, clock };
    if (opts.maxUploads !== undefined) uploadOpts.maxSessions = opts.maxUploads;
    if (opts.uploadMaxAheadBytes !== undefined) uploadOpts.maxAheadBytes = opts.uploadMaxAheadBytes;
    if (opts.uploadMaxAheadBytesTotal !== undefined) uploadOpts.maxAheadBytesTotal = opts.uploadMaxAheadBytesTotal;
    this.#uploads = new UploadSessions(uploadOpts);
    this.#watches = new DirWatchService({ ...opts.watch, clock });
  }

  /**
   * Applies the path policy (see resolveWorkspacePath) with this service's roots and the scope.
   * Throws permission_denied / invalid_argument as described there.
   */
  async resolve(path: string, scope: PathScope = {}): Promise<ResolvedPath> {
    if (this.#closed) throw new AgentdError("unavailable", "file service is closed");
    const wd = scope.workingDir;
    if (wd !== undefined && !isAbsolute(wd)) {
      throw new AgentdError("invalid_argument", `working directory must be absolute, got ${wd}`);
    }
    const roots = wd === undefined ? this.#roots : [...this.#roots, resolve(wd)];
    return resolveWorkspacePath(roots, wd === undefined ? this.#defaultWorkingDir : resolve(wd), path);
  }

  /**
   * Metadata of the entry at `path` (a final symlink is described, not followed).
   * Throws not_found, permission_denied.
   */
  async stat(path: string, scope: PathScope = {}): Promise<FileInfo> {
    const r = await this.resolve(path, scope);
    try {
      return await toFileInfo(await lstat(r.entry), r.entry, r.path);
    } catch (err) {
      throw mapFsError(err, r.path);
    }
  }

  /**
   * One page of the directory at `path` (see list-directory.ts for order and cursors).
   * Throws not_found, failed_precondition (not a directory), invalid_argument, permission_denied.
   */
  async list(path: string, opts: ListOptions & PathScope = {}): Promise<ListPage> {
    return listDirectory(await this.resolve(path, opts), opts);
  }

  /**
   * `mkdir -p`: creates the directory and missing parents; succeeds if it exists already.
   * Throws failed_precondition when it or a parent exists and is not a directory.
   */
  async mkdir(path: string, scope: PathScope = {}): Promise<FileInfo> {
    const r = await this.resolve(path, scope);
    await makeDirs(r.real, r.path);
    try {
      return await toFileInfo(await lstat(r.real), r.real, r.path);
    } catch (err) {
      throw mapFsError(err, r.path);
    }
  }

  /**
   * Renames `from` to `to` (a symlink is moved, not its target); the destination's parent must
   * exist. Without `overwrite` an existing destination is never replaced (files: atomically, via
   * link+unlink). Throws not_found, already_exists, failed_precondition (file over directory or
   * the reverse, non-empty directory, across file systems), invalid_argument (a directory into
   * itself), permission_denied (outside, or a workspace root).
   */
  async move(from: string, to: string, opts: MoveOptions = {}): Promise<FileInfo> {
    const src = await this.resolve(from, opts);
    const dst = await this.resolve(to, opts);
    await this.#refuseRoot(src, "move", opts);
    await this.#refuseRoot(dst, "replace", opts);
    let srcStat;
    try {
      srcStat = await lstat(src.entry);
    } catch (err) {
      throw mapFsError(err, src.path);
    }
    if (src.entry !== dst.entry) {
      if (srcStat.isDirectory() && isInside(src.entry, dst.entry)) {
        throw new AgentdError("invalid_argument", `cannot move directory ${src.path} into itself (${dst.path})`);
      }
      try {
        if (opts.overwrite === true) await rename(src.entry, dst.entry);
        else await this.#moveNoReplace(src, dst, srcStat.isDirectory());
      } catch (err) {
        if (errnoCode(err) === "ENOENT") throw mapFsError(err, dirname(dst.path));
        throw mapFsError(err, dst.path);
      }
    }
    try {
      return await toFileInfo(await lstat(dst.entry), dst.entry, dst.path);
    } catch (err) {
      throw mapFsError(err, dst.path);
    }
  }

  /**
   * Removes a file, symlink (not its target) or directory. A non-empty directory needs
   * `recursive`. Throws not_found, failed_precondition (non-empty), permission_denied (outside,
   * or a workspace root).
   */
  async remove(path: string, opts: RemoveOptions = {}): Promise<void> {
    const r = await this.resolve(path, opts);
    await this.#refuseRoot(r, "remove", opts);
    try {
      const st = await lstat(r.entry);
      if (!st.isDirectory()) await unlink(r.entry);
      else if (opts.recursive === true) await rm(r.entry, { recursive: true });
      else await rmdir(r.entry);
    } catch (err) {
      if (errnoCode(err) === "ENOTEMPTY" || errnoCode(err) === "EEXIST") {
        throw new AgentdError("failed_precondition", `directory not empty: ${r.path} (remove it with recursive)`, { path: r.path });
      }
      throw mapFsError(err, r.path);
    }
  }

  /**
   * Opens a download of `path` (symlinks followed) from `offset` for `length` bytes; see
   * FileReadStream for backpressure, the final sha256 and closing. Throws not_found,
   * failed_precondition (a directory or not a regular file), out_of_range, permission_denied.
   */
  async read(path: string, opts: ReadOptions & PathScope = {}): Promise<FileReadStream> {
    return FileReadStream.open(await this.resolve(path, opts), path, opts);
  }

  /** Starts an upload session to `path`; see UploadSessions.create. */
  async createUpload(path: string, opts: UploadOptions & PathScope = {}): Promise<UploadSessionInfo> {
    return this.#uploads.create(await this.resolve(path, opts), opts);
  }

  /** State of an open upload (e.g. to learn the offset to resume at). Throws not_found. */
  getUpload(uploadId: string): UploadSessionInfo {
    return this.#uploads.get(uploadId);
  }

  /**
   * Writes a chunk at `offset` (at the received prefix, or ahead of it within the window; retries
   * are idempotent). Resolves with the received prefix. See UploadSessions.write.
   */
  async writeUpload(uploadId: string, offset: number, bytes: Uint8Array): Promise<{ received: number }> {
    return this.#uploads.write(uploadId, offset, bytes);
  }

  /** Verifies and atomically installs the upload; returns its info and sha256. See UploadSessions.commit. */
  async commitUpload(uploadId: string, opts: CommitOptions = {}): Promise<CommitResult> {
    return this.#uploads.commit(uploadId, opts);
  }

  /** Discards an upload and its temp file. Throws not_found. */
  async abortUpload(uploadId: string): Promise<void> {
    return this.#uploads.abort(uploadId);
  }

  /** Discards idle uploads now (also done on a timer); returns how many. */
  async sweepExpiredUploads(): Promise<number> {
    return this.#uploads.sweep();
  }

  /**
   * Writes a whole file through an upload session: atomic, parents created, overwrite by default.
   * Pulls the next chunk of a stream only after the previous one is on disk. On any failure
   * (including the signal) the session is aborted and the target is untouched. Returns the new
   * file's info and the sha256 of the bytes written.
   */
  async writeFile(path: string, source: WriteSource, opts: WriteFileOptions = {}): Promise<CommitResult> {
    const { signal } = opts;
    if (signal?.aborted) throw canceled(`write of ${path}`);
    const session = await this.createUpload(path, opts);
    try {
      const chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array> =
        typeof source === "string" || source instanceof Uint8Array ? [toBytes(source)] : source;
      // Throws canceled itself when the signal aborts (also right after the last chunk).
      await this.streamUpload(session.uploadId, 0, chunks, signal === undefined ? {} : { signal });
      const commit: CommitOptions = {};
      if (opts.sha256 !== undefined) commit.sha256 = opts.sha256;
      return await this.#uploads.commit(session.uploadId, commit);
    } catch (err) {
      await this.#uploads.abort(session.uploadId).catch(() => undefined); // already gone after a failed commit
      throw err;
    }
  }

  /**
   * Writes a stream of chunks into an open upload session, each right after the previous one, the
   * first at `offset` (what WriteUpload accepts there: normally the received prefix; bytes already
   * received are compared). Resolves with the received prefix once every chunk is on disk.
   * Without `overlap`, a chunk is pulled only once the previous one is on disk. With it, the
   * next chunk is pulled while earlier ones are being written (a network source keeps arriving
   * during disk writes; at most STREAM_WRITES_IN_FLIGHT writes at once), so the source must
   * leave a chunk's bytes unchanged until two more chunks have been pulled. A source that ends
   * while `signal` is aborted counts as canceled (but a source that ends cleanly is no proof
   * that its producer finished: Node ends the body of a reset HTTP/2 request like a complete
   * one, so network protocols need an explicit end marker). On failure the session stays open
   * at its received prefix; writes in flight are waited for first.
   */
  async streamUpload(
    uploadId: string,
    offset: number,
    chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>,
    opts: { overlap?: boolean; signal?: AbortSignal } = {},
  ): Promise<number> {
    const { signal } = opts;
    let next = offset;
    const depth = opts.overlap === true ? STREAM_WRITES_IN_FLIGHT : 1;
    const writing: Promise<unknown>[] = [];
    let failed = false;
    try {
      for await (const chunk of chunks) {
        if (signal?.aborted) throw canceled(`upload ${uploadId}`);
        if (failed) break; // no write past a failed one: its error is thrown below
        const bytes = toBytes(chunk);
        if (bytes.byteLength === 0) continue;
        const start = next;
        const previous = writing.at(-1);
        // A chunk ahead of the prefix may meet the window limits (a small configured window, or
        // the bytes waiting ahead over all uploads): it then waits for the write before it.
        const write = this.#uploads.write(uploadId, start, bytes).catch(async (err: unknown) => {
          if (previous === undefined || !(err instanceof AgentdError) || err.reason !== "UPLOAD_WINDOW_EXCEEDED") throw err;
          await previous;
          return this.#uploads.write(uploadId, start, bytes);
        });
        write.catch(() => (failed = true)); // awaited in order below, possibly after a later write failed
        writing.push(write);
        next += bytes.byteLength;
        if (writing.length >= depth) await writing.shift();
      }
    } finally {
      // Writes still in flight when the source failed: wait for them, their outcome is the session's.
      await Promise.allSettled(writing);
    }
    await Promise.all(writing);
    if (signal?.aborted) throw canceled(`upload ${uploadId}`);
    return this.#uploads.get(uploadId).received;
  }

  /**
   * Watches the directory at `path`; resolves once the watch is established. See DirWatchService.
   * Throws not_found, failed_precondition (not a directory), out_of_range (cursor), permission_denied.
   */
  async watch(path: string, opts: WatchOptions & PathScope = {}): Promise<WatchStream> {
    return this.#watches.watch(await this.resolve(path, opts), opts);
  }

  /** Latest watch-event seq handed out (0 before the first). */
  get latestWatchSeq(): number {
    return this.#watches.latestSeq;
  }

  /** Open upload sessions and watched directories (for tests and metrics). */
  get activity(): { uploads: number; watches: number } {
    return { uploads: this.#uploads.size, watches: this.#watches.activeWatches };
  }

  /** Aborts every upload (temp files removed), ends every watch; later calls fail unavailable. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watches.close();
    await this.#uploads.close();
  }

  async #refuseRoot(r: ResolvedPath, verb: string, scope: PathScope): Promise<void> {
    const roots = scope.workingDir === undefined ? this.#roots : [...this.#roots, resolve(scope.workingDir)];
    const realRoots = await Promise.all(roots.map(async (root) => (await resolveReal(root)).real));
    // Defence in depth for destructive operations: the entry must lie strictly below a root,
    // whatever the policy above concluded.
    if (!realRoots.some((root) => isInside(root, r.entry) && root !== r.entry)) {
      throw new AgentdError("permission_denied", `path is outside the workspace: ${r.path}`, { path: r.path }, "PATH_OUTSIDE_WORKSPACE");
    }
    if (realRoots.includes(r.entry) || r.entry === r.root) {
      throw new AgentdError("permission_denied", `refusing to ${verb} a workspace root: ${r.path}`, { path: r.path }, "PATH_IS_WORKSPACE_ROOT");
    }
  }

  async #moveNoReplace(src: ResolvedPath, dst: ResolvedPath, isDir: boolean): Promise<void> {
    const exists = (): AgentdError => new AgentdError("already_exists", `destination exists: ${dst.path}`, { path: dst.path });
    if (!isDir) {
      try {
        // link(2) refuses an existing name atomically; then drop the old name.
        await link(src.entry, dst.entry);
        await unlink(src.entry);
        return;
      } catch (err) {
        const code = errnoCode(err);
        if (code === "EEXIST") throw exists();
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EMLINK") throw err;
        // No hard links here: fall through to check-then-rename.
      }
    }
    // Directories (and file systems without hard links): check, then rename. A destination
    // created in between by someone else could still be replaced (only if it is an empty dir).
    try {
      await lstat(dst.entry);
      throw exists();
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw err;
    }
    await rename(src.entry, dst.entry);
  }
}
