import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { SecretMasker } from "./secret-masker.js";
import type { TerminalTool } from "./terminal/terminal-tool.js";
import { observationText } from "./text.js";
import { BUILTIN_TOOL_NAMES, createToolset, usableBuiltinToolNames, type Toolset, type ToolsetContext } from "./toolset.js";
import type { AnyTool } from "./types.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("toolset", () => {
  let dir: string;
  let ctx: ToolsetContext;
  let toolset: Toolset | undefined;

  beforeEach(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), "agentd-toolset-")));
    ctx = {
      conversationId: "conv-1",
      workingDir: dir,
      stateDir: join(dir, ".state"),
      secrets: new SecretMasker(),
      terminal: { noChangeTimeoutMs: 1000, baseEnv: process.env },
    };
  });

  afterEach(async () => {
    await toolset?.close();
    toolset = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("builds the named tools plus think and finish, in order", () => {
    toolset = createToolset(["terminal", "str_replace_editor", "task_tracker", "glob", "grep", "apply_patch"], ctx);
    expect(toolset.names).toEqual([...BUILTIN_TOOL_NAMES]);
    expect(createToolset([], { ...ctx, includeBuiltins: false }).names).toEqual([]);
  });

  it("sends JSON schemas with security_risk only for tools that can change things, and summary for all", () => {
    toolset = createToolset(["terminal", "glob"], ctx);
    const defs = Object.fromEntries(toolset.definitions().map((d) => [d.function.name, d.function]));
    expect(defs.terminal?.parameters.properties.security_risk).toMatchObject({ type: "string", enum: ["LOW", "MEDIUM", "HIGH", "UNKNOWN"] });
    expect(defs.terminal?.parameters.properties.summary).toMatchObject({ type: "string" });
    expect(defs.terminal?.parameters.required).toEqual(["command"]);
    expect(defs.glob?.parameters.properties.security_risk).toBeUndefined();
    expect(defs.glob?.parameters.properties.summary).toBeDefined();
    expect(defs.think?.parameters.properties.security_risk).toBeUndefined();
    for (const d of Object.values(defs)) expect(d.description.length).toBeGreaterThan(20);
  });

  it("parses a call: aliases resolved, security_risk and summary split off the stored action", () => {
    toolset = createToolset(["terminal", "file_editor", "glob"], ctx);
    const call = toolset.parseToolCall("execute_bash", '{"command":"ls -la","security_risk":"low","summary":"list files"}');
    expect(call).toEqual({
      toolName: "terminal",
      action: { kind: "TerminalAction", command: "ls -la", is_input: false, timeout: null, reset: false },
      securityRisk: "LOW",
      summary: "list files",
    });
    expect(toolset.parseToolCall("bash", { command: "x", security_risk: "SecurityRisk.HIGH" }).securityRisk).toBe("HIGH");
    expect(toolset.parseToolCall("terminal", { command: "x", security_risk: "banana" }).securityRisk).toBe("UNKNOWN");
    expect(toolset.parseToolCall("glob", { pattern: "*.py", security_risk: "HIGH" }).securityRisk).toBe("UNKNOWN");
    expect(toolset.parseToolCall("git", { command: "status" }).action).toMatchObject({ command: "git status" });
    expect(toolset.parseToolCall("str_replace_editor", { path: "/a", old_str: "x", new_str: "y" }).action).toMatchObject({
      kind: "FileEditorAction",
      command: "str_replace",
    });
    expect(toolset.parseToolCall("str_replace", { path: "/a", file_text: "x" }).action).toMatchObject({ command: "create" });
  });

  it("rejects unknown tools and malformed arguments with codes and messages for the LLM", () => {
    toolset = createToolset(["terminal"], ctx);
    expect(() => toolset?.parseToolCall("browse", {})).toThrow(expect.objectContaining({ code: "not_found" }));
    expect(() => toolset?.parseToolCall("browse", {})).toThrow(/available tools: terminal, think, finish/);
    expect(() => toolset?.parseToolCall("terminal", "{not json")).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    expect(() => toolset?.parseToolCall("terminal", { timeout: 5 })).toThrow(/terminal: missing required parameter `command`/);
    expect(() => toolset?.parseToolCall("terminal", { command: "x", timeout: -1 })).toThrow(/must be >= 0/);
  });

  it("executes calls and renders observations for the LLM", async () => {
    toolset = createToolset(["terminal"], ctx);
    const think = await toolset.execute(toolset.parseToolCall("think", { thought: "hmm" }), new AbortController().signal);
    expect(think).toEqual({ kind: "ThinkObservation", content: [{ type: "text", text: "Your thought has been logged.", cache_prompt: false }], is_error: false });
    const finish = await toolset.execute(toolset.parseToolCall("finish", { message: "All done." }), new AbortController().signal);
    expect(observationText(finish)).toBe("All done.");

    const failed = await toolset.execute(toolset.parseToolCall("terminal", { command: "" }), new AbortController().signal);
    const llm = observationText({ content: toolset.toLlmContent("terminal", failed) });
    expect(llm.startsWith("[An error occurred during execution.]\n")).toBe(true);
    const ok = await toolset.execute(toolset.parseToolCall("bash", { command: "echo hi" }), new AbortController().signal);
    expect(observationText({ content: toolset.toLlmContent("terminal", ok) })).toContain("[Command finished with exit code 0]");
  });

  it("refuses unknown and unusable tools when building", () => {
    expect(() => createToolset(["teleport"], ctx)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    expect(() => createToolset(["grep"], { ...ctx, ripgrepPath: "/nonexistent/rg" })).toThrow(
      expect.objectContaining({ code: "failed_precondition", message: expect.stringContaining("ripgrep") }),
    );
    expect(usableBuiltinToolNames()).toContain("grep");
    expect(usableBuiltinToolNames({ ripgrepPath: "/nonexistent/rg" })).not.toContain("grep");
  });

  it("includes externally implemented tool sets by name", () => {
    const fake = (name: string): AnyTool => ({
      name,
      description: "a fake browser tool for the registry test",
      parameters: { type: "object", properties: { url: { type: "string" } }, required: [] },
      readOnly: name === "browser_get_state",
      parseAction: (args: unknown) => ({ kind: "FakeAction", ...(args as object) }),
      execute: () => Promise.resolve({ kind: "FakeObservation", content: [], is_error: false }),
    });
    toolset = createToolset(["browser_tool_set"], {
      ...ctx,
      externalToolSets: { browser_tool_set: () => [fake("browser_navigate"), fake("browser_get_state")] },
    });
    expect(toolset.names).toEqual(["browser_navigate", "browser_get_state", "think", "finish"]);
    const defs = toolset.definitions();
    expect(defs[0]?.function.parameters.properties.security_risk).toBeDefined(); // injected for external tools too
    expect(defs[1]?.function.parameters.properties.security_risk).toBeUndefined();
    expect(toolset.parseToolCall("browser_navigate", { url: "http://x", summary: "open" }).action).toEqual({ kind: "FakeAction", url: "http://x" });
  });

  it("close() ends the terminal's shell", async () => {
    toolset = createToolset(["terminal"], ctx);
    await toolset.execute(toolset.parseToolCall("terminal", { command: "true" }), new AbortController().signal);
    const pid = (toolset.get("bash") as TerminalTool).shellPid as number;
    expect(alive(pid)).toBe(true);
    await toolset.close();
    expect(alive(pid)).toBe(false);
    await expect(toolset.execute({ toolName: "think", action: { kind: "ThinkAction" } }, new AbortController().signal)).rejects.toMatchObject({
      code: "failed_precondition",
    });
  });
});
