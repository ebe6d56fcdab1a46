import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "./open-store.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/append-until-killed.ts", import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Ack {
  readonly conversation: string;
  readonly seq: number;
  readonly id: string;
}

/**
 * Runs the appender until it has acknowledged `killAfter` appends, then SIGKILLs it.
 * Resolves with every acknowledgement it printed before dying.
 */
function runAndKill(dir: string, run: number, killAfter: number): Promise<Ack[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", FIXTURE, dir, String(run)], {
      cwd: PROJECT_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const acks: Ack[] = [];
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line === "ready") return;
      const [conversation, seq, id] = line.split(" ");
      acks.push({ conversation: conversation!, seq: Number(seq), id: id! });
      if (acks.length === killAfter) child.kill("SIGKILL");
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal !== "SIGKILL") reject(new Error(`appender exited with ${code ?? signal}: ${stderr}`));
      else resolve(acks);
    });
  });
}

describe("crash safety", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "agentd-crash-"));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps every acknowledged append, dense and readable, across 20 SIGKILLs", { timeout: 180_000 }, async () => {
    const acked = new Map<string, Ack>(); // by event id
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let run = 0; run < 20; run++) {
      // Kill at a random point: after between 1 and ~600 acknowledged appends.
      const acks = await runAndKill(dir, run, 1 + Math.floor(random() * 600));
      for (const a of acks) acked.set(a.id, a);

      const store = await openStore(dir);
      try {
        for (const conversation of ["crash-a", "crash-b"]) {
          const head = await store.events.head(conversation);
          const mine = [...acked.values()].filter((a) => a.conversation === conversation);
          expect(head.lastSeq).toBeGreaterThanOrEqual(Math.max(0, ...mine.map((a) => a.seq)));
          // Dense from 1, every record decodes (a torn or undecodable one would throw data_loss).
          let expected = 1;
          const seen = new Set<string>();
          for await (const e of store.events.scan(conversation, { chunk: 500 })) {
            expect(e.seq).toBe(expected++);
            expect(seen.has(e.id)).toBe(false);
            seen.add(e.id);
            const text = new TextDecoder().decode(e.body);
            expect(text.length % e.id.length).toBe(0);
            expect(text.startsWith(e.id)).toBe(true);
          }
          expect(expected - 1).toBe(head.lastSeq);
          expect(await store.events.count(conversation)).toBe(head.lastSeq);
          const kinds = [...head.countsByKind.values()].reduce((a, b) => a + b, 0);
          expect(kinds).toBe(head.lastSeq);
          // Every acknowledged append is there, under the seq it was acknowledged with.
          const found = await store.events.getManyByIds(conversation, mine.map((a) => a.id));
          found.forEach((e, i) => expect(e?.seq, mine[i]!.id).toBe(mine[i]!.seq));
        }
      } finally {
        await store.close();
      }
    }
    expect(acked.size).toBeGreaterThan(20);
  });
});
