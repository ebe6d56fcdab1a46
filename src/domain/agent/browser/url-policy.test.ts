import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentdError } from "../../../errors.js";
import { checkNavigationUrl, isAllowedLandingUrl } from "./url-policy.js";

let root: string;
let outside: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "agentd-url-root-"));
  outside = await mkdtemp(path.join(os.tmpdir(), "agentd-url-out-"));
  await mkdir(path.join(root, "docs"));
  await writeFile(path.join(root, "docs", "a.html"), "<p>a</p>");
  await writeFile(path.join(outside, "secret.txt"), "s");
  await symlink(path.join(outside, "secret.txt"), path.join(root, "escape.txt"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function refused(url: string, roots: string[] = [root]): Promise<AgentdError> {
  try {
    await checkNavigationUrl(url, roots);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentdError);
    return err as AgentdError;
  }
  throw new Error(`expected ${url} to be refused`);
}

describe("checkNavigationUrl", () => {
  it("accepts http(s) and about:blank, normalising the URL", async () => {
    expect(await checkNavigationUrl("  https://example.com ", [])).toBe("https://example.com/");
    expect(await checkNavigationUrl("http://127.0.0.1:8080/a?b=1#c", [])).toBe("http://127.0.0.1:8080/a?b=1#c");
    expect(await checkNavigationUrl("about:blank", [])).toBe("about:blank");
  });

  it("rejects empty, scheme-less and malformed URLs as invalid_argument", async () => {
    for (const url of ["", "   ", "example.com", "localhost:3000/x", "http://", "https://exa mple.com"]) {
      const err = await refused(url);
      expect(err.code, url).toBe("invalid_argument");
    }
    expect((await refused("example.com")).message).toContain("https://example.com");
    expect((await refused("x".repeat(9000))).message).toContain("limit is 8192");
  });

  it("refuses data:, javascript:, chrome: and other schemes as permission_denied", async () => {
    for (const url of ["data:text/html,<b>x</b>", "javascript:alert(1)", "chrome://settings", "view-source:https://a.b", "ftp://a.b/c", "about:config", "blob:https://a.b/1"]) {
      const err = await refused(url);
      expect(err.code, url).toBe("permission_denied");
    }
    expect((await refused("javascript:alert(1)")).message).toContain("'javascript:'");
  });

  it("allows file:// only inside the roots, resolving symlinks", async () => {
    const inside = pathToFileURL(path.join(root, "docs", "a.html")).href;
    expect(await checkNavigationUrl(inside, [root])).toBe(inside);

    const passwd = await refused("file:///etc/passwd");
    expect(passwd.code).toBe("permission_denied");
    expect(passwd.message).toContain("outside the workspace");

    // Lexically inside, but the symlink leads out.
    expect((await refused(pathToFileURL(path.join(root, "escape.txt")).href)).code).toBe("permission_denied");
    // `..` cannot climb out.
    expect((await refused(`file://${root}/../${path.basename(outside)}/secret.txt`)).code).toBe("permission_denied");
    // Inside but missing.
    expect((await refused(pathToFileURL(path.join(root, "nope.html")).href)).code).toBe("not_found");
    // A remote host in a file URL.
    expect((await refused("file://example.com/etc/passwd")).code).toBe("permission_denied");
    // No roots at all: nothing is allowed.
    expect((await refused(inside, [])).code).toBe("permission_denied");
  });
});

describe("isAllowedLandingUrl", () => {
  it("re-checks only file:// URLs", async () => {
    expect(await isAllowedLandingUrl("https://a.b/", [])).toBe(true);
    expect(await isAllowedLandingUrl("chrome-error://chromewebdata/", [])).toBe(true);
    expect(await isAllowedLandingUrl(pathToFileURL(path.join(root, "docs", "a.html")).href, [root])).toBe(true);
    expect(await isAllowedLandingUrl("file:///etc/passwd", [root])).toBe(false);
  });
});
