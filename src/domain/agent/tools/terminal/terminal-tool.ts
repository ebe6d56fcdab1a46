// The `terminal` tool: one persistent bash per conversation (TerminalSession), driven with the
// OpenHands TerminalAction semantics (reference §3.3):
//   - a command runs until its prompt appears; `cd` and exported variables persist;
//   - no new output for `noChangeTimeoutMs` (default 30 s) → exit_code -1 with a message telling
//     the agent to send "" (more output), keys (`is_input`), or to use `timeout`; the process keeps
//     running. With an explicit `timeout` there is no soft timeout, and the call returns after
//     `timeout` seconds instead (hard timeout, process still running);
//   - `is_input` sends text or keys (C-c, UP, TAB, ...) to the running process;
//   - `reset` starts a new shell in the last working directory;
//   - several newline-separated commands in one call are refused.
// Calls are serialised per tool instance. Output is cleaned of terminal escapes, secrets are
// masked, and it is capped at 30 000 characters (head and tail kept).

import { existsSync } from "node:fs";
import { hostname as osHostname } from "node:os";

import { AgentdError } from "../agentd-error.js";
import { ArgReader, withInjectedParams } from "../args.js";
import type { SecretMasker } from "../secret-masker.js";
import { ERROR_MESSAGE_HEADER, cleanTerminalOutput, textContent, truncateMiddle } from "../text.js";
import type { Content, JsonSchemaObject, Tool, ToolExecutionContext } from "../types.js";
import { controlKeyLetter, encodeInput } from "./keys.js";
import { splitShellCommands } from "./shell-commands.js";
import { TerminalSession, type PromptInfo } from "./terminal-session.js";

export const TERMINAL_TOOL_NAME = "terminal";

/** Maximum characters of command output in an observation (OpenHands MAX_CMD_OUTPUT_SIZE). */
export const MAX_TERMINAL_OUTPUT = 30_000;

/** Default no-new-output (soft) timeout (OpenHands NO_CHANGE_TIMEOUT_SECONDS). */
export const DEFAULT_NO_CHANGE_TIMEOUT_MS = 30_000;

export interface TerminalAction {
  kind: "TerminalAction";
  command: string;
  is_input: boolean;
  /** Hard timeout in seconds; null = soft (no-change) timeout only. */
  timeout: number | null;
  reset: boolean;
}

export interface TerminalMetadata {
  exit_code: number;
  pid: number;
  username: string | null;
  hostname: string | null;
  working_dir: string | null;
  py_interpreter_path: string | null;
  prefix: string;
  suffix: string;
}

export interface TerminalObservation {
  kind: "TerminalObservation";
  /** The command output (masked, cleaned, capped); prefix/suffix live in `metadata`. */
  content: Content[];
  is_error: boolean;
  command: string | null;
  /** The exit code; -1 while the command is still running (soft/hard timeout, interrupted). */
  exit_code: number | null;
  /** True when the call returned before the command finished (soft or hard timeout). */
  timeout: boolean;
  metadata: TerminalMetadata;
}

export interface TerminalOptions {
  /** No-new-output timeout in ms (default 30 000). Tests use ~1 s. */
  noChangeTimeoutMs?: number;
  /** Shell binary (default /bin/bash); must be bash. */
  shell?: string;
  /**
   * Environment the shell starts from (the server passes its own, read by src/config.ts). When
   * absent a minimal PATH/HOME/LANG environment is used. SESSION_API_KEY, OH_SESSION_API_KEYS_*
   * and OH_SECRET_KEY are always removed; the conversation's secrets and AI_AGENT=openhands added.
   */
  baseEnv?: Record<string, string | undefined>;
  /** How long `reset`/close waits for the old shell to exit before SIGKILL (default 2000 ms). */
  closeGraceMs?: number;
  /**
   * Largest `timeout` (seconds) a call may ask for; larger ones are refused with an error
   * observation. OpenHands sets it to 90 % of OH_RUNTIME_IDLE_TIMEOUT_SECONDS. Default: no cap.
   */
  maxTimeoutSeconds?: number;
}

/** Environment variables never passed to the agent's shell. */
const STRIPPED_ENV = [/^SESSION_API_KEY$/, /^OH_SESSION_API_KEYS_\d+$/, /^OH_SECRET_KEY$/];

