// Directory listing with opaque cursors.
//
// Order: depth-first, entries of a directory sorted by name in UTF-16 code-unit order
// (`Array.prototype.sort`), each directory followed by its contents, e.g. `a`, `a/x`, `b`. The
// order is stable between calls, so a cursor (the relative path of the last entry served) stays
// valid while the directory changes: entries created behind the cursor are not served, entries
// removed are skipped, nothing is served twice.
// Symlinks are listed (type symlink) but never descended into. Upload temp files are never
// listed; other dot-files only with `includeHidden` (hidden directories are not descended either).

import type { Dirent } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { AgentdError } from "../../errors.js";
import { entryInfo, type FileInfo } from "./file-info.js";
import { errnoCode, mapFsError } from "./fs-errors.js";
import { isUploadTempName } from "./upload-sessions.js";
import type { ResolvedPath } from "./workspace-path.js";

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
export const MAX_LIST_DEPTH = 32;

export interface ListOptions {
  /** `nextCursor` of the previous page; must come from the same path, depth and includeHidden. */
  cursor?: string;
  /** Entries per page, 1 … 1000; default 100. */
  pageSize?: number;
  /** 1 = direct children (default), 2 = also grandchildren, … up to 32. */
  depth?: number;
  /** List names starting with "." (default false). */
  includeHidden?: boolean;
}

export interface ListPage {
  entries: FileInfo[];
  /** Present when more entries may follow; pass it back as `cursor`. */
  nextCursor?: string;
}

interface CursorBody {
  v: 1;
  p: string;
  d: number;
  h: boolean;
  a: string[];
}

function encodeCursor(body: CursorBody): string {
  return Buffer.from(JSON.stringify(body)).toString("base64url");
}

function badCursor(why: string): AgentdError {
  return new AgentdError("invalid_argument", `invalid page cursor: ${why}`, {}, "INVALID_PAGE_TOKEN");
}

function decodeCursor(cursor: string, path: string, depth: number, hidden: boolean): string[] {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw badCursor("not a cursor issued by this server");
  }
  const b = body as Partial<CursorBody> | null;
  if (b === null || typeof b !== "object" || b.v !== 1 || !Array.isArray(b.a) || b.a.length === 0 || !b.a.every((x) => typeof x === "string")) {
    throw badCursor("not a cursor issued by this server");
  }
  if (b.p !== path || b.d !== depth || b.h !== hidden) {
    throw badCursor("it was issued for a different path, depth or includeHidden");
  }
  return b.a;
}

function checkInt(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new AgentdError("invalid_argument", `${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}

/**
 * Lists `resolved` (a directory, or a symlink to one). Throws not_found, failed_precondition
 * (not a directory), invalid_argument (bad options or cursor).
 */
export async function listDirectory(resolved: ResolvedPath, opts: ListOptions = {}): Promise<ListPage> {
  checkInt("pageSize", opts.pageSize, 1, MAX_PAGE_SIZE);
  checkInt("depth", opts.depth, 1, MAX_LIST_DEPTH);
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  const depth = opts.depth ?? 1;
  const hidden = opts.includeHidden ?? false;
  const after = opts.cursor === undefined || opts.cursor === "" ? undefined : decodeCursor(opts.cursor, resolved.path, depth, hidden);

  try {
    const st = await lstat(resolved.real);
    if (!st.isDirectory()) {
      throw new AgentdError("failed_precondition", `not a directory: ${resolved.path}`, { path: resolved.path });
    }
  } catch (err) {
    throw mapFsError(err, resolved.path);
  }

  const entries: FileInfo[] = [];
  const rels: string[][] = [];
  // Pull one entry beyond the page: a next cursor is returned only if something follows.
  for await (const item of walk(resolved.real, [], depth, hidden, after)) {
    if (entries.length === pageSize) {
      const last = rels[rels.length - 1] as string[];
      return { entries, nextCursor: encodeCursor({ v: 1, p: resolved.path, d: depth, h: hidden, a: last }) };
    }
    const info = await entryInfo(join(resolved.real, ...item), join(resolved.path, ...item));
    if (info === undefined) continue; // removed since readdir
    entries.push(info);
    rels.push(item);
  }
  return { entries };
}

/**
 * Yields relative paths (as component arrays) in listing order, strictly after `after` when set.
 * `after` constrains only the directories on its own path; once a name sorts past it, the rest
 * of the walk is unconstrained.
 */
async function* walk(
  absDir: string,
  rel: string[],
  depth: number,
  hidden: boolean,
  after: string[] | undefined,
): AsyncGenerator<string[]> {
  let dirents: Dirent[];
  try {
    dirents = await readdir(absDir, { withFileTypes: true });
  } catch (err) {
    // A subdirectory that vanished or is unreadable is listed without its contents.
    const code = errnoCode(err);
    if (rel.length > 0 && (code === "ENOENT" || code === "ENOTDIR" || code === "EACCES")) return;
    throw mapFsError(err, absDir);
  }
  const level = rel.length;
  const names = dirents
    .filter((d) => !isUploadTempName(d.name) && (hidden || !d.name.startsWith(".")))
    .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  let bound = after;
  for (const d of names) {
    const childRel = [...rel, d.name];
    const canDescend = d.isDirectory() && level + 1 < depth;
    if (bound !== undefined) {
      const c = bound[level] as string;
      if (d.name < c) continue;
      if (d.name === c) {
        // The cursor entry (skip it, continue inside it) or a directory on the cursor's path.
        const innerBound = bound.length > level + 1 ? bound : undefined;
        if (canDescend) yield* walk(`${absDir}/${d.name}`, childRel, depth, hidden, innerBound);
        bound = undefined;
        continue;
      }
      bound = undefined;
    }
    yield childRel;
    if (canDescend) yield* walk(`${absDir}/${d.name}`, childRel, depth, hidden, undefined);
  }
}
