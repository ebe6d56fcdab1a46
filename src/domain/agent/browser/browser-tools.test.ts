import { describe, expect, it } from "vitest";
import { BrowserManager } from "./browser-manager.js";
import { BROWSER_TOOL_NAMES, createBrowserTools, parseBrowserAction } from "./browser-tools.js";
import { AgentdError } from "../../../errors.js";

function parseError(tool: string, args: unknown): AgentdError {
  try {
    parseBrowserAction(tool, args);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentdError);
    return err as AgentdError;
  }
  throw new Error(`expected ${tool} ${JSON.stringify(args)} to be rejected`);
}

describe("browser tool definitions", () => {
  // The manager is never used here (no browser is launched by constructing it).
  const tools = createBrowserTools(new BrowserManager());

  it("exposes the ten OpenHands tool names with object schemas", () => {
    expect(tools.map((t) => t.name)).toEqual([
      "browser_navigate",
      "browser_click",
      "browser_type",
      "browser_get_state",
      "browser_get_content",
      "browser_scroll",
      "browser_go_back",
      "browser_list_tabs",
      "browser_switch_tab",
      "browser_close_tab",
    ]);
    expect(BROWSER_TOOL_NAMES).toEqual(tools.map((t) => t.name));
    for (const t of tools) {
      expect(t.parameters.type).toBe("object");
      expect(t.parameters.additionalProperties).toBe(false);
      expect(t.description.length).toBeGreaterThan(20);
      for (const r of t.parameters.required) expect(Object.keys(t.parameters.properties)).toContain(r);
    }
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect(byName.get("browser_navigate")?.parameters.required).toEqual(["url"]);
    expect(byName.get("browser_click")?.parameters.properties.index).toMatchObject({ type: "integer", minimum: 0 });
    expect(byName.get("browser_scroll")?.parameters.properties.direction).toMatchObject({ enum: ["up", "down"], default: "down" });
    expect(byName.get("browser_get_content")?.description).toContain("10000 characters");
    expect(tools.filter((t) => t.readOnly).map((t) => t.name)).toEqual(["browser_get_state", "browser_get_content", "browser_list_tabs"]);
  });
});

describe("without a browser", () => {
  it("answers with an error observation naming what was looked for, and never launches", async () => {
    const manager = new BrowserManager({ chromiumPath: "/nonexistent/chromium" });
    const [navigate] = createBrowserTools(manager);
    if (!navigate) throw new Error("no tools");
    const obs = await navigate.execute(navigate.parseAction({ url: "https://example.com" }), {
      conversationId: "c1",
      workingDir: "/tmp",
      signal: new AbortController().signal,
    });
    expect(obs).toEqual({
      kind: "BrowserObservation",
      is_error: true,
      content: [{ type: "text", text: "browser tools are unavailable: configured Chromium path /nonexistent/chromium is not an executable file" }],
    });
    expect(manager.isBrowserRunning).toBe(false);
    await manager.close();
  });
});

describe("parseBrowserAction", () => {
  it("fills defaults and produces the OpenHands action shape", () => {
    expect(parseBrowserAction("browser_navigate", { url: "https://a.b" })).toEqual({ kind: "BrowserNavigateAction", url: "https://a.b", new_tab: false });
    expect(parseBrowserAction("browser_click", '{"index": 3}')).toEqual({ kind: "BrowserClickAction", index: 3, new_tab: false });
    expect(parseBrowserAction("browser_type", { index: 0, text: "" })).toEqual({ kind: "BrowserTypeAction", index: 0, text: "" });
    expect(parseBrowserAction("browser_get_state", undefined)).toEqual({ kind: "BrowserGetStateAction", include_screenshot: false });
    expect(parseBrowserAction("browser_get_content", "")).toEqual({ kind: "BrowserGetContentAction", extract_links: false, start_from_char: 0 });
    expect(parseBrowserAction("browser_scroll", {})).toEqual({ kind: "BrowserScrollAction", direction: "down" });
    expect(parseBrowserAction("browser_go_back", {})).toEqual({ kind: "BrowserGoBackAction" });
    expect(parseBrowserAction("browser_list_tabs", null)).toEqual({ kind: "BrowserListTabsAction" });
    expect(parseBrowserAction("browser_switch_tab", { tab_id: "ab12" })).toEqual({ kind: "BrowserSwitchTabAction", tab_id: "ab12" });
    expect(parseBrowserAction("browser_close_tab", { tab_id: "ab12" })).toEqual({ kind: "BrowserCloseTabAction", tab_id: "ab12" });
  });

  it("accepts quoted scalars like pydantic's lax mode and drops the agent's meta arguments", () => {
    expect(parseBrowserAction("browser_click", { index: "7", new_tab: "true", security_risk: "LOW", summary: "click it" })).toEqual({
      kind: "BrowserClickAction",
      index: 7,
      new_tab: true,
    });
    expect(parseBrowserAction("browser_scroll", { direction: "UP" })).toEqual({ kind: "BrowserScrollAction", direction: "up" });
  });

  it("rejects bad arguments with one-line invalid_argument errors naming tool, argument and value", () => {
    const cases: [string, unknown, string][] = [
      ["browser_click", { index: -1 }, "browser_click: index must be an integer ≥ 0, got -1"],
      ["browser_click", { index: 1.5 }, "index must be an integer ≥ 0, got 1.5"],
      ["browser_click", {}, "missing required argument 'index'"],
      ["browser_click", { index: 1, new_tab: "yes" }, "new_tab must be true or false"],
      ["browser_navigate", {}, "missing required argument 'url'"],
      ["browser_navigate", { url: 42 }, "url must be a string, got 42"],
      ["browser_navigate", { url: "  " }, "url must be a non-empty string"],
      ["browser_navigate", { url: "https://a.b", tab: true }, "unknown argument 'tab'; expected: url, new_tab"],
      ["browser_go_back", { steps: 2 }, "this tool takes no arguments"],
      ["browser_scroll", { direction: "left" }, `direction must be one of "up", "down"`],
      ["browser_get_content", { start_from_char: -5 }, "start_from_char must be an integer ≥ 0"],
      ["browser_type", { index: 1 }, "missing required argument 'text'"],
      ["browser_switch_tab", { tab_id: "" }, "tab_id must be a non-empty string"],
      ["browser_click", "{index: 1}", "arguments are not valid JSON"],
      ["browser_click", [1], "arguments must be a JSON object"],
    ];
    for (const [tool, args, message] of cases) {
      const err = parseError(tool, args);
      expect(err.code, JSON.stringify(args)).toBe("invalid_argument");
      expect(err.message).toContain(message);
      expect(err.message).not.toContain("\n");
    }
    expect(parseError("browser_fly", {}).code).toBe("not_found");
  });
});
