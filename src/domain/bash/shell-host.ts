/**
 * A warm shell: a long-lived `bash --norc --noprofile` (on a PTY or on pipes) that runs one
 * command ("job") at a time in subshells it forks itself, so a command costs a fork inside bash
 * instead of a process spawn in Node (which blocks the event loop for ~1 ms and then pays bash's
 * start-up).
 *
 * Protocol (HOST_SCRIPT):
 * - Jobs arrive on a private channel, never through the terminal, so nothing is echoed: fd 3 is
 *   a pipe from Node (pipe mode) or a FIFO the shell creates in a private directory and Node
 *   opens and unlinks (PTY mode; node-pty cannot pass extra fds). A job is NUL-terminated
 *   fields: nonce, cwd, env count, KEY=VALUE..., command.
 * - Job control is on, so every job gets its own process group and, on a PTY, the terminal's
 *   foreground: Ctrl-C reaches the job, never the shell. On a PTY it is `bash -m`, which keeps its
 *   own dup of the terminal (`set -m` would use fd 2, which the shell points at /dev/null); on
 *   pipes it is `set -m` (`-m` without a terminal turns job control off). The shell's own stderr
 *   goes to /dev/null, so no "Killed"/"Terminated" job notices reach the output.
 * - Both subshells a job runs in are forked in advance, while the shell is idle: the *wrapper*
 *   (the next job's process-group leader), which traps INT/QUIT and announces itself (`idle`),
 *   and, below it, the *inner* subshell, which resets its signals, reads the job, runs the
 *   command and is gone when the command is. So a command costs no fork of its own (a builtin
 *   like `echo` none at all); forking the inner once the job had arrived cost ~0.35 ms per
 *   command here. The wrapper then prints the job's exit marker and exits, and the shell forks
 *   the next wrapper. The trap matters: a shell with job control leaves its read loop when a
 *   foreground job dies *of SIGINT* (bash's cooperative SIGINT handling), so it must only see
 *   wrappers exit normally (the command's status, e.g. 130 after Ctrl-C, is in the marker).
 * - A job ends with its nonce a second time. The inner stops reading before it, and the wrapper
 *   reads it once the inner is gone: the wrapper needs the nonce for the exit marker, and it
 *   tells a job from a retirement. To retire, Node sends two empty fields: the inner exits 200
 *   without running anything, the wrapper finds no nonce and exits 200 too, which ends the
 *   shell's loop. A command's own status 200 is never mistaken for that.
 * - The inner subshell announces the group's pid (`pid`) once it has the job; Node sends input
 *   and signals only after that, so an early Ctrl-C can neither kill the wrapper nor be
 *   swallowed by its trap. Ctrl-Z is ignored in jobs (a stopped job would hang its shell).
 * - A wrapper that dies without its exit marker (killed by a signal) is reported by the shell
 *   (`gone`, with the wrapper's number so a late report is never taken for a later job).
 * - Markers (see marker-scanner.ts) carry a random nonce — the shell's for `idle`/`gone`, the
 *   job's for `pid`/`exit` — and end a job on stdout and, in pipe mode, on stderr too. Within a
 *   stream all of a job's output precedes its end marker, which is written after the command
 *   has exited.
 * - Optional subreaper: the shell is started through `perl -e 'syscall(prctl,
 *   PR_SET_CHILD_SUBREAPER)'`, so orphaned grandchildren (e.g. `(sleep 100 &)`) are re-parented
 *   to the shell, which reaps them — no zombie is left for an init that does not reap, and
 *   leftovers are visible as the shell's children.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import * as pty from "@lydell/node-pty";
import type { BashMode } from "./bash-types.js";
import { MarkerScanner } from "./marker-scanner.js";
import type { OutputStream } from "./output-chunker.js";
import { childPids, descendantPids, signalProcess } from "./proc-tree.js";

/**
 * The shell program; `$1` mode, `$2` shell nonce, `$3` FIFO path (PTY mode). Variables are
 * prefixed to stay out of the way; the inner subshell unsets them before running the command.
 * Wrapper exit statuses: 0 = job done (its marker printed), 200 = channel closed or an empty job
 * (retire: the shell then exits after reaping the wrapper), else the wrapper was killed.
 */
