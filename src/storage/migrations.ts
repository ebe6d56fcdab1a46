/**
 * Forward-only schema migrations of the data directory.
 *
 * The schema version lives in `meta/schema_version` (a `SchemaVersion`). At open, every migration
 * whose number is above the stored version runs, in order; each one ends with a durable batch
 * that holds its last writes and the new version, so a migration is either recorded as applied or
 * runs again at the next open (migrations that write in several batches must therefore be
 * idempotent). There are no down-migrations: a directory whose version is newer than this build
 * knows is refused rather than guessed at.
 *
 * To change the layout: add a migration with the next number, update keys.ts in the same change,
 * and add a test that opens a directory written at the previous version.
 */

import { create } from "@bufbuild/protobuf";
import { AgentdError } from "../errors.js";
import { SchemaVersionSchema } from "../../gen/agentd/storage/v1/storage_pb.js";
import { WriteBatch, decodeValue, encodeValue } from "./db.js";
import type { StorageContext } from "./db.js";
import { SCHEMA_VERSION_KEY } from "./keys.js";

export interface Migration {
  /** 1, 2, 3, … without gaps. */
  readonly version: number;
  readonly description: string;
  /**
   * Performs the migration. Writes added to `batch` are committed atomically with the new schema
   * version; anything written directly before that must be safe to write twice.
   */
  up(ctx: StorageContext, batch: WriteBatch): Promise<void>;
}

/** The migrations of this build, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "initial layout (the keyspaces documented in keys.ts)",
    up: async () => {},
  },
];

/** The stored schema version (0 for a directory never migrated). */
export async function readSchemaVersion(ctx: StorageContext): Promise<number> {
  const bytes = await ctx.sub.meta.get(SCHEMA_VERSION_KEY);
  return bytes === undefined ? 0 : decodeValue(SchemaVersionSchema, bytes, "schema version").version;
}

/**
 * Brings the directory up to the newest migration.
 * @returns the version before and after.
 * @throws AgentdError failed_precondition when the directory's version is newer than `migrations`
 *   know (written by a newer agentd).
 */
export async function migrate(
  ctx: StorageContext,
  dataDir: string,
  migrations: readonly Migration[] = MIGRATIONS,
  now: () => number = Date.now,
): Promise<{ from: number; to: number }> {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
  const latest = migrations.length;
  const from = await readSchemaVersion(ctx);
  if (from > latest) {
    throw new AgentdError(
      "failed_precondition",
      `data directory ${dataDir} has schema version ${from}, newer than this agentd supports (${latest})`,
      { data_dir: dataDir, schema_version: String(from) },
      "SCHEMA_TOO_NEW",
    );
  }
  for (const m of migrations.slice(from)) {
    const batch = new WriteBatch(ctx);
    await m.up(ctx, batch);
    batch.put(
      "meta",
      SCHEMA_VERSION_KEY,
      encodeValue(SchemaVersionSchema, create(SchemaVersionSchema, { version: m.version, appliedAtMs: BigInt(now()) })),
    );
    await batch.write(true);
  }
  return { from, to: Math.max(from, latest) };
}
