import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BashManager, type BashManagerOptions } from "./bash-manager.js";
import type { BashCommandInfo, BashEvent, BashOutputEvent } from "./bash-types.js";
import { MemoryBashStore } from "./memory-bash-store.js";
import { childPids, descendantPids } from "./proc-tree.js";

let dir: string;
let managers: BashManager[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentd-bash-test-"));
});

afterEach(async () => {
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

function create(options: Partial<BashManagerOptions> = {}): BashManager {
  const m = new BashManager({
    store: new MemoryBashStore(),
    baseEnv: { ...process.env, SESSION_API_KEY: "server-secret", OH_SESSION_API_KEYS_0: "server-secret-0" },
    defaultCwd: dir,
    ...options,
  });
  managers.push(m);
  return m;
}

/** Reads a command's output from `offset` to its end; returns the bytes and the final state. */
async function drain(m: BashManager, id: string, offset = 0): Promise<{ data: Buffer; info: BashCommandInfo }> {
  const parts: Buffer[] = [];
  for await (const item of m.watch(id, { offset })) {
    if (item.type === "exit") return { data: Buffer.concat(parts), info: item.info };
    expect(item.offset).toBe(offset + parts.reduce((n, p) => n + p.length, 0));
    parts.push(Buffer.from(item.data));
  }
  throw new Error("watch ended without an exit item");
}

async function outputEvents(m: BashManager, commandId: string): Promise<BashOutputEvent[]> {
  const page = await m.searchEvents({ commandId, kind: "BashOutput", limit: 100 });
  return page.items as BashOutputEvent[];
}

/** Command names of the processes in process group `pgid`. */
function runningInGroup(pgid: number | null): string[] {
  if (pgid === null) return [];
  const names: string[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "latin1");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      if (Number(fields[2]) === pgid) names.push(stat.slice(stat.indexOf("(") + 1, close));
    } catch {
      // exited meanwhile
    }
  }
  return names;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("BashManager: running commands", () => {
  it("runs echo on a warm PTY with OpenHands BashOutput semantics", async () => {
    const m = create();
    await m.warmUp();
    const seen: [BashEvent, number][] = [];
    m.subscribe((e, seq) => void seen.push([e, seq]));

    const r = await m.execute({ command: "echo Hello World" });

    expect(r.output).toMatchObject({ kind: "BashOutput", command_id: r.command.id, order: 0, exit_code: 0, stdout: "Hello World\n", stderr: null });
    expect(r.command).toMatchObject({ kind: "BashCommand", command: "echo Hello World", cwd: dir, timeout: 300 });
    expect(r.command.id).toMatch(/^[0-9a-f]{32}$/);
    expect(r.info).toMatchObject({ status: "exited", exitCode: 0, signal: null, mode: "pty", cols: 200, rows: 50, outputTruncated: false });
    expect(r.info.endReason).toBe("exited with code 0");
    const stored = await m.searchEvents({ commandId: r.command.id, limit: 100 });
    expect(stored.items).toEqual([r.command, r.output]);
    expect(seen.map(([e]) => e)).toEqual([r.command, r.output]);
    expect(seen[1]![1]).toBeGreaterThan(seen[0]![1]);
    // The raw terminal bytes are what watchers get.
    const { data, info } = await drain(m, r.command.id);
    expect(data.toString()).toBe("Hello World\r\n");
    expect(info).toEqual(r.info);
    expect(await m.get(r.command.id)).toEqual(r.info);
  });

  it("keeps stdout and stderr apart in pipe mode and merges them on a PTY; exit codes propagate", async () => {
    const m = create();
    const pipe = await m.execute({ command: "echo out; echo err >&2; exit 3", mode: "pipe" });
    expect(pipe.output).toMatchObject({ exit_code: 3, stdout: "out\n", stderr: "err\n" });
    expect(pipe.info).toMatchObject({ status: "exited", exitCode: 3, mode: "pipe", cols: 0, rows: 0 });
    const tty = await m.execute({ command: "echo err >&2; exit 5" });
    expect(tty.output).toMatchObject({ exit_code: 5, stdout: "err\n", stderr: null });
    const silent = await m.execute({ command: "true", mode: "pipe" });
    expect(silent.output).toMatchObject({ exit_code: 0, stdout: null, stderr: null });
  });

  it("runs in the requested cwd and env, isolated from other commands, without the server's keys", async () => {
    const m = create();
    const sub = path.join(dir, "sub dir");
    fs.mkdirSync(sub);
    for (const mode of ["pty", "pipe"] as const) {
      const r = await m.execute({
        command: 'pwd; echo "$FOO|${SESSION_API_KEY-unset}|${OH_SESSION_API_KEYS_0-unset}|$AI_AGENT"; cd /; export BAR=1',
        cwd: "sub dir",
        env: { FOO: "a b'c\"$x" },
        mode,
      });
      expect(r.output.stdout).toBe(`${sub}\na b'c"$x|unset|unset|openhands\n`);
      expect(r.info.cwd).toBe(sub);
      // The next command (very likely on the same warm shell) starts clean.
      const next = await m.execute({ command: 'pwd; echo "${FOO-unset} ${BAR-unset}"', mode });
      expect(next.output.stdout).toBe(`${dir}\nunset unset\n`);
    }
  });

  it("feeds stdin through sendInput, on a PTY and on pipes", async () => {
    const m = create();
    for (const mode of ["pty", "pipe"] as const) {
      const { command } = await m.start({ command: "read x; echo got $x", mode });
      await m.sendInput(command.id, "hello\n");
      const { data, info } = await drain(m, command.id);
      expect(data.toString()).toContain("got hello");
      expect(info).toMatchObject({ status: "exited", exitCode: 0 });
    }
    // Pipe mode: a lone Ctrl-D closes stdin, so a command reading to end of file finishes.
    const { command } = await m.start({ command: "wc -c", mode: "pipe" });
    await m.sendInput(command.id, new Uint8Array([0x61, 0x62, 0x0a]));
    await m.sendInput(command.id, "\x04");
    await expect(m.sendInput(command.id, "more")).rejects.toMatchObject({ code: "failed_precondition" });
    const { data } = await drain(m, command.id);
    expect(data.toString().trim()).toBe("3");
  });

  it("interrupts a PTY command with Ctrl-C and reports it promptly", async () => {
    const m = create();
    const { command } = await m.start({ command: "sleep 30; echo not reached" });
    // As on any terminal, a Ctrl-C that lands while bash is still forking the command is absorbed
    // by bash; a client interrupts a command that is running.
    await expect.poll(async () => runningInGroup((await m.get(command.id)).pid), { timeout: 5000, interval: 10 }).toContain("sleep");
    await m.sendInput(command.id, "\x03");
    const { info } = await drain(m, command.id);
    expect(info).toMatchObject({ status: "killed", signal: "SIGINT", exitCode: 130, timedOut: false });
    expect(info.endTime! - info.startTime).toBeLessThan(5000);
    const events = await outputEvents(m, command.id);
    expect(events.at(-1)?.exit_code).toBe(-1);
  });

  it("signals the whole process group", async () => {
    const m = create();
    const { command } = await m.start({ command: "sleep 30 & echo child=$!; sleep 30", mode: "pipe" });
    let text = "";
    for await (const item of m.watch(command.id)) {
      if (item.type === "output") text += Buffer.from(item.data).toString();
      if (text.includes("\n")) break;
    }
    const child = Number(/child=(\d+)/.exec(text)![1]);
    expect(alive(child)).toBe(true);
    await m.signal(command.id, "SIGTERM");
    const { info } = await drain(m, command.id);
    expect(info).toMatchObject({ status: "killed", signal: "SIGTERM", exitCode: 143 });
    expect(info.endReason).toBe("killed by SIGTERM (requested)");
    await expect.poll(() => alive(child), { timeout: 2000, interval: 10 }).toBe(false);
  });

  it("kills children and grandchildren on timeout (SIGTERM, then SIGKILL for those ignoring it)", async () => {
    const m = create({ limits: { killGraceMs: 300 } });
    const cases = [
      { mode: "pipe" as const, command: "(sleep 100 & echo bg=$!); sleep 100 & echo fg=$!; wait" },
      { mode: "pty" as const, command: "trap '' TERM; (sleep 100 & echo bg=$!); sleep 100 & echo fg=$!; wait" },
    ];
    for (const c of cases) {
      const started = performance.now();
      const r = await m.execute({ command: c.command, mode: c.mode, timeoutSeconds: 0.5 });
      expect(r.output.exit_code).toBe(-1);
      expect(r.info).toMatchObject({ status: "timed_out", timedOut: true, endReason: "timed out after 0.5 s" });
      expect(performance.now() - started).toBeLessThan(5000);
      const pids = [...(r.output.stdout ?? "").matchAll(/(?:bg|fg)=(\d+)/g)].map((x) => Number(x[1]));
      expect(pids).toHaveLength(2);
      // Reported only once the whole group is gone (reaped by the subreaper shell, not left as zombies).
      for (const pid of pids) expect(alive(pid)).toBe(false);
    }
  });

  it("cuts 1.5 MiB of output into ordered chunks with the exit code on the last", async () => {
    const m = create();
    const r = await m.execute({ command: "head -c 1572864 /dev/zero | tr '\\0' a", mode: "pipe" });
    const events = await outputEvents(m, r.command.id);
    expect(events.map((e) => [e.order, e.exit_code, e.stdout?.length, e.stderr])).toEqual([
      [0, null, 1048576, null],
      [1, 0, 524288, null],
    ]);
    expect(events[1]).toEqual(r.output);
    expect(r.info.outputBytes).toBe(1572864);
    const tty = await m.execute({ command: "head -c 1572864 /dev/zero | tr '\\0' b" });
    const ttyEvents = await outputEvents(m, tty.command.id);
    expect(ttyEvents.map((e) => [e.order, e.exit_code, e.stdout?.length])).toEqual([
      [0, null, 1048576],
      [1, 0, 524288],
    ]);
  });

  it("uses the requested terminal size and resizes it", async () => {
    const m = create();
    const r = await m.execute({ command: "stty size", cols: 90, rows: 30 });
    expect(r.output.stdout).toBe("30 90\n");
    const { command } = await m.start({ command: "read x; stty size" });
    await m.resize(command.id, 120, 40);
    await m.sendInput(command.id, "\n");
    const { data, info } = await drain(m, command.id);
    expect(data.toString()).toContain("40 120");
    expect(info).toMatchObject({ cols: 120, rows: 40 });
  });

  it("never lets a finished command's background process write into a later command", async () => {
    const m = create();
    for (const mode of ["pty", "pipe"] as const) {
      const go = path.join(dir, `go-${mode}`);
      const done = path.join(dir, `done-${mode}`);
      const first = await m.execute({
        command: `(while [ ! -e ${go} ]; do sleep 0.01; done; echo LATE; echo LATE >&2; touch ${done}) & echo first`,
        mode,
      });
      expect(first.output.stdout).toBe("first\n");
      const second = await m.start({ command: "read x; echo second", mode });
      fs.writeFileSync(go, "");
      await expect.poll(() => fs.existsSync(done), { timeout: 5000, interval: 10 }).toBe(true);
      await m.sendInput(second.command.id, "\n");
      const { data } = await drain(m, second.command.id);
      expect(data.toString()).not.toContain("LATE");
      const third = await m.execute({ command: "echo third", mode });
      expect([third.output.stdout, third.output.stderr]).toEqual(["third\n", null]);
      expect((await drain(m, first.command.id)).data.toString()).not.toContain("LATE");
    }
  });

  it("takes a large command line", async () => {
    const m = create();
    const filler = "x".repeat(200_000);
    for (const mode of ["pty", "pipe"] as const) {
      const r = await m.execute({ command: `v='${filler}'; echo \${#v}`, mode });
      expect(r.output.stdout).toBe("200000\n");
    }
  });

  it("is not disturbed by listeners that throw or reject", async () => {
    const m = create();
    m.subscribe(() => {
      throw new Error("listener bug");
    });
    m.subscribe((() => Promise.reject(new Error("async listener bug"))) as never);
    const kinds: string[] = [];
    const unsubscribe = m.subscribe((e) => void kinds.push(e.kind));
    expect((await m.execute({ command: "echo ok" })).output.stdout).toBe("ok\n");
    unsubscribe();
    await m.execute({ command: "echo again" });
    expect(kinds).toEqual(["BashCommand", "BashOutput"]);
  });

  it("reuses warm shells for consecutive short commands", async () => {
    const m = create();
    await m.warmUp();
    const before = m.shellPids().sort();
    for (let i = 0; i < 20; i++) {
      const r = await m.execute({ command: `echo ${i}`, mode: i % 2 === 0 ? "pty" : "pipe" });
      expect(r.output.stdout).toBe(`${i}\n`);
    }
    expect(m.shellPids().sort()).toEqual(before);
  });

  it("reports every exit status as the command's own, including the one a retiring wrapper uses", async () => {
    const m = create();
    for (const mode of ["pty", "pipe"] as const) {
      // 200 is what a waiting shell answers to "retire"; an exec'd program replaces the shell's
      // subshell and ends with the program's status. (Statuses >= 128 retire the shell.)
      for (const command of ["exit 200", "exec bash -c 'exit 200'", "exit 0", "exit 7", "cd /nonexistent-dir-of-agentd-tests"]) {
        const r = await m.execute({ command, mode });
        const expected = command.startsWith("cd") ? 1 : Number(/\d+/.exec(command)![0]);
        expect(r.info, `${command} (${mode})`).toMatchObject({ status: "exited", exitCode: expected });
        expect((await m.execute({ command: "echo still here", mode })).output.stdout).toBe("still here\n");
      }
    }
  });
});

describe("BashManager: watching", () => {
  it("re-attaches from any offset and gets exactly the remaining bytes, live", async () => {
    const m = create();
    const { command } = await m.start({ command: "seq 1 2000; read x; seq 2001 4000" });
    // First watcher: reads until the first part is complete, then disconnects mid-command.
    const first: Buffer[] = [];
    for await (const item of m.watch(command.id)) {
      if (item.type !== "output") throw new Error("ended early");
      first.push(Buffer.from(item.data));
      if (Buffer.concat(first).includes("2000\r\n")) break;
    }
    const offset = Buffer.concat(first).length;
    expect((await m.get(command.id)).status).toBe("running");
    const resumed = drain(m, command.id, offset); // attached while the command waits
    await m.sendInput(command.id, "go\n");
    const rest = await resumed;
    const full = await drain(m, command.id, 0);
    expect(Buffer.concat([...first, rest.data]).equals(full.data)).toBe(true);
    expect(full.data.toString()).toContain("4000\r\n");
    expect(full.info.outputBytes).toBe(full.data.length);
    const mid = await drain(m, command.id, 1234);
    expect(mid.data.equals(full.data.subarray(1234))).toBe(true);
  });

  it("lets a watcher that never reads coexist with one that reads to the end", async () => {
    const m = create();
    const { command } = await m.start({ command: "seq 1 100000" });
    const stalled = m.watch(command.id)[Symbol.asyncIterator]();
    const firstItem = await stalled.next();
    expect(firstItem.done).toBe(false);
    const { data, info } = await drain(m, command.id);
    expect(info).toMatchObject({ status: "exited", exitCode: 0 });
    expect(data.length).toBe(info.outputBytes);
    expect(data.toString()).toContain("100000\r\n");
    await stalled.return?.();
  });

  it("ends a watch quietly when its signal aborts, without touching the command", async () => {
    const m = create();
    const { command } = await m.start({ command: "read x; echo done" });
    const ac = new AbortController();
    const items: string[] = [];
    const watching = (async () => {
      for await (const item of m.watch(command.id, { signal: ac.signal })) items.push(item.type);
    })();
    ac.abort();
    await watching;
    expect(items).not.toContain("exit");
    await m.sendInput(command.id, "\n");
    expect((await drain(m, command.id)).info.status).toBe("exited");
  });
});

describe("BashManager: limits and errors", () => {
  it("refuses commands beyond the concurrency cap", async () => {
    const m = create({ limits: { maxRunningCommands: 2 } });
    const a = await m.start({ command: "read x" });
    const b = await m.start({ command: "read x", mode: "pipe" });
    await expect(m.start({ command: "true" })).rejects.toMatchObject({ code: "resource_exhausted" });
    expect((await m.list()).map((i) => i.id).sort()).toEqual([a.command.id, b.command.id].sort());
    await m.sendInput(a.command.id, "\n");
    await m.sendInput(b.command.id, "\n");
    await drain(m, a.command.id);
    await drain(m, b.command.id);
    expect((await m.execute({ command: "echo ok" })).output.stdout).toBe("ok\n");
    const all = await m.list({ includeEnded: true });
    expect(all).toHaveLength(3);
    expect(all[0]!.startTime).toBeGreaterThanOrEqual(all[2]!.startTime);
  });

  it("answers bad requests with the right error codes", async () => {
    const sub = path.join(dir, "inner");
    fs.mkdirSync(sub);
    const m = create({ allowedRoots: [sub], defaultCwd: sub });
    const code = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
        return "ok";
      } catch (err) {
        return (err as { code: string }).code;
      }
    };
    const unknown = "0123456789abcdef0123456789abcdef";
    expect(await code(m.get(unknown))).toBe("not_found");
    expect(await code(m.sendInput(unknown, "x"))).toBe("not_found");
    expect(await code(m.signal(unknown, "SIGINT"))).toBe("not_found");
    expect(await code(m.resize(unknown, 80, 24))).toBe("not_found");
    expect(await code(m.watch(unknown)[Symbol.asyncIterator]().next())).toBe("not_found");

    expect(await code(m.start({ command: "" }))).toBe("invalid_argument");
    expect(await code(m.start({ command: "  \n" }))).toBe("invalid_argument");
    expect(await code(m.start({ command: "true", cwd: path.join(sub, "missing") }))).toBe("invalid_argument");
    expect(await code(m.start({ command: "true", timeoutSeconds: -1 }))).toBe("invalid_argument");
    expect(await code(m.start({ command: "true", cols: 5000 }))).toBe("invalid_argument");
    expect(await code(m.start({ command: "true", env: { "BAD-NAME": "x" } }))).toBe("invalid_argument");
    expect(await code(m.start({ command: "true", cwd: dir }))).toBe("permission_denied");

    const ended = await m.execute({ command: "echo hi" });
    const id = ended.command.id;
    expect(await code(m.sendInput(id, "x"))).toBe("failed_precondition");
    expect(await code(m.signal(id, "SIGINT"))).toBe("failed_precondition");
    expect(await code(m.resize(id, 80, 24))).toBe("failed_precondition");
    expect(await code(m.signal(id, "SIGSTOP" as never))).toBe("invalid_argument");
    expect(await code(m.watch(id, { offset: -1 })[Symbol.asyncIterator]().next())).toBe("invalid_argument");
    expect(await code(m.watch(id, { offset: ended.info.outputBytes + 1 })[Symbol.asyncIterator]().next())).toBe("out_of_range");
    expect((await m.watch(id, { offset: ended.info.outputBytes })[Symbol.asyncIterator]().next()).value).toEqual({ type: "exit", info: ended.info });

    const piped = await m.start({ command: "read x", mode: "pipe" });
    expect(await code(m.resize(piped.command.id, 80, 24))).toBe("failed_precondition");
    await m.sendInput(piped.command.id, "\n");
    await drain(m, piped.command.id);

    await m.close();
    expect(await code(m.start({ command: "true" }))).toBe("unavailable");
  });

  it("caps stored output with a marker while the command runs on", async () => {
    const m = create({ limits: { maxOutputBytes: 100_000 } });
    const r = await m.execute({ command: "head -c 300000 /dev/zero | tr '\\0' z; echo; echo tail-exit", mode: "pipe" });
    expect(r.info).toMatchObject({ status: "exited", exitCode: 0, outputTruncated: true });
    const { data } = await drain(m, r.command.id);
    expect(data.subarray(0, 100_000).every((b) => b === 0x7a)).toBe(true);
    expect(data.subarray(100_000).toString()).toMatch(/^\n\[agentd: output exceeded [0-9.]+ MiB; further output of this command is discarded\]\n$/);
    expect(r.info.outputBytes).toBe(data.length);
  });

  it("reports a shell that cannot start as a spawn failure", async () => {
    const m = create({ bashPath: path.join(dir, "no-such-bash"), poolSize: 0, subreaper: false });
    const r = await m.execute({ command: "echo hi", mode: "pipe" });
    expect(r.output).toMatchObject({ order: 0, exit_code: -1, stdout: null });
    expect(r.output.stderr).toMatch(/^Error executing command: /);
    expect(r.info).toMatchObject({ status: "exited", exitCode: -1 });
  });
});

