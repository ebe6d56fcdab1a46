/**
 * Crash and restart: agentd runs as a separate process, is killed with SIGKILL while a command
 * runs, and is started again on the same data directory. The command is then reported ended
 * (lost, exit unknown, reason given) — no ghost "running" state — with its stored output still
 * readable, and what had completed before the crash is intact.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { BashCommandStatus, BashMode } from "../../gen/agentd/v1/bash_pb.js";
import { BashEventKind } from "../../gen/agentd/v1/bash_service_pb.js";
import { drain, groupMembers, spawnServer, until, type ChildServer } from "./harness.js";

describe("restart after a crash", () => {
  it("reports a command that was running as lost, with its output readable", { timeout: 60_000 }, async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "agentd-bash-restart-"));
    const workspace = path.join(root, "workspace");
    const dataDir = path.join(root, "data");
    await mkdir(workspace);
    // TMPDIR: a killed server leaves its FIFO directory behind; keep it inside this test's root.
    const env = { TMPDIR: root };
    let server: ChildServer | undefined = await spawnServer(workspace, dataDir, env);
    try {
      const done = await server.grpc.executeBashCommand({ spec: { command: "echo finished-before", mode: BashMode.PIPE } });
      const { command } = await server.grpc.startBashCommand({ spec: { command: "echo started; sleep 30" } });
      const id = command!.id;
      // Wait until the output is stored (the watcher sees it), then crash the server.
      let seen = "";
      for await (const r of server.grpc.watchBashCommand({ commandId: id })) {
        if (r.item.case === "output") seen += Buffer.from(r.item.value.data).toString();
        if (seen.includes("started")) break;
      }
      const pgid = (await server.grpc.getBashCommand({ commandId: id })).command!.pid;
      expect(pgid).toBeGreaterThan(0);
      await server.kill();
      server = undefined;
      // The PTY's hang-up ends the command's processes with the server.
      await until(() => groupMembers(pgid).length === 0, 5000, "the command's processes to end");

      server = await spawnServer(workspace, dataDir, env);
      const info = (await server.grpc.getBashCommand({ commandId: id })).command!;
      expect(info).toMatchObject({ status: BashCommandStatus.LOST, endReason: "server restarted", timedOut: false });
      expect(info.exitCode).toBeUndefined();
      expect(info.endTime).toBeDefined();
      expect((await server.grpc.listBashCommands({})).commands.map((c) => c.id)).not.toContain(id);
      // The stored output is still there, and the watch ends with the final (lost) state.
      const out = await drain(server.grpc, id);
      expect(out.data.toString()).toContain("started");
      expect(out.info.status).toBe(BashCommandStatus.LOST);
      // OpenHands pollers see a last BashOutput with exit code -1 and the reason.
      const events = await server.grpc.searchBashEvents({ commandId: id, kind: BashEventKind.BASH_OUTPUT });
      const last = events.items.at(-1)?.event.value as { exitCode?: number; stderr?: string };
      expect(last.exitCode).toBe(-1);
      expect(last.stderr).toContain("the server restarted while this command was running");
      // What completed before the crash is intact.
      const before = (await server.grpc.getBashCommand({ commandId: done.output!.commandId })).command!;
      expect(before).toMatchObject({ status: BashCommandStatus.EXITED, exitCode: 0 });
      expect((await server.grpc.getBashEvent({ eventId: done.output!.id })).event?.event.value).toMatchObject({ stdout: "finished-before\n" });
    } finally {
      await server?.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});