const TIMEOUT_MESSAGE =
  "You may wait longer to see additional output by sending empty command '', send other commands " +
  'to interact with the current process, send keys ("C-c", "C-z", "C-d") to interrupt/kill the ' +
  "previous command before sending your new command, or use the timeout parameter in terminal for " +
  "future commands.";

const CONTINUE_PREFIX = "[Below is the output of the previous command.]\n";

const RESET_TEXT =
  "Terminal session has been reset. All previous environment variables and session state have been cleared.";

const DESCRIPTION = `Run a bash command in a persistent shell session (one per conversation).
* The working directory, exported variables and activated virtualenvs persist between calls.
* Send ONE command per call; chain several with \`&&\` or \`;\`. Newline-separated commands are refused (here-documents are fine).
* A command that prints nothing new for a while returns with exit code -1 while it keeps running. Then call again with \`command: ""\` to see more output, or with \`is_input: true\` to send text or keys (\`C-c\`, \`C-d\`, \`C-z\`, \`UP\`, \`TAB\`, ...) to the process.
* For long commands (installs, test suites) set \`timeout\` (seconds); the call then waits that long regardless of output.
* Run servers in the background with output to a file: \`python3 app.py > server.log 2>&1 &\`.
* Long output is cut in the middle; redirect to a file and inspect it with grep/head/tail if you need all of it.
* \`reset: true\` replaces an unresponsive shell with a new one in the same directory (environment and running processes are lost).`;

const PARAMETERS: JsonSchemaObject = withInjectedParams(
  {
    type: "object",
    properties: {
      command: {
        type: "string",
        description:
          'The bash command to run. "" fetches more output of a command still running (exit code -1). ' +
          "With is_input=true: text to type into the running process, or a key such as C-c.",
      },
      is_input: {
        type: "boolean",
        description: "True to send `command` as input/keys to the running process instead of running it. Default false.",
      },
      timeout: {
        type: "number",
        minimum: 0,
        description:
          "Seconds to wait for the command before returning (it keeps running). Without it, the call " +
          "returns after 30 seconds without new output.",
      },
      reset: {
        type: "boolean",
        description: "True to kill the shell and start a new one in the same directory. Not combinable with is_input.",
      },
    },
    required: ["command"],
  },
  false,
);

function metadata(partial: Partial<TerminalMetadata> = {}): TerminalMetadata {
  return {
    exit_code: -1,
    pid: -1,
    username: null,
    hostname: null,
    working_dir: null,
    py_interpreter_path: null,
    prefix: "",
    suffix: "",
    ...partial,
  };
}

function errorObservation(command: string, text: string): TerminalObservation {
  return {
    kind: "TerminalObservation",
    content: [textContent(text)],
    is_error: true,
    command,
    exit_code: -1,
    timeout: false,
    metadata: metadata(),
  };
}

