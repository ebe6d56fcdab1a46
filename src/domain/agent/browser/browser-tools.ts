import type { BrowserManager } from "./browser-manager.js";
import { CONTENT_PAGE_SIZE } from "./conversation-browser.js";
import { AgentdError } from "../../../errors.js";
import { findChromium } from "./find-chromium.js";
import type { FindChromiumOptions } from "./find-chromium.js";
import type { BrowserAction, BrowserTool, JsonSchemaObject } from "./types.js";

/** Registry name of the whole set (OpenHands `browser_tool_set` expands to the tools below). */
export const BROWSER_TOOL_SET_NAME = "browser_tool_set";

/**
 * Arguments the OpenHands agent adds to every tool schema (`security_risk`, `summary`). They are
 * accepted and dropped here, as OpenHands strips them from the stored action.
 */
const AGENT_META_ARGS = new Set(["security_risk", "summary"]);

const MAX_TEXT_LENGTH = 100_000;
const MAX_TAB_ID_LENGTH = 64;

type FieldSpec =
  | { type: "string"; description: string; required: true; maxLength: number; nonEmpty?: boolean }
  | { type: "boolean"; description: string; default: boolean }
  | { type: "integer"; description: string; required?: boolean; default?: number; minimum: number }
  | { type: "enum"; description: string; values: readonly string[]; default: string };

interface ToolSpec {
  name: string;
  kind: BrowserAction["kind"];
  description: string;
  readOnly: boolean;
  fields: Record<string, FieldSpec>;
}

function schemaOf(fields: Record<string, FieldSpec>): JsonSchemaObject {
  const properties: Record<string, Record<string, unknown>> = {};
  const required: string[] = [];
  for (const [key, f] of Object.entries(fields)) {
    switch (f.type) {
      case "string":
        properties[key] = { type: "string", description: f.description };
        break;
      case "boolean":
        properties[key] = { type: "boolean", description: f.description, default: f.default };
        break;
      case "integer":
        properties[key] = {
          type: "integer",
          description: f.description,
          minimum: f.minimum,
          ...(f.default !== undefined ? { default: f.default } : {}),
        };
        break;
      case "enum":
        properties[key] = { type: "string", enum: [...f.values], description: f.description, default: f.default };
        break;
    }
    if ((f.type === "string" || f.type === "integer") && f.required) required.push(key);
  }
  return { type: "object", properties, required, additionalProperties: false };
}

