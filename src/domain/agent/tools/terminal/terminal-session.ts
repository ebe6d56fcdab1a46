// One persistent bash on a PTY, and the marker protocol that tells where a command's output ends.
//
// bash runs interactive (`--norc --noprofile --noediting`, so no readline, no rc files) with the
// terminal's echo turned off, empty PS1/PS2, and a PROMPT_COMMAND that prints, before every
// prompt:   \n \x1e agentd-<nonce> \x1f <exit> \x1f <$!> \x1f <user> \x1f <host> \x1f <cwd> \x1e \n
// The nonce is random per session and the separators are control characters, and the format
// string holds them as printf escapes (`\036`), so printing PROMPT_COMMAND (or any file) does not
// produce a marker; only the prompt does. Output is everything between two markers.

import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import * as pty from "@lydell/node-pty";

import { AgentdError } from "../agentd-error.js";

/** What the shell reported with a prompt: the finished command's exit code and the shell state. */
export interface PromptInfo {
  exitCode: number;
  /** `$!`: the last background job's pid, -1 when there is none. */
  pid: number;
  username: string;
  hostname: string;
  workingDir: string;
}

export interface TerminalSessionOptions {
  /** Shell binary; bash is required (the protocol uses PROMPT_COMMAND). */
  shell: string;
  /** Directory the shell starts in. */
  cwd: string;
  /** The complete environment of the shell (already sanitised by the caller). */
  env: Record<string, string>;
  cols?: number;
  rows?: number;
  /** How long to wait for the first prompt before giving up. */
  startTimeoutMs?: number;
}

export type WaitResult = "changed" | "timeout" | "aborted";

// Output kept per command: the first HEAD_CAP and the last TAIL_CAP characters; the middle is
// counted but dropped, so a command printing gigabytes cannot exhaust memory. Both are far above
// what an observation shows (30 000 characters).
const HEAD_CAP = 256 * 1024;
const TAIL_CAP = 256 * 1024;
// A partial marker is held back at most this long; beyond it the text cannot be a marker.
const MAX_HELD = 64 * 1024;

/** Accumulates output with bounded memory (head + tail, middle dropped and counted). */
class CappedText {
  #head = "";
  #tail = "";
  #dropped = 0;

  append(s: string): void {
    if (s === "") return;
    if (this.#head.length < HEAD_CAP && this.#tail === "") {
      const room = HEAD_CAP - this.#head.length;
      this.#head += s.slice(0, room);
      s = s.slice(room);
      if (s === "") return;
    }
    this.#tail += s;
    if (this.#tail.length > 2 * TAIL_CAP) {
      const cut = this.#tail.length - TAIL_CAP;
      this.#dropped += cut;
      this.#tail = this.#tail.slice(cut);
    }
  }

  take(): string {
    const out =
      this.#dropped > 0
        ? `${this.#head}\n[... ${this.#dropped} characters of output were dropped ...]\n${this.#tail}`
        : this.#head + this.#tail;
    this.#head = "";
    this.#tail = "";
    this.#dropped = 0;
    return out;
  }

  get empty(): boolean {
    return this.#head === "" && this.#tail === "";
  }
}

