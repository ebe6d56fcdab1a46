import { describe, expect, it } from "vitest";
import { AgentdError } from "../errors.js";
import { decodePageToken, encodePageToken } from "./page-token.js";

describe("page tokens", () => {
  it("round-trip a cursor as an opaque URL-safe token", () => {
    for (const cursor of [
      { nextSeq: 1, filterHash: 0n },
      { nextSeq: 123_456, filterHash: 2n ** 64n - 1n },
      { nextSeq: Number.MAX_SAFE_INTEGER, filterHash: 0xdeadbeefn },
    ]) {
      const token = encodePageToken(cursor);
      expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodePageToken(token)).toEqual(cursor);
    }
  });

  it("refuses anything that is not such a token", () => {
    const good = encodePageToken({ nextSeq: 42, filterHash: 7n });
    for (const bad of ["", "a b", "====", good + "A", good.slice(0, -1), encodePageToken({ nextSeq: 0, filterHash: 7n }), "x".repeat(65)]) {
      expect(() => decodePageToken(bad), bad).toThrow(AgentdError);
    }
  });
});