export const HOST_SCRIPT = String.raw`__agentd_mode=$1 __agentd_host=$2 __agentd_fifo=$3
set --
if [[ $__agentd_mode == pty ]]; then
  mkfifo -m 600 -- "$__agentd_fifo" && exec 3<>"$__agentd_fifo" || exit 97
fi
[[ $__agentd_mode == pty ]] || set -m
exec 4>&2 2>/dev/null
trap : INT QUIT
__agentd_m=$'\e]7771;'
__agentd_k=0
while :; do
  __agentd_k=$((__agentd_k + 1))
  (
    trap : INT QUIT
    printf '%s%s;idle;%d;%d\a' "$__agentd_m" "$__agentd_host" "$__agentd_k" "$BASHPID"
    __agentd_pg=$BASHPID
    (
      trap - INT QUIT
      trap '' TSTP
      IFS= read -r -d '' -u 3 __agentd_id && [[ -n $__agentd_id ]] || exit 200
      IFS= read -r -d '' -u 3 __agentd_dir
      IFS= read -r -d '' -u 3 __agentd_n
      __agentd_env=()
      for ((__agentd_i = 0; __agentd_i < __agentd_n; __agentd_i++)); do
        IFS= read -r -d '' -u 3 __agentd_kv
        __agentd_env+=("$__agentd_kv")
      done
      IFS= read -r -d '' -u 3 __agentd_cmd
      exec 2>&4 4>&- 3<&-
      cd -- "$__agentd_dir" || exit 1
      ((__agentd_n == 0)) || export -- "${"$"}{__agentd_env[@]}"
      printf '%s%s;pid;%d;%d\a' "$__agentd_m" "$__agentd_id" "$__agentd_pg" "$__agentd_k"
      unset -v __agentd_mode __agentd_host __agentd_fifo __agentd_m __agentd_k __agentd_id __agentd_dir __agentd_n __agentd_env __agentd_i __agentd_kv __agentd_pg __agentd_st
      eval "$__agentd_cmd"
    )
    __agentd_st=$?
    IFS= read -r -d '' -u 3 __agentd_id && [[ -n $__agentd_id ]] || exit 200
    printf '%s%s;exit;%d;%d\a' "$__agentd_m" "$__agentd_id" "$__agentd_st" "$__agentd_k"
    [[ $__agentd_mode == pty ]] || printf '%s%s;exit;%d;%d\a' "$__agentd_m" "$__agentd_id" "$__agentd_st" "$__agentd_k" >&4
    exit 0
  )
  __agentd_st=$?
  ((__agentd_st == 200)) && exit 0
  if ((__agentd_st != 0)); then
    printf '%s%s;gone;%d;%d\a' "$__agentd_m" "$__agentd_host" "$__agentd_st" "$__agentd_k"
    [[ $__agentd_mode == pty ]] || printf '%s%s;gone;%d;%d\a' "$__agentd_m" "$__agentd_host" "$__agentd_st" "$__agentd_k" >&4
  fi
done
`;

/** One command for a shell to run. */
export interface ShellJob {
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly command: string;
  /** PTY size for this job (ignored in pipe mode). */
  readonly cols: number;
  readonly rows: number;
}

/** Receives what a job does. Calls stop after `exited` or `lost`. */
export interface ShellJobSink {
  output(stream: OutputStream, data: Buffer): void;
  /** The job's process (and process group) id. */
  started(pid: number): void;
  /** The job ended; `status` is the shell's `$?` (128 + n when signal n ended it). */
  exited(status: number): void;
  /** The shell died while the job ran; the exit status is unknown. */
  lost(reason: string): void;
}

export interface SubreaperLauncher {
  readonly perlPath: string;
  /** prctl(2) syscall number of this architecture. */
  readonly prctlSyscall: number;
}

