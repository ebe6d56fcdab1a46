// The shapes every agent tool shares. Actions and observations are plain JSON objects in the exact
// OpenHands wire shape (reference/openhands-agent-server.md §3.3): `kind` is the OpenHands class
// name, fields are snake_case, and every observation carries `content` and `is_error`. They are
// stored verbatim inside ActionEvent/ObservationEvent, so nothing here may hold a class instance,
// a bigint or a secret.

import type { SecretMasker } from "./secret-masker.js";

/** OpenHands `TextContent`. `cache_prompt` is always written (false) so stored events match theirs. */
export interface TextContent {
  type: "text";
  text: string;
  cache_prompt?: boolean;
}

/** OpenHands `ImageContent`: data: URLs (base64) or http(s) URLs. */
export interface ImageContent {
  type: "image";
  image_urls: string[];
  cache_prompt?: boolean;
}

export type Content = TextContent | ImageContent;

/** Every action: `kind` discriminates (e.g. "TerminalAction"); the rest is tool specific. */
export interface Action {
  kind: string;
}

/** Every observation: `content` is what the tool produced, `is_error` marks a tool-level failure. */
export interface Observation {
  kind: string;
  content: Content[];
  is_error: boolean;
}

/** The risk the LLM predicts for a call (`security_risk` argument). Read-only tools are always UNKNOWN. */
export type SecurityRisk = "UNKNOWN" | "LOW" | "MEDIUM" | "HIGH";

export const SECURITY_RISKS: readonly SecurityRisk[] = ["LOW", "MEDIUM", "HIGH", "UNKNOWN"];

/** A JSON schema fragment (the subset the chat-completions tool APIs accept). */
export type JsonSchema = Record<string, unknown>;

/** The parameters object of a tool as sent to the LLM. */
export interface JsonSchemaObject {
  type: "object";
  properties: Record<string, JsonSchema>;
  required: string[];
  additionalProperties?: boolean;
}

/** Per-call context the agent loop hands to `execute`. */
export interface ToolExecutionContext {
  conversationId: string;
  /** Absolute working directory of the conversation (relative paths resolve against it). */
  workingDir: string;
  /**
   * Aborts the call (interrupt, shutdown). Tools stop promptly: quick tools check it before they
   * start, the terminal interrupts the foreground command with Ctrl+C and returns what it printed.
   */
  signal: AbortSignal;
  /** The conversation's secrets: exported into the shell, masked in every output. */
  secrets: SecretMasker;
}

/**
 * One agent tool. `parseAction` validates the LLM's arguments (after `security_risk`/`summary` are
 * removed) and fills defaults so a stored action is always complete; it throws AgentdError
 * "invalid_argument" with a message the LLM can act on. Failures while executing (file not found,
 * patch does not apply, ...) are NOT thrown: they come back as observations with `is_error: true`,
 * as in OpenHands, so the LLM sees them.
 */
export interface Tool<A extends Action = Action, O extends Observation = Observation> {
  /** Registry name the LLM calls (e.g. "terminal"). */
  readonly name: string;
  /** Description sent to the LLM. */
  readonly description: string;
  /** JSON schema of the arguments sent to the LLM, incl. the injected `security_risk`/`summary`. */
  readonly parameters: JsonSchemaObject;
  /** True when the tool cannot change the workspace; such tools get no `security_risk` parameter. */
  readonly readOnly: boolean;
  /** False when a dependency is missing on this machine (e.g. ripgrep); such a tool is not offered. */
  isUsable?(): boolean;
  parseAction(args: unknown): A;
  execute(action: A, ctx: ToolExecutionContext): Promise<O>;
  /** What the LLM sees for an observation; defaults to `defaultLlmContent`. */
  toLlmContent?(observation: O): Content[];
  /** Releases processes and handles (the terminal's PTY). Idempotent. */
  close?(): Promise<void>;
}

/** A tool of any action/observation type, as held by a registry. */
export type AnyTool = Tool<any, any>;

/** The chat-completions `tools[]` entry for one tool. */
export interface LlmToolDefinition {
  type: "function";
  function: { name: string; description: string; parameters: JsonSchemaObject };
}
