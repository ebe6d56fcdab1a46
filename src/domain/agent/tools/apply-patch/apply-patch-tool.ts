// The `apply_patch` tool (OpenHands ApplyPatchAction/ApplyPatchObservation). Accepts the
// OpenHands/Codex "*** Begin Patch" format and plain unified diffs (patch-parser.ts), computes the
// result in memory (patch-plan.ts), then writes atomically: every new content goes to a temp file
// next to its target first, then all temps are renamed over their targets, then deletions run.
// Any failure before the renames leaves every file untouched; a failure during them restores the
// files already replaced from the in-memory originals. Paths are relative to the working
// directory; absolute paths and paths escaping it (via `..` or a symlink) are refused.

import { randomBytes } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";

import { AgentdError } from "../agentd-error.js";
import { ArgReader, withInjectedParams } from "../args.js";
import { textContent } from "../text.js";
import type { Content, JsonSchemaObject, Tool, ToolExecutionContext } from "../types.js";
import { PatchParseError, parsePatch } from "./patch-parser.js";
import { PatchApplyError, planPatch, type FileChange, type PatchPlan } from "./patch-plan.js";

export const APPLY_PATCH_TOOL_NAME = "apply_patch";

export interface ApplyPatchAction {
  kind: "ApplyPatchAction";
  patch: string;
}

export interface ApplyPatchObservation {
  kind: "ApplyPatchObservation";
  content: Content[];
  is_error: boolean;
  /** Human-readable result (or the error). */
  message: string;
  /** Hunks matched only after ignoring trailing whitespace (0 = all exact). */
  fuzz: number;
  /** The applied changes keyed by patch path; absent when nothing was applied. */
  commit?: { changes: Record<string, FileChange> };
}

const DESCRIPTION = `Edit files by applying a patch (paths relative to the working directory). Format:
*** Begin Patch
*** Add File: path/new.py
+every line of the new file, prefixed with +
*** Update File: path/existing.py
*** Move to: path/renamed.py      (optional)
@@ def some_function():           (optional line that precedes the change, to locate it)
 unchanged context line
-removed line
+added line
*** Delete File: path/obsolete.py
*** End Patch
Give about 3 lines of unchanged context before and after each change, copied exactly. Unified diffs (--- a/x, +++ b/x, @@ -1,3 +1,4 @@) are accepted too. The patch applies completely or not at all.`;

const PARAMETERS: JsonSchemaObject = withInjectedParams(
  {
    type: "object",
    properties: {
      patch: { type: "string", description: "The patch text, from '*** Begin Patch' to '*** End Patch' (or a unified diff)." },
    },
    required: ["patch"],
  },
  false,
);

class WriteError extends Error {}

function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== "" && !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel);
}

/** The deepest existing ancestor of `p` (p itself when it exists), resolved through symlinks. */
function realAncestor(p: string): string {
  let current = p;
  while (!existsSync(current)) {
    const parent = dirname(current);
    if (parent === current) return current;
    current = parent;
  }
  return realpathSync(current);
}

export class ApplyPatchTool implements Tool<ApplyPatchAction, ApplyPatchObservation> {
  readonly name = APPLY_PATCH_TOOL_NAME;
  readonly description = DESCRIPTION;
  readonly parameters = PARAMETERS;
  readonly readOnly = false;
  #queue: Promise<unknown> = Promise.resolve();

  isUsable(): boolean {
    return true;
  }

  parseAction(args: unknown): ApplyPatchAction {
    const r = new ArgReader(this.name, args);
    const patch = r.requiredString("patch");
    if (patch.trim() === "") throw r.fail("parameter `patch` must not be empty");
    return { kind: "ApplyPatchAction", patch };
  }

