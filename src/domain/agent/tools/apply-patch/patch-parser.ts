// Parsing the two patch formats the `apply_patch` tool accepts into one list of file operations:
//
// 1. The OpenHands/Codex format:
//      *** Begin Patch
//      *** Add File: path          (followed by "+line" lines)
//      *** Delete File: path
//      *** Update File: path
//      *** Move to: new/path       (optional, right after Update File)
//      @@ optional anchor line     (starts a hunk; lines " ctx", "-old", "+new")
//      *** End of File             (optional: the hunk must match at the end of the file)
//      *** End Patch
// 2. Plain unified diffs (`diff -u`, `git diff`): "--- a/x", "+++ b/x", "@@ -l,n +l,n @@" hunks,
//    /dev/null for added and deleted files, git's "rename from/to" headers.
//
// Parsing is pure; errors are PatchParseError with the 1-based line number of the patch text.

export interface HunkLine {
  /** " " context, "-" removed, "+" added. */
  op: " " | "-" | "+";
  text: string;
}

export interface Hunk {
  /** Codex `@@ <line>`: a line of the file that precedes the hunk (narrows where it applies). */
  anchor: string | null;
  lines: HunkLine[];
  /** The hunk must apply at the end of the file (`*** End of File`). */
  atEof: boolean;
  /** Unified diffs: 0-based line index where the old text starts (a hint; the text decides). */
  oldStart: number | null;
  /** Unified diffs: "\ No newline at end of file" after the old / the new side's last line. */
  oldNoNewline: boolean;
  newNoNewline: boolean;
}

export type PatchOperation =
  | { type: "add"; path: string; content: string }
  | { type: "delete"; path: string }
  | { type: "update"; path: string; movePath: string | null; hunks: Hunk[] };

export class PatchParseError extends Error {
  constructor(
    message: string,
    readonly line: number | null = null,
  ) {
    super(line === null ? message : `line ${line}: ${message}`);
    this.name = "PatchParseError";
  }
}

const BEGIN = "*** Begin Patch";
const END = "*** End Patch";
const ADD = "*** Add File: ";
const DELETE = "*** Delete File: ";
const UPDATE = "*** Update File: ";
const MOVE = "*** Move to: ";
const EOF_MARK = "*** End of File";

/**
 * Strips what LLMs commonly wrap a patch in: surrounding blank lines, a markdown code fence, and
 * an `apply_patch <<'EOF'` ... `EOF` shell here-document.
 */
