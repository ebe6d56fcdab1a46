/**
 * BashService commands over real gRPC and Connect against a real agentd: execute, start + watch
 * from any offset (re-attach after a disconnect), input, Ctrl-C and signals, timeouts that kill
 * the whole process tree, resize, list, bad input, and the environment commands get.
 */
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BashCommandStatus, BashMode } from "../../gen/agentd/v1/bash_pb.js";
import { BashEventKind, BashSignal } from "../../gen/agentd/v1/bash_service_pb.js";
import { loadConfig } from "../../src/config.js";
import { codeOf, drain, groupMembers, procState, startBashServer, until, type BashHarness } from "./harness.js";

let h: BashHarness;

beforeAll(async () => {
  h = await startBashServer();
});
afterAll(async () => {
  await h.close();
});

const pipe = (command: string, extra: { timeout?: number; cwd?: string } = {}) => ({ spec: { command, mode: BashMode.PIPE, ...extra } });

describe("ExecuteBashCommand", () => {
  for (const transport of ["grpc", "json"] as const) {
    it(`runs echo and returns one BashOutput (order 0, exit 0) over ${transport}`, async () => {
      const c = h[transport];
      const res = await c.executeBashCommand({ spec: { command: "echo hi" } });
      expect(res.output).toMatchObject({ order: 0, exitCode: 0, stdout: "hi\n" });
      expect(res.output?.stderr).toBeUndefined();
      expect(res.info).toMatchObject({ status: BashCommandStatus.EXITED, exitCode: 0, mode: BashMode.PTY, cwd: h.server.workspace, timeout: 300 });
      expect(res.info?.endReason).toBe("exited with code 0");
      // Exactly one BashOutput was stored for it, and its BashCommand.
      const commandId = res.output!.commandId;
      const outputs = await c.searchBashEvents({ commandId, kind: BashEventKind.BASH_OUTPUT });
      expect(outputs.items.map((e) => e.event.case === "output" && [e.event.value.order, e.event.value.exitCode])).toEqual([[0, 0]]);
      const all = await c.searchBashEvents({ commandId });
      expect(all.items.map((e) => e.event.case)).toEqual(["command", "output"]);
    });
  }

  it("keeps stdout and stderr apart in pipe mode and reports the exit code", async () => {
    const res = await h.grpc.executeBashCommand(pipe("echo out; echo err >&2; exit 3"));
    expect(res.output).toMatchObject({ exitCode: 3, stdout: "out\n", stderr: "err\n" });
    expect(res.info).toMatchObject({ status: BashCommandStatus.EXITED, exitCode: 3 });
  });

  it("waits for the command's own timeout, not the transport deadline, which never ends the command", async () => {
    const started = Date.now();
    const code = await codeOf(h.grpc.executeBashCommand(pipe("sleep 0.5; echo survived"), { timeoutMs: 100 }));
    expect(code).toBe(Code.DeadlineExceeded);
    const [cmd] = (await h.grpc.listBashCommands({})).commands.filter((c) => c.command === "sleep 0.5; echo survived");
    expect(cmd?.status).toBe(BashCommandStatus.RUNNING);
    const { data, info } = await drain(h.grpc, cmd!.id);
    expect(data.toString()).toBe("survived\n");
    expect(info).toMatchObject({ status: BashCommandStatus.EXITED, exitCode: 0 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
  });

  it("kills children and grandchildren on timeout and leaves no zombie or orphan", async () => {
    const dir = path.join(h.server.workspace, "timeout");
    await mkdir(dir, { recursive: true });
    const started = performance.now();
    // A child (sh) that starts a grandchild (sleep) in a subshell, both recorded by pid.
    const res = await h.grpc.executeBashCommand(
      pipe("sh -c 'sleep 60 & echo $! > grandchild; wait' & echo $! > child; (sleep 60; echo never) & echo $! > sibling; wait", { timeout: 1, cwd: dir }),
    );
    const took = performance.now() - started;
    expect(res.output).toMatchObject({ exitCode: -1 });
    expect(res.info).toMatchObject({ status: BashCommandStatus.TIMED_OUT, timedOut: true, endReason: "timed out after 1 s" });
    expect(took).toBeLessThan(4000);
    const pids = ["child", "grandchild", "sibling"].map((f) => Number(readFileSync(path.join(dir, f), "utf8").trim()));
    expect(pids.every((p) => p > 0)).toBe(true);
    // The end is reported only once the process group is gone: nothing is left, not even a zombie.
    expect(pids.map(procState)).toEqual([null, null, null]);
    expect(groupMembers(res.info!.pid)).toEqual([]);
  });

  it("refuses bad input with the right codes", async () => {
    const c = h.grpc;
    expect(await codeOf(c.executeBashCommand({ spec: { command: "" } }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.executeBashCommand({ spec: { command: "   " } }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.executeBashCommand({}))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.startBashCommand({ spec: { command: "true", cwd: "/definitely/not/here" } }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.startBashCommand({ spec: { command: "true", cwd: "/" } }))).toBe(Code.PermissionDenied);
    expect(await codeOf(c.startBashCommand({ spec: { command: "true", timeout: -1 } }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.startBashCommand({ spec: { command: "true", cols: 5000 } }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.startBashCommand({ spec: { command: "true", env: { "BAD-NAME": "x" } } }))).toBe(Code.InvalidArgument);

    const unknown = "0123456789abcdef0123456789abcdef";
    expect(await codeOf(c.getBashCommand({ commandId: unknown }))).toBe(Code.NotFound);
    expect(await codeOf(c.getBashCommand({ commandId: "not an id!" }))).toBe(Code.NotFound);
    expect(await codeOf(drain(c, unknown))).toBe(Code.NotFound);
    expect(await codeOf(c.sendBashInput({ commandId: unknown, text: "x" }))).toBe(Code.NotFound);
    expect(await codeOf(c.signalBashCommand({ commandId: unknown, signal: BashSignal.KILL }))).toBe(Code.NotFound);
    expect(await codeOf(c.resizeBashCommand({ commandId: unknown, cols: 80, rows: 24 }))).toBe(Code.NotFound);
    expect(await codeOf(c.getBashEvent({ eventId: unknown }))).toBe(Code.NotFound);

    const done = await c.executeBashCommand({ spec: { command: "echo done" } });
    const id = done.output!.commandId;
    expect(await codeOf(c.sendBashInput({ commandId: id, text: "late\n" }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(c.signalBashCommand({ commandId: id, signal: BashSignal.INTERRUPT }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(c.resizeBashCommand({ commandId: id, cols: 80, rows: 24 }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(c.signalBashCommand({ commandId: id, signal: BashSignal.UNSPECIFIED }))).toBe(Code.InvalidArgument);
    expect(await codeOf(drain(c, id, 1_000_000))).toBe(Code.OutOfRange);

    expect(await codeOf(c.searchBashEvents({ pageSize: 101 }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.searchBashEvents({ pageSize: -1 }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.searchBashEvents({ pageToken: "bogus" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.listBashCommands({ pageSize: 1000 }))).toBe(Code.InvalidArgument);
    expect(await codeOf(c.batchGetBashEvents({ eventIds: Array.from({ length: 101 }, () => unknown) }))).toBe(Code.InvalidArgument);
  });
});

describe("StartBashCommand + WatchBashCommand", () => {
  it("streams a command's output from byte 0 and ends with the final state", async () => {
    const { command } = await h.grpc.startBashCommand(pipe("for i in $(seq 1 3000); do echo line-$i; done"));
    expect(command?.id).toMatch(/^[0-9a-f]{32}$/);
    const expected = Array.from({ length: 3000 }, (_, i) => `line-${i + 1}\n`).join("");
    const { data, info } = await drain(h.grpc, command!.id);
    expect(data.toString()).toBe(expected);
    expect(info).toMatchObject({ status: BashCommandStatus.EXITED, exitCode: 0, outputSize: BigInt(expected.length), outputTruncated: false });
    // Any later watcher, from any offset, gets the same bytes.
    expect((await drain(h.json, command!.id, 12345)).data.toString()).toBe(expected.slice(12345));
    expect((await drain(h.grpc, command!.id, expected.length)).data.byteLength).toBe(0);
  });

  it("re-attaches after a disconnect from the last offset seen: every byte exactly once", async () => {
    // Half the output, then the command waits for input, then the other half.
    const { command } = await h.grpc.startBashCommand(pipe("seq 1 40000; read x; seq 40001 80000"));
    const id = command!.id;
    const first: Buffer[] = [];
    let offset = 0;
    const abort = new AbortController();
    const firstHalf = "".concat(...Array.from({ length: 40000 }, (_, i) => `${i + 1}\n`));
    try {
      for await (const res of h.grpc.watchBashCommand({ commandId: id, offset: 0n }, { signal: abort.signal })) {
        if (res.item.case !== "output") continue;
        expect(Number(res.item.value.offset)).toBe(offset);
        first.push(Buffer.from(res.item.value.data));
        offset += res.item.value.data.byteLength;
        // Disconnect in the middle of the first half, while the command runs.
        if (offset > firstHalf.length / 2) abort.abort();
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
    expect(offset).toBeGreaterThan(firstHalf.length / 2);
    expect(offset).toBeLessThanOrEqual(firstHalf.length);
    expect((await h.grpc.getBashCommand({ commandId: id })).command?.status).toBe(BashCommandStatus.RUNNING);
    await h.grpc.sendBashInput({ commandId: id, text: "go\n" });
    const rest = await drain(h.grpc, id, offset);
    const all = Buffer.concat([...first, rest.data]).toString();
    expect(all).toBe("".concat(...Array.from({ length: 80000 }, (_, i) => `${i + 1}\n`)));
    expect(rest.info.outputSize).toBe(BigInt(all.length));
  });

  it("completes an interactive read via SendBashInput (text on a PTY, bytes on pipes)", async () => {
    const pty = await h.grpc.startBashCommand({ spec: { command: "read x; echo got $x" } });
    await h.grpc.sendBashInput({ commandId: pty.command!.id, text: "hello\n" });
    const a = await drain(h.grpc, pty.command!.id);
    expect(a.info).toMatchObject({ status: BashCommandStatus.EXITED, exitCode: 0 });
    expect(a.data.toString()).toContain("got hello\r\n");

    const p = await h.json.startBashCommand(pipe("read x; echo got $x"));
    await h.json.sendBashInput({ commandId: p.command!.id, data: Buffer.from("wor"), text: "ld\n" });
    const b = await drain(h.json, p.command!.id);
    expect(b.data.toString()).toBe("got world\n");
    const last = await h.json.searchBashEvents({ commandId: p.command!.id, kind: BashEventKind.BASH_OUTPUT });
    expect(last.items.at(-1)?.event.value).toMatchObject({ exitCode: 0, stdout: "got world\n" });
  });

  it("interrupts a running sleep with Ctrl-C, and terminates one with SignalBashCommand", async () => {
    const { command } = await h.grpc.startBashCommand({ spec: { command: "echo ready; sleep 30" } });
    const id = command!.id;
    const stream = h.grpc.watchBashCommand({ commandId: id, offset: 0n })[Symbol.asyncIterator]();
    let seen = "";
    while (!seen.includes("ready")) {
      const r = await stream.next();
      if (r.done === true || r.value.item.case !== "output") throw new Error("no output before the end");
      seen += Buffer.from(r.value.item.value.data).toString();
    }
    const pid = (await h.grpc.getBashCommand({ commandId: id })).command!.pid;
    expect(pid).toBeGreaterThan(0);
    // Ctrl-C must reach sleep itself (bash absorbs an interrupt that lands while it forks).
    await until(() => groupMembers(pid).includes("sleep"), 5000, "sleep to run");
    const t = performance.now();
    await h.grpc.sendBashInput({ commandId: id, text: "\u0003" });
    let exit;
    for (let r = await stream.next(); r.done !== true; r = await stream.next()) if (r.value.item.case === "exit") exit = r.value.item.value;
    expect(exit).toMatchObject({ status: BashCommandStatus.KILLED, signal: "SIGINT", exitCode: 130 });
    expect(performance.now() - t).toBeLessThan(3000);
    expect(groupMembers(pid)).toEqual([]);

    const other = await h.grpc.startBashCommand(pipe("sleep 30"));
    await h.grpc.signalBashCommand({ commandId: other.command!.id, signal: BashSignal.TERMINATE });
    expect((await drain(h.grpc, other.command!.id)).info).toMatchObject({ status: BashCommandStatus.KILLED, signal: "SIGTERM" });
  });

  it("resizes a PTY command's terminal; pipes have none", async () => {
    const { command } = await h.grpc.startBashCommand({ spec: { command: "read x; stty size", cols: 80, rows: 24 } });
    await h.grpc.resizeBashCommand({ commandId: command!.id, cols: 120, rows: 40 });
    expect((await h.grpc.getBashCommand({ commandId: command!.id })).command).toMatchObject({ cols: 120, rows: 40 });
    await h.grpc.sendBashInput({ commandId: command!.id, text: "\n" });
    expect((await drain(h.grpc, command!.id)).data.toString()).toContain("40 120");

    const p = await h.grpc.startBashCommand(pipe("read x"));
    expect(await codeOf(h.grpc.resizeBashCommand({ commandId: p.command!.id, cols: 100, rows: 30 }))).toBe(Code.FailedPrecondition);
    await h.grpc.sendBashInput({ commandId: p.command!.id, text: "\n" });
    await drain(h.grpc, p.command!.id);
  });

  it("lists running commands, and ended ones on request, newest first", async () => {
    const a = await h.grpc.startBashCommand(pipe("read x"));
    const b = await h.grpc.startBashCommand(pipe("read y"));
    const running = (await h.grpc.listBashCommands({})).commands.map((c) => c.id);
    expect(running.slice(0, 2)).toEqual([b.command!.id, a.command!.id]);
    for (const id of [a.command!.id, b.command!.id]) await h.grpc.sendBashInput({ commandId: id, text: "\n" });
    for (const id of [a.command!.id, b.command!.id]) await drain(h.grpc, id);
    const after = (await h.grpc.listBashCommands({})).commands.map((c) => c.id);
    expect(after).not.toContain(a.command!.id);
    const ended = await h.grpc.listBashCommands({ includeEnded: true, pageSize: 2 });
    expect(ended.commands.map((c) => c.id)).toEqual([b.command!.id, a.command!.id]);
    expect(ended.commands[0]).toMatchObject({ status: BashCommandStatus.EXITED, exitCode: 0, endReason: "exited with code 0" });
    expect(ended.commands[0]?.duration).toBeDefined();
  });
});

describe("environment", () => {
  it("gives commands agentd's environment without its secrets, plus the request's env", async () => {
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      MY_VAR: "visible",
      LLM_API_KEY: "sk-llm-secret",
      OH_SECRET_KEY: "secret-key",
      SESSION_API_KEY: "legacy-key",
      OH_SESSION_API_KEYS_0: "key-0",
      OH_WEBHOOKS: '[{"base_url":"http://127.0.0.1:9/hook","headers":{"authorization":"Bearer hook-token"}}]',
    };
    const childEnv = loadConfig(new Map(), env).childEnv;
    expect(childEnv).toEqual({ PATH: env.PATH, MY_VAR: "visible" });
    const own = await startBashServer({ childEnv });
    try {
      const r = await own.grpc.executeBashCommand({ spec: { command: "env", mode: BashMode.PIPE, env: { EXTRA: "from-request" } } });
      const lines = r.output!.stdout!.split("\n");
      expect(lines).toContain("MY_VAR=visible");
      expect(lines).toContain("EXTRA=from-request");
      expect(lines).toContain("AI_AGENT=openhands");
      expect(r.output!.stdout).not.toMatch(/sk-llm-secret|secret-key|legacy-key|key-0|hook-token/);
    } finally {
      await own.close();
    }
  });
});