  execute(action: ApplyPatchAction, ctx: ToolExecutionContext): Promise<ApplyPatchObservation> {
    if (ctx.signal.aborted) return Promise.reject(new AgentdError("canceled", "the apply_patch call was cancelled"));
    // Serialised: two patches of one step must not interleave their reads and writes.
    const run = this.#queue.then(() => this.#execute(action, ctx));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #execute(action: ApplyPatchAction, ctx: ToolExecutionContext): Promise<ApplyPatchObservation> {
    const fail = (message: string): ApplyPatchObservation => ({
      kind: "ApplyPatchObservation",
      content: [textContent(ctx.secrets.mask(message))],
      is_error: true,
      message: ctx.secrets.mask(message),
      fuzz: 0,
    });

    const root = resolve(ctx.workingDir);
    let realRoot: string;
    try {
      realRoot = realpathSync(root);
    } catch {
      return fail(`Invalid patch: the working directory ${root} does not exist`);
    }
    const resolvePatchPath = (p: string): string => {
      const abs = resolve(root, p);
      if (isAbsolute(p) || p.startsWith("~") || !isInside(root, abs)) {
        throw new PatchApplyError(`Absolute or escaping paths are not allowed: ${p} (paths are relative to ${root})`);
      }
      const real = realAncestor(abs);
      if (real !== realRoot && !isInside(realRoot, real)) {
        throw new PatchApplyError(`Absolute or escaping paths are not allowed: ${p} leads outside ${root} through a symlink`);
      }
      return abs;
    };
    const read = async (abs: string): Promise<string | null> => {
      try {
        return await readFile(abs, "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // ENOTDIR: a parent is a file; the file does not exist (creating it fails when writing).
        if (code === "ENOENT" || code === "ENOTDIR") return null;
        if (code === "EISDIR") throw new PatchApplyError(`${relative(root, abs)} is a directory, not a file`);
        throw new PatchApplyError(`cannot read ${relative(root, abs)}: ${(err as Error).message}`);
      }
    };

    let plan: PatchPlan;
    try {
      plan = await planPatch(parsePatch(action.patch), resolvePatchPath, read);
    } catch (err) {
      if (err instanceof PatchParseError) return fail(`Invalid patch: ${err.message}`);
      if (err instanceof PatchApplyError) return fail(`Patch not applied (no file was changed): ${err.message}`);
      throw err;
    }

    try {
      await writePlan(plan);
    } catch (err) {
      if (err instanceof WriteError) return fail(`Patch not applied (no file was changed): ${err.message}`);
      throw err;
    }

    const message = `Success. Updated the following files:\n${plan.summary.join("\n")}`;
    const changes: Record<string, FileChange> = {};
    for (const [path, change] of Object.entries(plan.changes)) {
      changes[path] = {
        ...change,
        ...(change.old_content !== undefined ? { old_content: ctx.secrets.mask(change.old_content) } : {}),
        ...(change.new_content !== undefined ? { new_content: ctx.secrets.mask(change.new_content) } : {}),
      };
    }
    const text = plan.fuzz > 0 ? `${message}\n(${plan.fuzz} hunk(s) matched only after ignoring trailing whitespace.)` : message;
    return {
      kind: "ApplyPatchObservation",
      content: [textContent(text)],
      is_error: false,
      message,
      fuzz: plan.fuzz,
      commit: { changes },
    };
  }
}

/**
 * Writes a plan all-or-nothing (see the header). Throws WriteError after restoring the previous
 * state when any step fails.
 */
async function writePlan(plan: PatchPlan): Promise<void> {
  const writes: { target: string; temp: string; before: string | null }[] = [];
  const deletes: { target: string; before: string }[] = [];
  for (const [target, content] of plan.after) {
    const before = plan.before.get(target) ?? null;
    if (content === before) continue;
    if (content === null) deletes.push({ target, before: before as string });
    else writes.push({ target, temp: `${target}.agentd-patch-${randomBytes(4).toString("hex")}.tmp`, before });
  }

  const createdDirs: string[] = [];
  const tempsWritten: string[] = [];
  const cleanup = async (): Promise<void> => {
    for (const temp of tempsWritten) await rm(temp, { force: true }).catch(() => undefined);
    for (const dir of createdDirs.reverse()) await rmdir(dir).catch(() => undefined);
  };

  // 1. Temp files (and missing parent directories). Nothing visible has changed yet.
  try {
    for (const w of writes) {
      const dir = dirname(w.target);
      if (!existsSync(dir)) {
        const first = await mkdir(dir, { recursive: true });
        if (first !== undefined) {
          // Record every level created so a rollback removes exactly those.
          for (let d = dir; d.length >= first.length; d = dirname(d)) createdDirs.unshift(d);
        }
      }
      await writeFile(w.temp, plan.after.get(w.target) as string, "utf8");
      tempsWritten.push(w.temp);
      if (w.before !== null) {
        const mode = (await stat(w.target)).mode & 0o7777;
        await chmod(w.temp, mode);
      }
    }
  } catch (err) {
    await cleanup();
    throw new WriteError(`writing failed: ${(err as Error).message}`);
  }

  // 2. Renames, 3. deletions. On failure, put back what was already changed.
  const renamed: { target: string; before: string | null }[] = [];
  const deleted: { target: string; before: string }[] = [];
  try {
    for (const w of writes) {
      await rename(w.temp, w.target);
      tempsWritten.splice(tempsWritten.indexOf(w.temp), 1);
      renamed.push(w);
    }
    for (const d of deletes) {
      await unlink(d.target);
      deleted.push(d);
    }
  } catch (err) {
    for (const r of renamed) {
      if (r.before === null) await rm(r.target, { force: true }).catch(() => undefined);
      else await writeFile(r.target, r.before, "utf8").catch(() => undefined);
    }
    for (const d of deleted) await writeFile(d.target, d.before, "utf8").catch(() => undefined);
    await cleanup();
    throw new WriteError(`writing failed and was rolled back: ${(err as Error).message}`);
  }
}
