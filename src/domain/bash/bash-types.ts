/**
 * Plain domain types of the bash engine (no wire types). The RPC layer converts these to and from
 * `agentd.v1` messages; the event objects are already OpenHands-shaped (snake_case, `kind`), so
 * the REST/WebSocket gateway can serialize them as they are.
 */

/** How a command's terminal is set up. "pty": one merged output stream, input, resize. "pipe": stdout and stderr kept apart. */
export type BashMode = "pty" | "pipe";

/** Life state of a command (see BashCommandInfo.status). */
export type BashCommandStatus = "running" | "exited" | "killed" | "timed_out" | "lost";

/** Signals a client may send to a command's process group. */
export type BashSignal = "SIGINT" | "SIGTERM" | "SIGKILL" | "SIGHUP" | "SIGQUIT" | "SIGUSR1" | "SIGUSR2";

/** What to run. Omitted fields take the manager's defaults. */
export interface BashCommandSpec {
  /** The command line, run by bash (`eval` in a fresh subshell). Non-empty, no NUL. */
  readonly command: string;
  /** Working directory; relative paths resolve against the manager's default cwd. Must exist. */
  readonly cwd?: string;
  /** Seconds before the process group is killed; undefined or 0 = the default (300). Fractions allowed. */
  readonly timeoutSeconds?: number;
  /** Extra environment variables for this command (names `[A-Za-z_][A-Za-z0-9_]*`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Default "pty". */
  readonly mode?: BashMode;
  /** PTY columns 1..1000; undefined or 0 = 200. Ignored (recorded as 0) in pipe mode. */
  readonly cols?: number;
  /** PTY rows 1..1000; undefined or 0 = 50. Ignored (recorded as 0) in pipe mode. */
  readonly rows?: number;
}

/**
 * The full state of a command; kept in the store after it ends.
 *
 * Status rules:
 * - "exited": the command ended on its own; `exitCode` is its status.
 * - "killed": a signal ended it — sent through `signal()`, by Ctrl-C on its terminal, by the
 *   server shutting down, or from elsewhere. `signal` names it when known; `exitCode` is the
 *   shell's status (128 + signal number) or null when the shell itself died.
 * - "timed_out": the timeout passed and the engine killed the process group (`timedOut` true).
 * - "lost": the server stopped while it ran; exit unknown (`exitCode` null).
 */
export interface BashCommandInfo {
  /** 32-character lower-case hex (the BashCommand event id). */
  readonly id: string;
  readonly command: string;
  /** Absolute working directory the command started in. */
  readonly cwd: string;
  readonly mode: BashMode;
  readonly status: BashCommandStatus;
  /** Shell exit status once ended (128 + n when signal n ended it); null while running or when unknown. */
  readonly exitCode: number | null;
  /** Name of the signal that ended it ("SIGINT", "SIGKILL", ...), or null. */
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly timeoutSeconds: number;
  /** Milliseconds since the Unix epoch (the manager's clock). */
  readonly startTime: number;
  /** Milliseconds since the Unix epoch; null while running. */
  readonly endTime: number | null;
  /** Process id of the command's process group leader; null until known (or when it never started). */
  readonly pid: number | null;
  /** Terminal size (PTY mode); 0 in pipe mode. */
  readonly cols: number;
  readonly rows: number;
  /** Bytes of output stored so far: the offset a watcher reaches at the end. */
  readonly outputBytes: number;
  /** True when output passed the per-command cap; a marker line was stored and later output dropped. */
  readonly outputTruncated: boolean;
  /** Why it ended, in words ("exited with code 0", "timed out after 5 s", "server restarted", ...); null while running. */
  readonly endReason: string | null;
}

/** OpenHands `BashCommand` event: a command was started. `id` is also the command id. */
export interface BashCommandEvent {
  readonly kind: "BashCommand";
  readonly id: string;
  /** UTC ISO-8601 ("2026-08-22T10:05:00.000Z"). */
  readonly timestamp: string;
  readonly command: string;
  readonly cwd: string;
  /** Timeout in seconds. */
  readonly timeout: number;
}

/**
 * OpenHands `BashOutput` event: a chunk of a command's output. Each of `stdout`/`stderr` carries
 * at most `eventChunkBytes` (1 MiB) of UTF-8; `order` counts from 0 per command; the last one has
 * a non-null `exit_code` (-1 for timeout, kill, spawn failure or a lost command) and the rest of
 * the output. PTY output is all in `stdout`, with the terminal's CRLF line ends given as LF (as a
 * pipe would produce); the raw terminal bytes are what `watch()` serves.
 */
export interface BashOutputEvent {
  readonly kind: "BashOutput";
  readonly id: string;
  readonly timestamp: string;
  readonly command_id: string;
  readonly order: number;
  readonly exit_code: number | null;
  readonly stdout: string | null;
  readonly stderr: string | null;
}

export type BashEvent = BashCommandEvent | BashOutputEvent;
export type BashEventKind = BashEvent["kind"];

/** The command an event belongs to: a BashCommand's own id, a BashOutput's `command_id`. */
export function commandIdOf(event: BashEvent): string {
  return event.kind === "BashCommand" ? event.id : event.command_id;
}

/** An item of `BashManager.watch()`. */
export type BashWatchItem =
  /** Raw output bytes starting at byte `offset` of the command's output (stdout and stderr in arrival order). */
  | { readonly type: "output"; readonly offset: number; readonly data: Uint8Array }
  /** The final state; always the last item. */
  | { readonly type: "exit"; readonly info: BashCommandInfo };

/** What `start()` returns. */
export interface BashStartResult {
  readonly command: BashCommandEvent;
  readonly info: BashCommandInfo;
}

/** What `execute()` returns: the last BashOutput (OpenHands semantics) and the final state. */
export interface BashExecuteResult {
  readonly command: BashCommandEvent;
  readonly output: BashOutputEvent;
  readonly info: BashCommandInfo;
}
