// The registry the agent loop uses: builds a conversation's tools by name, gives the LLM their
// definitions, turns an LLM tool call (name + JSON arguments) into a validated action plus its
// `security_risk`/`summary` metadata, runs it, and renders the observation for the LLM.
//
// LLM-side aliases (OpenHands): bash, execute_bash, command, execute → terminal; git → terminal
// with "git " prefixed to the command; str_replace_editor, str_replace → file_editor, with the
// editor `command` inferred from the arguments present when it is missing.

import { existsSync } from "node:fs";

import { AgentdError } from "./agentd-error.js";
import { ApplyPatchTool, APPLY_PATCH_TOOL_NAME } from "./apply-patch/apply-patch-tool.js";
import { isRecord, splitCallMetadata, withInjectedParams } from "./args.js";
import { FinishTool, FINISH_TOOL_NAME } from "./builtin/finish-tool.js";
import { ThinkTool, THINK_TOOL_NAME } from "./builtin/think-tool.js";
import { FileEditorTool, FILE_EDITOR_TOOL_NAME } from "./file-editor/file-editor-tool.js";
import { GlobTool, GLOB_TOOL_NAME } from "./search/glob-tool.js";
import { GrepTool, GREP_TOOL_NAME } from "./search/grep-tool.js";
import { findRipgrep } from "./search/ripgrep.js";
import type { SecretMasker } from "./secret-masker.js";
import { TaskTrackerTool, TASK_TRACKER_TOOL_NAME } from "./task-tracker/task-tracker-tool.js";
import { TerminalTool, TERMINAL_TOOL_NAME, type TerminalOptions } from "./terminal/terminal-tool.js";
import { defaultLlmContent } from "./text.js";
import type { Action, AnyTool, Content, LlmToolDefinition, Observation, SecurityRisk } from "./types.js";

/** The tools this module implements, in the order they are offered. */
export const BUILTIN_TOOL_NAMES = [
  TERMINAL_TOOL_NAME,
  FILE_EDITOR_TOOL_NAME,
  TASK_TRACKER_TOOL_NAME,
  GLOB_TOOL_NAME,
  GREP_TOOL_NAME,
  APPLY_PATCH_TOOL_NAME,
  THINK_TOOL_NAME,
  FINISH_TOOL_NAME,
] as const;

/** Tools every toolset contains unless `includeBuiltins: false` (OpenHands adds them to every agent). */
export const ALWAYS_INCLUDED_TOOL_NAMES = [THINK_TOOL_NAME, FINISH_TOOL_NAME] as const;

/** LLM-side tool names mapped to the registry name. */
export const TOOL_ALIASES: Readonly<Record<string, string>> = {
  bash: TERMINAL_TOOL_NAME,
  execute_bash: TERMINAL_TOOL_NAME,
  command: TERMINAL_TOOL_NAME,
  execute: TERMINAL_TOOL_NAME,
  git: TERMINAL_TOOL_NAME,
  str_replace_editor: FILE_EDITOR_TOOL_NAME,
  str_replace: FILE_EDITOR_TOOL_NAME,
};

export interface ToolsetContext {
  conversationId: string;
  /** Absolute working directory of the conversation. */
  workingDir: string;
  /** Per-conversation directory for tool state (task_tracker's TASKS.json). */
  stateDir: string;
  secrets: SecretMasker;
  terminal?: TerminalOptions;
  /** ripgrep executable for glob/grep (default: found in the usual places). */
  ripgrepPath?: string;
  /**
   * Tools implemented elsewhere, by the name a conversation asks for; one name may expand to
   * several tools (e.g. "browser_tool_set"). Called once per toolset.
   */
  externalToolSets?: Record<string, () => AnyTool[]>;
  /** Add think and finish even if not named (default true). */
  includeBuiltins?: boolean;
}

