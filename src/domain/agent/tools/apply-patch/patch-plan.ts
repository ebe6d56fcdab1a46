// Computing the result of a parsed patch entirely in memory, so that the tool can write all files
// or none. Hunks apply in order within a file; each hunk's old text (context and removed lines)
// must be found after the previous hunk. Matching is exact first, then ignoring trailing
// whitespace (each such hunk adds 1 to `fuzz`). Unified-diff line numbers are only hints: the
// nearest match to the hinted line wins. Context lines keep the file's own text.

import type { Hunk, PatchOperation } from "./patch-parser.js";

/** A failure to apply (missing file, hunk not found); the message is meant for the LLM. */
export class PatchApplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PatchApplyError";
  }
}

export interface FileChange {
  type: "add" | "delete" | "update";
  old_content?: string;
  new_content?: string;
  move_path?: string;
}

export interface PatchPlan {
  /** Final content per absolute path (null = deleted) for every path the patch touches. */
  after: Map<string, string | null>;
  /** Content before the patch per absolute path (null = did not exist). */
  before: Map<string, string | null>;
  /** Sum of the fuzz of all hunks (0 = every hunk matched exactly). */
  fuzz: number;
  /** OpenHands `commit.changes`, keyed by the path as written in the patch. */
  changes: Record<string, FileChange>;
  /** One line per file: "A path", "M path", "M path -> new", "D path". */
  summary: string[];
}

function sameTrimmedEnd(a: string, b: string): boolean {
  return a.trimEnd() === b.trimEnd();
}

/** Candidate start positions for a sequence of `len` lines, best first. */
function candidates(total: number, len: number, from: number, hint: number | null, atEof: boolean): number[] {
  const max = total - len;
  const out: number[] = [];
  if (atEof) {
    for (const p of [max, max - 1]) if (p >= from && p <= max) out.push(p);
  }
  if (hint !== null && hint >= from) {
    for (let d = 0; hint - d >= from || hint + d <= max; d++) {
      if (hint + d <= max) out.push(hint + d);
      if (d > 0 && hint - d >= from && hint - d <= max) out.push(hint - d);
    }
  } else {
    for (let p = from; p <= max; p++) out.push(p);
  }
  return out;
}

function findSequence(
  lines: string[],
  seq: string[],
  from: number,
  hint: number | null,
  atEof: boolean,
): { index: number; fuzz: number } | null {
  const positions = candidates(lines.length, seq.length, from, hint, atEof);
  const passes: [(a: string, b: string) => boolean, number][] = [
    [(a, b) => a === b, 0],
    [sameTrimmedEnd, 1],
  ];
  for (const [eq, fuzz] of passes) {
    for (const p of positions) {
      let ok = true;
      for (let k = 0; k < seq.length; k++) {
        if (!eq(lines[p + k] as string, seq[k] as string)) {
          ok = false;
          break;
        }
      }
      if (ok) return { index: p, fuzz };
    }
  }
  return null;
}

function describe(lines: string[]): string {
  const shown = lines.slice(0, 20).map((l) => `  ${l}`);
  if (lines.length > 20) shown.push(`  ... (${lines.length - 20} more lines)`);
  return shown.join("\n");
}

