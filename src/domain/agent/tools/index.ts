// Public surface of the agent tools (see each module for the contracts).

export { AgentdError, type ErrorCode } from "./agentd-error.js";
export { ArgReader, INJECTED_PARAMS, splitCallMetadata, withInjectedParams, type CallMetadata } from "./args.js";
export { SecretMasker, SECRET_PLACEHOLDER } from "./secret-masker.js";
export {
  ERROR_MESSAGE_HEADER,
  cleanTerminalOutput,
  defaultLlmContent,
  observationText,
  textContent,
  truncateMiddle,
} from "./text.js";
export type {
  Action,
  AnyTool,
  Content,
  ImageContent,
  JsonSchema,
  JsonSchemaObject,
  LlmToolDefinition,
  Observation,
  SecurityRisk,
  TextContent,
  Tool,
  ToolExecutionContext,
} from "./types.js";
export { SECURITY_RISKS } from "./types.js";
export {
  ALWAYS_INCLUDED_TOOL_NAMES,
  BUILTIN_TOOL_NAMES,
  TOOL_ALIASES,
  Toolset,
  createToolset,
  normalizeToolCall,
  usableBuiltinToolNames,
  type ParsedToolCall,
  type ToolsetContext,
} from "./toolset.js";
export {
  DEFAULT_NO_CHANGE_TIMEOUT_MS,
  MAX_TERMINAL_OUTPUT,
  TERMINAL_TOOL_NAME,
  TerminalTool,
  buildShellEnv,
  type TerminalAction,
  type TerminalMetadata,
  type TerminalObservation,
  type TerminalOptions,
} from "./terminal/terminal-tool.js";
export { splitShellCommands } from "./terminal/shell-commands.js";
export {
  FILE_EDITOR_COMMANDS,
  FILE_EDITOR_TOOL_NAME,
  FileEditorTool,
  MAX_EDITABLE_FILE_BYTES,
  MAX_EDITOR_OUTPUT,
  type FileEditorAction,
  type FileEditorCommand,
  type FileEditorObservation,
} from "./file-editor/file-editor-tool.js";
export {
  TASKS_FILE_NAME,
  TASK_STATUSES,
  TASK_TRACKER_TOOL_NAME,
  TaskTrackerTool,
  type TaskItem,
  type TaskStatus,
  type TaskTrackerAction,
  type TaskTrackerObservation,
} from "./task-tracker/task-tracker-tool.js";
export { GLOB_TOOL_NAME, GlobTool, type GlobAction, type GlobObservation } from "./search/glob-tool.js";
export { GREP_TOOL_NAME, GrepTool, type GrepAction, type GrepObservation } from "./search/grep-tool.js";
export { MAX_SEARCH_RESULTS, RIPGREP_CANDIDATES, findRipgrep } from "./search/ripgrep.js";
export {
  APPLY_PATCH_TOOL_NAME,
  ApplyPatchTool,
  type ApplyPatchAction,
  type ApplyPatchObservation,
} from "./apply-patch/apply-patch-tool.js";
export { PatchParseError, parsePatch, type Hunk, type PatchOperation } from "./apply-patch/patch-parser.js";
export { PatchApplyError, applyHunks, planPatch, type FileChange, type PatchPlan } from "./apply-patch/patch-plan.js";
export { THINK_TOOL_NAME, ThinkTool, type ThinkAction, type ThinkObservation } from "./builtin/think-tool.js";
export { FINISH_TOOL_NAME, FinishTool, type FinishAction, type FinishObservation } from "./builtin/finish-tool.js";
