/**
 * Limits over real gRPC against a real agentd: the cap on running commands (ResourceExhausted),
 * and a flood (≈200 MB of output) watched by one fast and one stalled client: the server's memory
 * (a separate process, measured alone) stays bounded, the fast watcher is not held back, and the
 * stored output is complete up to the 64 MiB cap, followed by the truncation marker.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BashCommandStatus, BashMode, type BashCommandInfo } from "../../gen/agentd/v1/bash_pb.js";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { client } from "../helpers/clients.js";
import { codeOf, drain, rssMiB, spawnServer, startBashServer, type BashClient } from "./harness.js";

const MiB = 1024 * 1024;

describe("running-command cap", () => {
  it("refuses one more command than --bash-max-commands with ResourceExhausted, and accepts again after one ends", async () => {
    const h = await startBashServer({ bashMaxRunningCommands: 2 });
    try {
      const a = await h.grpc.startBashCommand({ spec: { command: "read x", mode: BashMode.PIPE } });
      const b = await h.grpc.startBashCommand({ spec: { command: "read x", mode: BashMode.PIPE } });
      expect(await codeOf(h.grpc.startBashCommand({ spec: { command: "true" } }))).toBe(Code.ResourceExhausted);
      expect(await codeOf(h.json.executeBashCommand({ spec: { command: "true" } }))).toBe(Code.ResourceExhausted);
      await h.grpc.sendBashInput({ commandId: a.command!.id, text: "\n" });
      await drain(h.grpc, a.command!.id);
      expect((await h.grpc.executeBashCommand({ spec: { command: "echo ok" } })).output?.stdout).toBe("ok\n");
      await h.grpc.signalBashCommand({ commandId: b.command!.id, signal: 3 });
      await drain(h.grpc, b.command!.id);
    } finally {
      await h.close();
    }
  });
});

/** Checks `data` at byte `offset` against `base64` output over zeros: lines of 76 × "A" and "\n", until `limit`. */
function matchesBase64Zeros(data: Uint8Array, offset: number, limit: number): boolean {
  for (let i = 0; i < data.length && offset + i < limit; i++) {
    const want = (offset + i) % 77 < 76 ? 0x41 : 0x0a;
    if (data[i] !== want) return false;
  }
  return true;
}

describe("flood", () => {
  it("keeps server memory bounded with a stalled watcher; the fast watcher gets everything up to the cap, unhindered", { timeout: 60_000 }, async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "agentd-bash-flood-"));
    const workspace = path.join(root, "workspace");
    await mkdir(workspace);
    // A separate server process, so that its memory is measured alone.
    const server = await spawnServer(workspace, path.join(root, "data"), { TMPDIR: root });
    // Separate connections, as separate clients would have.
    const fast: BashClient = client(BashService, server.url, "grpc");
    const slow: BashClient = client(BashService, server.url, "grpc");
    let peak = 0;
    const probe = setInterval(() => (peak = Math.max(peak, rssMiB(server.pid))), 10);
    // 150 MB of zeros → ~200 MB of base64 (lines of 76 characters) on pipes, the fastest producer.
    const flood = { spec: { command: "head -c 150000000 /dev/zero | base64", mode: BashMode.PIPE } };

    /** Reads a command's whole output as the fast watcher; returns the byte count, tail and final state. */
    const watchFast = async (id: string) => {
      let bytes = 0;
      let ok = true;
      let tail = "";
      let exit: BashCommandInfo | undefined;
      for await (const r of fast.watchBashCommand({ commandId: id })) {
        if (r.item.case === "output") {
          expect(Number(r.item.value.offset)).toBe(bytes);
          ok &&= matchesBase64Zeros(r.item.value.data, bytes, 64 * MiB);
          bytes += r.item.value.data.byteLength;
          tail = (tail + Buffer.from(r.item.value.data.subarray(-200)).toString()).slice(-200);
        } else if (r.item.case === "exit") {
          exit = r.item.value;
        }
      }
      return { bytes, ok, tail, exit };
    };

    try {
      // First flood, fast watcher only: the reference time, and the server's allocator warmed up.
      let t = performance.now();
      const warm = await server.grpc.startBashCommand(flood);
      const alone = await watchFast(warm.command!.id);
      const aloneMs = performance.now() - t;
      expect(alone.exit?.outputTruncated).toBe(true);
      const base = rssMiB(server.pid);
      peak = base;

      // Second flood with a watcher that reads one message and then stalls.
      t = performance.now();
      const { command } = await server.grpc.startBashCommand(flood);
      const id = command!.id;
      const stalled = slow.watchBashCommand({ commandId: id })[Symbol.asyncIterator]();
      const firstSlow = await stalled.next();
      expect(firstSlow.value?.item.case).toBe("output");
      const got = await watchFast(id);
      const withStalledMs = performance.now() - t;
      const peakDuringFlood = peak;

      expect(got.exit).toMatchObject({ status: BashCommandStatus.EXITED, exitCode: 0, outputTruncated: true });
      expect(got.ok).toBe(true);
      expect(got.bytes).toBe(Number(got.exit!.outputSize));
      expect(got.bytes).toBeGreaterThan(64 * MiB);
      expect(got.bytes).toBeLessThan(64 * MiB + 1024);
      expect(got.tail).toContain("[agentd: output exceeded 64 MiB; further output of this command is discarded]");

      // The stalled watcher resumes and gets exactly the same bytes.
      let slowBytes = firstSlow.value!.item.case === "output" ? firstSlow.value!.item.value.data.byteLength : 0;
      let slowOk = true;
      let slowExit: BashCommandInfo | undefined;
      for (let r = await stalled.next(); r.done !== true; r = await stalled.next()) {
        if (r.value.item.case === "output") {
          expect(Number(r.value.item.value.offset)).toBe(slowBytes);
          slowOk &&= matchesBase64Zeros(r.value.item.value.data, slowBytes, 64 * MiB);
          slowBytes += r.value.item.value.data.byteLength;
        } else if (r.value.item.case === "exit") {
          slowExit = r.value.item.value;
        }
      }
      expect(slowOk).toBe(true);
      expect(slowBytes).toBe(got.bytes);
      expect(slowExit?.outputSize).toBe(got.exit!.outputSize);

      const growth = peakDuringFlood - base;
      console.log(
        `[bash flood] ~200 MB on pipes, 64 MiB stored: fast watcher alone ${(aloneMs / 1000).toFixed(2)} s, ` +
          `with a stalled watcher ${(withStalledMs / 1000).toFixed(2)} s; server RSS ${base.toFixed(0)} MiB → peak ${peakDuringFlood.toFixed(0)} MiB (+${growth.toFixed(0)})`,
      );
      // The fast watcher is not held back by the stalled one (generous: the machine is shared).
      expect(withStalledMs).toBeLessThan(2 * aloneMs + 1000);
      // Buffering the producer (200 MB) or the stalled watcher's unread output (64 MiB) would show here.
      expect(growth).toBeLessThan(64);
    } finally {
      clearInterval(probe);
      await server.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});
