/**
 * One running command: attaches it to a warm shell, stores its output, emits its BashOutput
 * events, enforces its timeout, and records its final state.
 *
 * Output path and its invariants:
 * - Output is queued in memory only until the store has it. All store writes of a command go
 *   through one pump, in order: the BashCommand event and record first (start()), then output
 *   chunks (contiguous offsets) and the BashOutput events cut from them, then the final event and
 *   record. Watchers read from the store by offset (pull), never from this queue.
 * - Bounded memory: above `outputHighWaterBytes` queued, the shell's output is paused, so a
 *   command flooding output blocks on write instead of growing the queue; beyond
 *   `maxOutputBytes` output is counted and dropped.
 * - The command ends (watchers see the exit, execute() returns) only after everything it wrote
 *   is stored.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import { AgentdError } from "../../errors.js";
import type { BashLimits } from "./bash-limits.js";
import type { BashStore } from "./bash-store.js";
import type {
  BashCommandEvent,
  BashCommandInfo,
  BashCommandStatus,
  BashEvent,
  BashExecuteResult,
  BashMode,
  BashOutputEvent,
  BashSignal,
} from "./bash-types.js";
import { OutputChunker, type OutputPiece, type OutputStream } from "./output-chunker.js";
import { processGroupExists, signalGroup } from "./proc-tree.js";
import type { ShellHost, ShellJobSink } from "./shell-host.js";

/** What a command needs from its manager. */
export interface CommandContext {
  readonly store: BashStore;
  readonly limits: BashLimits;
  now(): number;
  acquireShell(mode: BashMode): Promise<ShellHost>;
  releaseShell(host: ShellHost, reusable: boolean, jobPgid: number | null): void;
  /** Publishes a stored event to live subscribers. */
  published(event: BashEvent, seq: number): void;
  /** Output bytes read from a shell but not yet stored grew (positive) or shrank (negative). */
  queued(deltaBytes: number): void;
  /** Called once, after the final state is stored. */
  ended(command: RunningCommand): void;
}

export interface CommandLaunch {
  readonly id: string;
  readonly command: string;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly mode: BashMode;
  readonly timeoutSeconds: number;
  readonly cols: number;
  readonly rows: number;
  /** The caller waits for the end (ExecuteBashCommand): the start may be stored with it. */
  readonly waitsForEnd: boolean;
}

/**
 * PTY commands that may leave the terminal in another mode (raw, no echo, ...). A shell that ran
 * one is not reused, so the next command always starts on a sane terminal. Programs that change
 * the mode interactively need input to finish, and input already prevents reuse.
 */
const TERMINAL_MODE_COMMAND = /\b(stty|tput|reset|tset|setterm)\b/;

/** Signal number → name ("SIGINT"), for statuses 128 + n; the first (canonical) name wins over aliases like SIGIOT. */
const SIGNAL_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(os.constants.signals)) if (!SIGNAL_NAMES.has(n)) SIGNAL_NAMES.set(n, name);

export function signalNameOfStatus(status: number | null): string | null {
  if (status === null || status <= 128) return null;
  return SIGNAL_NAMES.get(status - 128) ?? null;
}

export function isoTimestamp(ms: number): string {
  return new Date(ms).toISOString();
}

export function newId(): string {
  return randomUUID().replaceAll("-", "");
}

interface Queued {
  readonly stream: OutputStream;
  readonly data: Buffer;
}

export class RunningCommand implements ShellJobSink {
  readonly id: string;
  readonly commandEvent: BashCommandEvent;
  /** Resolves once the command ended and its final state is stored. Never rejects. */
  readonly done: Promise<BashExecuteResult>;
  /** True once the final state is stored (watchers then see the exit). */
  ended = false;
  finalInfo: BashCommandInfo | null = null;

  private readonly spec: CommandLaunch;
  private readonly startTime: number;
  private cols: number;
  private rows: number;
  private host: ShellHost | null = null;
  private pgid: number | null = null;
  private resolveDone!: (r: BashExecuteResult) => void;

