import { describe, expect, it } from "vitest";

import { ArgReader, splitCallMetadata, withInjectedParams } from "./args.js";
import { SecretMasker } from "./secret-masker.js";
import { cleanTerminalOutput, truncateMiddle } from "./text.js";

describe("SecretMasker", () => {
  it("masks every occurrence, longest value first, and exports valid names only", () => {
    const masker = new SecretMasker({ API_KEY: "abc123", LONG: "abc123-extended", "bad-name": "zzz999" });
    expect(masker.mask("k=abc123 l=abc123-extended z=zzz999 abc123")).toBe(
      "k=<secret-hidden> l=<secret-hidden> z=<secret-hidden> <secret-hidden>",
    );
    expect(masker.env()).toEqual({ API_KEY: "abc123", LONG: "abc123-extended" });
    expect(masker.names()).toEqual(["API_KEY", "LONG", "bad-name"]);
  });

  it("updates, bumps its version and notifies listeners; empty values are ignored", () => {
    const masker = new SecretMasker({ A: "one-value" });
    let calls = 0;
    const off = masker.onChange(() => calls++);
    const v = masker.version;
    masker.update({ B: "two-value", EMPTY: "" });
    expect(masker.version).toBe(v + 1);
    expect(calls).toBe(1);
    expect(masker.mask("one-value two-value")).toBe("one-value <secret-hidden>");
    expect(masker.env()).toEqual({ B: "two-value" });
    off();
    masker.update({});
    expect(calls).toBe(1);
  });
});

describe("argument helpers", () => {
  it("injects security_risk/summary idempotently without mutating the input", () => {
    const schema = { type: "object" as const, properties: { a: { type: "string" } }, required: ["a"] };
    const once = withInjectedParams(schema, false);
    expect(Object.keys(once.properties)).toEqual(["a", "security_risk", "summary"]);
    expect(withInjectedParams(once, false)).toEqual(once);
    expect(Object.keys(schema.properties)).toEqual(["a"]);
    expect(Object.keys(withInjectedParams(schema, true).properties)).toEqual(["a", "summary"]);
  });

  it("splits metadata and repairs common risk spellings", () => {
    expect(splitCallMetadata({ x: 1, security_risk: "medium", summary: " do it " })).toEqual({
      args: { x: 1 },
      meta: { securityRisk: "MEDIUM", summary: "do it" },
    });
    expect(splitCallMetadata({ security_risk: "moderate" }).meta.securityRisk).toBe("MEDIUM");
    expect(splitCallMetadata({ security_risk: 3 }).meta.securityRisk).toBe("UNKNOWN");
  });

  it("coerces obvious type slips and names the bad parameter otherwise", () => {
    const r = new ArgReader("t", { b: "true", n: "2.5", i: "[1, -1]", s: 7 });
    expect(r.boolean("b", false)).toBe(true);
    expect(r.number("n")).toBe(2.5);
    expect(r.integerArray("i")).toEqual([1, -1]);
    expect(r.string("s")).toBe("7");
    expect(() => new ArgReader("t", { b: "yes" }).boolean("b", false)).toThrow("t: parameter `b` must be a boolean");
    expect(() => new ArgReader("t", [1])).toThrow("t: arguments must be a JSON object");
  });
});

describe("text helpers", () => {
  it("truncates the middle and says how much was cut", () => {
    const out = truncateMiddle("a".repeat(50) + "b".repeat(50), 20);
    expect(out.startsWith("a".repeat(10))).toBe(true);
    expect(out.endsWith("b".repeat(10))).toBe(true);
    expect(out).toContain("80 characters of output omitted");
    expect(truncateMiddle("short", 20)).toBe("short");
  });

  it("cleans terminal output", () => {
    expect(cleanTerminalOutput("a\r\nb\x1b[1;32mc\x1b[0m\r\n50%\r100%\r\n\x07done")).toBe("a\nbc\n100%\ndone");
  });
});