function describeValue(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

/**
 * Validates the LLM's arguments against the spec and fills defaults. Like pydantic's lax mode it
 * accepts "true"/"false" for booleans and digit strings for integers, because models often quote
 * scalars. Throws AgentdError "invalid_argument" naming the tool, the argument and the bad value.
 */
function parseArgs(spec: ToolSpec, args: unknown): Record<string, unknown> {
  let input = args;
  if (typeof input === "string") {
    const trimmed = input.trim();
    try {
      input = trimmed === "" ? {} : (JSON.parse(trimmed) as unknown);
    } catch {
      throw new AgentdError("invalid_argument", `${spec.name}: arguments are not valid JSON: ${describeValue(args)}`);
    }
  }
  if (input === undefined || input === null) input = {};
  if (typeof input !== "object" || Array.isArray(input)) {
    throw new AgentdError("invalid_argument", `${spec.name}: arguments must be a JSON object, got ${describeValue(input)}`);
  }
  const obj = input as Record<string, unknown>;
  const expected = Object.keys(spec.fields);
  for (const key of Object.keys(obj)) {
    if (!(key in spec.fields) && !AGENT_META_ARGS.has(key)) {
      throw new AgentdError(
        "invalid_argument",
        `${spec.name}: unknown argument '${key}'; ${expected.length ? `expected: ${expected.join(", ")}` : "this tool takes no arguments"}`,
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(spec.fields)) {
    const v = obj[key];
    const bad = (what: string): never => {
      throw new AgentdError("invalid_argument", `${spec.name}: ${key} must be ${what}, got ${describeValue(v)}`);
    };
    switch (f.type) {
      case "string": {
        if (v === undefined || v === null) throw new AgentdError("invalid_argument", `${spec.name}: missing required argument '${key}'`);
        if (typeof v !== "string") bad("a string");
        const s = v as string;
        if (f.nonEmpty && s.trim() === "") bad("a non-empty string");
        if (s.length > f.maxLength) throw new AgentdError("invalid_argument", `${spec.name}: ${key} is ${s.length} characters long; the limit is ${f.maxLength}`);
        out[key] = s;
        break;
      }
      case "boolean": {
        if (v === undefined || v === null) out[key] = f.default;
        else if (typeof v === "boolean") out[key] = v;
        else if (v === "true" || v === "false") out[key] = v === "true";
        else bad("true or false");
        break;
      }
      case "integer": {
        let n: number | undefined;
        if (v === undefined || v === null) {
          if (f.default === undefined) throw new AgentdError("invalid_argument", `${spec.name}: missing required argument '${key}'`);
          n = f.default;
        } else if (typeof v === "number") n = v;
        else if (typeof v === "string" && /^\s*-?\d+\s*$/.test(v)) n = Number(v);
        if (n === undefined || !Number.isSafeInteger(n) || n < f.minimum) bad(`an integer ≥ ${f.minimum}`);
        out[key] = n;
        break;
      }
      case "enum": {
        if (v === undefined || v === null) out[key] = f.default;
        else if (typeof v === "string" && f.values.includes(v.toLowerCase())) out[key] = v.toLowerCase();
        else bad(`one of ${f.values.map((x) => `"${x}"`).join(", ")}`);
        break;
      }
    }
  }
  return out;
}

const INDEX_FIELD = (what: string): FieldSpec => ({
  type: "integer",
  description: `Index of the element to ${what}, as listed by the latest browser_get_state.`,
  required: true,
  minimum: 0,
});
const TAB_ID_FIELD = (what: string): FieldSpec => ({
  type: "string",
  description: `The 4-character tab id (from browser_list_tabs) of the tab to ${what}.`,
  required: true,
  maxLength: MAX_TAB_ID_LENGTH,
  nonEmpty: true,
});

/** The ten tools: OpenHands names, parameters and action kinds; descriptions are our own. */
export const BROWSER_TOOL_SPECS: readonly ToolSpec[] = [
  {
    name: "browser_navigate",
    kind: "BrowserNavigateAction",
    readOnly: false,
    description:
      "Load a web page in the browser. Accepts http:// and https:// URLs, about:blank, and file:// URLs inside the workspace. " +
      "Prefer curl or other shell tools for plain downloads; use the browser when a page needs JavaScript or interaction. " +
      "Typical flow: browser_navigate, then browser_get_state to see what can be clicked or typed into, then browser_get_content to read.",
    fields: {
      url: { type: "string", description: "Full URL to open, including the scheme (https://…).", required: true, maxLength: 8192, nonEmpty: true },
      new_tab: { type: "boolean", description: "Open the URL in a new tab instead of the current one.", default: false },
    },
  },
  {
    name: "browser_click",
    kind: "BrowserClickAction",
    readOnly: false,
    description:
      "Click an interactive element of the current page, chosen by the index shown in the latest browser_get_state output. " +
      "Indexes are renumbered on every browser_get_state, so refresh them after the page changes. " +
      "Do not submit forms, buy, or create accounts unless the user asked for it.",
    fields: {
      index: INDEX_FIELD("click"),
      new_tab: { type: "boolean", description: "Open the link (or whatever the click navigates to) in a new tab.", default: false },
    },
  },
  {
    name: "browser_type",
    kind: "BrowserTypeAction",
    readOnly: false,
    description:
      "Replace the content of a text field (input, textarea or editable element) with the given text; for a <select>, choose the option with that label or value. " +
      "The element is chosen by its index from the latest browser_get_state. Typing does not submit the form; click the submit button for that.",
    fields: {
      index: INDEX_FIELD("type into"),
      text: { type: "string", description: "The text to enter (or the option to select).", required: true, maxLength: MAX_TEXT_LENGTH },
    },
  },
  {
    name: "browser_get_state",
    kind: "BrowserGetStateAction",
    readOnly: true,
    description:
      "Describe the current tab: URL, title, scroll position and a numbered list of the visible interactive elements (links, buttons, fields). " +
      "Use the numbers with browser_click and browser_type. Optionally attaches a PNG screenshot of the viewport.",
    fields: {
      include_screenshot: { type: "boolean", description: "Attach a screenshot of the visible part of the page.", default: false },
    },
  },
  {
    name: "browser_get_content",
    kind: "BrowserGetContentAction",
    readOnly: true,
    description:
      `Return the text of the current page as markdown, ${CONTENT_PAGE_SIZE} characters at a time. ` +
      "When more text follows, the output ends with the start_from_char value to pass for the next part.",
    fields: {
      extract_links: { type: "boolean", description: "Keep link targets in the markdown as [text](url).", default: false },
      start_from_char: { type: "integer", description: "Character offset into the page markdown to start from (0 for the beginning).", default: 0, minimum: 0 },
    },
  },
  {
    name: "browser_scroll",
    kind: "BrowserScrollAction",
    readOnly: false,
    description: "Scroll the current page by about one screen, up or down, and report the new position.",
    fields: {
      direction: { type: "enum", description: "Which way to scroll.", values: ["up", "down"], default: "down" },
    },
  },
  {
    name: "browser_go_back",
    kind: "BrowserGoBackAction",
    readOnly: false,
    description: "Go back to the previous page in the current tab's history, like the browser's back button.",
    fields: {},
  },
  {
    name: "browser_list_tabs",
    kind: "BrowserListTabsAction",
    readOnly: true,
    description: "List the open tabs with their ids, titles and URLs, marking the active one.",
    fields: {},
  },
  {
    name: "browser_switch_tab",
    kind: "BrowserSwitchTabAction",
    readOnly: false,
    description: "Make another open tab the active one; later browser actions apply to it.",
    fields: { tab_id: TAB_ID_FIELD("switch to") },
  },
  {
    name: "browser_close_tab",
    kind: "BrowserCloseTabAction",
    readOnly: false,
    description: "Close an open tab. If it was the active tab, the most recently opened remaining tab becomes active.",
    fields: { tab_id: TAB_ID_FIELD("close") },
  },
];

/** Tool names in registry order. */
export const BROWSER_TOOL_NAMES: readonly string[] = BROWSER_TOOL_SPECS.map((s) => s.name);

/**
 * Parses the LLM's arguments for the named browser tool into a complete action object
 * (defaults filled in). Accepts an object or its JSON text.
 *
 * @throws AgentdError "invalid_argument" for bad arguments; "not_found" for an unknown tool name.
 */
export function parseBrowserAction(toolName: string, args: unknown): BrowserAction {
  const spec = BROWSER_TOOL_SPECS.find((s) => s.name === toolName);
  if (!spec) throw new AgentdError("not_found", `unknown browser tool '${toolName}'`);
  return { kind: spec.kind, ...parseArgs(spec, args) } as BrowserAction;
}

/** The ten browser tools, executing through `manager` (which owns the browser and contexts). */
export function createBrowserTools(manager: BrowserManager): BrowserTool[] {
  return BROWSER_TOOL_SPECS.map((spec) => ({
    name: spec.name,
    description: spec.description,
    parameters: schemaOf(spec.fields),
    readOnly: spec.readOnly,
    parseAction: (args: unknown) => parseBrowserAction(spec.name, args),
    execute: (action, ctx) => {
      if (action.kind !== spec.kind) {
        return Promise.reject(new AgentdError("invalid_argument", `${spec.name} cannot execute a ${action.kind}`));
      }
      return manager.execute(action, ctx);
    },
  }));
}

/**
 * Whether the browser tool set should be offered to the agent: true when a Chromium executable is
 * found (see findChromium). Cheap (a few stat calls); use checkBrowser to prove it also starts.
 */
export async function isBrowserToolSetUsable(opts: FindChromiumOptions = {}): Promise<boolean> {
  return (await findChromium(opts)) !== undefined;
}
