// The path policy of the file engine, in one place. Every file operation resolves its path here
// before it touches the file system, and re-checks after opening (see `assertOpenedInside`).
//
// Decisions:
// - Relative paths resolve against the working directory; absolute paths must fall inside one of
//   the roots (the conversation's working directory and the server's workspace base).
// - `..` is applied lexically first (so `a/../b` is `b`), then every symlink on the way is
//   followed by hand, including dangling ones and chains, and the fully resolved path must lie
//   inside a root. A path that does not exist yet is judged by the real path of its longest
//   existing prefix plus the rest, so `linkdir/new.txt` under a symlinked directory is judged by
//   where `linkdir` really points.
// - The domain never URL-decodes: `..%2f..%2fetc` is a literal (odd) file name inside the working
//   directory. The REST gateway decodes a query/path parameter exactly once before calling us.
// - NUL bytes, a component over 255 bytes and a path over 4096 bytes are refused with
//   permission_denied (reason PATH_INVALID), like escapes (reason PATH_OUTSIDE_WORKSPACE), as the
//   issue specifies: the file engine answers every path it will not touch the same way.

import { lstat, readlink, realpath, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, resolve, sep } from "node:path";
import { AgentdError } from "../../errors.js";
import { errnoCode, mapFsError } from "./fs-errors.js";

/** Longest accepted path component, in UTF-8 bytes (NAME_MAX on Linux). */
export const MAX_NAME_BYTES = 255;
/** Longest accepted path, in UTF-8 bytes, before and after resolving against the working dir. */
export const MAX_PATH_BYTES = 4096;
/** Symlinks followed while resolving one path before giving up (MAXSYMLINKS on Linux). */
const MAX_SYMLINK_HOPS = 40;

/** A path that passed the policy. All three forms are absolute and normalised. */
export interface ResolvedPath {
  /** The path as the caller addressed it, made absolute; used in messages and `FileInfo.path`. */
  path: string;
  /**
   * The entry itself: the real parent directory joined with the final name, so a final symlink is
   * NOT followed. Used by stat, remove and move, which act on a link rather than its target.
   */
  entry: string;
  /** Every symlink followed; for a missing path, the real longest existing prefix plus the rest. */
  real: string;
  /** The real path of the root that contains `real`. */
  root: string;
  /** Whether `real` existed when it was resolved. */
  exists: boolean;
}

/** Shortens a caller-supplied path for an error message (a 5000-byte path is not echoed whole). */
export function shownPath(p: string): string {
  return p.length <= 200 ? p : `${p.slice(0, 200)}…`;
}

/** True when `p` is `root` or lies below it. Both must be absolute and normalised. */
export function isInside(root: string, p: string): boolean {
  if (p === root) return true;
  const prefix = root.endsWith(sep) ? root : root + sep;
  return p.startsWith(prefix);
}

function invalidPath(message: string, path: string): AgentdError {
  return new AgentdError("permission_denied", message, { path: shownPath(path) }, "PATH_INVALID");
}

function outside(userPath: string): AgentdError {
  return new AgentdError(
    "permission_denied",
    `path is outside the workspace: ${shownPath(userPath)}`,
    { path: shownPath(userPath) },
    "PATH_OUTSIDE_WORKSPACE",
  );
}

/** Throws permission_denied when `p` has a NUL byte or is too long (per component or in total). */
function checkSyntax(p: string, shown: string): void {
  if (p.includes("\0")) throw invalidPath(`path contains a NUL byte: ${JSON.stringify(shownPath(shown))}`, shown);
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) {
    throw invalidPath(`path is longer than ${MAX_PATH_BYTES} bytes: ${shownPath(shown)}`, shown);
  }
  for (const part of p.split("/")) {
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) {
      throw invalidPath(`path component is longer than ${MAX_NAME_BYTES} bytes: ${shownPath(part)}`, shown);
    }
  }
}