/** Live (non-zombie) processes whose session id is `sid`; empty where /proc is unavailable. */
function sessionMembers(sid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the parenthesised command name: state ppid pgrp session ...
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[3]) === sid) out.push(Number(entry));
    } catch {
      // exited while scanning
    }
  }
  return out;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export class TerminalSession {
  readonly #pty: pty.IPty;
  readonly #nonce = randomBytes(8).toString("hex");
  readonly #markerStart: string;
  readonly #marker: RegExp;
  /** Raw bytes not yet classified (may hold the beginning of a marker). */
  #raw = "";
  readonly #output = new CappedText();
  #prompt: PromptInfo | null = null;
  #ready = false;
  #exit: { exitCode: number; signal: number | undefined } | null = null;
  readonly #exited: Promise<void>;
  #lastDataAt = Date.now();
  readonly #waiters = new Set<() => void>();

  private constructor(opts: TerminalSessionOptions) {
    this.#markerStart = `\x1eagentd-${this.#nonce}\x1f`;
    this.#marker = new RegExp(
      `\\r?\\n?\\x1eagentd-${this.#nonce}\\x1f(-?\\d+)\\x1f(-?\\d*)\\x1f([^\\x1f]*)\\x1f([^\\x1f]*)\\x1f([^\\x1e]*)\\x1e\\r?\\n`,
    );
    this.#pty = pty.spawn(opts.shell, ["--norc", "--noprofile", "--noediting", "-i"], {
      name: opts.env.TERM ?? "xterm-256color",
      cols: opts.cols ?? 200,
      rows: opts.rows ?? 50,
      cwd: opts.cwd,
      env: opts.env,
    });
    this.#exited = new Promise((resolve) => {
      this.#pty.onExit(({ exitCode, signal }) => {
        this.#exit = { exitCode, signal };
        this.#notify();
        resolve();
      });
    });
    this.#pty.onData((data) => this.#onData(data));
  }

  /**
   * Spawns bash in `opts.cwd` and installs the marker protocol. Resolves once the first prompt
   * has been seen. Throws AgentdError "unavailable" when the shell cannot start or never prompts.
   */
  static async start(opts: TerminalSessionOptions): Promise<TerminalSession> {
    let session: TerminalSession;
    try {
      session = new TerminalSession(opts);
    } catch (err) {
      throw new AgentdError("unavailable", `cannot start the shell ${opts.shell}: ${(err as Error).message}`);
    }
    const fmt = `\\n\\036agentd-${session.#nonce}\\037%s\\037%s\\037%s\\037%s\\037%s\\036\\n`;
    const promptCommand = `__agentd_ec=$?; printf "${fmt}" "$__agentd_ec" "\${!:--1}" "$__agentd_user" "\${HOSTNAME:-}" "$PWD"`;
    // One line, so it runs as one command; the echo it produces before `stty -echo` takes effect
    // is discarded together with the startup banner (everything before the first marker).
    const init = [
      "stty -echo 2>/dev/null",
      "set +H",
      "unset HISTFILE",
      "HISTCONTROL=ignorespace",
      "PS1=''",
      "PS2=''",
      "PS0=''",
      `__agentd_user=$(id -un 2>/dev/null || echo "\${USER:-}")`,
      "export __agentd_user",
      `PROMPT_COMMAND=${shellQuote(promptCommand)}`,
      "export PROMPT_COMMAND",
    ].join("; ");
    session.#pty.write(`${init}\n`);
    const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
    while (session.#prompt === null) {
      if (session.#exit !== null) {
        throw new AgentdError("unavailable", `the shell ${opts.shell} exited during start-up (code ${session.#exit.exitCode})`);
      }
      if (Date.now() >= deadline) {
        await session.close();
        throw new AgentdError("unavailable", `the shell ${opts.shell} did not become ready`);
      }
      await session.waitForChange(deadline - Date.now());
    }
    session.#ready = true;
    session.#prompt = null;
    session.#output.take();
    return session;
  }

  get pid(): number {
    return this.#pty.pid;
  }

  /** Null while the shell runs; its exit status afterwards. */
  get exitStatus(): { exitCode: number; signal: number | undefined } | null {
    return this.#exit;
  }

  /** When output (of any kind) last arrived. */
  get lastDataAt(): number {
    return this.#lastDataAt;
  }

  /** The prompt seen since the last `clearPrompt`, i.e. the finished command's status. */
  get prompt(): PromptInfo | null {
    return this.#prompt;
  }

  clearPrompt(): void {
    this.#prompt = null;
  }

  /** Output (raw terminal text, markers removed) that arrived since the last call. */
  takeOutput(): string {
    return this.#output.take();
  }

  get hasOutput(): boolean {
    return !this.#output.empty;
  }

  write(data: string): void {
    if (this.#exit !== null) throw new AgentdError("failed_precondition", "the shell has exited");
    this.#pty.write(data);
  }

  /**
   * Resolves on the next output, prompt or exit ("changed"), after `timeoutMs` ("timeout"), or
   * when `signal` aborts ("aborted"). Leaves no timer or listener behind.
   */
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<WaitResult> {
    if (signal?.aborted) return Promise.resolve("aborted");
    return new Promise((resolve) => {
      const finish = (result: WaitResult): void => {
        clearTimeout(timer);
        this.#waiters.delete(onChange);
        signal?.removeEventListener("abort", onAbort);
        resolve(result);
      };
      const onChange = (): void => finish("changed");
      const onAbort = (): void => finish("aborted");
      const timer = setTimeout(() => finish("timeout"), Math.max(0, timeoutMs));
      this.#waiters.add(onChange);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Ends the shell and everything started from it: SIGHUP (bash forwards it to its jobs, the
   * kernel to the terminal's foreground group), SIGKILL to the shell if it is still alive after
   * `graceMs`, then SIGKILL to any process still in the shell's session (on Linux, found through
   * /proc; a process that called setsid() has left the session and is not touched). Resolves when
   * the PTY has exited. Idempotent.
   */
  async close(graceMs = 2000): Promise<void> {
    await this.#closeShell(graceMs);
    for (const pid of sessionMembers(this.#pty.pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
  }

  async #closeShell(graceMs: number): Promise<void> {
    if (this.#exit === null) {
      try {
        this.#pty.kill("SIGHUP");
      } catch {
        // already gone
      }
      let timer: NodeJS.Timeout | undefined;
      const killed = await Promise.race([
        this.#exited.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (!killed) {
        try {
          process.kill(this.#pty.pid, "SIGKILL");
        } catch {
          // already gone
        }
        await this.#exited;
      }
    }
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  #onData(data: string): void {
    this.#lastDataAt = Date.now();
    this.#raw += data;
    for (;;) {
      const m = this.#marker.exec(this.#raw);
      if (m === null) break;
      this.#output.append(this.#raw.slice(0, m.index));
      this.#raw = this.#raw.slice(m.index + m[0].length);
      this.#prompt = {
        exitCode: Number(m[1]),
        pid: m[2] === "" || m[2] === undefined ? -1 : Number(m[2]),
        username: m[3] ?? "",
        hostname: m[4] ?? "",
        workingDir: m[5] ?? "",
      };
    }
    // Keep back what may be the start of a marker (and the newline printed before it).
    const hold = this.#heldFrom();
    this.#output.append(this.#raw.slice(0, hold));
    this.#raw = this.#raw.slice(hold);
    if (!this.#ready) this.#output.take();
    this.#notify();
  }

  /** Index in #raw from which text must be held back because it may begin a marker. */
  #heldFrom(): number {
    const raw = this.#raw;
    let from = raw.length;
    for (let i = raw.indexOf("\x1e"); i !== -1; i = raw.indexOf("\x1e", i + 1)) {
      const rest = raw.slice(i, i + this.#markerStart.length);
      if (this.#markerStart.startsWith(rest) && raw.length - i <= MAX_HELD) {
        from = i;
        break;
      }
    }
    // The marker is preceded by the "\r\n" that printf emits first.
    if (from >= 1 && raw[from - 1] === "\n") from--;
    if (from >= 1 && raw[from - 1] === "\r") from--;
    return from;
  }
}
