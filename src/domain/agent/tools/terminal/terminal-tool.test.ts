import { existsSync, readFileSync, watch } from "node:fs";
import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { AgentdError } from "../agentd-error.js";
import { SecretMasker } from "../secret-masker.js";
import { observationText } from "../text.js";
import type { ToolExecutionContext } from "../types.js";
import { MAX_TERMINAL_OUTPUT, TerminalTool, type TerminalObservation } from "./terminal-tool.js";

/** True while `pid` runs (a zombie waiting for init to reap it counts as ended). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Resolves when `path` exists (fs.watch on its directory). */
function waitForFile(path: string): Promise<void> {
  return new Promise((resolve) => {
    const watcher = watch(dirname(path), () => {
      if (existsSync(path)) {
        watcher.close();
        resolve();
      }
    });
  });
}

/** Waits (bounded) for a process to disappear; there is no event for another process's death. */
async function gone(pid: number, withinMs = 3000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe("terminal tool (real PTY)", () => {
  let dir: string;
  let secrets: SecretMasker;
  let tool: TerminalTool;
  let ctx: ToolExecutionContext;

  const run = async (args: Record<string, unknown>, signal?: AbortSignal): Promise<TerminalObservation> =>
    tool.execute(tool.parseAction(args), signal ? { ...ctx, signal } : ctx);

  beforeEach(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), "agentd-terminal-")));
    secrets = new SecretMasker({ MY_SECRET: "s3cr3t-value-123" });
    tool = new TerminalTool(dir, secrets, {
      noChangeTimeoutMs: 1000,
      baseEnv: { ...process.env, SESSION_API_KEY: "server-key", OH_SESSION_API_KEYS_0: "other-key" },
    });
    ctx = { conversationId: "c1", workingDir: dir, signal: new AbortController().signal, secrets };
  });

  afterEach(async () => {
    const pid = tool.shellPid;
    await tool.close();
    if (pid !== undefined) expect(alive(pid)).toBe(false);
    await rm(dir, { recursive: true, force: true });
  });

  it("runs a command and reports output, exit code and metadata in the OpenHands shape", async () => {
    const obs = await run({ command: "echo hello" });
    expect(obs).toMatchObject({
      kind: "TerminalObservation",
      is_error: false,
      command: "echo hello",
      exit_code: 0,
      timeout: false,
      metadata: { exit_code: 0, working_dir: dir, suffix: "\n[The command completed with exit code 0.]" },
    });
    expect(obs.content).toEqual([{ type: "text", text: "hello", cache_prompt: false }]);
    expect(typeof obs.metadata.username).toBe("string");
    const llm = observationText({ content: tool.toLlmContent(obs) });
    expect(llm).toContain(`[Current working directory: ${dir}]`);
    expect(llm).toContain("[Command finished with exit code 0]");
  });

  it("reports non-zero exit codes", async () => {
    expect((await run({ command: "false" })).exit_code).toBe(1);
    expect((await run({ command: "(exit 42)" })).exit_code).toBe(42);
    const missing = await run({ command: "no-such-command-xyz" });
    expect(missing.exit_code).toBe(127);
    expect(observationText(missing)).toContain("no-such-command-xyz");
  });

  it("keeps exported variables and the working directory between calls", async () => {
    await mkdir(join(dir, "sub"));
    await run({ command: "export FOO=persisted && cd sub" });
    const obs = await run({ command: "echo $FOO; pwd" });
    expect(observationText(obs)).toBe(`persisted\n${dir}/sub`);
    expect(obs.metadata.working_dir).toBe(`${dir}/sub`);
  });

  it("masks secrets, exports them, and follows secret updates", async () => {
    const obs = await run({ command: "echo $MY_SECRET; echo literal s3cr3t-value-123" });
    expect(observationText(obs)).toBe("<secret-hidden>\nliteral <secret-hidden>");
    secrets.update({ NEW_TOKEN: "tok-9876543" });
    const after = await run({ command: 'echo "[$MY_SECRET][$NEW_TOKEN]"' });
    expect(observationText(after)).toBe("[][<secret-hidden>]");
  });

  it("removes server credentials from the environment and sets AI_AGENT", async () => {
    const obs = await run({ command: 'echo "[$SESSION_API_KEY][$OH_SESSION_API_KEYS_0][$AI_AGENT]"' });
    expect(observationText(obs)).toBe("[][][openhands]");
  });

  it("refuses several newline-separated commands but accepts a here-document", async () => {
    const multi = await run({ command: "echo a\necho b" });
    expect(multi.is_error).toBe(true);
    expect(observationText(multi)).toContain("Cannot execute multiple commands at once");
    expect(observationText(multi)).toContain("(1) echo a\n(2) echo b");

    const heredoc = await run({ command: "cat <<'EOF' > note.txt\nline one\n$NOT_EXPANDED\nEOF" });
    expect(heredoc.exit_code).toBe(0);
    expect(observationText(await run({ command: "cat note.txt" }))).toBe("line one\n$NOT_EXPANDED");
  });

  it("interrupts a running command with C-c", async () => {
    const started = Date.now();
    const first = await run({ command: "sleep 30" });
    expect(first.exit_code).toBe(-1);
    const stopped = await run({ command: "C-c", is_input: true });
    expect(stopped.exit_code).toBe(130);
    expect(stopped.metadata.suffix).toContain("CTRL+C was sent");
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(observationText(await run({ command: "echo still usable" }))).toBe("still usable");
  });

  it("soft-times out with exit code -1, then '' returns the rest of the output", async () => {
    const gate = join(dir, "gate");
    const first = await run({ command: `echo first; while [ ! -f ${gate} ]; do sleep 0.05; done; echo second` });
    expect(first.exit_code).toBe(-1);
    expect(first.timeout).toBe(true);
    expect(observationText(first)).toBe("first");
    expect(first.metadata.suffix).toContain("no new output after 1 seconds");
    expect(first.metadata.suffix).toContain("sending empty command ''");

    const refused = await run({ command: "echo other" });
    expect(refused.is_error).toBe(true);
    expect(refused.metadata.suffix).toContain('Your command "echo other" is NOT executed');

    await writeFile(gate, "");
    const rest = await run({ command: "" });
    expect(rest.exit_code).toBe(0);
    expect(observationText(rest)).toBe("second");
    expect(rest.metadata.prefix).toBe("[Below is the output of the previous command.]\n");
  });

  it("sends input to a process waiting for it", async () => {
    const waiting = await run({ command: "read -r answer; echo got:$answer" });
    expect(waiting.exit_code).toBe(-1);
    const done = await run({ command: "yes please", is_input: true });
    expect(done.exit_code).toBe(0);
    expect(observationText(done)).toBe("got:yes please");
  });

  it("returns after an explicit (hard) timeout while the command keeps running", async () => {
    const started = Date.now();
    const obs = await run({ command: "echo begin; sleep 30", timeout: 0.5 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(obs.exit_code).toBe(-1);
    expect(obs.timeout).toBe(true);
    expect(observationText(obs)).toBe("begin");
    expect(obs.metadata.suffix).toContain("timed out after 0.5 seconds");
    expect((await run({ command: "C-c", is_input: true })).exit_code).toBe(130);
  });

  it("refuses a timeout above the configured maximum", async () => {
    const capped = new TerminalTool(dir, secrets, { maxTimeoutSeconds: 10, baseEnv: process.env });
    try {
      const obs = await capped.execute(capped.parseAction({ command: "echo x", timeout: 11 }), ctx);
      expect(obs.is_error).toBe(true);
      expect(observationText(obs)).toContain("above the maximum of 10 seconds");
      const ok = await capped.execute(capped.parseAction({ command: "echo x", timeout: 10 }), ctx);
      expect(observationText(ok)).toBe("x");
    } finally {
      await capped.close();
    }
  });

  it("explains that there is nothing to continue or send input to", async () => {
    const more = await run({ command: "" });
    expect(more.is_error).toBe(true);
    expect(observationText(more)).toBe("No previous running command to retrieve logs from.");
    const input = await run({ command: "y", is_input: true });
    expect(observationText(input)).toBe("No previous running command to interact with.");
  });

  it("resets the shell in the same directory, dropping its state", async () => {
    await mkdir(join(dir, "keep"));
    await run({ command: "cd keep && export GONE=1" });
    const oldPid = tool.shellPid as number;
    const reset = await run({ command: "", reset: true });
    expect(reset).toMatchObject({ command: "[RESET]", exit_code: 0 });
    expect(observationText(reset)).toContain("Terminal session has been reset");
    expect(tool.shellPid).not.toBe(oldPid);
    expect(await gone(oldPid)).toBe(true);
    const after = await run({ command: 'pwd; echo "[$GONE]"' });
    expect(observationText(after)).toBe(`${dir}/keep\n[]`);

    const withCommand = await run({ command: "echo fresh", reset: true });
    expect(withCommand.command).toBe("[RESET] echo fresh");
    expect(observationText(withCommand)).toMatch(/has been reset.*\n\nfresh$/s);
  });

  it("rejects reset combined with is_input", () => {
    expect(() => tool.parseAction({ command: "C-c", is_input: true, reset: true })).toThrow(AgentdError);
    try {
      tool.parseAction({ command: "x", is_input: true, reset: true });
    } catch (err) {
      expect((err as AgentdError).code).toBe("invalid_argument");
    }
  });

  it("caps long output, keeping the head and the tail", async () => {
    const obs = await run({ command: "seq 1 30000" });
    const text = observationText(obs);
    expect(text.length).toBeLessThan(MAX_TERMINAL_OUTPUT + 200);
    expect(text.startsWith("1\n2\n3\n")).toBe(true);
    expect(text.endsWith("29999\n30000")).toBe(true);
    expect(text).toMatch(/\[\.\.\. \d+ characters of output omitted/);
    const llm = observationText({ content: tool.toLlmContent(obs) });
    expect(llm.length).toBeLessThanOrEqual(MAX_TERMINAL_OUTPUT + 200);
    expect(llm).toContain("[Command finished with exit code 0]");
  });

  it("strips terminal escape sequences and progress-bar redraws", async () => {
    const obs = await run({ command: "printf '10%%\\r50%%\\r100%%\\n\\033[31mred\\033[0m\\n'" });
    expect(observationText(obs)).toBe("100%\nred");
  });

  it("interrupts the foreground command when the call is aborted", async () => {
    const controller = new AbortController();
    const marker = join(dir, "started");
    const started = waitForFile(marker);
    const pending = run({ command: `echo working; touch ${marker}; sleep 30`, timeout: 60 }, controller.signal);
    await started; // the command is running: abort now
    controller.abort();
    const obs = await pending;
    expect(obs.metadata.suffix).toContain("interrupted by user request");
    expect(observationText(obs)).toBe("working");
    expect(observationText(await run({ command: "echo next" }))).toBe("next");
  });

  it("restarts the shell after the agent exits it", async () => {
    const exited = await run({ command: "exit 3" });
    expect(exited.exit_code).toBe(3);
    expect(exited.metadata.suffix).toContain("shell exited with code 3");
    expect(observationText(await run({ command: "echo back" }))).toBe("back");
  });

  it("close() ends the shell and its background jobs, even ones ignoring SIGHUP", async () => {
    const bg = await run({ command: "sleep 60 & echo $!" });
    const jobPid = Number(observationText(bg).trim().split("\n").pop());
    // A job that ignores SIGHUP (like nohup), ready once it has touched `ready`.
    const ready = join(dir, "ready");
    const isReady = waitForFile(ready);
    const nohup = await run({ command: `(trap '' HUP; touch ${ready}; exec sleep 60) >/dev/null 2>&1 & echo $!` });
    const nohupPid = Number(observationText(nohup).trim().split("\n").pop());
    await isReady;
    expect(alive(jobPid)).toBe(true);
    expect(alive(nohupPid)).toBe(true);
    const shellPid = tool.shellPid as number;
    await tool.close();
    expect(alive(shellPid)).toBe(false);
    expect(await gone(jobPid)).toBe(true);
    expect(await gone(nohupPid)).toBe(true);
    await expect(run({ command: "echo x" })).rejects.toMatchObject({ code: "failed_precondition" });
  });
});
