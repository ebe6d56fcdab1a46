import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SETTINGS } from "../src/config.js";

const readme = readFileSync("README.md", "utf8");

describe("README stays truthful", () => {
  it("documents every setting the server reads", () => {
    for (const s of SETTINGS) {
      for (const name of [s.flag, ...(s.env ?? [])].filter((n): n is string => n !== undefined)) {
        expect(readme, `README lacks ${name}`).toContain(`\`${name}\``);
      }
    }
  });

  it("shows the two set-up commands", () => {
    expect(readme).toContain("npm ci && npm start");
    expect(readme).toContain("npm test");
  });
});
