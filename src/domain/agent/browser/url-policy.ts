import { realpath } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AgentdError } from "../../../errors.js";

/** Longest URL accepted from the LLM (browsers accept ~2 MB, but nothing sane needs more). */
export const MAX_URL_LENGTH = 8192;

function isInside(child: string, root: string): boolean {
  const rel = path.relative(root, child);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/**
 * Decides whether the agent may navigate to `raw` and returns the URL to load.
 *
 * Allowed: http(s) URLs with a host, `about:blank`, and `file://` URLs whose real path (symlinks
 * resolved) lies inside one of `fileRoots`. Everything else (data:, javascript:, chrome:, blob:,
 * view-source:, ftp:, other about: pages) is refused, because those either run arbitrary code
 * outside a web origin or expose the browser's internals.
 *
 * @throws AgentdError "invalid_argument" for an empty, over-long, scheme-less or malformed URL;
 *   "permission_denied" for a refused scheme or a file outside the roots; "not_found" for a
 *   file:// path that does not exist.
 */
export async function checkNavigationUrl(raw: string, fileRoots: readonly string[]): Promise<string> {
  const text = raw.trim();
  if (text === "") throw new AgentdError("invalid_argument", "url is empty; give a full URL such as https://example.com");
  if (text.length > MAX_URL_LENGTH) {
    throw new AgentdError("invalid_argument", `url is ${text.length} characters long; the limit is ${MAX_URL_LENGTH}`);
  }
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(text) || /^[^/:]+:\d+(\/|$)/.test(text)) {
    // "example.com", "localhost:3000/x": say what to do rather than guessing http vs https.
    throw new AgentdError("invalid_argument", `url '${clip(text)}' has no scheme; use a full URL such as https://${clip(text)}`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AgentdError("invalid_argument", `invalid URL '${clip(text)}'`);
  }
  switch (url.protocol) {
    case "http:":
    case "https:":
      if (url.hostname === "") throw new AgentdError("invalid_argument", `invalid URL '${clip(text)}': no host`);
      return url.href;
    case "about:":
      if (url.href === "about:blank") return url.href;
      throw new AgentdError("permission_denied", `'${clip(text)}' is not allowed; the only about: page allowed is about:blank`);
    case "file:":
      return checkFileUrl(url, text, fileRoots);
    default:
      throw new AgentdError(
        "permission_denied",
        `URL scheme '${url.protocol}' is not allowed ('${clip(text)}'); use http://, https:// or about:blank`,
      );
  }
}

async function checkFileUrl(url: URL, text: string, fileRoots: readonly string[]): Promise<string> {
  if (url.host !== "" && url.host !== "localhost") {
    throw new AgentdError("permission_denied", `file URL '${clip(text)}' names a remote host; only local files are allowed`);
  }
  let file: string;
  try {
    file = fileURLToPath(url);
  } catch {
    throw new AgentdError("invalid_argument", `invalid file URL '${clip(text)}'`);
  }
  const outside = () =>
    new AgentdError(
      "permission_denied",
      `'${clip(text)}' is outside the workspace; file:// URLs are allowed only under ${fileRoots.join(", ") || "(no workspace roots)"}`,
    );
  // Refuse on the lexical path first, so a path outside the roots is reported as such even when
  // it does not exist (no probing of the host's file system through the error text).
  const lexical = path.resolve(file);
  if (!fileRoots.some((r) => isInside(lexical, path.resolve(r)))) throw outside();
  let real: string;
  try {
    real = await realpath(lexical);
  } catch {
    throw new AgentdError("not_found", `file '${lexical}' does not exist`);
  }
  for (const root of fileRoots) {
    const realRoot = await realpath(root).catch(() => undefined);
    if (realRoot !== undefined && isInside(real, realRoot)) {
      return url.href;
    }
  }
  // The lexical path was inside a root but a symlink leads out of it.
  throw outside();
}

/**
 * Whether a page may stay on the URL it ended up on by itself (after a click, a redirect, a popup).
 * Pages cannot reach chrome:, view-source: or top-level data: URLs on their own, but a file://
 * page can link to any other local file, so only file:// needs re-checking against the roots.
 */
export async function isAllowedLandingUrl(current: string, fileRoots: readonly string[]): Promise<boolean> {
  if (!current.startsWith("file:")) return true;
  try {
    await checkFileUrl(new URL(current), current, fileRoots);
    return true;
  } catch {
    return false;
  }
}

function clip(s: string, max = 200): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
