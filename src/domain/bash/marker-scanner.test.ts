import { describe, expect, it } from "vitest";
import { MAX_MARKER_BODY, MarkerScanner, type ScanPart } from "./marker-scanner.js";

const known = (fields: readonly string[]): boolean => fields[0] === "n0nce";
const marker = (body: string): string => `\x1b]7771;${body}\x07`;

/** Feeds `chunks` and returns the output text and the markers seen, in order. */
function scan(chunks: string[], scanner = new MarkerScanner(known)): string[] {
  const out: string[] = [];
  const push = (parts: ScanPart[]): void => {
    for (const p of parts) out.push("data" in p ? p.data.toString("latin1") : `<${p.marker.join(",")}>`);
  };
  for (const c of chunks) push(scanner.push(Buffer.from(c, "latin1")));
  const held = scanner.flush();
  if (held !== null) out.push(held.toString("latin1"));
  return out;
}

describe("MarkerScanner", () => {
  it("separates output from a known marker", () => {
    expect(scan([`hello\n${marker("n0nce;exit;3")}after`])).toEqual(["hello\n", "<n0nce,exit,3>", "after"]);
  });

  it("finds a marker split at every possible position", () => {
    const text = `abc${marker("n0nce;pid;42")}xyz`;
    for (let i = 1; i < text.length; i++) {
      const parts = scan([text.slice(0, i), text.slice(i)]);
      expect(parts.filter((p) => p.startsWith("<"))).toEqual(["<n0nce,pid,42>"]);
      expect(parts.filter((p) => !p.startsWith("<")).join("")).toBe("abcxyz");
    }
  });

  it("passes markers with an unknown nonce through as output", () => {
    const text = `a${marker("other;exit;0")}b`;
    expect(scan([text]).join("")).toBe(text);
  });

  it("treats an over-long body as output and still finds a later marker", () => {
    const long = `\x1b]7771;n0nce;${"x".repeat(MAX_MARKER_BODY + 10)}\x07`;
    const parts = scan([long, marker("n0nce;exit;0")]);
    expect(parts.join("").startsWith(long)).toBe(true);
    expect(parts.at(-1)).toBe("<n0nce,exit,0>");
  });

  it("holds back only a possible marker start and releases it when it is not one", () => {
    const scanner = new MarkerScanner(known);
    const first = scanner.push(Buffer.from("text\x1b]77", "latin1"));
    expect(first.map((p) => ("data" in p ? p.data.toString("latin1") : "?"))).toEqual(["text"]);
    const second = scanner.push(Buffer.from("99 more", "latin1"));
    expect(second.map((p) => ("data" in p ? p.data.toString("latin1") : "?")).join("")).toBe("\x1b]7799 more");
  });

  it("handles back-to-back markers and a prefix inside output", () => {
    const parts = scan([`\x1b]7771${marker("n0nce;exit;1")}${marker("n0nce;exit;2")}`]);
    expect(parts).toEqual(["\x1b]7771", "<n0nce,exit,1>", "<n0nce,exit,2>"]);
  });
});
