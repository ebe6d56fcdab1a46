import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConversationItem } from "./conversation-store.js";
import { openStore } from "./open-store.js";
import type { Store } from "./open-store.js";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);

describe("ConversationStore", () => {
  let dir: string;
  let store: Store;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "agentd-conv-"));
    store = await openStore(dir);
  });

  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates a record together with its event log, and refuses a second create", async () => {
    await store.conversations.create("c1", 1000, bytes("v1"));
    expect(text((await store.conversations.get("c1"))?.record)).toBe("v1");
    expect(await store.events.exists("c1")).toBe(true);
    expect((await store.events.head("c1")).createdAtMs).toBe(1000);
    await expect(store.conversations.create("c1", 2000, bytes("v2"))).rejects.toMatchObject({ code: "already_exists" });
    expect(text((await store.conversations.get("c1"))?.record)).toBe("v1");
    expect(await store.conversations.get("missing")).toBeNull();
    expect(await store.conversations.get("bad id!")).toBeNull();
  });

  it("updates a record in place and keeps its creation time", async () => {
    await store.conversations.create("c1", 1000, bytes("v1"));
    await store.conversations.update("c1", bytes("v2"));
    expect(await store.conversations.get("c1")).toMatchObject({ id: "c1", createdAtMs: 1000 });
    expect(text((await store.conversations.get("c1"))?.record)).toBe("v2");
    await expect(store.conversations.update("nope", bytes("x"))).rejects.toMatchObject({ code: "not_found" });
    expect(await store.conversations.get("nope")).toBeNull();
  });

  it("lists in creation order, both ways, page by page with a cursor", async () => {
    const ids = Array.from({ length: 25 }, (_, i) => `conv-${String(i).padStart(2, "0")}`);
    // Insert out of order, with ties on the creation time (ties sort by id).
    for (const [i, id] of [...ids.entries()].reverse()) await store.conversations.create(id, 1000 + Math.floor(i / 2), bytes(id));
    const walk = async (order: "asc" | "desc"): Promise<string[]> => {
      const seen: string[] = [];
      let after: ConversationItem | undefined;
      for (;;) {
        const page = await store.conversations.list({ order, limit: 7, after: after && { createdAtMs: after.createdAtMs, id: after.id } });
        seen.push(...page.items.map((c) => c.id));
        if (page.next === undefined) return seen;
        expect(page.items).toHaveLength(7);
        after = page.items[page.items.length - 1];
      }
    };
    expect(await walk("asc")).toEqual(ids);
    expect(await walk("desc")).toEqual([...ids].reverse());
    expect(await store.conversations.count()).toBe(25);
    const many = await store.conversations.getMany(["conv-03", "nope", "conv-01"]);
    expect(many.map((c) => c?.id ?? null)).toEqual(["conv-03", null, "conv-01"]);
    await expect(store.conversations.list({ limit: 0 })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(store.conversations.list({ limit: 1001 })).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("deletes the record, its index entry and its whole event log", async () => {
    await store.conversations.create("c1", 1000, bytes("v1"));
    await store.conversations.create("c2", 1001, bytes("v2"));
    await store.events.append("c1", [{ id: "e1", kind: "MessageEvent", source: "user", timestampMs: 5, body: bytes("hi") }]);
    await store.conversations.delete("c1");
    expect(await store.conversations.get("c1")).toBeNull();
    expect(await store.events.exists("c1")).toBe(false);
    expect((await store.conversations.list()).items.map((c) => c.id)).toEqual(["c2"]);
    await expect(store.conversations.delete("c1")).rejects.toMatchObject({ code: "not_found" });
    // An update racing a delete never resurrects the record.
    await Promise.allSettled([store.conversations.delete("c2"), store.conversations.update("c2", bytes("late"))]);
    expect(await store.conversations.get("c2")).toBeNull();
    expect(await store.conversations.count()).toBe(0);
  });
});