export interface ShellHostOptions {
  readonly mode: BashMode;
  readonly bashPath: string;
  readonly subreaper: SubreaperLauncher | null;
  /** The complete environment of the shell (already sanitized). */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  /** Private (0700) directory for the PTY command FIFO. */
  readonly fifoDir: string;
  readonly cols: number;
  readonly rows: number;
  /** The shell is killed if it is not ready within this time. */
  readonly startTimeoutMs: number;
}

/**
 * starting → idle (a wrapper waits for a job) → busy (job sent) → finishing (job ended, the next
 * wrapper is being forked) → idle ...; dead at any point.
 */
export type ShellHostState = "starting" | "idle" | "busy" | "finishing" | "dead";

interface ActiveJob {
  readonly nonce: string;
  readonly sink: ShellJobSink;
  /** Streams whose end marker has not arrived yet. */
  readonly streamsLeft: Set<OutputStream>;
  /** Number of the wrapper running it, once a marker told. */
  wrapper: number | null;
  status: number | null;
}

const PR_SET_CHILD_SUBREAPER = 36;

export abstract class ShellHost {
  readonly nonce = randomBytes(8).toString("hex");
  state: ShellHostState = "starting";
  /** Resolves when the shell can take its first job; rejects when it dies first. */
  readonly ready: Promise<void>;
  /** Resolves with the reason once the shell process is gone. */
  readonly dead: Promise<string>;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private resolveDead!: (reason: string) => void;
  private job: ActiveJob | null = null;
  /** Pid and number of the newest wrapper that announced itself waiting (a child of the shell, not a leftover). */
  private idleWrapper = 0;
  private idleWrapperNumber = 0;
  /** Number of the last wrapper whose job ended; later reports about it are stale. */
  private lastEndedWrapper = 0;
  private idleWaiters: ((idle: boolean) => void)[] = [];
  private startTimer: NodeJS.Timeout | null;
  private retireTimer: NodeJS.Timeout | null = null;
  private retiring = false;
  private readonly scanners: Record<OutputStream, MarkerScanner>;