/** The shell's environment: `base` minus server credentials, plus the secrets and agent markers. */
export function buildShellEnv(
  base: Record<string, string | undefined> | undefined,
  secrets: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  const source = base ?? {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
  };
  for (const [k, v] of Object.entries(source)) {
    if (v === undefined || STRIPPED_ENV.some((re) => re.test(k))) continue;
    env[k] = v;
  }
  Object.assign(env, secrets);
  env.AI_AGENT = "openhands";
  env.TERM = env.TERM && env.TERM !== "dumb" ? env.TERM : "xterm-256color";
  env.PAGER = "cat";
  env.GIT_PAGER = "cat";
  env.HOSTNAME = env.HOSTNAME ?? osHostname();
  delete env.PROMPT_COMMAND;
  return env;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export class TerminalTool implements Tool<TerminalAction, TerminalObservation> {
  readonly name = TERMINAL_TOOL_NAME;
  readonly description = DESCRIPTION;
  readonly parameters = PARAMETERS;
  readonly readOnly = false;

  readonly #opts: Required<Pick<TerminalOptions, "noChangeTimeoutMs" | "shell" | "closeGraceMs">> & TerminalOptions;
  readonly #workingDir: string;
  readonly #secrets: SecretMasker;
  #session: TerminalSession | null = null;
  /** A command was sent and its completion not yet reported. */
  #running = false;
  /** Output of the running command was already reported (next report is a continuation). */
  #reportedPartial = false;
  #lastPrompt: PromptInfo | null = null;
  /** Names and version of the secrets exported into the current shell. */
  #exportedSecrets = new Set<string>();
  #secretsVersion = -1;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  /**
   * @param workingDir where the shell starts (and restarts after a reset when the last
   *   directory no longer exists)
   */
  constructor(workingDir: string, secrets: SecretMasker, opts: TerminalOptions = {}) {
    this.#workingDir = workingDir;
    this.#secrets = secrets;
    this.#opts = {
      ...opts,
      noChangeTimeoutMs: opts.noChangeTimeoutMs ?? DEFAULT_NO_CHANGE_TIMEOUT_MS,
      shell: opts.shell ?? "/bin/bash",
      closeGraceMs: opts.closeGraceMs ?? 2000,
    };
  }

  /** The pid of the current shell, or undefined when none runs (for tests and diagnostics). */
  get shellPid(): number | undefined {
    return this.#session !== null && this.#session.exitStatus === null ? this.#session.pid : undefined;
  }

  isUsable(): boolean {
    return existsSync(this.#opts.shell);
  }

  parseAction(args: unknown): TerminalAction {
    const r = new ArgReader(this.name, args);
    const action: TerminalAction = {
      kind: "TerminalAction",
      command: r.requiredString("command"),
      is_input: r.boolean("is_input", false),
      timeout: r.number("timeout", { min: 0 }) ?? null,
      reset: r.boolean("reset", false),
    };
    if (action.reset && action.is_input) {
      throw r.fail("`reset` cannot be combined with `is_input`; reset the terminal first, then send input");
    }
    return action;
  }

  execute(action: TerminalAction, ctx: ToolExecutionContext): Promise<TerminalObservation> {
    const run = this.#queue.then(() => this.#execute(action, ctx));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  toLlmContent(obs: TerminalObservation): Content[] {
    const text = obs.content.map((c) => (c.type === "text" ? c.text : "")).join("");
    let out = `${obs.metadata.prefix}${text}${obs.metadata.suffix}`;
    if (obs.metadata.working_dir) out += `\n[Current working directory: ${obs.metadata.working_dir}]`;
    if (obs.metadata.py_interpreter_path) out += `\n[Python interpreter: ${obs.metadata.py_interpreter_path}]`;
    if (obs.metadata.exit_code !== -1) out += `\n[Command finished with exit code ${obs.metadata.exit_code}]`;
    const body = textContent(truncateMiddle(out, MAX_TERMINAL_OUTPUT));
    return obs.is_error ? [textContent(ERROR_MESSAGE_HEADER), body] : [body];
  }

  /** Ends the shell (and its jobs). Further calls fail with failed_precondition. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    const session = this.#session;
    this.#session = null;
    await session?.close(this.#opts.closeGraceMs);
  }

  async #execute(action: TerminalAction, ctx: ToolExecutionContext): Promise<TerminalObservation> {
    if (this.#closed) throw new AgentdError("failed_precondition", "the terminal tool has been closed");
    if (ctx.signal.aborted) throw new AgentdError("canceled", "the terminal call was cancelled before it started");

    if (action.reset) {
      await this.#reset();
      if (action.command.trim() === "") {
        return {
          kind: "TerminalObservation",
          content: [textContent(RESET_TEXT)],
          is_error: false,
          command: "[RESET]",
          exit_code: 0,
          timeout: false,
          metadata: metadata({ exit_code: 0 }),
        };
      }
      const obs = await this.#run({ ...action, reset: false }, ctx);
      const text = obs.content.map((c) => (c.type === "text" ? c.text : "")).join("");
      return { ...obs, command: `[RESET] ${action.command}`, content: [textContent(`${RESET_TEXT}\n\n${text}`)] };
    }
    return this.#run(action, ctx);
  }

  async #run(action: TerminalAction, ctx: ToolExecutionContext): Promise<TerminalObservation> {
    const command = action.command.trim();
    const cap = this.#opts.maxTimeoutSeconds;
    if (cap !== undefined && action.timeout !== null && action.timeout > cap) {
      return errorObservation(
        command,
        `The timeout of ${action.timeout} seconds is above the maximum of ${cap} seconds allowed here. ` +
          "Use a smaller timeout, or run the command in the background with its output redirected to a file.",
      );
    }
    const session = await this.#ensureSession();

    if (!this.#running) {
      if (command === "") return errorObservation(command, "No previous running command to retrieve logs from.");
      if (action.is_input) return errorObservation(command, "No previous running command to interact with.");
    }

    if (!action.is_input && command !== "") {
      const commands = splitShellCommands(command);
      if (commands.length > 1) {
        const list = commands.map((c, i) => `(${i + 1}) ${c}`).join("\n");
        return errorObservation(
          command,
          "Cannot execute multiple commands at once.\nPlease run each command separately OR chain them " +
            `into a single command via && or ;\nProvided commands:\n${list}`,
        );
      }
    }

    if (this.#running && session.prompt !== null) {
      // The previous command finished after its last report.
      if (command === "" || action.is_input) {
        const obs = this.#completed(command, session.prompt);
        if (action.is_input) {
          obs.metadata.suffix += "\n[The previous command had already finished; the input was not sent.]";
        }
        return obs;
      }
      // A new command: the unreported tail of the finished one is dropped.
      this.#finish();
    }

    if (this.#running && command !== "" && !action.is_input) {
      const output = this.#output();
      return {
        kind: "TerminalObservation",
        content: [textContent(output)],
        is_error: true,
        command,
        exit_code: -1,
        timeout: false,
        metadata: metadata({
          prefix: output === "" ? "" : CONTINUE_PREFIX,
          suffix:
            `\n[Your command "${command}" is NOT executed. The previous command is still running - You CANNOT ` +
            "send new commands until the previous command is completed. By setting `is_input` to `true`, you " +
            `can interact with the current process: ${TIMEOUT_MESSAGE}]`,
        }),
      };
    }

    // Send.
    let sentKey: string | undefined;
    if (action.is_input) {
      if (command !== "") {
        const { bytes, special } = encodeInput(action.command);
        if (special) sentKey = controlKeyLetter(action.command);
        session.write(bytes);
      }
    } else if (command !== "") {
      await this.#syncSecrets(session);
      session.takeOutput();
      session.clearPrompt();
      session.write(`${action.command.replace(/\n+$/, "")}\n`);
      this.#running = true;
      this.#reportedPartial = false;
    }

    return this.#await(command, action.timeout, ctx.signal, sentKey);
  }

  /** Waits for completion, a timeout, shell exit or abort, and builds the observation. */
  async #await(
    command: string,
    timeoutSec: number | null,
    signal: AbortSignal,
    sentKey: string | undefined,
  ): Promise<TerminalObservation> {
    const session = this.#session as TerminalSession;
    const started = Date.now();
    const hardDeadline = timeoutSec === null ? Infinity : started + timeoutSec * 1000;
    for (;;) {
      if (session.prompt !== null) return this.#completed(command, session.prompt, sentKey);
      const exit = session.exitStatus;
      if (exit !== null) {
        const output = this.#output();
        this.#running = false;
        return {
          kind: "TerminalObservation",
          content: [textContent(output)],
          is_error: false,
          command,
          exit_code: exit.exitCode,
          timeout: false,
          metadata: metadata({
            exit_code: exit.exitCode,
            suffix: `\n[The shell exited with code ${exit.exitCode}. A new shell will be started for the next command.]`,
          }),
        };
      }
      const now = Date.now();
      const softDeadline =
        timeoutSec === null ? Math.max(started, session.lastDataAt) + this.#opts.noChangeTimeoutMs : Infinity;
      if (now >= hardDeadline) {
        return this.#partial(command, `\n[The command timed out after ${timeoutSec} seconds. ${TIMEOUT_MESSAGE}]`);
      }
      if (now >= softDeadline) {
        const secs = Math.round(this.#opts.noChangeTimeoutMs / 100) / 10;
        return this.#partial(command, `\n[The command has no new output after ${secs} seconds. ${TIMEOUT_MESSAGE}]`);
      }
      const result = await session.waitForChange(Math.min(hardDeadline, softDeadline) - now, signal);
      if (result === "aborted") return this.#interrupt(command);
    }
  }

  /** Abort: Ctrl+C the foreground process and report what it printed (exit_code -1). */
  async #interrupt(command: string): Promise<TerminalObservation> {
    const session = this.#session as TerminalSession;
    // Ctrl+C can land between two commands of a list (when no child is in the foreground) and
    // be lost; repeat it a few times until the prompt shows.
    for (let attempt = 0; attempt < 4 && session.prompt === null && session.exitStatus === null; attempt++) {
      session.write("\x03");
      const deadline = Date.now() + 500;
      while (session.prompt === null && session.exitStatus === null && Date.now() < deadline) {
        await session.waitForChange(deadline - Date.now());
      }
    }
    const finished = session.prompt !== null;
    const obs = this.#partial(
      command,
      "\n[The command was interrupted by user request. The process received SIGINT (Ctrl+C).]",
    );
    obs.timeout = false;
    if (finished) this.#finish();
    return obs;
  }

  #output(): string {
    const session = this.#session as TerminalSession;
    let cleaned = cleanTerminalOutput(session.takeOutput()).trimEnd();
    // The previous report was trimmed at its end; the newline that ended it arrives with this one.
    if (this.#reportedPartial) cleaned = cleaned.replace(/^\n+/, "");
    return truncateMiddle(this.#secrets.mask(cleaned), MAX_TERMINAL_OUTPUT);
  }

  #partial(command: string, suffix: string): TerminalObservation {
    const output = this.#output();
    const continuation = this.#reportedPartial;
    this.#reportedPartial = true;
    return {
      kind: "TerminalObservation",
      content: [textContent(output)],
      is_error: false,
      command,
      exit_code: -1,
      timeout: true,
      metadata: metadata({ prefix: continuation ? CONTINUE_PREFIX : "", suffix }),
    };
  }

  #completed(command: string, prompt: PromptInfo, sentKey?: string): TerminalObservation {
    const output = this.#output();
    const continuation = this.#reportedPartial;
    this.#lastPrompt = prompt;
    this.#finish();
    const suffix =
      sentKey === undefined
        ? `\n[The command completed with exit code ${prompt.exitCode}.]`
        : `\n[The command completed with exit code ${prompt.exitCode}. CTRL+${sentKey.toUpperCase()} was sent.]`;
    return {
      kind: "TerminalObservation",
      content: [textContent(output)],
      is_error: false,
      command,
      exit_code: prompt.exitCode,
      timeout: false,
      metadata: metadata({
        exit_code: prompt.exitCode,
        pid: prompt.pid,
        username: prompt.username || null,
        hostname: prompt.hostname || null,
        working_dir: prompt.workingDir || null,
        prefix: continuation ? CONTINUE_PREFIX : "",
        suffix,
      }),
    };
  }

  #finish(): void {
    const session = this.#session;
    if (session !== null) {
      if (session.prompt !== null) this.#lastPrompt = session.prompt;
      session.clearPrompt();
      session.takeOutput();
    }
    this.#running = false;
    this.#reportedPartial = false;
  }

  async #ensureSession(): Promise<TerminalSession> {
    if (this.#session !== null && this.#session.exitStatus === null) return this.#session;
    const cwd = this.#lastPrompt !== null && existsSync(this.#lastPrompt.workingDir) ? this.#lastPrompt.workingDir : this.#workingDir;
    if (this.#session !== null) await this.#session.close(this.#opts.closeGraceMs);
    this.#session = null;
    this.#running = false;
    this.#reportedPartial = false;
    const secrets = this.#secrets.env();
    const version = this.#secrets.version;
    this.#session = await TerminalSession.start({
      shell: this.#opts.shell,
      cwd,
      env: buildShellEnv(this.#opts.baseEnv, secrets),
    });
    this.#exportedSecrets = new Set(Object.keys(secrets));
    this.#secretsVersion = version;
    return this.#session;
  }

  async #reset(): Promise<void> {
    const old = this.#session;
    if (old !== null && old.prompt !== null) this.#lastPrompt = old.prompt;
    this.#session = null;
    this.#running = false;
    this.#reportedPartial = false;
    await old?.close(this.#opts.closeGraceMs);
    await this.#ensureSession();
  }

  /**
   * Brings the shell's exported secrets up to date (the conversation's secrets changed since the
   * shell started). Runs as its own silent command: space-prefixed so it stays out of history,
   * and its output is discarded.
   */
  async #syncSecrets(session: TerminalSession): Promise<void> {
    if (this.#secrets.version === this.#secretsVersion) return;
    const env = this.#secrets.env();
    const parts: string[] = [];
    for (const [name, value] of Object.entries(env)) parts.push(`export ${name}=${shellQuote(value)}`);
    for (const name of this.#exportedSecrets) if (!(name in env)) parts.push(`unset ${name}`);
    this.#secretsVersion = this.#secrets.version;
    this.#exportedSecrets = new Set(Object.keys(env));
    if (parts.length === 0) return;
    session.takeOutput();
    session.clearPrompt();
    session.write(` ${parts.join("; ")}\n`);
    const deadline = Date.now() + 5000;
    while (session.prompt === null && session.exitStatus === null && Date.now() < deadline) {
      await session.waitForChange(deadline - Date.now());
    }
    session.takeOutput();
    session.clearPrompt();
  }
}
