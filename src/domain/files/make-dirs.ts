import { lstat, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { AgentdError } from "../../errors.js";
import { errnoCode, mapFsError } from "./fs-errors.js";

function notADirectory(shown: string): AgentdError {
  return new AgentdError("failed_precondition", `path exists and is not a directory: ${shown}`, { path: shown });
}

/**
 * `mkdir -p` for a policy-checked, fully resolved path `real`: creates each missing component
 * one by one below the longest existing prefix (never through a symlink that appears later: a
 * component that exists but is not a directory stops the walk). Idempotent.
 *
 * Throws failed_precondition when `real` or a component on the way exists and is not a directory,
 * permission_denied / resource_exhausted as mapped from the file system.
 */
export async function makeDirs(real: string, shown: string): Promise<void> {
  // Walk up to the longest existing prefix.
  const missing: string[] = [];
  let cur = real;
  for (;;) {
    try {
      const st = await lstat(cur);
      if (!st.isDirectory()) throw notADirectory(shown);
      break;
    } catch (err) {
      if (err instanceof AgentdError) throw err;
      const code = errnoCode(err);
      if (code === "ENOTDIR") throw notADirectory(shown);
      if (code !== "ENOENT") throw mapFsError(err, shown);
      const parent = dirname(cur);
      if (parent === cur) throw mapFsError(err, shown);
      missing.push(cur.slice(parent === "/" ? 1 : parent.length + 1));
      cur = parent;
    }
  }
  for (const name of missing.reverse()) {
    cur = join(cur, name);
    try {
      await mkdir(cur);
    } catch (err) {
      const code = errnoCode(err);
      if (code === "EEXIST") {
        // Lost a race with another creator: fine if what is there now is a real directory.
        const st = await lstat(cur);
        if (st.isDirectory()) continue;
        throw notADirectory(shown);
      }
      if (code === "ENOTDIR") throw notADirectory(shown);
      throw mapFsError(err, shown);
    }
  }
}
