// The `glob` tool (OpenHands GlobAction/GlobObservation): files whose path matches a glob
// pattern, newest-modified first, at most 100, found by `rg --files --glob` (see ripgrep.ts).
// Directories are never listed; .gitignore'd and hidden files are skipped unless the pattern
// names them explicitly.

import { ArgReader, withInjectedParams } from "../args.js";
import type { Content, JsonSchemaObject } from "../types.js";
import { MAX_SEARCH_RESULTS } from "./ripgrep.js";
import { RipgrepSearchTool, type SearchOutcome, type SearchWording } from "./ripgrep-tool.js";

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

export class GlobTool extends RipgrepSearchTool<GlobAction, GlobObservation> {
  readonly name = GLOB_TOOL_NAME;
  readonly description = DESCRIPTION;
  readonly parameters = PARAMETERS;

  parseAction(args: unknown): GlobAction {
    const r = new ArgReader(this.name, args);
    const pattern = r.requiredString("pattern");
    if (pattern.trim() === "") throw r.fail("parameter `pattern` must not be empty");
    const path = r.string("path");
    return { kind: "GlobAction", pattern, path: path === undefined || path.trim() === "" ? null : path };
  }

  protected rgArgs(action: GlobAction): string[] {
    return ["--files", "--sortr=modified", "--glob", action.pattern];
  }

  protected wording(action: GlobAction, dir: string): SearchWording {
    return {
      none: `No files found matching pattern '${action.pattern}' in directory ${dir}`,
      found: `matching pattern '${action.pattern}' in ${dir}`,
      narrowMore: "pattern or path",
      narrowOnTimeout: "path or pattern",
    };
  }

  protected observation(action: GlobAction, o: SearchOutcome): GlobObservation {
    return { kind: "GlobObservation", pattern: action.pattern, content: o.content, is_error: o.is_error, files: o.paths, search_path: o.search_path, truncated: o.truncated };
  }
}
