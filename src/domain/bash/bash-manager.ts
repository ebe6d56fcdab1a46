/**
 * The bash service's engine: runs shell commands on warm PTY or pipe shells, stores their output
 * by byte offset, emits OpenHands BashCommand/BashOutput events, and lets any number of watchers
 * re-attach to a command from any byte.
 *
 * Guarantees:
 * - Commands outlive requests: a cancelled execute() or watch() never affects the command. Only
 *   `timeoutSeconds`, `signal()` and `close()` end one.
 * - A command costs about one shell round trip: it runs in a subshell forked by a warm shell
 *   (see shell-host.ts), and the shell is reused when the command left nothing behind.
 * - Watchers pull from the store by offset, so a slow or stalled watcher costs no memory and does
 *   not slow the command or other watchers; re-attaching from the last offset seen gives every
 *   byte exactly once.
 * - A command is reported ended only after all its output and its final event are stored.
 * - After a restart, commands the store still has as running are marked "lost"
 *   (end reason "server restarted"); their stored output stays readable.
 *
 * Errors are AgentdError: invalid_argument (bad spec, offset, signal or size), permission_denied
 * (cwd outside `allowedRoots`), not_found (unknown command), failed_precondition (input, signal or
 * resize for an ended command; resize in pipe mode), out_of_range (watch offset past the end of
 * an ended command), resource_exhausted (too many running commands), unavailable (closed),
 * canceled (execute() stopped waiting).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AgentdError } from "../../errors.js";
import { DEFAULT_BASH_LIMITS, DEFAULT_PTY_COLS, DEFAULT_PTY_ROWS, MAX_PTY_DIMENSION, type BashLimits } from "./bash-limits.js";
import type { BashEventPage, BashEventQuery, BashStore, StoredBashEvent } from "./bash-store.js";
import type {
  BashCommandInfo,
  BashCommandSpec,
  BashEvent,
  BashExecuteResult,
  BashMode,
  BashOutputEvent,
  BashSignal,
  BashStartResult,
  BashWatchItem,
} from "./bash-types.js";
import { descendantPids, signalProcess } from "./proc-tree.js";
import { RunningCommand, isoTimestamp, newId, waitUntil, type CommandContext, type CommandLaunch } from "./running-command.js";
import { createShellHost, type ShellHost, type SubreaperLauncher } from "./shell-host.js";
import { ShellPool } from "./shell-pool.js";

/** Source of "now" (milliseconds since the epoch) for timestamps and durations. */
export interface BashClock {
  now(): number;
}

/**
 * Receives every bash event right after it is stored, in storage order, with its seq. Called
 * synchronously: it must only hand the event on (e.g. push to a bounded queue); it must never
 * block. A thrown error or a returned promise's rejection is ignored — a listener can never
 * delay or fail a command.
 */
export type BashEventListener = (event: BashEvent, seq: number) => void;

export interface BashManagerOptions {
  readonly store: BashStore;
  /**
   * The environment commands inherit (normally the server's, passed in by config.ts). Session
   * keys (SESSION_API_KEY, OH_SESSION_API_KEYS*) and OH_SECRET_KEY are removed; AI_AGENT=openhands
   * is set; PTY commands get TERM=xterm-256color.
   */
  readonly baseEnv: Readonly<Record<string, string | undefined>>;
  /** Working directory of commands that name none (the workspace base); relative cwds resolve against it. */
  readonly defaultCwd: string;
  /** When given, a command's cwd must resolve (symlinks followed) inside one of these, else permission_denied. */
  readonly allowedRoots?: readonly string[];
  /** Idle warm shells kept ready per mode. Default 2. */
  readonly poolSize?: number;
  readonly limits?: Partial<BashLimits>;
  readonly clock?: BashClock;
  /** bash executable. Default: `bash` on baseEnv.PATH, else /bin/bash. */
  readonly bashPath?: string;
  /**
   * Start shells through perl to make them child subreapers (orphaned grandchildren are reaped by
   * the shell, never left as zombies). Default: when perl is on baseEnv.PATH and the CPU
   * architecture is known.
   */
  readonly subreaper?: boolean;
  /** Where the private FIFO directory is created. Default os.tmpdir(). */
  readonly tmpDir?: string;
}