function unwrap(text: string): string[] {
  let lines = text.replace(/\r\n/g, "\n").split("\n");
  const trimEnds = (): void => {
    while (lines.length > 0 && (lines[0] as string).trim() === "") lines.shift();
    while (lines.length > 0 && (lines[lines.length - 1] as string).trim() === "") lines.pop();
  };
  trimEnds();
  if (lines.length >= 2 && /^```/.test(lines[0] as string) && (lines[lines.length - 1] as string).trim() === "```") {
    lines = lines.slice(1, -1);
    trimEnds();
  }
  const heredoc = /^\s*(?:apply_patch|applypatch)\s*<<-?\s*['"]?(\w+)['"]?\s*$/.exec(lines[0] ?? "");
  if (heredoc !== null && (lines[lines.length - 1] as string).trim() === heredoc[1]) {
    lines = lines.slice(1, -1);
    trimEnds();
  }
  return lines;
}

/** Parses a patch in either format. Throws PatchParseError naming the offending line. */
export function parsePatch(text: string): PatchOperation[] {
  const lines = unwrap(text);
  if (lines.length === 0) throw new PatchParseError("the patch is empty");
  if ((lines[0] as string).trim() === BEGIN) return parseCodex(lines);
  if (lines.some((l) => l.startsWith("--- ")) && lines.some((l) => l.startsWith("+++ "))) return parseUnified(lines);
  throw new PatchParseError(
    `the patch must start with '${BEGIN}' (or be a unified diff with '--- a/file' and '+++ b/file' headers); it starts with ${JSON.stringify((lines[0] as string).slice(0, 80))}`,
    1,
  );
}

function checkPath(path: string, lineNo: number, header: string): string {
  const p = path.trim();
  if (p === "") throw new PatchParseError(`'${header}' needs a file path`, lineNo);
  return p;
}

function parseCodex(lines: string[]): PatchOperation[] {
  const ops: PatchOperation[] = [];
  const last = lines.length - 1;
  if ((lines[last] as string).trim() !== END) {
    throw new PatchParseError(`the patch must end with '${END}'`, lines.length);
  }
  const seen = new Set<string>();
  const claim = (path: string, lineNo: number): void => {
    if (seen.has(path)) throw new PatchParseError(`the file ${path} appears twice in the patch`, lineNo);
    seen.add(path);
  };
  const isHeader = (l: string): boolean =>
    l.startsWith(ADD) || l.startsWith(DELETE) || l.startsWith(UPDATE) || l.trim() === END;

  let i = 1;
  while (i < last) {
    const line = lines[i] as string;
    const lineNo = i + 1;
    if (line.startsWith(ADD)) {
      const path = checkPath(line.slice(ADD.length), lineNo, "*** Add File:");
      claim(path, lineNo);
      const body: string[] = [];
      i++;
      while (i < last && !isHeader(lines[i] as string)) {
        const l = lines[i] as string;
        if (!l.startsWith("+")) {
          throw new PatchParseError(`every line of an added file must start with '+'; got ${JSON.stringify(l.slice(0, 80))}`, i + 1);
        }
        body.push(l.slice(1));
        i++;
      }
      ops.push({ type: "add", path, content: body.length === 0 ? "" : `${body.join("\n")}\n` });
      continue;
    }
    if (line.startsWith(DELETE)) {
      const path = checkPath(line.slice(DELETE.length), lineNo, "*** Delete File:");
      claim(path, lineNo);
      ops.push({ type: "delete", path });
      i++;
      continue;
    }
    if (line.startsWith(UPDATE)) {
      const path = checkPath(line.slice(UPDATE.length), lineNo, "*** Update File:");
      claim(path, lineNo);
      i++;
      let movePath: string | null = null;
      if (i < last && (lines[i] as string).startsWith(MOVE)) {
        movePath = checkPath((lines[i] as string).slice(MOVE.length), i + 1, "*** Move to:");
        i++;
      }
      const hunks: Hunk[] = [];
      let current: Hunk | null = null;
      const startHunk = (anchor: string | null): Hunk => {
        const h: Hunk = { anchor, lines: [], atEof: false, oldStart: null, oldNoNewline: false, newNoNewline: false };
        hunks.push(h);
        return h;
      };
      while (i < last && !isHeader(lines[i] as string)) {
        const l = lines[i] as string;
        if (l === "@@" || l.startsWith("@@ ")) {
          const anchor = l.slice(2).trim();
          // A unified-diff header pasted into a Codex patch: use its line number as a hint only.
          const unified = HUNK_HEADER.exec(l);
          current = startHunk(anchor === "" || unified !== null ? null : l.slice(3));
          if (unified !== null) current.oldStart = Math.max(0, Number(unified[1]) - 1);
        } else if (l.trim() === EOF_MARK) {
          if (current === null) throw new PatchParseError(`'${EOF_MARK}' must follow a hunk`, i + 1);
          current.atEof = true;
          current = null;
        } else if (l.startsWith("***")) {
          throw new PatchParseError(
            `unexpected line ${JSON.stringify(l.slice(0, 80))}; expected hunk lines (' ', '-', '+', '@@') or a file header ('${ADD}<path>', '${UPDATE}<path>', '${DELETE}<path>')`,
            i + 1,
          );
        } else {
          const op = l === "" ? " " : l[0];
          if (op !== " " && op !== "-" && op !== "+") {
            throw new PatchParseError(
              `hunk lines must start with ' ' (context), '-' (remove) or '+' (add); got ${JSON.stringify(l.slice(0, 80))}`,
              i + 1,
            );
          }
          current ??= startHunk(null);
          current.lines.push({ op, text: l.slice(1) });
        }
        i++;
      }
      const empty = hunks.filter((h) => !h.lines.some((hl) => hl.op !== " "));
      if (empty.length > 0 && empty.length === hunks.length && movePath === null) {
        throw new PatchParseError(`'${UPDATE}${path}' has no changes (no '-' or '+' lines)`, lineNo);
      }
      if (hunks.length === 0 && movePath === null) {
        throw new PatchParseError(`'${UPDATE}${path}' has no hunks`, lineNo);
      }
      ops.push({ type: "update", path, movePath, hunks: hunks.filter((h) => h.lines.length > 0) });
      continue;
    }
    throw new PatchParseError(
      `unexpected line ${JSON.stringify(line.slice(0, 80))}; expected a file header ('${ADD}<path>', '${UPDATE}<path>', '${DELETE}<path>') or '${END}'`,
      lineNo,
    );
  }
  if (ops.length === 0) throw new PatchParseError("the patch contains no file operations");
  return ops;
}

/** `a/x` → `x` for git-style prefixes; null for /dev/null. Timestamps after a tab are dropped. */
function unifiedPath(raw: string): string | null {
  let p = raw.split("\t")[0]?.trim() ?? "";
  if (p.startsWith('"') && p.endsWith('"')) p = p.slice(1, -1);
  if (p === "/dev/null") return null;
  if (/^[ab]\//.test(p)) p = p.slice(2);
  return p;
}

const HUNK_HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

function parseUnified(lines: string[]): PatchOperation[] {
  const ops: PatchOperation[] = [];
  let i = 0;
  let renameFrom: string | null = null;
  let renameTo: string | null = null;
  let gitHeader = false;

  const flushRename = (): void => {
    // A git rename without content changes has no ---/+++ headers.
    if (gitHeader && renameFrom !== null && renameTo !== null) {
      ops.push({ type: "update", path: renameFrom, movePath: renameTo, hunks: [] });
    }
    renameFrom = null;
    renameTo = null;
    gitHeader = false;
  };

  while (i < lines.length) {
    const line = lines[i] as string;
    if (line.startsWith("diff --git ")) {
      flushRename();
      gitHeader = true;
      i++;
      continue;
    }
    if (line.startsWith("rename from ")) {
      renameFrom = line.slice("rename from ".length).trim();
      i++;
      continue;
    }
    if (line.startsWith("rename to ")) {
      renameTo = line.slice("rename to ".length).trim();
      i++;
      continue;
    }
    if (!line.startsWith("--- ")) {
      i++; // "diff", "index", "new file mode", "similarity index", prose: not needed
      continue;
    }
    const minus = line;
    const plus = lines[i + 1];
    if (plus === undefined || !plus.startsWith("+++ ")) {
      throw new PatchParseError(`'${minus.slice(0, 80)}' must be followed by a '+++ ' line`, i + 1);
    }
    const oldPath = unifiedPath(minus.slice(4));
    const newPath = unifiedPath(plus.slice(4));
    const headerLine = i + 1;
    i += 2;
    const hunks: Hunk[] = [];
    while (i < lines.length && (lines[i] as string).startsWith("@@")) {
      const m = HUNK_HEADER.exec(lines[i] as string);
      if (m === null) throw new PatchParseError(`malformed hunk header ${JSON.stringify((lines[i] as string).slice(0, 80))}`, i + 1);
      let oldLeft = m[2] === undefined ? 1 : Number(m[2]);
      let newLeft = m[4] === undefined ? 1 : Number(m[4]);
      const hunk: Hunk = {
        anchor: null,
        lines: [],
        atEof: false,
        oldStart: Math.max(0, Number(m[1]) - (oldLeft === 0 ? 0 : 1)),
        oldNoNewline: false,
        newNoNewline: false,
      };
      i++;
      let lastOp: HunkLine["op"] | null = null;
      while (i < lines.length && (oldLeft > 0 || newLeft > 0 || (lines[i] as string).startsWith("\\"))) {
        const l = lines[i] as string;
        if (l.startsWith("\\")) {
          // "\ No newline at end of file" applies to the side(s) of the previous line.
          if (lastOp === "-" || lastOp === " ") hunk.oldNoNewline = true;
          if (lastOp === "+" || lastOp === " ") hunk.newNoNewline = true;
          i++;
          continue;
        }
        const op = l === "" ? " " : l[0];
        if (op !== " " && op !== "-" && op !== "+") {
          throw new PatchParseError(`hunk line must start with ' ', '-' or '+'; got ${JSON.stringify(l.slice(0, 80))}`, i + 1);
        }
        if (op !== "+") oldLeft--;
        if (op !== "-") newLeft--;
        if (oldLeft < 0 || newLeft < 0) throw new PatchParseError("hunk has more lines than its header counts", i + 1);
        hunk.lines.push({ op, text: l.slice(1) });
        lastOp = op;
        i++;
      }
      if (oldLeft > 0 || newLeft > 0) throw new PatchParseError("hunk ends before the line counts of its header", i);
      hunks.push(hunk);
    }
    if (oldPath === null && newPath === null) throw new PatchParseError("both sides are /dev/null", headerLine);
    if (oldPath === null) {
      const added = hunks.flatMap((h) => h.lines.filter((l) => l.op === "+").map((l) => l.text));
      const noNewline = hunks.some((h) => h.newNoNewline);
      ops.push({ type: "add", path: newPath as string, content: added.length === 0 ? "" : added.join("\n") + (noNewline ? "" : "\n") });
    } else if (newPath === null) {
      ops.push({ type: "delete", path: oldPath });
    } else {
      if (hunks.length === 0 && oldPath === newPath) throw new PatchParseError(`no hunks for ${oldPath}`, headerLine);
      ops.push({ type: "update", path: oldPath, movePath: newPath === oldPath ? null : newPath, hunks });
    }
    renameFrom = null;
    renameTo = null;
    gitHeader = false;
  }
  flushRename();
  if (ops.length === 0) throw new PatchParseError("the unified diff contains no file changes");
  return ops;
}
