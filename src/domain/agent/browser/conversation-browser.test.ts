import { describe, expect, it } from "vitest";
import { clip, safeFileName } from "./conversation-browser.js";

describe("safeFileName", () => {
  it("keeps one harmless path component of a download's suggested name", () => {
    expect(safeFileName("report.pdf")).toBe("report.pdf");
    expect(safeFileName("../../etc/passwd")).toBe("passwd");
    expect(safeFileName("..\\..\\win.ini")).toBe("win.ini");
    expect(safeFileName('a<b>:c"d|e?f*g\u0001.txt')).toBe("a_b__c_d_e_f_g_.txt");
    for (const bad of ["", ".", "..", "/", "  "]) expect(safeFileName(bad)).toBe("download");
    const long = safeFileName(`${"x".repeat(300)}.zip`);
    expect(long).toHaveLength(150);
    expect(long.endsWith(".zip")).toBe(true);
  });
});

describe("clip", () => {
  it("cuts long strings and marks the cut", () => {
    expect(clip("abc", 5)).toBe("abc");
    expect(clip("abcdef", 3)).toBe("abc…");
  });
});
