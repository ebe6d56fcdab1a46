import { describe, expect, it } from "vitest";
import { AgentdError } from "../../errors.js";
import { mapFsError } from "./fs-errors.js";

function sysErr(code: string): Error {
  return Object.assign(new Error(`${code}: something, open '/x'`), { code });
}

describe("mapFsError", () => {
  const table: [string, string][] = [
    ["ENOENT", "not_found"],
    ["ENOTDIR", "failed_precondition"],
    ["EISDIR", "failed_precondition"],
    ["ENOTEMPTY", "failed_precondition"],
    ["ELOOP", "failed_precondition"],
    ["EXDEV", "failed_precondition"],
    ["ENXIO", "failed_precondition"],
    ["EACCES", "permission_denied"],
    ["EPERM", "permission_denied"],
    ["EROFS", "permission_denied"],
    ["ENOSPC", "resource_exhausted"],
    ["EDQUOT", "resource_exhausted"],
    ["EMFILE", "resource_exhausted"],
    ["EEXIST", "already_exists"],
    ["ENAMETOOLONG", "invalid_argument"],
  ];
  for (const [errno, code] of table) {
    it(`${errno} → ${code}`, () => {
      const mapped = mapFsError(sysErr(errno), "/ws/a.txt");
      expect(mapped).toBeInstanceOf(AgentdError);
      expect((mapped as AgentdError).code).toBe(code);
      expect((mapped as AgentdError).message).toContain("/ws/a.txt");
      expect((mapped as AgentdError).metadata.path).toBe("/ws/a.txt");
    });
  }

  it("words not_found the way clients expect", () => {
    expect((mapFsError(sysErr("ENOENT"), "/ws/a.txt") as AgentdError).message).toBe("file not found: /ws/a.txt");
  });

  it("passes domain errors through and leaves unknown errors for the internal-error path", () => {
    const domain = new AgentdError("aborted", "x");
    expect(mapFsError(domain, "/p")).toBe(domain);
    const weird = sysErr("EWEIRD");
    expect(mapFsError(weird, "/p")).toBe(weird);
    const plain = new TypeError("bug");
    expect(mapFsError(plain, "/p")).toBe(plain);
  });
});
