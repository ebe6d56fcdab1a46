import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { ClassicLevel } from "classic-level";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentdError } from "../errors.js";
import type { Migration } from "./migrations.js";
import { MIGRATIONS } from "./migrations.js";
import { StoreLockedError, openStore } from "./open-store.js";

const HOLD_LOCK = fileURLToPath(new URL("./fixtures/hold-lock.ts", import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url));

describe("openStore", () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "agentd-open-"));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("creates a missing data directory and starts at the newest schema version", async () => {
    const nested = path.join(dir, "a", "b", ".agentd");
    const store = await openStore(nested);
    expect(store.dataDir).toBe(nested);
    await store.close();
    const raw = new ClassicLevel<string, Uint8Array>(nested, { keyEncoding: "utf8", valueEncoding: "view" });
    await raw.open();
    expect(await raw.get("!meta!schema_version")).toBeDefined();
    await raw.close();
  });

  it("refuses a directory another process uses, with a one-line message", { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, ["--import", "tsx", HOLD_LOCK, dir], { cwd: PROJECT_ROOT, stdio: ["pipe", "pipe", "inherit"] });
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout }).on("line", (line) => line === "ready" && resolve());
        child.on("error", reject);
        child.on("close", (code) => reject(new Error(`lock holder exited early (${code})`)));
      });
      const err = await openStore(dir).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StoreLockedError);
      expect(err).toBeInstanceOf(AgentdError);
      expect((err as StoreLockedError).message).toBe(`another agentd process is using the data directory ${dir}`);
      expect((err as StoreLockedError).message).not.toContain("\n");
      expect((err as StoreLockedError).code).toBe("unavailable");
    } finally {
      child.stdin.end();
    }
    expect(await exited).toBe(0);
    // Once the holder is gone the directory opens.
    const store = await openStore(dir);
    await store.close();
  });

  it("refuses a second open in the same process the same way", async () => {
    const first = await openStore(dir);
    try {
      await expect(openStore(dir)).rejects.toThrow(StoreLockedError);
    } finally {
      await first.close();
    }
  });

  it("runs each migration once, in order, forward only", async () => {
    const ran: number[] = [];
    const migration = (version: number): Migration => ({
      version,
      description: `test ${version}`,
      up: async (_ctx, batch) => {
        ran.push(version);
        batch.put("meta", `test_${version}`, new Uint8Array([version]));
      },
    });
    let store = await openStore(dir, { migrations: [migration(1), migration(2)] });
    await store.close();
    expect(ran).toEqual([1, 2]);
    store = await openStore(dir, { migrations: [migration(1), migration(2)] });
    await store.close();
    expect(ran).toEqual([1, 2]);
    store = await openStore(dir, { migrations: [migration(1), migration(2), migration(3)] });
    await store.close();
    expect(ran).toEqual([1, 2, 3]);
    // A build that knows fewer migrations than the directory has applied refuses to open it.
    const err = await openStore(dir, { migrations: [migration(1)] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as AgentdError).code).toBe("failed_precondition");
    expect((err as AgentdError).message).toBe(`data directory ${dir} has schema version 3, newer than this agentd supports (1)`);
    // The refused open released the directory.
    store = await openStore(dir, { migrations: [migration(1), migration(2), migration(3)] });
    await store.close();
    expect(ran).toEqual([1, 2, 3]);
  });

  it("does not record a migration that failed, and retries it at the next open", async () => {
    let attempts = 0;
    const flaky: Migration = {
      version: 2,
      description: "fails once",
      up: async () => {
        if (++attempts === 1) throw new Error("boom");
      },
    };
    await expect(openStore(dir, { migrations: [...MIGRATIONS, flaky] })).rejects.toThrow("boom");
    const store = await openStore(dir, { migrations: [...MIGRATIONS, flaky] });
    await store.close();
    expect(attempts).toBe(2);
  });

  it("lets queued appends finish on close and refuses new ones", async () => {
    const store = await openStore(dir);
    await store.events.createLog("c1");
    const pending = Array.from({ length: 50 }, (_, i) =>
      store.events.append("c1", [{ id: `e${i}`, kind: "MessageEvent", source: "user", timestampMs: 1, body: new Uint8Array(1) }]),
    );
    const closed = store.close();
    const late = store.events.append("c1", [{ id: "late", kind: "MessageEvent", source: "user", timestampMs: 1, body: new Uint8Array(1) }]);
    await expect(late).rejects.toMatchObject({ code: "unavailable" });
    expect((await Promise.all(pending)).map((a) => a[0]!.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await closed;
    const again = await openStore(dir);
    expect((await again.events.head("c1")).lastSeq).toBe(50);
    await again.close();
  });
});
