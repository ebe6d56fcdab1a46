// The `glob` tool (OpenHands GlobAction/GlobObservation): files whose path matches a glob
// pattern, newest-modified first, at most 100, found by `rg --files --glob` (see ripgrep.ts).
// Directories are never listed; .gitignore'd and hidden files are skipped unless the pattern
// names them explicitly.

import { AgentdError } from "../agentd-error.js";
import { ArgReader, withInjectedParams } from "../args.js";
import { textContent } from "../text.js";
import type { Content, JsonSchemaObject, Tool, ToolExecutionContext } from "../types.js";
import { MAX_SEARCH_RESULTS, findRipgrep, runRipgrep } from "./ripgrep.js";
import { resolveSearchDir } from "./search-path.js";

export const GLOB_TOOL_NAME = "glob";

export interface GlobAction {
  kind: "GlobAction";
  pattern: string;
  path: string | null;
}

export interface GlobObservation {
  kind: "GlobObservation";
  content: Content[];
  is_error: boolean;
  /** Absolute paths, newest-modified first, at most 100. */
  files: string[];
  pattern: string;
  search_path: string;
  /** True when more than 100 files matched. */
  truncated: boolean;
}

const DESCRIPTION = `Find files by name with a glob pattern, e.g. "**/*.py", "src/**/*.{ts,tsx}", "*config*".
Returns absolute paths of matching files (not directories), most recently modified first, at most ${MAX_SEARCH_RESULTS}. Files ignored by .gitignore and hidden files are skipped. A pattern without "/" matches file names at any depth.`;

const PARAMETERS: JsonSchemaObject = withInjectedParams(
  {
    type: "object",
    properties: {
      pattern: { type: "string", description: 'Glob pattern, e.g. "**/*.js" or "src/**/test_*.py".' },
      path: { type: "string", description: "Directory to search (absolute, or relative to the working directory). Default: the working directory." },
    },
    required: ["pattern"],
  },
  true,
);

export class GlobTool implements Tool<GlobAction, GlobObservation> {
  readonly name = GLOB_TOOL_NAME;
  readonly description = DESCRIPTION;
  readonly parameters = PARAMETERS;
  readonly readOnly = true;
  readonly #rg: string | undefined;

  /** @param ripgrepPath rg executable; default: the first of RIPGREP_CANDIDATES that exists. */
  constructor(ripgrepPath?: string) {
    this.#rg = findRipgrep(ripgrepPath);
  }

  isUsable(): boolean {
    return this.#rg !== undefined;
  }

  parseAction(args: unknown): GlobAction {
    const r = new ArgReader(this.name, args);
    const pattern = r.requiredString("pattern");
    if (pattern.trim() === "") throw r.fail("parameter `pattern` must not be empty");
    const path = r.string("path");
    return { kind: "GlobAction", pattern, path: path === undefined || path.trim() === "" ? null : path };
  }

  async execute(action: GlobAction, ctx: ToolExecutionContext): Promise<GlobObservation> {
    if (this.#rg === undefined) {
      throw new AgentdError("failed_precondition", "the glob tool is not usable: ripgrep (rg) is not installed");
    }
    if (ctx.signal.aborted) throw new AgentdError("canceled", "the glob call was cancelled");
    const resolved = await resolveSearchDir(action.path, ctx.workingDir);
    const base = { kind: "GlobObservation" as const, pattern: action.pattern };
    if ("error" in resolved) {
      return { ...base, content: [textContent(resolved.error)], is_error: true, files: [], search_path: action.path ?? ctx.workingDir, truncated: false };
    }
    const dir = resolved.dir;
    const result = await runRipgrep(this.#rg, ["--files", "--sortr=modified", "--glob", action.pattern], {
      cwd: dir,
      signal: ctx.signal,
    });
    if (result.timedOut || (result.exitCode === 2 && result.total === 0)) {
      const why = result.timedOut ? "the search took too long; use a narrower path or pattern" : result.stderr || "ripgrep failed";
      return { ...base, content: [textContent(`Error searching for '${action.pattern}' in ${dir}: ${why}`)], is_error: true, files: [], search_path: dir, truncated: false };
    }
    const truncated = result.total > MAX_SEARCH_RESULTS;
    let text: string;
    if (result.total === 0) {
      text = `No files found matching pattern '${action.pattern}' in directory ${dir}`;
    } else {
      text = `Found ${result.total} file${result.total === 1 ? "" : "s"} matching pattern '${action.pattern}' in ${dir}:\n${result.paths.join("\n")}`;
      if (truncated) {
        text += `\n\n[Only the ${MAX_SEARCH_RESULTS} most recently modified of ${result.total} files are shown. Use a more specific pattern or path.]`;
      }
    }
    return { ...base, content: [textContent(text)], is_error: false, files: result.paths, search_path: dir, truncated };
  }
}