export interface BashWatchOptions {
  /** Byte offset to start from; 0 (default) = the beginning. */
  readonly offset?: number;
  /** Ends the iteration (quietly) when aborted. */
  readonly signal?: AbortSignal;
}

/** Engine figures for metrics and tests. */
export interface BashStats {
  readonly runningCommands: number;
  readonly warmShells: Record<BashMode, number>;
  /** Output read from commands and not yet stored, now (all commands). */
  readonly queuedOutputBytes: number;
  /** The largest `queuedOutputBytes` seen since the manager started. */
  readonly peakQueuedOutputBytes: number;
}

export interface BashListOptions {
  /** Also list ended commands. Default false (running only). */
  readonly includeEnded?: boolean;
  /** Most commands returned, newest first. Default 100. */
  readonly limit?: number;
}

const SIGNALS: ReadonlySet<string> = new Set<BashSignal>(["SIGINT", "SIGTERM", "SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** prctl(2) syscall numbers for the subreaper launcher. */
const PRCTL_SYSCALL: Partial<Record<string, number>> = { x64: 157, arm64: 167, riscv64: 167, ia32: 172, arm: 172 };
const REFILL_DELAY_MS = 100;
const DRAIN_CHECK_MS = 500;
const SHELL_START_TIMEOUT_MS = 15_000;

/** Whether a variable of the server's environment is kept out of commands (keys that grant access to the server). */
export function isStrippedEnvName(name: string): boolean {
  return name === "SESSION_API_KEY" || name.startsWith("OH_SESSION_API_KEYS") || name === "OH_SECRET_KEY";
}

export class BashManager {
  private readonly store: BashStore;
  private readonly limits: BashLimits;
  private readonly clock: BashClock;
  private readonly defaultCwd: string;
  private readonly allowedRoots: readonly string[] | null;
  private allowedRealRoots: Promise<string[]> | null = null;
  private readonly live = new Map<string, RunningCommand>();
  /** Start requests past the concurrency check but not yet registered. */
  private reserved = 0;
  private readonly listeners = new Set<BashEventListener>();
  private readonly pools: Record<BashMode, ShellPool>;
  private readonly fifoDir: string;
  private readonly recovered: Promise<void>;
  private readonly ctx: CommandContext;
  private closing: Promise<void> | null = null;
  private queuedOutputBytes = 0;
  private peakQueuedOutputBytes = 0;

  constructor(options: BashManagerOptions) {
    this.store = options.store;
    this.limits = checkLimits({ ...DEFAULT_BASH_LIMITS, ...options.limits });
    this.clock = options.clock ?? { now: () => Date.now() };
    this.defaultCwd = path.resolve(options.defaultCwd);
    this.allowedRoots = options.allowedRoots === undefined ? null : options.allowedRoots.map((r) => path.resolve(r));
    const poolSize = options.poolSize ?? 2;
    if (!Number.isInteger(poolSize) || poolSize < 0) throw new AgentdError("invalid_argument", `bash pool size must be an integer ≥ 0, got ${poolSize}`);

    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.baseEnv)) {
      if (v !== undefined && !isStrippedEnvName(k)) env[k] = v;
    }
    env["AI_AGENT"] = "openhands";
    const bashPath = options.bashPath ?? findExecutable("bash", env["PATH"]) ?? "/bin/bash";
    const subreaper = this.subreaperLauncher(options.subreaper, env["PATH"]);
    this.fifoDir = fs.mkdtempSync(path.join(options.tmpDir ?? os.tmpdir(), "agentd-bash-"));
    const spawnShell = (mode: BashMode) => (): ShellHost =>
      createShellHost({
        mode,
        bashPath,
        subreaper,
        env: mode === "pty" ? { ...env, TERM: "xterm-256color" } : env,
        cwd: this.defaultCwd,
        fifoDir: this.fifoDir,
        cols: DEFAULT_PTY_COLS,
        rows: DEFAULT_PTY_ROWS,
        startTimeoutMs: SHELL_START_TIMEOUT_MS,
      });
    const pool = (mode: BashMode): ShellPool =>
      new ShellPool({ size: poolSize, spawn: spawnShell(mode), refillDelayMs: REFILL_DELAY_MS, drainCheckMs: DRAIN_CHECK_MS });
    this.pools = { pty: pool("pty"), pipe: pool("pipe") };
    this.pools.pty.warm();
    this.pools.pipe.warm();

    this.ctx = {
      store: this.store,
      limits: this.limits,
      now: () => this.clock.now(),
      acquireShell: (mode) => this.pools[mode].acquire(),
      releaseShell: (host, reusable, pgid) => this.pools[host.mode].release(host, reusable, pgid),
      published: (event, seq) => this.publish(event, seq),
      queued: (delta) => {
        this.queuedOutputBytes += delta;
        if (this.queuedOutputBytes > this.peakQueuedOutputBytes) this.peakQueuedOutputBytes = this.queuedOutputBytes;
      },
      ended: (cmd) => this.live.delete(cmd.id),
    };
    this.recovered = this.recover();
    this.recovered.catch(() => {}); // surfaced by every call through ready()
  }

  // ---- commands ----------------------------------------------------------------------------------

  /**
   * Starts a command and returns once its BashCommand event is stored (the command may already
   * be running). @throws AgentdError invalid_argument, permission_denied, resource_exhausted, unavailable.
   */
  async start(spec: BashCommandSpec): Promise<BashStartResult> {
    const cmd = await this.startCommand(spec, false);
    return { command: cmd.commandEvent, info: cmd.snapshot() };
  }

  /**
   * Runs a command and waits for it to end (bounded by its own timeout, not by `signal`).
   * Returns the last BashOutput event and the final state.
   * @throws as start(); AgentdError canceled when `signal` aborts the wait (the command keeps running).
   */
  async execute(spec: BashCommandSpec, options: { signal?: AbortSignal } = {}): Promise<BashExecuteResult> {
    const cmd = await this.startCommand(spec, true);
    const signal = options.signal;
    if (signal === undefined) return cmd.done;
    return new Promise<BashExecuteResult>((resolve, reject) => {
      const onAbort = (): void =>
        reject(new AgentdError("canceled", `stopped waiting for command ${cmd.id}; it keeps running`, { command_id: cmd.id }));
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      void cmd.done.then((result) => {
        signal.removeEventListener("abort", onAbort);
        resolve(result);
      });
    });
  }

  /**
   * The command's output from byte `offset`: stored bytes first, then live ones as they are
   * stored, then one `exit` item with the final state. Validation errors (invalid_argument,
   * not_found, out_of_range for an offset past the end of an ended command) are thrown by the
   * first `next()`. For a running command an offset past the current end waits for more output.
   */
  watch(commandId: string, options: BashWatchOptions = {}): AsyncIterable<BashWatchItem> {
    return this.watchItems(commandId, options.offset ?? 0, options.signal);
  }

  /** Writes bytes to a command's stdin (PTY: its terminal; "\x03" is Ctrl-C). @throws AgentdError not_found, failed_precondition, resource_exhausted. */
  async sendInput(commandId: string, data: Uint8Array | string): Promise<void> {
    const cmd = await this.runningCommand(commandId, "send input to");
    cmd.sendInput(typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  /** Signals the command's whole process group. @throws AgentdError invalid_argument, not_found, failed_precondition. */
  async signal(commandId: string, signal: BashSignal): Promise<void> {
    if (!SIGNALS.has(signal)) throw new AgentdError("invalid_argument", `unsupported signal ${JSON.stringify(signal)}`);
    const cmd = await this.runningCommand(commandId, "signal");
    cmd.signal(signal);
  }

  /** Resizes a PTY command's terminal. @throws AgentdError invalid_argument, not_found, failed_precondition. */
  async resize(commandId: string, cols: number, rows: number): Promise<void> {
    checkDimension("cols", cols);
    checkDimension("rows", rows);
    const cmd = await this.runningCommand(commandId, "resize");
    cmd.resize(cols, rows);
  }

  /** The command's current or final state. @throws AgentdError not_found. */
  async get(commandId: string): Promise<BashCommandInfo> {
    await this.ready();
    const cmd = this.live.get(commandId);
    if (cmd !== undefined) return cmd.snapshot();
    const info = await this.store.getCommand(commandId);
    if (info === null) throw notFound(commandId);
    return info;
  }

  /** Running commands (and with `includeEnded` ended ones too), newest first. */
  async list(options: BashListOptions = {}): Promise<BashCommandInfo[]> {
    await this.ready();
    const limit = options.limit ?? 100;
    const out = [...this.live.values()].map((c) => c.snapshot());
    if (options.includeEnded === true) {
      for (const info of await this.store.listCommands()) {
        if (!this.live.has(info.id) && info.status !== "running") out.push(info);
      }
    }
    out.sort((a, b) => b.startTime - a.startTime);
    return out.slice(0, limit);
  }

  // ---- events ------------------------------------------------------------------------------------

  /** Registers a live event listener (see BashEventListener); returns the function that removes it. */
  subscribe(listener: BashEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async searchEvents(query: BashEventQuery): Promise<BashEventPage> {
    await this.ready();
    return this.store.searchEvents(query);
  }

  async getEvent(eventId: string): Promise<BashEvent | null> {
    await this.ready();
    return this.store.getEvent(eventId);
  }

  /** Stored events after `afterSeq` (replay before live events, gap-free with subscribe()). */
  async readEvents(afterSeq: number, limit: number): Promise<StoredBashEvent[]> {
    await this.ready();
    return this.store.readEvents(afterSeq, limit);
  }

  /** Deletes all stored bash events; returns how many. Commands and their output stay. */
  async clearEvents(): Promise<number> {
    await this.ready();
    return this.store.clearEvents();
  }

  /** Current engine figures (cheap; no I/O). */
  stats(): BashStats {
    return {
      runningCommands: this.live.size,
      warmShells: this.warmShells(),
      queuedOutputBytes: this.queuedOutputBytes,
      peakQueuedOutputBytes: this.peakQueuedOutputBytes,
    };
  }

  /** Resolves once both pools hold their full number of idle warm shells (e.g. before serving). */
  async warmUp(): Promise<void> {
    await Promise.all([this.pools.pty.whenFull(), this.pools.pipe.whenFull()]);
  }

  /** Idle warm shells per mode (observability and tests). */
  warmShells(): Record<BashMode, number> {
    return { pty: this.pools.pty.idleCount, pipe: this.pools.pipe.idleCount };
  }

  /** Pids of every shell process the manager owns (observability and tests). */
  shellPids(): number[] {
    return [...this.pools.pty.shells(), ...this.pools.pipe.shells()].map((h) => h.pid).filter((p) => p > 0);
  }

  // ---- shutdown ----------------------------------------------------------------------------------

  /**
   * Ends every running command (SIGTERM to its group, SIGKILL after `killGraceMs`, recorded as
   * killed with end reason "server shut down"), kills whatever the commands left behind and all
   * warm shells, waits until they are gone and their final states are stored, and releases every
   * timer and file. Idempotent; later calls (other than reads of stored data) fail unavailable.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await this.recovered.catch(() => {});
    const commands = [...this.live.values()];
    for (const c of commands) c.shutdown();
    const allDone = Promise.all(commands.map((c) => c.done));
    if (!(await within(allDone, this.limits.killGraceMs))) {
      for (const c of commands) c.escalate();
    }
    // Leftovers (background processes of ended commands, escaped process groups) are below the
    // shells; kill them while the shells are alive to reap them, then retire the shells.
    const shells = [...this.pools.pty.shells(), ...this.pools.pipe.shells()];
    for (const host of shells) {
      for (const child of host.leftovers()) {
        for (const pid of [...descendantPids(child).reverse(), child]) signalProcess(pid, "SIGKILL");
      }
    }
    await waitUntil(() => shells.every((h) => h.leftovers().length === 0), this.limits.killGraceMs);
    await Promise.all([this.pools.pty.close(), this.pools.pipe.close()]);
    await allDone;
    fs.rmSync(this.fifoDir, { recursive: true, force: true });
  }

  // ---- internals ---------------------------------------------------------------------------------

  private async ready(): Promise<void> {
    await this.recovered;
  }

  private assertOpen(): void {
    if (this.closing !== null) throw new AgentdError("unavailable", "the bash service is shutting down");
  }

  private async startCommand(spec: BashCommandSpec, waitsForEnd: boolean): Promise<RunningCommand> {
    await this.ready();
    this.assertOpen();
    const checked = this.checkSpec(spec);
    if (this.live.size + this.reserved >= this.limits.maxRunningCommands) {
      throw new AgentdError("resource_exhausted", `too many running commands (limit ${this.limits.maxRunningCommands})`, {
        limit: String(this.limits.maxRunningCommands),
      });
    }
    this.reserved++;
    let cmd: RunningCommand;
    try {
      const cwd = await this.resolveCwd(spec.cwd);
      this.assertOpen();
      cmd = new RunningCommand(this.ctx, { id: newId(), cwd, waitsForEnd, ...checked });
      this.live.set(cmd.id, cmd);
    } finally {
      this.reserved--;
    }
    await cmd.start();
    return cmd;
  }

  private checkSpec(spec: BashCommandSpec): Omit<CommandLaunch, "id" | "cwd" | "waitsForEnd"> {
    const { command } = spec;
    if (typeof command !== "string" || command.trim() === "") throw new AgentdError("invalid_argument", "command is empty");
    if (command.includes("\0")) throw new AgentdError("invalid_argument", "command contains a NUL character");
    const bytes = Buffer.byteLength(command, "utf8");
    if (bytes > this.limits.maxCommandBytes) {
      throw new AgentdError("invalid_argument", `command is ${bytes} bytes, more than the limit of ${this.limits.maxCommandBytes}`);
    }
    let timeoutSeconds = spec.timeoutSeconds ?? 0;
    if (typeof timeoutSeconds !== "number" || !Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) {
      throw new AgentdError("invalid_argument", `timeout must be a non-negative number of seconds, got ${String(spec.timeoutSeconds)}`);
    }
    if (timeoutSeconds > this.limits.maxTimeoutSeconds) {
      throw new AgentdError("invalid_argument", `timeout ${timeoutSeconds} s exceeds the maximum of ${this.limits.maxTimeoutSeconds} s`);
    }
    if (timeoutSeconds === 0) timeoutSeconds = this.limits.defaultTimeoutSeconds;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(spec.env ?? {})) {
      if (!ENV_NAME.test(k)) throw new AgentdError("invalid_argument", `invalid environment variable name ${JSON.stringify(k)}`);
      if (typeof v !== "string" || v.includes("\0")) throw new AgentdError("invalid_argument", `invalid value for environment variable ${k}`);
      env[k] = v;
    }
    const mode = spec.mode ?? "pty";
    if (mode !== "pty" && mode !== "pipe") throw new AgentdError("invalid_argument", `unknown mode ${JSON.stringify(mode)}`);
    let cols = 0;
    let rows = 0;
    if (mode === "pty") {
      cols = spec.cols === undefined || spec.cols === 0 ? DEFAULT_PTY_COLS : checkDimension("cols", spec.cols);
      rows = spec.rows === undefined || spec.rows === 0 ? DEFAULT_PTY_ROWS : checkDimension("rows", spec.rows);
    }
    return { command, env, mode, timeoutSeconds, cols, rows };
  }

  /** The absolute, existing directory a command runs in. @throws AgentdError invalid_argument, permission_denied. */
  private async resolveCwd(requested: string | undefined): Promise<string> {
    if (requested !== undefined && requested.includes("\0")) throw new AgentdError("invalid_argument", "cwd contains a NUL character");
    const cwd = requested === undefined || requested === "" ? this.defaultCwd : path.resolve(this.defaultCwd, requested);
    // A synchronous stat of a local directory costs microseconds, less than a thread-pool round trip.
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(cwd, { throwIfNoEntry: false });
    } catch (err) {
      throw new AgentdError("invalid_argument", `cwd ${cwd} cannot be used: ${(err as NodeJS.ErrnoException).code ?? "error"}`, { cwd });
    }
    if (stat === undefined) throw new AgentdError("invalid_argument", `cwd ${cwd} does not exist`, { cwd });
    if (!stat.isDirectory()) throw new AgentdError("invalid_argument", `cwd ${cwd} is not a directory`, { cwd });
    if (this.allowedRoots !== null) {
      // realpath(3) of a local path, like the stat above, is cheaper than a thread-pool round trip.
      this.allowedRealRoots ??= Promise.all(this.allowedRoots.map((r) => fs.promises.realpath(r).catch(() => r)));
      const roots = await this.allowedRealRoots;
      let real: string;
      try {
        real = fs.realpathSync.native(cwd);
      } catch (err) {
        throw new AgentdError("invalid_argument", `cwd ${cwd} cannot be used: ${(err as NodeJS.ErrnoException).code ?? "error"}`, { cwd });
      }
      if (!roots.some((root) => real === root || real.startsWith(root.endsWith(path.sep) ? root : root + path.sep))) {
        throw new AgentdError("permission_denied", `cwd ${cwd} is outside the workspace`, { cwd }, "PATH_OUTSIDE_WORKSPACE");
      }
    }
    return cwd;
  }

  /** The live command, or: not_found when unknown, failed_precondition when it has ended. */
  private async runningCommand(commandId: string, what: string): Promise<RunningCommand> {
    await this.ready();
    const cmd = this.live.get(commandId);
    if (cmd !== undefined) return cmd;
    if ((await this.store.getCommand(commandId)) === null) throw notFound(commandId);
    throw new AgentdError("failed_precondition", `cannot ${what} command ${commandId}: it has ended`, { command_id: commandId }, "COMMAND_ALREADY_EXITED");
  }

  private async *watchItems(commandId: string, start: number, signal: AbortSignal | undefined): AsyncGenerator<BashWatchItem, void, undefined> {
    await this.ready();
    if (!Number.isSafeInteger(start) || start < 0) throw new AgentdError("invalid_argument", `offset must be an integer ≥ 0, got ${start}`);
    const live = this.live.get(commandId);
    let info: BashCommandInfo | null = live === undefined ? await this.store.getCommand(commandId) : null;
    if (live === undefined && info === null) throw notFound(commandId);
    let offset = start;
    for (;;) {
      if (signal?.aborted === true) return;
      if (live !== undefined && live.ended) info = live.finalInfo;
      const running = live !== undefined && !live.ended;
      const end = running ? live.storedBytes : info!.outputBytes;
      if (!running && offset > end) {
        throw new AgentdError("out_of_range", `offset ${offset} is past the end (${end}) of command ${commandId}'s output`, {
          command_id: commandId,
          output_size: String(end),
        });
      }
      if (offset < end) {
        const data = await this.store.readOutput(commandId, offset, Math.min(this.limits.watchChunkBytes, end - offset));
        if (data.byteLength === 0) {
          throw new AgentdError("data_loss", `output of command ${commandId} at offset ${offset} is missing from the store`, { command_id: commandId });
        }
        yield { type: "output", offset, data };
        offset += data.byteLength;
        continue;
      }
      if (!running) {
        yield { type: "exit", info: info! };
        return;
      }
      await live.changed(signal);
    }
  }

  private publish(event: BashEvent, seq: number): void {
    for (const listener of this.listeners) {
      try {
        const r: unknown = listener(event, seq);
        if (r instanceof Promise) r.catch(() => {});
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** Marks commands that were running when the server stopped as lost, with a final BashOutput. */
  private async recover(): Promise<void> {
    for (const info of await this.store.listCommands()) {
      if (info.status !== "running") continue;
      const outputBytes = await this.store.outputLength(info.id);
      let order = 0;
      let finished = false;
      let pageToken: string | undefined;
      do {
        const page = await this.store.searchEvents({ commandId: info.id, kind: "BashOutput", limit: 100, pageToken });
        for (const e of page.items) {
          if (e.kind !== "BashOutput") continue;
          order = Math.max(order, e.order + 1);
          if (e.exit_code !== null) finished = true;
        }
        pageToken = page.nextPageToken ?? undefined;
      } while (pageToken !== undefined);
      const now = this.clock.now();
      const lost: BashCommandInfo = {
        ...info,
        status: "lost",
        exitCode: null,
        signal: null,
        endTime: now,
        outputBytes,
        endReason: "server restarted",
      };
      if (finished) {
        await this.store.saveCommand(lost);
        continue;
      }
      const final: BashOutputEvent = {
        kind: "BashOutput",
        id: newId(),
        timestamp: isoTimestamp(now),
        command_id: info.id,
        order,
        exit_code: -1,
        stdout: null,
        stderr: "agentd: the server restarted while this command was running; its exit status is unknown (its stored output can still be watched)",
      };
      this.publish(final, await this.store.appendEvent(final, { command: lost }));
    }
  }

  private subreaperLauncher(requested: boolean | undefined, pathVar: string | undefined): SubreaperLauncher | null {
    if (requested === false || process.platform !== "linux") return null;
    const prctlSyscall = PRCTL_SYSCALL[process.arch];
    const perlPath = findExecutable("perl", pathVar);
    if (prctlSyscall === undefined || perlPath === null) {
      if (requested === true) throw new AgentdError("failed_precondition", "subreaper shells need perl on PATH and a known CPU architecture");
      return null;
    }
    return { perlPath, prctlSyscall };
  }
}

function notFound(commandId: string): AgentdError {
  return new AgentdError("not_found", `command ${commandId} not found`, { command_id: commandId }, "COMMAND_NOT_FOUND");
}

function checkDimension(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > MAX_PTY_DIMENSION) {
    throw new AgentdError("invalid_argument", `${name} must be an integer from 1 to ${MAX_PTY_DIMENSION}, got ${value}`);
  }
  return value;
}

function checkLimits(limits: BashLimits): BashLimits {
  for (const [name, value] of Object.entries(limits)) {
    const zeroAllowed = name === "storeLingerMs";
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed)) {
      throw new AgentdError("invalid_argument", `bash limit ${name} must be a ${zeroAllowed ? "non-negative" : "positive"} number, got ${String(value)}`);
    }
  }
  if (limits.eventChunkBytes < 16) throw new AgentdError("invalid_argument", "bash limit eventChunkBytes must be at least 16");
  return limits;
}

/** First executable named `name` on a PATH string, or null. */
function findExecutable(name: string, pathVar: string | undefined): string | null {
  for (const dir of (pathVar ?? "/usr/local/bin:/usr/bin:/bin").split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Resolves true if `promise` settles within `ms`, false otherwise (the timer is always cleared). */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
