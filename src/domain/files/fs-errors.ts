import { AgentdError } from "../../errors.js";

/** The `code` of a Node system error (`ENOENT`, …), or undefined for anything else. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/**
 * Translates a Node `fs` error about `path` into the domain error a client sees.
 *
 * ENOENT → not_found, ENOTDIR/EISDIR/ENOTEMPTY/ELOOP/EXDEV/EBUSY/ENXIO → failed_precondition,
 * EACCES/EPERM/EROFS → permission_denied, ENOSPC/EDQUOT/EMFILE/ENFILE → resource_exhausted,
 * EEXIST → already_exists, ENAMETOOLONG/EINVAL → invalid_argument. An AgentdError passes through
 * unchanged; any other error is returned as is, so the RPC layer reports it as `internal` with a
 * correlation id (its message never reaches a client).
 */
export function mapFsError(err: unknown, path: string): unknown {
  if (err instanceof AgentdError) return err;
  const code = errnoCode(err);
  const meta = { path };
  switch (code) {
    case "ENOENT":
      return new AgentdError("not_found", `file not found: ${path}`, meta, "FILE_NOT_FOUND");
    case "ENOTDIR":
      return new AgentdError("failed_precondition", `not a directory: ${path}`, meta);
    case "EISDIR":
      return new AgentdError("failed_precondition", `is a directory: ${path}`, meta);
    case "ENOTEMPTY":
      return new AgentdError("failed_precondition", `directory not empty: ${path}`, meta);
    case "ELOOP":
      return new AgentdError("failed_precondition", `too many levels of symbolic links: ${path}`, meta);
    case "EXDEV":
      return new AgentdError("failed_precondition", `cannot move across file systems: ${path}`, meta);
    case "ENXIO":
    case "ENODEV":
      return new AgentdError("failed_precondition", `not a regular file: ${path}`, meta);
    case "EBUSY":
      return new AgentdError("failed_precondition", `resource busy: ${path}`, meta);
    case "EACCES":
    case "EPERM":
      return new AgentdError("permission_denied", `permission denied: ${path}`, meta);
    case "EROFS":
      return new AgentdError("permission_denied", `read-only file system: ${path}`, meta);
    case "ENOSPC":
    case "EDQUOT":
      return new AgentdError("resource_exhausted", `no space left on device writing ${path}`, meta);
    case "EMFILE":
    case "ENFILE":
      return new AgentdError("resource_exhausted", `too many open files handling ${path}`, meta);
    case "EEXIST":
      return new AgentdError("already_exists", `file already exists: ${path}`, meta);
    case "ENAMETOOLONG":
      return new AgentdError("invalid_argument", `file name too long: ${path}`, meta);
    case "EINVAL":
      return new AgentdError("invalid_argument", `invalid file operation on ${path}`, meta);
    default:
      return err;
  }
}