describe("BashManager: the end write", () => {
  it("stores a short command's output with its end, and reports only readable bytes when that write fails", async () => {
    const m = create({ poolSize: 1 });
    const ok = await m.execute({ command: "printf 'one\\ntwo\\n'", mode: "pipe" });
    expect(ok.info.outputBytes).toBe(8);
    expect((await drain(m, ok.info.id)).data.toString()).toBe("one\ntwo\n");

    class FailingEnd extends MemoryBashStore {
      readonly failed: string[] = [];
      override async appendEvents(...args: Parameters<MemoryBashStore["appendEvents"]>): Promise<number[]> {
        const [events] = args;
        const end = events.find((e) => e.kind === "BashOutput" && e.exit_code !== null);
        if (end !== undefined) {
          this.failed.push(end.id);
          throw new Error("disk full");
        }
        return super.appendEvents(...args);
      }
    }
    const failingStore = new FailingEnd();
    const failing = create({ store: failingStore, poolSize: 1 });
    for (const mode of ["pipe", "pty"] as const) {
      const r = await failing.execute({ command: "printf 'maybe lost\\n'", mode });
      // The end is reported, and its record written alone. Output that arrived with the exit rode
      // in the failed write and is not stored (output that came earlier was): the reported size is
      // what can be read.
      expect(r.info).toMatchObject({ status: "exited", exitCode: 0 });
      expect(await failing.get(r.info.id)).toMatchObject({ status: "exited", exitCode: 0 });
      const readable = (await drain(failing, r.info.id)).data.length;
      expect([0, mode === "pipe" ? 11 : 12]).toContain(readable);
      expect(r.info.outputBytes).toBe(readable);
      expect((await failing.get(r.info.id)).outputBytes).toBe(readable);
    }
    expect(failingStore.failed).toHaveLength(2);
  });

  it("stores a short executed command in one write, and never an output event before its command's", async () => {
    class CountingStore extends MemoryBashStore {
      readonly writes: string[][] = [];
      override async appendEvents(...args: Parameters<MemoryBashStore["appendEvents"]>): Promise<number[]> {
        this.writes.push(args[0].map((e) => e.kind));
        return super.appendEvents(...args);
      }
    }
    const store = new CountingStore();
    // A long linger, so that how fast the machine runs `echo` does not decide the outcome.
    const m = create({ store, poolSize: 1, limits: { storeLingerMs: 60_000 } });
    const published: string[] = [];
    m.subscribe((e) => void published.push(e.kind));
    for (const mode of ["pty", "pipe"] as const) {
      store.writes.length = 0;
      published.length = 0;
      const r = await m.execute({ command: "echo short", mode });
      expect(r.output.stdout).toBe("short\n");
      expect(store.writes, mode).toEqual([["BashCommand", "BashOutput"]]);
      expect(published).toEqual(["BashCommand", "BashOutput"]);
      expect((await drain(m, r.info.id)).data.toString()).toMatch(/^short\r?\n$/);
    }
    // Started rather than executed: the start is stored before StartBashCommand answers.
    store.writes.length = 0;
    const { command } = await m.start({ command: "echo started" });
    expect(store.writes).toEqual([["BashCommand"]]);
    expect(await m.getEvent(command.id)).toMatchObject({ kind: "BashCommand" });
    // A command with more output than one store chunk before its exit writes its start alone,
    // first: every output event comes after it.
    const big = await m.execute({ command: "head -c 1500000 /dev/zero | tr '\\0' x", mode: "pipe" });
    expect(big.info.outputBytes).toBe(1_500_000);
    const page = await m.searchEvents({ commandId: big.info.id, limit: 100 });
    expect(page.items.map((e) => e.kind)).toEqual(["BashCommand", "BashOutput", "BashOutput"]);
    // A command that outlives the (default) linger has its start stored while it runs.
    const other = new CountingStore();
    const slow = create({ store: other, poolSize: 1 }).execute({ command: "sleep 0.2; echo late", mode: "pipe" });
    await expect.poll(() => other.writes.length, { timeout: 2000, interval: 5 }).toBe(1);
    expect(other.writes).toEqual([["BashCommand"]]);
    expect((await slow).output.stdout).toBe("late\n");
    expect(other.writes).toEqual([["BashCommand"], ["BashOutput"]]);
  });
});

