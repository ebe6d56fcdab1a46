/**
 * Limits and defaults of the bash engine. Each can be overridden through
 * `BashManagerOptions.limits`; the values here are what the server runs with.
 */
export interface BashLimits {
  /** Largest stdout/stderr text of one BashOutput event (OpenHands: 1 MiB). */
  readonly eventChunkBytes: number;
  /** Output stored per command; beyond it a marker line is stored and the rest dropped (the command keeps running). */
  readonly maxOutputBytes: number;
  /** Commands running at once; one more is refused with resource_exhausted. */
  readonly maxRunningCommands: number;
  /** Timeout of a command that names none (seconds). */
  readonly defaultTimeoutSeconds: number;
  /** Largest accepted timeout (seconds); setTimeout cannot go beyond ~24.8 days. */
  readonly maxTimeoutSeconds: number;
  /** After SIGTERM (timeout, shutdown), how long before SIGKILL; after SIGKILL, how long before the shell itself is killed. */
  readonly killGraceMs: number;
  /** Largest command line (UTF-8 bytes). */
  readonly maxCommandBytes: number;
  /** Largest data of one watch() output item. */
  readonly watchChunkBytes: number;
  /** Output is written to the store in chunks of at most this size. */
  readonly storeChunkBytes: number;
  /**
   * How long a running command's writes wait for its exit, so that a short command is stored in
   * one write (one fsync): less than a store chunk of output, and the start of an
   * ExecuteBashCommand (StartBashCommand answers only once its start is stored, so it writes at
   * once). Watchers see output and the BashCommand event this much later at most. 0: no wait.
   */
  readonly storeLingerMs: number;
  /**
   * Output read but not yet stored, per command, above which the command's output is paused
   * (the command blocks on write) until the store catches up to half of it.
   */
  readonly outputHighWaterBytes: number;
  /** Input buffered for a command whose shell is not attached yet. */
  readonly maxPendingInputBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const DEFAULT_BASH_LIMITS: BashLimits = {
  eventChunkBytes: 1 * MiB,
  maxOutputBytes: 64 * MiB,
  maxRunningCommands: 64,
  defaultTimeoutSeconds: 300,
  maxTimeoutSeconds: 2_147_483,
  killGraceMs: 1000,
  maxCommandBytes: 1 * MiB,
  watchChunkBytes: 256 * KiB,
  storeChunkBytes: 256 * KiB,
  storeLingerMs: 3,
  outputHighWaterBytes: 8 * MiB,
  maxPendingInputBytes: 1 * MiB,
};

/** Default terminal size (columns × rows) of PTY commands. */
export const DEFAULT_PTY_COLS = 200;
export const DEFAULT_PTY_ROWS = 50;
/** Largest terminal dimension accepted. */
export const MAX_PTY_DIMENSION = 1000;
