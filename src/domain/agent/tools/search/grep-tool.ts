// The `grep` tool (OpenHands GrepAction/GrepObservation): files whose content matches a regular
// expression (case-insensitive), newest-modified first, at most 100, found by `rg -l -i` (see
// ripgrep.ts). `include` restricts the files searched with a glob ("*.py", "*.{ts,tsx}").

import { AgentdError } from "../agentd-error.js";
import { ArgReader, withInjectedParams } from "../args.js";
import { textContent } from "../text.js";
import type { Content, JsonSchemaObject, Tool, ToolExecutionContext } from "../types.js";
import { MAX_SEARCH_RESULTS, findRipgrep, runRipgrep } from "./ripgrep.js";
import { resolveSearchDir } from "./search-path.js";

export const GREP_TOOL_NAME = "grep";

export interface GrepAction {
  kind: "GrepAction";
  pattern: string;
  path: string | null;
  include: string | null;
}

export interface GrepObservation {
  kind: "GrepObservation";
  content: Content[];
  is_error: boolean;
  /** Absolute paths of files containing a match, newest-modified first, at most 100. */
  matches: string[];
  pattern: string;
  search_path: string;
  include_pattern: string | null;
  /** True when more than 100 files matched. */
  truncated: boolean;
}

const DESCRIPTION = `Find the files whose content matches a regular expression (case-insensitive, ripgrep/Rust regex syntax, e.g. "def \\w+_handler", "TODO|FIXME").
Returns the absolute paths of matching files (not the matching lines), most recently modified first, at most ${MAX_SEARCH_RESULTS}. Use \`include\` to restrict the file names searched, e.g. "*.py" or "*.{ts,tsx}". Files ignored by .gitignore and hidden files are skipped. To see matching lines, run grep -n in the terminal on the files found.`;

const PARAMETERS: JsonSchemaObject = withInjectedParams(
  {
    type: "object",
    properties: {
      pattern: { type: "string", description: "Regular expression to search for (case-insensitive)." },
      path: { type: "string", description: "Directory to search (absolute, or relative to the working directory). Default: the working directory." },
      include: { type: "string", description: 'Glob of file names to search, e.g. "*.js" or "*.{ts,tsx}".' },
    },
    required: ["pattern"],
  },
  true,
);

export class GrepTool implements Tool<GrepAction, GrepObservation> {
  readonly name = GREP_TOOL_NAME;
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

  parseAction(args: unknown): GrepAction {
    const r = new ArgReader(this.name, args);
    const pattern = r.requiredString("pattern");
    if (pattern === "") throw r.fail("parameter `pattern` must not be empty");
    const path = r.string("path");
    const include = r.string("include");
    return {
      kind: "GrepAction",
      pattern,
      path: path === undefined || path.trim() === "" ? null : path,
      include: include === undefined || include.trim() === "" ? null : include,
    };
  }

  async execute(action: GrepAction, ctx: ToolExecutionContext): Promise<GrepObservation> {
    if (this.#rg === undefined) {
      throw new AgentdError("failed_precondition", "the grep tool is not usable: ripgrep (rg) is not installed");
    }
    if (ctx.signal.aborted) throw new AgentdError("canceled", "the grep call was cancelled");
    const resolved = await resolveSearchDir(action.path, ctx.workingDir);
    const base = { kind: "GrepObservation" as const, pattern: action.pattern, include_pattern: action.include };
    if ("error" in resolved) {
      return { ...base, content: [textContent(resolved.error)], is_error: true, matches: [], search_path: action.path ?? ctx.workingDir, truncated: false };
    }
    const dir = resolved.dir;
    const args = ["--files-with-matches", "--ignore-case", "--sortr=modified"];
    if (action.include !== null) args.push("--glob", action.include);
    args.push("--regexp", action.pattern);
    const result = await runRipgrep(this.#rg, args, { cwd: dir, signal: ctx.signal });
    if (result.timedOut || (result.exitCode === 2 && result.total === 0)) {
      const why = result.timedOut ? "the search took too long; use a narrower path or include pattern" : result.stderr || "ripgrep failed";
      return { ...base, content: [textContent(`Error searching for '${action.pattern}' in ${dir}: ${why}`)], is_error: true, matches: [], search_path: dir, truncated: false };
    }
    const truncated = result.total > MAX_SEARCH_RESULTS;
    const where = action.include === null ? dir : `${dir} (files matching '${action.include}')`;
    let text: string;
    if (result.total === 0) {
      text = `No files found containing pattern '${action.pattern}' in ${where}`;
    } else {
      text = `Found ${result.total} file${result.total === 1 ? "" : "s"} containing pattern '${action.pattern}' in ${where}:\n${result.paths.join("\n")}`;
      if (truncated) {
        text += `\n\n[Only the ${MAX_SEARCH_RESULTS} most recently modified of ${result.total} files are shown. Use a more specific pattern, path or include.]`;
      }
    }
    return { ...base, content: [textContent(text)], is_error: false, matches: result.paths, search_path: dir, truncated };
  }
}
