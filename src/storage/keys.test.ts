import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { AgentdError } from "../errors.js";
import { SUBLEVELS, bashKeys, bashLogKeys, checkId, conversationKeys, encodeInt, eventLogKeys, isValidId } from "./keys.js";

describe("keys", () => {
  it("documents exactly the sublevels the code opens, in the header table", async () => {
    const source = await readFile(fileURLToPath(new URL("./keys.ts", import.meta.url)), "utf8");
    const header = source.slice(0, source.indexOf("*/"));
    const documented = [...header.matchAll(/^ \* \| `([a-z-]+)`/gm)].map((m) => m[1]);
    expect(documented).toEqual([...SUBLEVELS]);
    // Every family's sublevels are among them.
    for (const k of [eventLogKeys, bashLogKeys]) {
      for (const s of [k.headSublevel, k.recordSublevel, k.idSublevel, k.tsSublevel, ...k.indexSublevels]) expect(SUBLEVELS).toContain(s);
    }
  });

  it("encodes integers so that key order is numeric order", () => {
    const numbers = [0, 1, 9, 10, 99, 100, 12345, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER];
    const keys = numbers.map((n) => eventLogKeys.record("c", n));
    expect([...keys].sort()).toEqual(keys);
    expect(encodeInt("seq", 42)).toBe("0000000000000042");
    for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1]) expect(() => encodeInt("seq", bad)).toThrow(AgentdError);
  });

  it("accepts ids that cannot contain or sort before the separator", () => {
    for (const ok of ["a", "0d9f2c3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f", "ActionEvent", "x.y_z:1-2", "a".repeat(128)]) expect(isValidId(ok)).toBe(true);
    for (const bad of ["", "a!b", 'a"b', "a b", "-lead", ".lead", "é", "a/b", "a".repeat(129), "a\n"]) {
      expect(isValidId(bad)).toBe(false);
      expect(() => checkId("event id", bad)).toThrow(/^invalid event id/);
    }
  });

  it("keeps the keys of one id out of the range of another, even when one prefixes the other", () => {
    const ids = ["c", "c-1", "c.1", "c_1", "c:1", "cA", "c0", "cz"];
    for (const a of ids) {
      const all = eventLogKeys.all(a);
      for (const b of ids) {
        const keys = [eventLogKeys.record(b, 5), eventLogKeys.id(b, "e1"), eventLogKeys.index(b, ["ActionEvent", "agent"], 5), eventLogKeys.ts(b, 7, 5)];
        for (const key of keys) expect(key >= all.gte && key <= all.lte, `${key} in range of ${a}`).toBe(a === b);
      }
      const range = eventLogKeys.indexRange("c", [a, "agent"], 1, 100);
      for (const b of ids) {
        const key = eventLogKeys.index("c", [b, "agent"], 50);
        expect(key >= range.gte && key <= range.lte).toBe(a === b);
      }
      const out = bashKeys.allOutput(a);
      for (const b of ids) {
        const key = bashKeys.output(b, 3);
        expect(key >= out.gte && key <= out.lte).toBe(a === b);
      }
    }
  });

  it("round-trips the created-time index key and orders it by time", () => {
    const key = conversationKeys.created(1_700_000_000_123, "abc");
    expect(conversationKeys.parseCreated(key)).toEqual({ createdAtMs: 1_700_000_000_123, conversationId: "abc" });
    expect(conversationKeys.created(99, "z") < conversationKeys.created(100, "a")).toBe(true);
    expect(bashLogKeys.all("ignored").lte > bashLogKeys.record("x", Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(bashLogKeys.all("ignored").lte > bashLogKeys.index("x", ["z".repeat(128)], 1)).toBe(true);
  });
});
