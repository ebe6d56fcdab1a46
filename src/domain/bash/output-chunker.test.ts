import { describe, expect, it } from "vitest";
import { OutputChunker, utf8Boundary } from "./output-chunker.js";

describe("OutputChunker", () => {
  it("emits full chunks per stream and keeps the rest for the end", () => {
    const c = new OutputChunker(16, false);
    expect(c.add("stdout", Buffer.from("0123456789"))).toEqual([]);
    expect(c.add("stderr", Buffer.from("e".repeat(20)))).toEqual([{ stream: "stderr", text: "e".repeat(16) }]);
    expect(c.add("stdout", Buffer.from("abcdefghij"))).toEqual([{ stream: "stdout", text: "0123456789abcdef" }]);
    expect(c.finish()).toEqual({ stdout: "ghij", stderr: "eeee" });
  });

  it("reports null for streams without output", () => {
    const c = new OutputChunker(16, false);
    c.add("stdout", Buffer.from("x"));
    expect(c.finish()).toEqual({ stdout: "x", stderr: null });
  });

  it("never splits a UTF-8 sequence", () => {
    const c = new OutputChunker(16, false);
    const text = "€".repeat(12); // 36 bytes, 3 per character
    const pieces = c.add("stdout", Buffer.from(text));
    const rest = c.finish().stdout ?? "";
    expect(pieces.map((p) => p.text).join("") + rest).toBe(text);
    for (const p of pieces) {
      expect(Buffer.byteLength(p.text)).toBeLessThanOrEqual(16);
      expect(p.text).not.toContain("\uFFFD");
    }
  });

  it("turns CRLF into LF in PTY mode, also across chunks, and keeps lone CR", () => {
    const c = new OutputChunker(1024, true);
    c.add("stdout", Buffer.from("a\r\nb\r"));
    c.add("stdout", Buffer.from("\nprogress\rdone\r"));
    expect(c.finish().stdout).toBe("a\nb\nprogress\rdone\r");
  });

  it("utf8Boundary backs up to the start of a sequence", () => {
    const b = Buffer.from("a€b"); // 61 e2 82 ac 62
    expect(utf8Boundary(b, 2)).toBe(1);
    expect(utf8Boundary(b, 4)).toBe(4);
    expect(utf8Boundary(b, 9)).toBe(5);
  });
});
