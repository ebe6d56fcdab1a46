// What the glob and grep tools share: ripgrep located once, the search directory resolved inside
// the workspace, one `rg` run that lists paths newest-modified first, and the OpenHands-shaped
// answer — an error observation for a bad path, a timeout or a ripgrep failure, else the paths
// (at most MAX_SEARCH_RESULTS) with a one-line summary and a hint when more matched.

import { AgentdError } from "../agentd-error.js";
import { textContent } from "../text.js";
import type { Action, Content, JsonSchemaObject, Observation, Tool, ToolExecutionContext } from "../types.js";
import { MAX_SEARCH_RESULTS, findRipgrep, runRipgrep } from "./ripgrep.js";
import { resolveSearchDir } from "./search-path.js";

/** The parts of a search observation the shared code fills in. */
export interface SearchOutcome {
  content: Content[];
  is_error: boolean;
  /** Absolute paths, newest-modified first, at most MAX_SEARCH_RESULTS. */
  paths: string[];
  search_path: string;
  /** True when more than MAX_SEARCH_RESULTS files matched. */
  truncated: boolean;
}

/** How one tool words its answers. */
export interface SearchWording {
  /** The answer when nothing matched. */
  readonly none: string;
  /** What follows "Found N files ", e.g. "matching pattern 'x' in d". */
  readonly found: string;
  /** What to narrow when there are too many results or the search times out. */
  readonly narrowMore: string;
  readonly narrowOnTimeout: string;
}

export abstract class RipgrepSearchTool<A extends Action & { pattern: string; path: string | null }, O extends Observation> implements Tool<A, O> {
  abstract readonly name: string;
  abstract readonly description: string;
  abstract readonly parameters: JsonSchemaObject;
  readonly readOnly = true;
  readonly #rg: string | undefined;

  /** @param ripgrepPath rg executable; default: the first of RIPGREP_CANDIDATES that exists. */
  constructor(ripgrepPath?: string) {
    this.#rg = findRipgrep(ripgrepPath);
  }

  isUsable(): boolean {
    return this.#rg !== undefined;
  }

  abstract parseAction(args: unknown): A;

  /** ripgrep's arguments for the action (the search runs in the resolved directory). */
  protected abstract rgArgs(action: A): string[];
  protected abstract wording(action: A, dir: string): SearchWording;
  protected abstract observation(action: A, outcome: SearchOutcome): O;

  async execute(action: A, ctx: ToolExecutionContext): Promise<O> {
    if (this.#rg === undefined) {
      throw new AgentdError("failed_precondition", `the ${this.name} tool is not usable: ripgrep (rg) is not installed`);
    }
    if (ctx.signal.aborted) throw new AgentdError("canceled", `the ${this.name} call was cancelled`);
    const failed = (message: string, searchPath: string): O =>
      this.observation(action, { content: [textContent(message)], is_error: true, paths: [], search_path: searchPath, truncated: false });
    const resolved = await resolveSearchDir(action.path, ctx.workingDir);
    if ("error" in resolved) return failed(resolved.error, action.path ?? ctx.workingDir);
    const dir = resolved.dir;
    const words = this.wording(action, dir);
    const result = await runRipgrep(this.#rg, this.rgArgs(action), { cwd: dir, signal: ctx.signal });
    if (result.timedOut || (result.exitCode === 2 && result.total === 0)) {
      const why = result.timedOut ? `the search took too long; use a narrower ${words.narrowOnTimeout}` : result.stderr || "ripgrep failed";
      return failed(`Error searching for '${action.pattern}' in ${dir}: ${why}`, dir);
    }
    const truncated = result.total > MAX_SEARCH_RESULTS;
    let text: string;
    if (result.total === 0) {
      text = words.none;
    } else {
      text = `Found ${result.total} file${result.total === 1 ? "" : "s"} ${words.found}:\n${result.paths.join("\n")}`;
      if (truncated) {
        text += `\n\n[Only the ${MAX_SEARCH_RESULTS} most recently modified of ${result.total} files are shown. Use a more specific ${words.narrowMore}.]`;
      }
    }
    return this.observation(action, { content: [textContent(text)], is_error: false, paths: result.paths, search_path: dir, truncated });
  }
}