describe("BashManager: lifecycle", () => {
  it("marks commands that were running before a restart as lost and keeps their output", async () => {
    const store = new MemoryBashStore();
    const id = "00000000000000000000000000000abc";
    await store.saveCommand({
      id,
      command: "long-job",
      cwd: dir,
      mode: "pty",
      status: "running",
      exitCode: null,
      signal: null,
      timedOut: false,
      timeoutSeconds: 300,
      startTime: 1000,
      endTime: null,
      pid: 4242,
      cols: 200,
      rows: 50,
      outputBytes: 0,
      outputTruncated: false,
      endReason: null,
    });
    await store.appendEvent({ kind: "BashCommand", id, timestamp: new Date(1000).toISOString(), command: "long-job", cwd: dir, timeout: 300 });
    await store.appendOutput(id, 0, Buffer.from("partial output\r\n"));
    await store.appendEvent({ kind: "BashOutput", id: "e1", timestamp: new Date(2000).toISOString(), command_id: id, order: 0, exit_code: null, stdout: "x", stderr: null });

    const m = create({ store, clock: { now: () => 5000 } });
    const info = await m.get(id);
    expect(info).toMatchObject({ status: "lost", exitCode: null, endReason: "server restarted", endTime: 5000, outputBytes: 16 });
    const { data, info: watched } = await drain(m, id);
    expect(data.toString()).toBe("partial output\r\n");
    expect(watched.status).toBe("lost");
    const events = await outputEvents(m, id);
    expect(events.map((e) => [e.order, e.exit_code])).toEqual([
      [0, null],
      [1, -1],
    ]);
    expect(await m.list()).toEqual([]);
  });

  it("refills the pool in the background, and close() ends everything and leaves no process", async () => {
    const tmpDir = path.join(dir, "fifos");
    fs.mkdirSync(tmpDir);
    const m = create({ limits: { killGraceMs: 300 }, tmpDir });
    await m.warmUp();
    expect(m.warmShells()).toEqual({ pty: 2, pipe: 2 });
    const { command: long } = await m.start({ command: "sleep 1000" });
    await m.warmUp(); // the shell taken by the long command is replaced
    expect(m.warmShells()).toEqual({ pty: 2, pipe: 2 });
    expect(m.shellPids()).toHaveLength(5);

    // A background process outlives its command (e.g. a dev server) until close().
    const bg = await m.execute({ command: "sleep 1000 > /dev/null 2>&1 & echo $!", mode: "pipe" });
    expect(bg.info.status).toBe("exited");
    const bgPid = Number(bg.output.stdout);
    expect(alive(bgPid)).toBe(true);

    const shells = m.shellPids();
    const below = shells.flatMap((pid) => descendantPids(pid)); // waiting wrappers, leftovers
    expect(below).toContain(bgPid);
    await m.close();
    expect((await m.get(long.id)).status).toBe("killed");
    expect((await m.get(long.id)).endReason).toBe("server shut down");
    // Gone, not even zombies: the shells reaped everything below them before exiting.
    for (const pid of [...shells, ...below]) expect(alive(pid)).toBe(false);
    expect(childPids(process.pid)).toEqual([]);
    expect(fs.readdirSync(tmpDir)).toEqual([]);
  });
});
