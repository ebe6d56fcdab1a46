// Resolving the optional `path` argument of the search tools.

import { stat } from "node:fs/promises";
import { resolve } from "node:path";

/**
 * The absolute directory to search: `path` resolved against `workingDir` (default: the working
 * directory itself), or an error message for the LLM when it is not an existing directory.
 */
export async function resolveSearchDir(
  path: string | null,
  workingDir: string,
): Promise<{ dir: string } | { error: string }> {
  const dir = resolve(workingDir, path ?? ".");
  try {
    if ((await stat(dir)).isDirectory()) return { dir };
  } catch {
    // reported below
  }
  return { error: `Search path '${path ?? dir}' is not a valid directory.` };
}