  // Control state.
  private readonly pendingSignals: NodeJS.Signals[] = [];
  private pendingInput: Buffer[] = [];
  private pendingInputBytes = 0;
  /** Something happened that makes the shell unfit for another command. */
  private dirty = false;
  /** Pipe mode: stdin was closed ("\x04"). */
  private stdinClosed = false;
  private timedOut = false;
  private requestedSignal: BashSignal | null = null;
  /** Set when the engine itself ends the command (shutdown). */
  private killReason: string | null = null;
  private timers: NodeJS.Timeout[] = [];

  // Exit state.
  private exitPending = false;
  private exitStatus: number | null = null;
  private lostReason: string | null = null;
  private spawnError: string | null = null;
  private finalizing = false;

  // Output state.
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  /** Output bytes accepted for storage (≤ maxOutputBytes); the truncation marker is not counted. */
  private acceptedBytes = 0;
  private truncated = false;
  /** Bytes durably stored: what watchers may read. */
  storedBytes = 0;
  private pumping = false;
  /** The command's last output, taken by the pump for finalize() to store with the end. */
  private tail: Buffer | null = null;
  private paused = false;
  /** Ends of the waits in linger() now in progress. */
  private readonly lingering = new Set<() => void>();
  /** The start was not written on its own: it goes into the end's write (see start()). */
  private startWithEnd = false;
  private storeError: string | null = null;
  private readonly chunker: OutputChunker;
  private nextOrder = 0;
  private startPersisted: Promise<void> = Promise.resolve();
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly ctx: CommandContext,
    spec: CommandLaunch,
  ) {
    this.spec = spec;
    this.id = spec.id;
    this.startTime = ctx.now();
    this.cols = spec.cols;
    this.rows = spec.rows;
    this.chunker = new OutputChunker(ctx.limits.eventChunkBytes, spec.mode === "pty");
    this.commandEvent = {
      kind: "BashCommand",
      id: spec.id,
      timestamp: isoTimestamp(this.startTime),
      command: spec.command,
      cwd: spec.cwd,
      timeout: spec.timeoutSeconds,
    };
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get mode(): BashMode {
    return this.spec.mode;
  }

  /** True once the command can no longer take input or signals. */
  get finished(): boolean {
    return this.exitPending || this.ended;
  }

  /** The current state (live values while running). */
  snapshot(): BashCommandInfo {
    if (this.finalInfo !== null) return this.finalInfo;
    return {
      id: this.id,
      command: this.spec.command,
      cwd: this.spec.cwd,
      mode: this.spec.mode,
      status: "running",
      exitCode: null,
      signal: null,
      timedOut: this.timedOut,
      timeoutSeconds: this.spec.timeoutSeconds,
      startTime: this.startTime,
      endTime: null,
      pid: this.pgid,
      cols: this.cols,
      rows: this.rows,
      outputBytes: this.storedBytes,
      outputTruncated: this.truncated,
      endReason: null,
    };
  }

  /**
   * Starts the command on a shell (without waiting for it) and stores the running record and the
   * BashCommand event, then publishes the event. Rejects when the store fails; the command is
   * then killed. When the caller waits for the end anyway (`waitsForEnd`), a command that ends
   * within `storeLingerMs` with little output has its start stored with its end instead, in one
   * write: one fsync per short command instead of two in a row.
   */
  async start(): Promise<void> {
    this.timers.push(setTimeout(() => this.onTimeout(), this.spec.timeoutSeconds * 1000));
    void this.attach();
    // The event and the running record are one write (one fsync), started once the job is on its
    // way to a warm shell (attach() gets there in a few microtasks), so the write's own CPU time
    // does not delay the command.
    this.startPersisted = (async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.spec.waitsForEnd) {
        if (!this.exitPending) await this.linger();
        // Ended, with less output than one store chunk: the pump keeps all of it for the end
        // write too (it writes nothing before the start is settled), so nothing is stored
        // before the BashCommand event.
        if (this.exitPending && this.queuedBytes < this.ctx.limits.storeChunkBytes) {
          this.startWithEnd = true;
          return;
        }
      }
      const seq = await this.ctx.store.appendEvent(this.commandEvent, { command: this.snapshot() });
      this.ctx.published(this.commandEvent, seq);
    })();
    try {
      await this.startPersisted;
    } catch (err) {
      this.killReason = "the command could not be recorded";
      this.kill("SIGKILL");
      throw err;
    }
  }

  /** Gets a shell and starts the job on it; never throws (failures end the command). */
  private async attach(): Promise<void> {
    let lastError = "no shell available";
    // A pooled shell can die between being handed out and taking the job: try a second one.
    for (let attempt = 0; attempt < 2; attempt++) {
      let host: ShellHost;
      try {
        host = await this.ctx.acquireShell(this.spec.mode);
      } catch (err) {
        lastError = (err as Error).message;
        break;
      }
      if (this.exitPending) {
        this.ctx.releaseShell(host, true, null);
        return;
      }
      try {
        this.host = host;
        host.run(
          { cwd: this.spec.cwd, env: this.spec.env, command: this.spec.command, cols: this.cols, rows: this.rows },
          this,
        );
        return;
      } catch (err) {
        this.host = null;
        lastError = (err as Error).message;
        this.ctx.releaseShell(host, false, null);
      }
    }
    this.spawnError = lastError;
    this.onExit(null);
  }

  // ---- ShellJobSink ------------------------------------------------------------------------------

  output(stream: OutputStream, data: Buffer): void {
    if (this.exitPending) return;
    const room = this.ctx.limits.maxOutputBytes - this.acceptedBytes;
    const take = Math.max(0, Math.min(room, data.length));
    if (take > 0) this.enqueue(stream, take === data.length ? data : data.subarray(0, take));
    this.acceptedBytes += take;
    if (take < data.length) {
      if (!this.truncated) {
        this.truncated = true;
        const nl = this.mode === "pty" ? "\r\n" : "\n";
        const mib = Math.round((this.ctx.limits.maxOutputBytes / (1024 * 1024)) * 100) / 100;
        const marker = `${nl}[agentd: output exceeded ${mib} MiB; further output of this command is discarded]${nl}`;
        this.enqueue("stdout", Buffer.from(marker, "utf8"));
      }
    }
  }

  started(pid: number): void {
    this.pgid = pid;
    // Only now is the job the terminal's foreground group: earlier input (a Ctrl-C) would reach the shell.
    for (const data of this.pendingInput) this.host?.input(data);
    if (this.stdinClosed) this.host?.endInput();
    this.pendingInput = [];
    this.pendingInputBytes = 0;
    for (const sig of this.pendingSignals.splice(0)) signalGroup(pid, sig);
  }

  exited(status: number): void {
    this.onExit(status);
  }

  lost(reason: string): void {
    this.lostReason = reason;
    this.onExit(null);
  }

  // ---- control -----------------------------------------------------------------------------------

  /**
   * Writes to the command's stdin (PTY: its terminal). In pipe mode, where no terminal interprets
   * control keys, an input of exactly "\x03" is delivered as SIGINT and exactly "\x04" closes
   * stdin (end of file), as Ctrl-C and Ctrl-D would on a terminal.
   * @throws AgentdError failed_precondition, resource_exhausted.
   */
  sendInput(data: Buffer): void {
    this.assertRunning("send input to");
    if (data.length === 0) return;
    this.dirty = true;
    if (this.mode === "pipe" && data.length === 1 && data[0] === 0x03) {
      this.signal("SIGINT");
      return;
    }
    if (this.mode === "pipe" && data.length === 1 && data[0] === 0x04) {
      this.stdinClosed = true;
      if (this.host !== null && this.pgid !== null) this.host.endInput();
      return;
    }
    if (this.stdinClosed) {
      throw new AgentdError("failed_precondition", `stdin of command ${this.id} is closed`, { command_id: this.id });
    }
    if (this.host !== null && this.pgid !== null) {
      this.host.input(data);
      return;
    }
    if (this.pendingInputBytes + data.length > this.ctx.limits.maxPendingInputBytes) {
      throw new AgentdError("resource_exhausted", `too much input buffered for command ${this.id} before it started`, { command_id: this.id });
    }
    this.pendingInput.push(data);
    this.pendingInputBytes += data.length;
  }

  /**
   * Sends `sig` to the command's process group. Note (bash, not agentd): bash blocks SIGINT while
   * it forks a command, so an interrupt landing in that instant is absorbed by bash and the
   * command starts anyway — as with Ctrl-C on a local terminal. SIGTERM/SIGKILL (and the timeout)
   * have no such gap. @throws AgentdError failed_precondition.
   */
  signal(sig: BashSignal): void {
    this.assertRunning("signal");
    this.dirty = true;
    this.requestedSignal = sig;
    this.kill(sig);
  }

  /** Resizes the terminal. @throws AgentdError failed_precondition (ended, pipe mode). */
  resize(cols: number, rows: number): void {
    this.assertRunning("resize");
    if (this.mode !== "pty") {
      throw new AgentdError("failed_precondition", `command ${this.id} runs on pipes and has no terminal to resize`, { command_id: this.id });
    }
    this.cols = cols;
    this.rows = rows;
    this.host?.resize(cols, rows);
  }

  /**
   * Ends the command because the server shuts down: SIGTERM now; `escalate()` follows up with
   * SIGKILL and then kills the shell.
   */
  shutdown(): void {
    if (this.finished) return;
    this.killReason ??= "server shut down";
    this.dirty = true;
    this.kill("SIGTERM");
  }

  /** SIGKILL to the group, and the shell itself if the command still has not ended after a grace. */
  escalate(): void {
    if (this.finished) return;
    this.kill("SIGKILL");
    this.timers.push(setTimeout(() => this.host?.kill(), this.ctx.limits.killGraceMs));
  }

  private assertRunning(what: string): void {
    if (this.finished) {
      throw new AgentdError("failed_precondition", `cannot ${what} command ${this.id}: it has ended`, { command_id: this.id }, "COMMAND_ALREADY_EXITED");
    }
  }

  private kill(sig: NodeJS.Signals): void {
    if (this.pgid !== null) signalGroup(this.pgid, sig);
    else this.pendingSignals.push(sig);
  }

  private onTimeout(): void {
    if (this.finished) return;
    this.timedOut = true;
    this.dirty = true;
    this.kill("SIGTERM");
    const grace = this.ctx.limits.killGraceMs;
    this.timers.push(setTimeout(() => this.escalate(), grace));
  }

  // ---- output pipeline ---------------------------------------------------------------------------

  private enqueue(stream: OutputStream, data: Buffer): void {
    this.queue.push({ stream: this.mode === "pty" ? "stdout" : stream, data });
    this.queuedBytes += data.length;
    this.ctx.queued(data.length);
    if (!this.paused && this.queuedBytes >= this.ctx.limits.outputHighWaterBytes && this.host !== null) {
      this.paused = true;
      this.host.pause();
    }
    if (this.queuedBytes >= this.ctx.limits.storeChunkBytes) this.endLinger();
    if (!this.pumping) void this.pump();
  }

  /** Waits until the command exits, a store chunk's worth of output is queued, or `storeLingerMs` pass. */
  private linger(): Promise<void> {
    if (this.ctx.limits.storeLingerMs === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.lingering.delete(done);
        resolve();
      };
      const timer = setTimeout(done, this.ctx.limits.storeLingerMs);
      this.lingering.add(done);
    });
  }

  private endLinger(): void {
    for (const done of [...this.lingering]) done();
  }

  /** Writes queued output to the store, in order; never throws. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      await this.startPersisted;
      while (this.queue.length > 0) {
        // A little output of a running command waits a moment before it is written: more may
        // follow, and a short command's exit usually does, so its output rides in the end write
        // (one write, one fsync) instead of a write of its own that the end would wait for.
        if (!this.exitPending && this.queuedBytes < this.ctx.limits.storeChunkBytes) await this.linger();
        const batch: Queued[] = [];
        let size = 0;
        while (this.queue.length > 0) {
          const next = this.queue[0]!;
          if (size > 0 && size + next.data.length > this.ctx.limits.storeChunkBytes) break;
          batch.push(this.queue.shift()!);
          size += next.data.length;
        }
        const data = batch.length === 1 ? batch[0]!.data : Buffer.concat(batch.map((q) => q.data), size);
        const pieces = batch.flatMap((q) => this.chunker.add(q.stream, q.data));
        if (this.exitPending && this.queue.length === 0 && pieces.length === 0) {
          // The command has ended and this is the rest of its output, too little for an event of
          // its own: finalize() stores it with the final event and record, in one write.
          this.tail = data;
          break;
        }
        await this.ctx.store.appendOutput(this.id, this.storedBytes, data);
        this.storedBytes += size;
        this.queuedBytes -= size;
        this.ctx.queued(-size);
        for (const piece of pieces) await this.storeOutputEvent(piece);
        this.notify();
        this.maybeResume();
      }
    } catch (err) {
      // The store failed: stop storing this command's output (it keeps running) and say so at the end.
      this.storeError = (err as Error).message;
      this.queue.length = 0;
      this.ctx.queued(-this.queuedBytes);
      this.queuedBytes = 0;
      this.acceptedBytes = this.ctx.limits.maxOutputBytes;
      this.truncated = true;
      this.maybeResume();
    } finally {
      this.pumping = false;
      if (this.queue.length > 0) void this.pump();
      else if (this.exitPending) void this.finalize();
    }
  }

  private maybeResume(): void {
    if (this.paused && this.queuedBytes <= this.ctx.limits.outputHighWaterBytes / 2) {
      this.paused = false;
      this.host?.resume();
    }
  }

  private async storeOutputEvent(piece: OutputPiece): Promise<void> {
    const event: BashOutputEvent = {
      kind: "BashOutput",
      id: newId(),
      timestamp: isoTimestamp(this.ctx.now()),
      command_id: this.id,
      order: this.nextOrder++,
      exit_code: null,
      stdout: piece.stream === "stdout" ? piece.text : null,
      stderr: piece.stream === "stderr" ? piece.text : null,
    };
    const seq = await this.ctx.store.appendEvent(event);
    this.ctx.published(event, seq);
  }

  // ---- the end -----------------------------------------------------------------------------------

  private onExit(status: number | null): void {
    if (this.exitPending) return;
    this.exitPending = true;
    this.exitStatus = status;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.endLinger();
    this.pendingInput = [];
    const host = this.host;
    if (host !== null && host.state !== "dead") {
      if (this.paused) host.resume();
      this.ctx.releaseShell(host, status !== null && this.reusable(status), this.pgid);
    }
    this.host = null;
    if (!this.pumping) void this.finalize();
  }

  private reusable(status: number): boolean {
    return (
      !this.dirty &&
      status < 128 &&
      !(this.mode === "pty" && TERMINAL_MODE_COMMAND.test(this.spec.command))
    );
  }

  /** Stores the final BashOutput event and record, then wakes everyone; never throws. */
  private async finalize(): Promise<void> {
    if (this.finalizing) return;
    this.finalizing = true;
    await this.startPersisted.catch(() => {});
    // When the engine ends a command (timeout, shutdown) the whole group goes, and the end is
    // reported only once it is gone.
    if ((this.timedOut || this.killReason !== null) && this.pgid !== null) await this.reapGroup(this.pgid);
    const endTime = this.ctx.now();
    const st = this.exitStatus;
    let status: BashCommandStatus;
    let exitCode: number | null = st;
    let signal: string | null = signalNameOfStatus(st);
    let endReason: string;
    if (this.spawnError !== null) {
      status = this.killReason !== null ? "killed" : "exited";
      exitCode = -1;
      signal = null;
      endReason = this.killReason ?? `could not start: ${this.spawnError}`;
    } else if (this.timedOut) {
      status = "timed_out";
      endReason = `timed out after ${this.spec.timeoutSeconds} s`;
    } else if (st === null) {
      status = "killed";
      endReason = this.killReason ?? `the shell running it died (${this.lostReason ?? "unknown reason"})`;
    } else if (signal !== null) {
      status = "killed";
      endReason = this.killReason ?? (this.requestedSignal !== null ? `killed by ${signal} (requested)` : `killed by ${signal}`);
    } else {
      status = "exited";
      endReason = `exited with code ${st}`;
    }
    if (this.storeError !== null) endReason += `; output storage failed: ${this.storeError}`;

    const rest = this.chunker.finish();
    let stderr = rest.stderr;
    if (this.spawnError !== null && this.killReason === null) {
      stderr = `Error executing command: ${this.spawnError}`;
    }
    const output: BashOutputEvent = {
      kind: "BashOutput",
      id: newId(),
      timestamp: isoTimestamp(endTime),
      command_id: this.id,
      order: this.nextOrder++,
      exit_code: status === "exited" ? exitCode : -1,
      stdout: rest.stdout,
      stderr,
    };
    const tail = this.tail;
    this.tail = null;
    const info: BashCommandInfo = {
      ...this.snapshot(),
      status,
      exitCode,
      signal,
      timedOut: this.timedOut,
      endTime,
      outputBytes: this.storedBytes + (tail?.length ?? 0),
      outputTruncated: this.truncated,
      endReason,
    };
    // One atomic write: the final event, the final record and the last output. If it fails, the
    // record alone is written again (without the output that came with the exit), so the command
    // does not stay "running" in the store; if that fails too, a restart reports it lost.
    let stored = false;
    try {
      const events = this.startWithEnd ? [this.commandEvent, output] : [output];
      const seqs = await this.ctx.store.appendEvents(events, { command: info, output: tail === null ? undefined : { offset: this.storedBytes, data: tail } });
      stored = true;
      if (tail !== null) this.storedBytes += tail.length;
      events.forEach((event, i) => this.ctx.published(event, seqs[i]!));
    } catch {
      await this.ctx.store.saveCommand({ ...info, outputBytes: this.storedBytes }).catch(() => {});
    }
    if (tail !== null) {
      this.queuedBytes -= tail.length;
      this.ctx.queued(-tail.length);
    }
    this.finalInfo = stored ? info : { ...info, outputBytes: this.storedBytes };
    this.ended = true;
    this.notify();
    this.resolveDone({ command: this.commandEvent, output, info: this.finalInfo });
    this.ctx.ended(this);
  }

  /** Waits for process group `pgid` to vanish: a grace after the SIGTERM already sent, then SIGKILL and another grace. */
  private async reapGroup(pgid: number): Promise<void> {
    const grace = this.ctx.limits.killGraceMs;
    if (await waitUntil(() => !processGroupExists(pgid), grace)) return;
    signalGroup(pgid, "SIGKILL");
    await waitUntil(() => !processGroupExists(pgid), grace);
  }

  // ---- watchers ----------------------------------------------------------------------------------

  /** Resolves at the next stored output or the end, or when `signal` aborts. */
  changed(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted === true) {
        resolve();
        return;
      }
      const wake = (): void => {
        this.waiters.delete(wake);
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      this.waiters.add(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  private notify(): void {
    for (const wake of [...this.waiters]) wake();
  }
}

/**
 * Polls `condition` every 10 ms until it holds (true) or `ms` passed (false). Only for kernel
 * state that has no event to await (a process group emptying).
 */
export async function waitUntil(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (condition()) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
