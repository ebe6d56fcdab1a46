import { describe, expect, it } from "vitest";
import { checkSecretNames, decodeSecretBundle, encodeSecretBundle, SecretCipher } from "./secrets.js";

describe("secret bundle", () => {
  it("round-trips through the wire encoding", () => {
    const b = {
      llmApiKey: "sk-1",
      condenserApiKey: "sk-2",
      secrets: { A: { kind: "static" as const, value: "va" }, B: { kind: "lookup" as const, url: "https://x/y", headers: { Authorization: "Bearer t", X: "1" } } },
    };
    expect(decodeSecretBundle(encodeSecretBundle(b))).toEqual(b);
    expect(decodeSecretBundle(encodeSecretBundle({ secrets: {} }))).toEqual({ secrets: {} });
  });
});

describe("SecretCipher", () => {
  it("seals with AES-256-GCM bound to the conversation id", async () => {
    const c = await SecretCipher.fromSecretKey("k1");
    const plain = new TextEncoder().encode("hello secret");
    const sealed = c.seal(plain, "conv-a");
    expect(Buffer.from(sealed).includes(Buffer.from("hello secret"))).toBe(false);
    expect(sealed[0]).toBe(1);
    expect(new TextDecoder().decode(c.open(sealed, "conv-a"))).toBe("hello secret");
    // Two seals of the same text differ (random nonce).
    expect(Buffer.from(c.seal(plain, "conv-a")).equals(Buffer.from(sealed))).toBe(false);
    expect(() => c.open(sealed, "conv-b")).toThrow(/do not open/);
    const other = await SecretCipher.fromSecretKey("k2");
    expect(() => other.open(sealed, "conv-a")).toThrow(/do not open/);
    const tampered = Uint8Array.from(sealed);
    tampered[20] = tampered[20]! ^ 1;
    expect(() => c.open(tampered, "conv-a")).toThrow(/do not open/);
    expect(() => c.open(new Uint8Array([1, 2]), "conv-a")).toThrow(/malformed/);
  });
});

describe("checkSecretNames", () => {
  it("accepts identifiers and names the first bad one", () => {
    expect(() => checkSecretNames(["GITHUB_TOKEN", "_x1"])).not.toThrow();
    expect(() => checkSecretNames(["OK", "1BAD"])).toThrow(/"1BAD"/);
    expect(() => checkSecretNames(["has-dash"])).toThrow(/invalid secret name/);
  });
});
