import type { Stats } from "node:fs";
import { lstat, readlink } from "node:fs/promises";
import { basename } from "node:path";
import { errnoCode } from "./fs-errors.js";

/** What an entry is. `other` covers FIFOs, sockets and devices (never read or written). */
export type FileType = "file" | "directory" | "symlink" | "other";

/** Metadata of one file-system entry, as returned by stat, list, mkdir, move and commit. */
export interface FileInfo {
  /** Final path component. */
  name: string;
  /** Absolute path as the caller addressed it (symlinks on the way are not expanded). */
  path: string;
  type: FileType;
  /** Size in bytes (for a symlink, the length of its target string, as lstat reports). */
  size: number;
  /** Permission bits, `st_mode & 0o7777`. */
  mode: number;
  /** Last modification time, milliseconds since the epoch. */
  mtimeMs: number;
  /** The link's target exactly as stored (may be relative); only when `type` is symlink. */
  symlinkTarget?: string;
}

export function fileTypeOf(st: Stats): FileType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  return "other";
}

/** Builds a FileInfo from lstat data; reads the link target when `st` is a symlink. */
export async function toFileInfo(st: Stats, realEntry: string, shownPath: string): Promise<FileInfo> {
  const info: FileInfo = {
    name: basename(shownPath),
    path: shownPath,
    type: fileTypeOf(st),
    size: st.size,
    mode: st.mode & 0o7777,
    mtimeMs: Math.floor(st.mtimeMs),
  };
  if (info.type === "symlink") {
    try {
      info.symlinkTarget = await readlink(realEntry);
    } catch (err) {
      // Replaced by a non-link between lstat and readlink: report what lstat saw, minus target.
      if (errnoCode(err) !== "EINVAL" && errnoCode(err) !== "ENOENT") throw err;
    }
  }
  return info;
}

/** lstat + toFileInfo; undefined when the entry vanished in between (listing races). */
export async function entryInfo(realEntry: string, shownPath: string): Promise<FileInfo | undefined> {
  let st: Stats;
  try {
    st = await lstat(realEntry);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return undefined;
    throw err;
  }
  return toFileInfo(st, realEntry, shownPath);
}
