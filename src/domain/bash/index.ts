// Public surface of the bash engine (src/domain/bash). See README.md here for the design.
export { BashManager, isStrippedEnvName } from "./bash-manager.js";
export type { BashClock, BashEventListener, BashListOptions, BashManagerOptions, BashStats, BashWatchOptions } from "./bash-manager.js";
export { DEFAULT_BASH_LIMITS, DEFAULT_PTY_COLS, DEFAULT_PTY_ROWS, MAX_PTY_DIMENSION, type BashLimits } from "./bash-limits.js";
export type { BashEventPage, BashEventQuery, BashStore, StoredBashEvent } from "./bash-store.js";
export type {
  BashCommandEvent,
  BashCommandInfo,
  BashCommandSpec,
  BashCommandStatus,
  BashEvent,
  BashEventKind,
  BashExecuteResult,
  BashMode,
  BashOutputEvent,
  BashSignal,
  BashStartResult,
  BashWatchItem,
} from "./bash-types.js";
export { MemoryBashStore } from "./memory-bash-store.js";
