// The `grep` tool (OpenHands GrepAction/GrepObservation): files whose content matches a regular
// expression (case-insensitive), newest-modified first, at most 100, found by `rg -l -i` (see
// ripgrep.ts). `include` restricts the files searched with a glob ("*.py", "*.{ts,tsx}").

import { ArgReader, withInjectedParams } from "../args.js";
import type { Content, JsonSchemaObject } from "../types.js";
import { MAX_SEARCH_RESULTS } from "./ripgrep.js";
import { RipgrepSearchTool, type SearchOutcome, type SearchWording } from "./ripgrep-tool.js";

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

export class GrepTool extends RipgrepSearchTool<GrepAction, GrepObservation> {
  readonly name = GREP_TOOL_NAME;
  readonly description = DESCRIPTION;
  readonly parameters = PARAMETERS;

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

  protected rgArgs(action: GrepAction): string[] {
    const args = ["--files-with-matches", "--ignore-case", "--sortr=modified"];
    if (action.include !== null) args.push("--glob", action.include);
    args.push("--regexp", action.pattern);
    return args;
  }

  protected wording(action: GrepAction, dir: string): SearchWording {
    const where = action.include === null ? dir : `${dir} (files matching '${action.include}')`;
    return {
      none: `No files found containing pattern '${action.pattern}' in ${where}`,
      found: `containing pattern '${action.pattern}' in ${where}`,
      narrowMore: "pattern, path or include",
      narrowOnTimeout: "path or include pattern",
    };
  }

  protected observation(action: GrepAction, o: SearchOutcome): GrepObservation {
    return {
      kind: "GrepObservation",
      pattern: action.pattern,
      include_pattern: action.include,
      content: o.content,
      is_error: o.is_error,
      matches: o.paths,
      search_path: o.search_path,
      truncated: o.truncated,
    };
  }
}
