// Public surface of the browser tool set (agent-loop wiring imports from here).
export { BrowserManager, DEFAULT_ACTION_TIMEOUT_MS, DEFAULT_VIEWPORT, RESTART_NOTE } from "./browser-manager.js";
export type { BrowserManagerOptions } from "./browser-manager.js";
export {
  BROWSER_TOOL_NAMES,
  BROWSER_TOOL_SET_NAME,
  BROWSER_TOOL_SPECS,
  createBrowserTools,
  isBrowserToolSetUsable,
  parseBrowserAction,
} from "./browser-tools.js";
export { CONTENT_PAGE_SIZE, DOWNLOADS_DIR, MAX_EXTRACT_CHARS, STATE_MAX_CHARS } from "./conversation-browser.js";
export { CHROMIUM_LAUNCH_ARGS, checkBrowser, findChromium, SYSTEM_CHROMIUM_PATH } from "./find-chromium.js";
export type { BrowserCheck, ChromiumLocation, FindChromiumOptions } from "./find-chromium.js";
export { checkNavigationUrl } from "./url-policy.js";
export type * from "./types.js";