  protected constructor(protected readonly options: ShellHostOptions) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {}); // observed by whoever acquires the shell
    this.dead = new Promise<string>((resolve) => (this.resolveDead = resolve));
    const accept = (fields: readonly string[]): boolean => {
      if (fields[0] === this.nonce) return fields[1] === "idle" || fields[1] === "gone";
      const job = this.job;
      return job !== null && fields[0] === job.nonce && (fields[1] === "pid" || fields[1] === "exit");
    };
    this.scanners = { stdout: new MarkerScanner(accept), stderr: new MarkerScanner(accept) };
    this.startTimer = setTimeout(() => {
      this.startTimer = null;
      this.kill();
      this.died(`the shell did not start within ${options.startTimeoutMs} ms`);
    }, options.startTimeoutMs);
  }

  get mode(): BashMode {
    return this.options.mode;
  }

  /** The shell's pid (0 when it could not be spawned). */
  abstract get pid(): number;
  /** Writes to the running job's stdin (PTY: the terminal). */
  abstract input(data: Buffer): void;
  /** Closes the job's stdin (pipe mode). The shell cannot be reused afterwards. */
  abstract endInput(): void;
  /** Sets the terminal size (PTY mode; a no-op for pipes). */
  abstract resize(cols: number, rows: number): void;
  /** Stops reading output (back-pressure: the job blocks once the kernel buffer is full). */
  abstract pause(): void;
  abstract resume(): void;
  protected abstract writeJob(data: Buffer): void;
  /** Called once the first wrapper is waiting; throws if the shell cannot be used. */
  protected abstract openChannel(): void;
  protected abstract closeChannel(): void;

  /**
   * Kills the shell with everything below it (SIGKILL): its waiting wrapper, a job, leftovers.
   * For emergencies (a job that survives SIGKILL of its group, start-up failure): processes it had
   * not reaped yet are left to init. Use retire() for an idle shell.
   */
  kill(): void {
    if (this.pid <= 0 || this.state === "dead") return;
    for (const pid of descendantPids(this.pid).reverse()) signalProcess(pid, "SIGKILL");
    signalProcess(this.pid, "SIGKILL");
  }

  /**
   * Ends the shell cleanly: its waiting wrapper gets an empty job and exits, and the shell exits
   * after reaping it (no orphan, no zombie). A shell running a job, or taking longer than
   * `graceMs`, is killed.
   */
  retire(graceMs = 1000): void {
    if (this.state === "dead" || this.retiring) return;
    this.retiring = true;
    if (this.state === "busy") {
      this.kill();
      return;
    }
    this.retireTimer = setTimeout(() => this.kill(), graceMs);
    // Starting or finishing: quit as soon as the waiting wrapper is there.
    void this.whenIdle().then((idle) => {
      if (idle) this.writeJob(Buffer.from([0, 0]));
    });
  }

  /**
   * Live children of the shell other than its waiting wrapper: processes a finished job left
   * behind (re-parented here by the subreaper). Meaningful once the shell is idle again.
   */
  leftovers(): number[] {
    if (this.pid <= 0 || this.state === "dead") return [];
    return childPids(this.pid).filter((pid) => pid !== this.idleWrapper);
  }

  /** Resolves true once the shell is idle (started, or done with its job), false if it dies first. */
  whenIdle(): Promise<boolean> {
    if (this.state === "idle") return Promise.resolve(true);
    if (this.state === "dead") return Promise.resolve(false);
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Starts a job on an idle shell. @throws Error when the shell is not idle. */
  run(job: ShellJob, sink: ShellJobSink): void {
    if (this.state !== "idle" || this.retiring) throw new Error(`shell ${this.pid} is ${this.retiring ? "retiring" : this.state}, not idle`);
    this.state = "busy";
    const nonce = randomBytes(8).toString("hex");
    this.job = {
      nonce,
      sink,
      streamsLeft: new Set<OutputStream>(this.mode === "pty" ? ["stdout"] : ["stdout", "stderr"]),
      wrapper: null,
      status: null,
    };
    if (this.mode === "pty") this.resize(job.cols, job.rows);
    const fields = [nonce, job.cwd, String(Object.keys(job.env).length)];
    for (const [k, v] of Object.entries(job.env)) fields.push(`${k}=${v}`);
    // The nonce again at the end: the wrapper reads it once the command is over (see HOST_SCRIPT).
    fields.push(job.command, nonce);
    this.writeJob(Buffer.from(fields.join("\0") + "\0", "utf8"));
  }

  protected onStreamData(stream: OutputStream, chunk: Buffer): void {
    for (const part of this.scanners[stream].push(chunk)) {
      if ("data" in part) {
        const job = this.job;
        // Output outside a job (leftover processes of an earlier one) belongs to nobody.
        if (job !== null && job.streamsLeft.has(stream)) job.sink.output(stream, part.data);
        continue;
      }
      const [, what, a, b] = part.marker;
      if (what === "idle") this.onIdle(Number(a), Number(b));
      else if (what === "pid") this.onJobPid(Number(a), Number(b));
      else if (what === "exit" || what === "gone") this.onJobEnd(stream, what, Number(a), Number(b));
    }
  }

  private onIdle(wrapper: number, wrapperPid: number): void {
    this.idleWrapper = wrapperPid;
    this.idleWrapperNumber = wrapper;
    if (this.state === "starting") {
      if (this.startTimer !== null) clearTimeout(this.startTimer);
      this.startTimer = null;
      try {
        this.openChannel();
      } catch (err) {
        this.kill();
        this.died(`cannot open the shell's command channel: ${(err as Error).message}`);
        return;
      }
      this.resolveReady();
      this.becomeIdle();
      return;
    }
    // While busy (pipe mode: the next wrapper's announcement on stdout can overtake the job's end
    // marker on stderr) it is remembered and applied when the job ends.
    if (this.state === "finishing") this.becomeIdle();
  }

  private becomeIdle(): void {
    this.state = "idle";
    for (const w of this.idleWaiters.splice(0)) w(true);
  }

  private onJobPid(pgid: number, wrapper: number): void {
    const job = this.job;
    if (job === null) return;
    job.wrapper = wrapper;
    job.sink.started(pgid);
  }

  /** An `exit` marker of the job, or a `gone` report of a wrapper, on one stream. */
  private onJobEnd(stream: OutputStream, what: string, status: number, wrapper: number): void {
    const job = this.job;
    if (wrapper <= this.lastEndedWrapper && (job === null || job.wrapper !== wrapper)) return; // stale
    if (job === null) {
      // A waiting wrapper was killed: nothing ran; the shell forks another one.
      this.lastEndedWrapper = Math.max(this.lastEndedWrapper, wrapper);
      return;
    }
    if (what === "gone" && job.wrapper !== null && job.wrapper !== wrapper) return;
    if (what === "gone" && job.wrapper === null) {
      // The wrapper died before it took the job, which may still sit in the channel for the next
      // wrapper: kill the shell so it never runs; the job is then reported lost.
      this.kill();
      return;
    }
    job.wrapper = wrapper;
    if (stream === "stdout") job.status = status;
    job.streamsLeft.delete(stream);
    if (job.streamsLeft.size > 0) return;
    this.job = null;
    this.lastEndedWrapper = Math.max(this.lastEndedWrapper, wrapper);
    this.state = "finishing";
    if (this.idleWrapperNumber > wrapper) this.becomeIdle();
    job.sink.exited(job.status ?? status);
  }

  /** Marks the shell dead (idempotent): fails `ready`, ends the active job as lost. */
  protected died(reason: string): void {
    if (this.state === "dead") return;
    if (this.startTimer !== null) clearTimeout(this.startTimer);
    if (this.retireTimer !== null) clearTimeout(this.retireTimer);
    this.startTimer = this.retireTimer = null;
    const wasStarting = this.state === "starting";
    this.state = "dead";
    const job = this.job;
    this.job = null;
    if (job !== null) {
      // Bytes held back as a possible marker start are output after all.
      for (const stream of ["stdout", "stderr"] as const) {
        const held = this.scanners[stream].flush();
        if (held !== null && job.streamsLeft.has(stream)) job.sink.output(stream, held);
      }
      job.sink.lost(reason);
    }
    if (wasStarting) this.rejectReady(new Error(reason));
    for (const w of this.idleWaiters.splice(0)) w(false);
    this.closeChannel();
    this.resolveDead(reason);
  }

  /** argv for starting bash (through the subreaper launcher when configured). */
  protected commandLine(fifoPath: string): { file: string; args: string[] } {
    const bashArgs = ["--norc", "--noprofile", ...(this.mode === "pty" ? ["-m"] : []), "-c", HOST_SCRIPT, "agentd-shell", this.mode, this.nonce, fifoPath];
    const sr = this.options.subreaper;
    if (sr === null) return { file: this.options.bashPath, args: bashArgs };
    // prctl(PR_SET_CHILD_SUBREAPER, 1) survives execve; a failure only loses the reaping.
    const perl = `syscall(${sr.prctlSyscall}, ${PR_SET_CHILD_SUBREAPER}, 1, 0, 0, 0); exec { $ARGV[0] } @ARGV; die "exec $ARGV[0]: $!\\n";`;
    return { file: sr.perlPath, args: ["-e", perl, this.options.bashPath, ...bashArgs] };
  }
}

