// Running ripgrep (`rg`) for the glob and grep tools. ripgrep walks the tree in native code,
// honours .gitignore and skips hidden files, which is what an agent wants in a repository; a
// JavaScript tree walk would be slower by orders of magnitude on large trees. When rg is missing
// the tools report themselves unusable instead of falling back to something slow.
//
// rg runs with the search directory as its cwd and no path argument, because that is the only
// way its `--glob` patterns containing a slash match relative to the search directory; the
// relative paths it prints are made absolute here. `--no-config` keeps a user's RIPGREP_CONFIG_PATH
// from changing the results; `--sortr=modified` puts the newest files first.

import { spawn } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { join } from "node:path";

/** Where rg is looked for when no explicit path is configured. */
export const RIPGREP_CANDIDATES = ["/usr/bin/rg", "/usr/local/bin/rg", "/opt/homebrew/bin/rg", "/bin/rg"];

/** Results returned by a search tool at most. */
export const MAX_SEARCH_RESULTS = 100;

/** A search is stopped after this long (the agent gets an error telling it to narrow the search). */
export const SEARCH_TIMEOUT_MS = 60_000;

/** The executable ripgrep: `explicit` if given and executable, else the first candidate found. */
export function findRipgrep(explicit?: string): string | undefined {
  const candidates = explicit !== undefined ? [explicit] : RIPGREP_CANDIDATES;
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

export interface RipgrepResult {
  /** Absolute paths, in rg's order (newest first), at most `limit`. */
  paths: string[];
  /** How many paths rg printed in total. */
  total: number;
  /** rg exit code: 0 = results, 1 = none, 2 = error (possibly with partial results). */
  exitCode: number;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs `rg <args>` in `cwd` and collects the printed paths (one per line). Never rejects for a
 * non-zero exit; rejects only when rg cannot be spawned. Aborting `signal` kills rg.
 */
export function runRipgrep(
  rgPath: string,
  args: string[],
  opts: { cwd: string; signal: AbortSignal; limit?: number; timeoutMs?: number },
): Promise<RipgrepResult> {
  const limit = opts.limit ?? MAX_SEARCH_RESULTS;
  return new Promise((resolve, reject) => {
    const child = spawn(rgPath, ["--no-config", ...args], { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    const paths: string[] = [];
    let total = 0;
    let partial = "";
    let stderr = "";
    let timedOut = false;
    const take = (line: string): void => {
      if (line === "") return;
      total++;
      if (paths.length < limit) paths.push(join(opts.cwd, line));
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) take(line);
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      if (stderr.length < 8192) stderr += chunk;
    });
    const kill = (): void => {
      child.kill("SIGKILL");
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, opts.timeoutMs ?? SEARCH_TIMEOUT_MS);
    opts.signal.addEventListener("abort", kill, { once: true });
    child.on("error", (err) => {
      clearTimeout(timer);
      opts.signal.removeEventListener("abort", kill);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      opts.signal.removeEventListener("abort", kill);
      take(partial);
      resolve({ paths, total, exitCode: code ?? 2, stderr: stderr.trim(), timedOut });
    });
  });
}