/** `content` with `hunks` applied. Throws PatchApplyError naming the hunk that does not match. */
export function applyHunks(content: string, hunks: Hunk[], path: string): { content: string; fuzz: number } {
  const lines = content.split("\n");
  let from = 0;
  let fuzz = 0;
  let noNewline: boolean | null = null;
  hunks.forEach((hunk, n) => {
    if (hunk.anchor !== null) {
      let at = lines.findIndex((l, i) => i >= from && l === hunk.anchor);
      if (at === -1) {
        at = lines.findIndex((l, i) => i >= from && l.trim() === (hunk.anchor as string).trim());
        if (at !== -1) fuzz++;
      }
      if (at !== -1) from = at + 1;
    }
    const old = hunk.lines.filter((l) => l.op !== "+").map((l) => l.text);
    let index: number;
    if (old.length === 0) {
      const endIndex = lines[lines.length - 1] === "" ? lines.length - 1 : lines.length;
      index = hunk.atEof ? endIndex : Math.min(Math.max(hunk.oldStart ?? from, from), endIndex);
    } else {
      const found = findSequence(lines, old, from, hunk.oldStart, hunk.atEof);
      if (found === null) {
        const where = hunk.anchor !== null ? ` after the line '${hunk.anchor}'` : "";
        throw new PatchApplyError(
          `hunk ${n + 1} of ${path} does not apply: these lines were not found${where}` +
            `${n > 0 ? " (after the previous hunk)" : ""}:\n${describe(old)}`,
        );
      }
      index = found.index;
      fuzz += found.fuzz;
    }
    const replacement: string[] = [];
    let j = 0;
    for (const l of hunk.lines) {
      if (l.op === " ") replacement.push(lines[index + j++] as string);
      else if (l.op === "-") j++;
      else replacement.push(l.text);
    }
    lines.splice(index, old.length, ...replacement);
    from = index + replacement.length;
    if (hunk.newNoNewline) noNewline = true;
    else if (hunk.oldNoNewline) noNewline = false;
  });
  let out = lines.join("\n");
  if (noNewline === true && out.endsWith("\n")) out = out.slice(0, -1);
  if (noNewline === false && out !== "" && !out.endsWith("\n")) out += "\n";
  return { content: out, fuzz };
}

/**
 * Plans `ops`: reads each file once through `read` (null = does not exist) and computes every
 * final content without touching the disk. `resolve` maps a patch path to an absolute path and
 * throws for paths that are not allowed. Throws PatchApplyError for the first failing operation.
 */
export async function planPatch(
  ops: PatchOperation[],
  resolve: (patchPath: string) => string,
  read: (absPath: string) => Promise<string | null>,
): Promise<PatchPlan> {
  const before = new Map<string, string | null>();
  const after = new Map<string, string | null>();
  const current = async (abs: string): Promise<string | null> => {
    if (!after.has(abs)) {
      const content = await read(abs);
      before.set(abs, content);
      after.set(abs, content);
    }
    return after.get(abs) as string | null;
  };
  const changes: Record<string, FileChange> = {};
  const summary: string[] = [];
  let fuzz = 0;

  for (const op of ops) {
    const abs = resolve(op.path);
    const existing = await current(abs);
    if (op.type === "add") {
      if (existing !== null) {
        throw new PatchApplyError(`cannot add ${op.path}: the file already exists (use '*** Update File: ${op.path}' to change it)`);
      }
      after.set(abs, op.content);
      changes[op.path] = { type: "add", new_content: op.content };
      summary.push(`A ${op.path}`);
    } else if (op.type === "delete") {
      if (existing === null) throw new PatchApplyError(`cannot delete ${op.path}: the file does not exist`);
      after.set(abs, null);
      changes[op.path] = { type: "delete", old_content: existing };
      summary.push(`D ${op.path}`);
    } else {
      if (existing === null) throw new PatchApplyError(`cannot update ${op.path}: the file does not exist`);
      const result = applyHunks(existing, op.hunks, op.path);
      fuzz += result.fuzz;
      const change: FileChange = { type: "update", old_content: existing, new_content: result.content };
      const target = op.movePath === null ? abs : resolve(op.movePath);
      if (target !== abs) {
        if ((await current(target)) !== null) {
          throw new PatchApplyError(`cannot move ${op.path} to ${op.movePath}: the destination already exists`);
        }
        after.set(abs, null);
        after.set(target, result.content);
        change.move_path = op.movePath as string;
        summary.push(`M ${op.path} -> ${op.movePath}`);
      } else {
        after.set(abs, result.content);
        summary.push(`M ${op.path}`);
      }
      changes[op.path] = change;
    }
  }
  return { before, after, fuzz, changes, summary };
}
