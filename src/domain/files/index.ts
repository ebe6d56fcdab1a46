// Public surface of the file engine (src/domain/files).
export type { DirWatchServiceOptions, WatchEvent, WatchEventType, WatchOptions, WatchStream } from "./dir-watch.js";
export type { FileInfo, FileType } from "./file-info.js";
export { DEFAULT_READ_CHUNK_SIZE, MAX_READ_CHUNK_SIZE, type FileReadStream, type ReadOptions, type ReadResult } from "./file-reader.js";
export { mapFsError } from "./fs-errors.js";
export { DEFAULT_PAGE_SIZE, MAX_LIST_DEPTH, MAX_PAGE_SIZE, type ListOptions, type ListPage } from "./list-directory.js";
export {
  DEFAULT_MAX_AHEAD_BYTES,
  DEFAULT_MAX_AHEAD_BYTES_TOTAL,
  isUploadTempName,
  type CommitOptions,
  type CommitResult,
  type UploadOptions,
  type UploadSessionInfo,
} from "./upload-sessions.js";
export {
  WorkspaceFiles,
  type MoveOptions,
  type PathScope,
  type RemoveOptions,
  type WorkspaceFilesOptions,
  type WriteFileOptions,
  type WriteSource,
} from "./workspace-files.js";
export { MAX_NAME_BYTES, MAX_PATH_BYTES, resolveWorkspacePath, type ResolvedPath } from "./workspace-path.js";