/** A warm shell on a pseudo-terminal (node-pty). */
export class PtyShellHost extends ShellHost {
  private readonly term: pty.IPty | null = null;
  private readonly fifoPath: string;
  private channel: net.Socket | null = null;
  private cols: number;
  private rows: number;

  constructor(options: ShellHostOptions) {
    super(options);
    this.fifoPath = path.join(options.fifoDir, `${this.nonce}.fifo`);
    this.cols = options.cols;
    this.rows = options.rows;
    const { file, args } = this.commandLine(this.fifoPath);
    try {
      this.term = pty.spawn(file, args, {
        name: options.env["TERM"] ?? "xterm-256color",
        cols: options.cols,
        rows: options.rows,
        cwd: options.cwd,
        env: { ...options.env },
        encoding: null,
      });
    } catch (err) {
      const reason = `cannot start ${file}: ${(err as Error).message}`;
      queueMicrotask(() => this.died(reason));
      return;
    }
    // With `encoding: null` node-pty delivers Buffers (its typings say string).
    this.term.onData((data) => this.onStreamData("stdout", data as unknown as Buffer));
    this.term.onExit(({ exitCode, signal }) => this.died(`the shell exited (code ${exitCode}, signal ${signal ?? 0})`));
  }

  get pid(): number {
    return this.term?.pid ?? 0;
  }