/** A tool call the agent loop can execute and record. */
export interface ParsedToolCall {
  /** Registry name (aliases resolved). */
  toolName: string;
  action: Action;
  /** The LLM's risk assessment; always UNKNOWN for read-only tools. */
  securityRisk: SecurityRisk;
  summary: string | undefined;
}

function createBuiltin(name: string, ctx: ToolsetContext): AnyTool | undefined {
  switch (name) {
    case TERMINAL_TOOL_NAME:
      return new TerminalTool(ctx.workingDir, ctx.secrets, ctx.terminal);
    case FILE_EDITOR_TOOL_NAME:
      return new FileEditorTool();
    case TASK_TRACKER_TOOL_NAME:
      return new TaskTrackerTool(ctx.stateDir);
    case GLOB_TOOL_NAME:
      return new GlobTool(ctx.ripgrepPath);
    case GREP_TOOL_NAME:
      return new GrepTool(ctx.ripgrepPath);
    case APPLY_PATCH_TOOL_NAME:
      return new ApplyPatchTool();
    case THINK_TOOL_NAME:
      return new ThinkTool();
    case FINISH_TOOL_NAME:
      return new FinishTool();
    default:
      return undefined;
  }
}

/**
 * Names of the built-in tools usable on this machine (the terminal needs bash, glob and grep
 * need ripgrep), for `/server_info` and `GET /api/tools/`.
 */
export function usableBuiltinToolNames(opts: { ripgrepPath?: string; shell?: string } = {}): string[] {
  return BUILTIN_TOOL_NAMES.filter((name) => {
    if (name === TERMINAL_TOOL_NAME) return existsSync(opts.shell ?? "/bin/bash");
    if (name === GLOB_TOOL_NAME || name === GREP_TOOL_NAME) return findRipgrep(opts.ripgrepPath) !== undefined;
    return true;
  });
}

/** Maps an alias call onto its tool, adjusting the arguments the alias implies. */
export function normalizeToolCall(name: string, args: unknown): { name: string; args: unknown } {
  const target = TOOL_ALIASES[name];
  if (target === undefined || !isRecord(args)) return { name: target ?? name, args };
  if (name === "git" && typeof args.command === "string" && !/^git(\s|$)/.test(args.command.trim())) {
    return { name: target, args: { ...args, command: `git ${args.command.trim()}` } };
  }
  if (target === FILE_EDITOR_TOOL_NAME && args.command === undefined) {
    const command =
      args.file_text !== undefined
        ? "create"
        : args.old_str !== undefined
          ? "str_replace"
          : args.insert_line !== undefined
            ? "insert"
            : "view";
    return { name: target, args: { ...args, command } };
  }
  return { name: target, args };
}

export class Toolset {
  readonly #tools: Map<string, AnyTool>;
  readonly #ctx: ToolsetContext;
  #closed = false;