/**
 * Resolves every symlink in the absolute path `abs` the way the kernel would, without requiring
 * the path to exist: once a component is missing the rest is appended lexically. Dangling
 * symlinks are followed to where they point. Throws failed_precondition on a symlink loop.
 */
export async function resolveReal(abs: string): Promise<{ real: string; exists: boolean }> {
  try {
    return { real: await realpath(abs), exists: true };
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ELOOP") throw mapFsError(err, abs);
    if (code !== "ENOENT" && code !== "ENOTDIR" && code !== "EACCES") throw mapFsError(err, abs);
  }
  // Slow path: walk component by component; `queue` holds the names still to resolve.
  const queue = abs.split("/").filter((s) => s !== "");
  let cur = "/";
  let exists = true;
  let hops = 0;
  while (queue.length > 0) {
    const name = queue.shift() as string;
    if (name === ".") continue;
    if (name === "..") {
      cur = dirname(cur);
      continue;
    }
    const next = join(cur, name);
    if (!exists) {
      cur = next;
      continue;
    }
    let isLink = false;
    try {
      isLink = (await lstat(next)).isSymbolicLink();
    } catch (err) {
      const code = errnoCode(err);
      if (code !== "ENOENT" && code !== "ENOTDIR" && code !== "EACCES") throw mapFsError(err, abs);
      // Missing (or not traversable): the kernel cannot go further either; the rest is lexical.
      exists = false;
      cur = next;
      continue;
    }
    if (!isLink) {
      cur = next;
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw mapFsError(Object.assign(new Error("ELOOP"), { code: "ELOOP" }), abs);
    const target = await readlink(next);
    if (isAbsolute(target)) cur = "/";
    queue.unshift(...target.split("/").filter((s) => s !== ""));
  }
  return { real: cur, exists };
}

/**
 * Applies the path policy: resolves `userPath` against `workingDir` (when relative) and the
 * `roots`, following symlinks.
 *
 * Returns the resolved forms (see ResolvedPath).
 * Throws permission_denied when the path (or a symlink on it, or the entry's parent) leads outside
 * every root, or the path has a NUL byte / an over-long component or total; invalid_argument when
 * `userPath` is empty or not a string; failed_precondition on a symlink loop.
 */
export async function resolveWorkspacePath(
  roots: readonly string[],
  workingDir: string,
  userPath: string,
): Promise<ResolvedPath> {
  if (typeof userPath !== "string" || userPath === "") {
    throw new AgentdError("invalid_argument", "path must be a non-empty string");
  }
  checkSyntax(userPath, userPath);
  const lexical = isAbsolute(userPath) ? resolve(userPath) : resolve(workingDir, userPath);
  checkSyntax(lexical, userPath);

  const realRoots = await Promise.all(roots.map(async (r) => (await resolveReal(resolve(r))).real));
  const { real, exists } = await resolveReal(lexical);
  const root = realRoots.find((r) => isInside(r, real));
  if (root === undefined) throw outside(userPath);

  let entry = real;
  if (lexical !== "/") {
    entry = join((await resolveReal(dirname(lexical))).real, basename(lexical));
    // `out/x` where `out` leaves the workspace and `x` links back in: the target is inside but
    // the entry is not, and stat/remove/move act on the entry.
    if (!realRoots.some((r) => isInside(r, entry))) throw outside(userPath);
  }
  return { path: lexical, entry, real, root, exists };
}

/**
 * TOCTOU re-check after open: `realPath` was opened and fstat'ed as `opened`; verifies the path
 * still resolves inside `root` to that very inode. Throws permission_denied otherwise (a directory
 * on the way was swapped for a symlink between the policy check and the open).
 */
export async function assertOpenedInside(
  root: string,
  realPath: string,
  opened: { dev: number; ino: number },
  userPath: string,
): Promise<void> {
  const again = await resolveReal(realPath);
  if (!again.exists || !isInside(root, again.real)) throw outside(userPath);
  const st = await stat(again.real);
  if (st.dev !== opened.dev || st.ino !== opened.ino) throw outside(userPath);
}