  input(data: Buffer): void {
    this.term?.write(data as unknown as string);
  }

  endInput(): void {
    // A terminal has no end of input; Ctrl-D ("\x04") is the client's to send.
  }

  resize(cols: number, rows: number): void {
    if (this.term === null || this.state === "dead" || (cols === this.cols && rows === this.rows)) return;
    this.term.resize(cols, rows);
    this.cols = cols;
    this.rows = rows;
  }

  pause(): void {
    this.term?.pause();
  }

  resume(): void {
    this.term?.resume();
  }

  protected openChannel(): void {
    // The shell holds the FIFO open read-write, so opening the write end cannot block; once both
    // ends are open the name is no longer needed.
    const fd = fs.openSync(this.fifoPath, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    fs.rmSync(this.fifoPath, { force: true });
    this.channel = new net.Socket({ fd, readable: false, writable: true });
    this.channel.on("error", () => this.kill());
  }

  protected writeJob(data: Buffer): void {
    this.channel?.write(data);
  }

  protected closeChannel(): void {
    this.channel?.destroy();
    this.channel = null;
    fs.rmSync(this.fifoPath, { force: true });
  }
}

/** A warm shell on pipes: stdout and stderr stay apart; stdin is a pipe. */
export class PipeShellHost extends ShellHost {
  private readonly child: ChildProcess;
  private closeTimer: NodeJS.Timeout | null = null;

  constructor(options: ShellHostOptions) {
    super(options);
    const { file, args } = this.commandLine("");
    // detached: a new session, so the shell and its jobs never get the server's terminal signals.
    this.child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe", "pipe"],
      detached: true,
    });
    const [stdin, stdout, stderr, channel] = this.child.stdio;
    stdin?.on("error", () => {});
    channel?.on("error", () => {});
    stdout?.on("data", (d: Buffer) => this.onStreamData("stdout", d));
    stderr?.on("data", (d: Buffer) => this.onStreamData("stderr", d));
    this.child.on("error", (err) => this.died(`cannot start ${file}: ${err.message}`));
    // 'close' comes after the pipes are drained; processes the shell left behind may keep them
    // open, so 'exit' plus a short grace also counts.
    this.child.on("exit", (code, signal) => {
      this.closeTimer = setTimeout(() => this.died(`the shell exited (code ${code}, signal ${signal})`), 200);
    });
    this.child.on("close", (code, signal) => this.died(`the shell exited (code ${code}, signal ${signal})`));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  input(data: Buffer): void {
    const stdin = this.child.stdin;
    if (stdin !== null && !stdin.writableEnded) stdin.write(data);
  }

  endInput(): void {
    this.child.stdin?.end();
  }

  resize(): void {}

  pause(): void {
    this.child.stdout?.pause();
    this.child.stderr?.pause();
  }

  resume(): void {
    this.child.stdout?.resume();
    this.child.stderr?.resume();
  }

  protected openChannel(): void {}

  protected writeJob(data: Buffer): void {
    (this.child.stdio[3] as net.Socket | null)?.write(data);
  }

  protected override died(reason: string): void {
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    super.died(reason);
  }

  protected closeChannel(): void {
    (this.child.stdio[3] as net.Socket | null)?.destroy();
    this.child.stdin?.destroy();
  }
}

/** Creates a warm shell of the given mode. */
export function createShellHost(options: ShellHostOptions): ShellHost {
  return options.mode === "pty" ? new PtyShellHost(options) : new PipeShellHost(options);
}