  constructor(tools: readonly AnyTool[], ctx: ToolsetContext) {
    this.#tools = new Map();
    for (const tool of tools) {
      if (this.#tools.has(tool.name)) throw new AgentdError("invalid_argument", `tool ${tool.name} is registered twice`);
      this.#tools.set(tool.name, tool);
    }
    this.#ctx = ctx;
  }

  /** Registry names, in the order offered to the LLM. */
  get names(): string[] {
    return [...this.#tools.keys()];
  }

  get tools(): AnyTool[] {
    return [...this.#tools.values()];
  }

  /** The tool for a registry name or an alias. */
  get(name: string): AnyTool | undefined {
    return this.#tools.get(name) ?? this.#tools.get(TOOL_ALIASES[name] ?? "");
  }

  /** The chat-completions `tools` array (schemas include security_risk/summary). */
  definitions(): LlmToolDefinition[] {
    return this.tools.map((tool) => ({
      type: "function",
      function: {
        name: tool.name,
        description: tool.description,
        parameters: withInjectedParams(tool.parameters, tool.readOnly),
      },
    }));
  }

  /**
   * Validates one LLM tool call. `rawArguments` is the JSON string from the LLM (or an already
   * parsed object). Throws AgentdError "not_found" for an unknown tool and "invalid_argument"
   * for arguments that are not JSON or do not fit the tool; both messages are meant for the LLM.
   */
  parseToolCall(name: string, rawArguments: unknown): ParsedToolCall {
    let args: unknown = rawArguments;
    if (typeof rawArguments === "string") {
      try {
        args = rawArguments.trim() === "" ? {} : (JSON.parse(rawArguments) as unknown);
      } catch (err) {
        throw new AgentdError("invalid_argument", `${name}: the arguments are not valid JSON (${(err as Error).message})`, { tool: name });
      }
    }
    const normalized = normalizeToolCall(name, args);
    const tool = this.#tools.get(normalized.name);
    if (tool === undefined) {
      throw new AgentdError("not_found", `tool ${JSON.stringify(name)} does not exist; available tools: ${this.names.join(", ")}`, {
        tool: name,
      });
    }
    const { args: own, meta } = splitCallMetadata(normalized.args);
    const action = tool.parseAction(own) as Action;
    return {
      toolName: tool.name,
      action,
      securityRisk: tool.readOnly ? "UNKNOWN" : meta.securityRisk,
      summary: meta.summary,
    };
  }

  /** Runs a parsed call. Tool-level failures come back as observations with `is_error: true`. */
  async execute(call: Pick<ParsedToolCall, "toolName" | "action">, signal: AbortSignal): Promise<Observation> {
    if (this.#closed) throw new AgentdError("failed_precondition", "the toolset has been closed");
    const tool = this.#tools.get(call.toolName);
    if (tool === undefined) throw new AgentdError("not_found", `tool ${call.toolName} is not in this toolset`);
    return (await tool.execute(call.action, {
      conversationId: this.#ctx.conversationId,
      workingDir: this.#ctx.workingDir,
      signal,
      secrets: this.#ctx.secrets,
    })) as Observation;
  }

  /** What the LLM sees for an observation of `toolName` (tool renderer or the default). */
  toLlmContent(toolName: string, observation: Observation): Content[] {
    const tool = this.#tools.get(toolName);
    return tool?.toLlmContent?.(observation) ?? defaultLlmContent(observation);
  }

  /** Closes every tool (ends the terminal's shell). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.tools.map((tool) => tool.close?.()));
  }
}

/**
 * Builds the tools named in `names` (registry names, aliases, or keys of
 * `ctx.externalToolSets`), plus think and finish. Throws AgentdError "invalid_argument" for an
 * unknown name and "failed_precondition" for a tool not usable on this machine (e.g. grep
 * without ripgrep).
 */
export function createToolset(names: readonly string[], ctx: ToolsetContext): Toolset {
  const wanted: string[] = [];
  const add = (n: string): void => {
    if (!wanted.includes(n)) wanted.push(n);
  };
  for (const n of names) add(TOOL_ALIASES[n] ?? n);
  if (ctx.includeBuiltins ?? true) for (const n of ALWAYS_INCLUDED_TOOL_NAMES) add(n);

  const tools: AnyTool[] = [];
  for (const name of wanted) {
    const builtin = createBuiltin(name, ctx);
    const created = builtin !== undefined ? [builtin] : ctx.externalToolSets?.[name]?.();
    if (created === undefined) {
      const known = [...BUILTIN_TOOL_NAMES, ...Object.keys(ctx.externalToolSets ?? {})];
      throw new AgentdError("invalid_argument", `unknown tool ${JSON.stringify(name)}; known tools: ${known.join(", ")}`, { tool: name });
    }
    for (const tool of created) {
      if (tool.isUsable?.() === false) {
        throw new AgentdError(
          "failed_precondition",
          `tool ${tool.name} is not usable on this machine${tool.name === GLOB_TOOL_NAME || tool.name === GREP_TOOL_NAME ? " (ripgrep `rg` is not installed)" : ""}`,
          { tool: tool.name },
        );
      }
      tools.push(tool);
    }
  }
  return new Toolset(tools, ctx);
}
