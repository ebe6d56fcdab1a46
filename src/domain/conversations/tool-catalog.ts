// Which agent tools this server can offer (ServerService.ListTools, GET /api/tools/,
// /server_info usable_tools): the built-in tools whose dependencies are present (bash for the
// terminal, ripgrep for glob and grep) plus `browser_tool_set` when a Chromium executable is
// found. Computed once at start-up (a few stat calls).

import { BROWSER_TOOL_SET_NAME, isBrowserToolSetUsable } from "../agent/browser/browser-tools.js";
import type { FindChromiumOptions } from "../agent/browser/find-chromium.js";
import { usableBuiltinToolNames } from "../agent/tools/toolset.js";

export interface ToolCatalogOptions {
  /** ripgrep executable (default: found in the usual places). */
  ripgrepPath?: string | undefined;
  /** Where to look for Chromium (config CHROMIUM_PATH). */
  chromium?: FindChromiumOptions;
  /** Offer the browser tool set at all (default true). */
  browser?: boolean;
}

/** Names of the usable tools, built-ins first, in the order they are offered to the LLM. */
export async function listUsableTools(opts: ToolCatalogOptions = {}): Promise<string[]> {
  const names = usableBuiltinToolNames({ ripgrepPath: opts.ripgrepPath });
  if ((opts.browser ?? true) && (await isBrowserToolSetUsable(opts.chromium ?? {}))) names.push(BROWSER_TOOL_SET_NAME);
  return names;
}
