// Floods, back-pressure and a latency measurement. Kept in one file so they run one after another
// (the numbers printed by the measurement are not disturbed by a flood in a parallel worker).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BashManager, type BashManagerOptions } from "./bash-manager.js";
import type { BashEvent } from "./bash-types.js";
import { MemoryBashStore } from "./memory-bash-store.js";

const MiB = 1024 * 1024;
let dir: string;
let managers: BashManager[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentd-bash-load-"));
});

afterEach(async () => {
  await Promise.all(managers.map((m) => m.close()));
  managers = [];
  fs.rmSync(dir, { recursive: true, force: true });
});

function create(options: Partial<BashManagerOptions> = {}): BashManager {
  const m = new BashManager({ store: new MemoryBashStore(), baseEnv: process.env, defaultCwd: dir, ...options });
  managers.push(m);
  return m;
}

/** Samples RSS every 10 ms; `stop()` returns the largest growth over the starting value. */
function rssProbe(): { stop(): number } {
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss) - base;
    },
  };
}

/**
 * A store that is slow to take output (every append waits `delayMs`) and keeps only its length
 * and no event text, so memory growth shows what the engine itself buffers.
 */
class SlowLeanStore extends MemoryBashStore {
  private readonly lengths = new Map<string, number>();

  constructor(private readonly delayMs: number) {
    super();
  }

  override async appendOutput(commandId: string, offset: number, data: Uint8Array): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const length = this.lengths.get(commandId) ?? 0;
    if (offset !== length) throw new Error(`append at ${offset}, expected ${length}`);
    this.lengths.set(commandId, length + data.byteLength);
  }

  override async outputLength(commandId: string): Promise<number> {
    return this.lengths.get(commandId) ?? 0;
  }

  override appendEvents(events: readonly BashEvent[]): Promise<number[]> {
    return super.appendEvents(events.map((event) => (event.kind === "BashOutput" ? { ...event, stdout: null, stderr: null } : event)));
  }
}

describe("BashManager under load", () => {
  it("keeps memory bounded when a PTY command floods 50 MB while one watcher stalls", async () => {
    const m = create({ limits: { maxOutputBytes: 8 * MiB } });
    await m.warmUp();
    const probe = rssProbe();
    const { command } = await m.start({ command: "head -c 52428800 /dev/zero; echo; echo finished" });
    const stalled = m.watch(command.id)[Symbol.asyncIterator]();
    expect((await stalled.next()).done).toBe(false); // reads once, then never again
    let received = 0;
    let exitInfo = null;
    for await (const item of m.watch(command.id)) {
      if (item.type === "output") received += item.data.byteLength;
      else exitInfo = item.info;
    }
    const growth = probe.stop();
    console.log(`[bash flood] 50 MB through a PTY with a stalled watcher: RSS growth ${(growth / MiB).toFixed(0)} MiB`);
    expect(exitInfo).toMatchObject({ status: "exited", exitCode: 0, outputTruncated: true });
    expect(received).toBe(exitInfo!.outputBytes);
    expect(received).toBeGreaterThan(8 * MiB);
    expect(received).toBeLessThan(8 * MiB + 1024);
    expect(growth).toBeLessThan(150 * MiB);
    await stalled.return?.();
  });

  it("pauses a command whose output the store cannot keep up with, and loses nothing", async () => {
    const highWater = 4 * MiB;
    const m = create({ store: new SlowLeanStore(10), limits: { outputHighWaterBytes: highWater } });
    const probe = rssProbe();
    const r = await m.execute({ command: "head -c 52428800 /dev/zero", mode: "pipe" });
    const growth = probe.stop();
    const { peakQueuedOutputBytes, queuedOutputBytes } = m.stats();
    console.log(
      `[bash back-pressure] 50 MB into a slow store: peak queued ${(peakQueuedOutputBytes / MiB).toFixed(1)} MiB, RSS growth ${(growth / MiB).toFixed(0)} MiB`,
    );
    expect(r.info).toMatchObject({ status: "exited", exitCode: 0, outputBytes: 52428800, outputTruncated: false });
    // Without back-pressure the queue would hold most of the 50 MB (the store takes ~25 MB/s).
    expect(peakQueuedOutputBytes).toBeLessThan(highWater + 1 * MiB);
    expect(queuedOutputBytes).toBe(0);
    expect(growth).toBeLessThan(150 * MiB);
  });

  it("measures the echo round trip against a raw spawn (printed, not asserted)", async () => {
    const m = create();
    await m.warmUp();
    const runs = 200;
    const times: Record<"pty" | "pipe" | "spawn", number[]> = { pty: [], pipe: [], spawn: [] };
    const rawSpawn = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const child = spawn("bash", ["-c", "echo hi"]);
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.on("error", reject);
        child.on("close", () => resolve(out));
      });
    // Interleaved, after a warm-up, so machine load affects all three alike.
    for (let i = 0; i < runs + 20; i++) {
      let t = performance.now();
      const pty = await m.execute({ command: "echo hi" });
      const dPty = performance.now() - t;
      t = performance.now();
      const pipe = await m.execute({ command: "echo hi", mode: "pipe" });
      const dPipe = performance.now() - t;
      t = performance.now();
      const raw = await rawSpawn();
      const dSpawn = performance.now() - t;
      expect([pty.output.stdout, pipe.output.stdout, raw]).toEqual(["hi\n", "hi\n", "hi\n"]);
      if (i >= 20) {
        times.pty.push(dPty);
        times.pipe.push(dPipe);
        times.spawn.push(dSpawn);
      }
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const [pty, pipe, raw] = [median(times.pty), median(times.pipe), median(times.spawn)];
    console.log(
      `[bash latency] echo hi, median of ${runs}: execute pty ${pty.toFixed(3)} ms, execute pipe ${pipe.toFixed(3)} ms, ` +
        `raw spawn ${raw.toFixed(3)} ms; ratio pty ${(pty / raw).toFixed(2)}, pipe ${(pipe / raw).toFixed(2)}; load ${os.loadavg()[0]!.toFixed(1)}`,
    );
  });
});
