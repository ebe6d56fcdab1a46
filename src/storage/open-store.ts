/**
 * Opens the data directory: one classic-level (LevelDB) database, one sublevel per keyspace of
 * keys.ts, schema migrations, and recovery of maintenance interrupted by a crash.
 *
 * Durability: every write that acknowledges a client request is a LevelDB batch written with
 * `sync: true` (fsync of the write-ahead log before the promise resolves), so acknowledged writes
 * survive kill -9 and power loss. Appends are group-committed, so one fsync covers every append
 * waiting at that moment. Purge batches (deleting keys that are already invisible) are not synced;
 * if lost, they are redone at the next open.
 *
 * LevelDB locks the directory: a second agentd on the same directory (or a second open in this
 * process) fails with StoreLockedError.
 */

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { ClassicLevel } from "classic-level";
import { AgentdError } from "../errors.js";
import { BashStore } from "./bash-store.js";
import { ConversationStore } from "./conversation-store.js";
import type { RootDb, StorageContext, Sublevel } from "./db.js";
import { EventStore } from "./event-store.js";
import { SUBLEVELS } from "./keys.js";
import type { SublevelName } from "./keys.js";
import { MIGRATIONS, migrate } from "./migrations.js";
import type { Migration } from "./migrations.js";

/** Another process (or another open in this one) holds the data directory's lock. */
export class StoreLockedError extends AgentdError {
  constructor(
    readonly dataDir: string,
    options?: { cause?: unknown },
  ) {
    super("unavailable", `another agentd process is using the data directory ${dataDir}`, { data_dir: dataDir }, "DATA_DIR_LOCKED", options);
  }
}

export interface OpenStoreOptions {
  /** fsync acknowledged writes (default true). Only tests and benchmarks turn it off. */
  readonly sync?: boolean;
  /** The migrations to apply (default: this build's). Tests inject their own. */
  readonly migrations?: readonly Migration[];
}

/** The opened storage layer. */
export interface Store {
  /** Absolute path of the data directory. */
  readonly dataDir: string;
  readonly events: EventStore;
  readonly conversations: ConversationStore;
  readonly bash: BashStore;
  /** Waits for queued writes, then closes the database. New writes fail with unavailable. */
  close(): Promise<void>;
}

/**
 * Opens (creating if needed) the data directory.
 * @throws StoreLockedError when another process uses it; AgentdError failed_precondition when
 *   its schema is newer than this build; AgentdError data_loss when LevelDB reports corruption.
 */
export async function openStore(dataDir: string, options: OpenStoreOptions = {}): Promise<Store> {
  const dir = path.resolve(dataDir);
  await mkdir(dir, { recursive: true });
  const db: RootDb = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: "utf8", valueEncoding: "view" });
  try {
    await db.open({ createIfMissing: true });
  } catch (err) {
    if (hasCode(err, "LEVEL_LOCKED")) throw new StoreLockedError(dir, { cause: err });
    if (hasCode(err, "LEVEL_CORRUPTION")) {
      throw new AgentdError("data_loss", `the data directory ${dir} is corrupt`, { data_dir: dir }, "STORAGE_CORRUPT", { cause: err });
    }
    throw err;
  }
  const sub = Object.fromEntries(
    SUBLEVELS.map((name) => [name, db.sublevel<string, Uint8Array>(name, { keyEncoding: "utf8", valueEncoding: "view" })]),
  ) as Record<SublevelName, Sublevel>;
  const prefix = Object.fromEntries(SUBLEVELS.map((name) => [name, sub[name].prefix])) as Record<SublevelName, string>;
  const ctx: StorageContext = { db, sub, prefix, sync: options.sync ?? true, closing: false };
  try {
    await migrate(ctx, dir, options.migrations ?? MIGRATIONS);
    const events = new EventStore(ctx);
    const conversations = new ConversationStore(ctx, events);
    const bash = new BashStore(ctx);
    await events.resumeDeletions();
    await bash.resumeClear();
    let closed: Promise<void> | undefined;
    return {
      dataDir: dir,
      events,
      conversations,
      bash,
      close: () =>
        (closed ??= (async () => {
          ctx.closing = true;
          await Promise.all([events.drain(), bash.drain()]);
          await db.close();
        })()),
    };
  } catch (err) {
    await db.close();
    throw err;
  }
}

/** True when `err` or one of its causes carries the LevelDB error code `code`. */
function hasCode(err: unknown, code: string): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if ((e as { code?: unknown }).code === code) return true;
  }
  return false;
}
