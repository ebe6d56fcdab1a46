// Action and observation payloads of the browser tool set, in the OpenHands JSON shape
// (reference/openhands-agent-server.md §3.3): plain objects discriminated by `kind`, snake_case
// fields, defaults filled in by parseAction so a stored action is always complete.

export interface BrowserNavigateAction {
  kind: "BrowserNavigateAction";
  url: string;
  new_tab: boolean;
}
export interface BrowserClickAction {
  kind: "BrowserClickAction";
  index: number;
  new_tab: boolean;
}
export interface BrowserTypeAction {
  kind: "BrowserTypeAction";
  index: number;
  text: string;
}
export interface BrowserGetStateAction {
  kind: "BrowserGetStateAction";
  include_screenshot: boolean;
}
export interface BrowserGetContentAction {
  kind: "BrowserGetContentAction";
  extract_links: boolean;
  start_from_char: number;
}
export interface BrowserScrollAction {
  kind: "BrowserScrollAction";
  direction: "up" | "down";
}
export interface BrowserGoBackAction {
  kind: "BrowserGoBackAction";
}
export interface BrowserListTabsAction {
  kind: "BrowserListTabsAction";
}
export interface BrowserSwitchTabAction {
  kind: "BrowserSwitchTabAction";
  tab_id: string;
}
export interface BrowserCloseTabAction {
  kind: "BrowserCloseTabAction";
  tab_id: string;
}

export type BrowserAction =
  | BrowserNavigateAction
  | BrowserClickAction
  | BrowserTypeAction
  | BrowserGetStateAction
  | BrowserGetContentAction
  | BrowserScrollAction
  | BrowserGoBackAction
  | BrowserListTabsAction
  | BrowserSwitchTabAction
  | BrowserCloseTabAction;

export interface TextContent {
  type: "text";
  text: string;
}

/**
 * What every browser tool returns. Tool-level failures (bad URL, index out of range, timeout, a
 * crashed page) are observations with `is_error: true` so the LLM can read and react to them;
 * `screenshot_data` is a base64 PNG of the viewport, present only when asked for.
 */
export interface BrowserObservation {
  kind: "BrowserObservation";
  content: TextContent[];
  is_error: boolean;
  screenshot_data?: string;
}

/** Per-call context the agent loop hands to a tool. */
export interface ToolContext {
  conversationId: string;
  /** Absolute path of the conversation's working directory; downloads are saved below it. */
  workingDir: string;
  /** Aborts the call (user interrupt, server shutdown). */
  signal: AbortSignal;
}

/** JSON schema (the subset the LLM tool-calling APIs accept) for a tool's parameters. */
export interface JsonSchemaObject {
  type: "object";
  properties: Record<string, Record<string, unknown>>;
  required: string[];
  additionalProperties: false;
}

/**
 * The tool shape shared with the other agent tools: the registry sends name, description and
 * parameters to the LLM, calls parseAction on the LLM's arguments (throws AgentdError
 * "invalid_argument" with a one-line message) and then execute.
 */
export interface BrowserTool<A extends BrowserAction = BrowserAction> {
  readonly name: string;
  readonly description: string;
  readonly parameters: JsonSchemaObject;
  /** True when the tool only reads page state (no navigation, no input, no tab changes). */
  readonly readOnly: boolean;
  parseAction(args: unknown): A;
  execute(action: A, ctx: ToolContext): Promise<BrowserObservation>;
}
