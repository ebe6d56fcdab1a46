import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { SecretMasker } from "../secret-masker.js";
import { observationText } from "../text.js";
import type { ToolExecutionContext } from "../types.js";
import { ApplyPatchTool, type ApplyPatchObservation } from "./apply-patch-tool.js";
import { PatchParseError, parsePatch } from "./patch-parser.js";

describe("apply_patch tool", () => {
  let dir: string;
  let tool: ApplyPatchTool;
  let ctx: ToolExecutionContext;

  const apply = (patch: string): Promise<ApplyPatchObservation> => tool.execute(tool.parseAction({ patch }), ctx);
  const read = (rel: string): Promise<string> => readFile(join(dir, rel), "utf8");

  /** Every file under dir with its content, to prove a failed patch changed nothing. */
  const snapshot = async (): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) {
        const full = join(entry.parentPath, entry.name);
        out[full.slice(dir.length + 1)] = await readFile(full, "utf8");
      }
    }
    return out;
  };

  beforeEach(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), "agentd-patch-")));
    tool = new ApplyPatchTool();
    ctx = { conversationId: "c", workingDir: dir, signal: new AbortController().signal, secrets: new SecretMasker() };
    await writeFile(join(dir, "app.py"), "import os\n\ndef main():\n    print('hello')\n    return 0\n");
    await writeFile(join(dir, "old.txt"), "obsolete\n");
    await mkdir(join(dir, "lib"));
    await writeFile(join(dir, "lib", "util.py"), "def add(a, b):\n    return a + b\n");
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("adds, updates, moves and deletes files in one patch", async () => {
    const obs = await apply(`*** Begin Patch
*** Add File: docs/readme.md
+# Title
+text
*** Update File: app.py
@@ def main():
-    print('hello')
+    print('goodbye')
     return 0
*** Update File: lib/util.py
*** Move to: lib/math_util.py
@@
 def add(a, b):
-    return a + b
+    return b + a
*** Delete File: old.txt
*** End Patch`);
    expect(obs.is_error).toBe(false);
    expect(obs.fuzz).toBe(0);
    expect(obs.message).toBe("Success. Updated the following files:\nA docs/readme.md\nM app.py\nM lib/util.py -> lib/math_util.py\nD old.txt");
    expect(await read("docs/readme.md")).toBe("# Title\ntext\n");
    expect(await read("app.py")).toBe("import os\n\ndef main():\n    print('goodbye')\n    return 0\n");
    expect(await read("lib/math_util.py")).toBe("def add(a, b):\n    return b + a\n");
    expect(existsSync(join(dir, "lib/util.py"))).toBe(false);
    expect(existsSync(join(dir, "old.txt"))).toBe(false);
    expect(obs.commit?.changes).toEqual({
      "docs/readme.md": { type: "add", new_content: "# Title\ntext\n" },
      "app.py": {
        type: "update",
        old_content: "import os\n\ndef main():\n    print('hello')\n    return 0\n",
        new_content: "import os\n\ndef main():\n    print('goodbye')\n    return 0\n",
      },
      "lib/util.py": {
        type: "update",
        old_content: "def add(a, b):\n    return a + b\n",
        new_content: "def add(a, b):\n    return b + a\n",
        move_path: "lib/math_util.py",
      },
      "old.txt": { type: "delete", old_content: "obsolete\n" },
    });
  });

  it("applies several hunks to one file in order", async () => {
    await writeFile(join(dir, "multi.txt"), Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join("\n") + "\n");
    const obs = await apply(`*** Begin Patch
*** Update File: multi.txt
@@
 line 2
-line 3
+line three
 line 4
@@
 line 19
-line 20
+line twenty
+line twenty-and-a-half
 line 21
@@
 line 29
-line 30
+line thirty
*** End of File
*** End Patch`);
    expect(obs.is_error).toBe(false);
    const text = await read("multi.txt");
    expect(text).toContain("line 2\nline three\nline 4\n");
    expect(text).toContain("line 19\nline twenty\nline twenty-and-a-half\nline 21\n");
    expect(text.endsWith("line 29\nline thirty\n")).toBe(true);
  });

  it("tolerates trailing-whitespace differences and reports the fuzz", async () => {
    await writeFile(join(dir, "ws.py"), "a = 1   \nb = 2\t\nc = 3\n");
    const obs = await apply(`*** Begin Patch
*** Update File: ws.py
 a = 1
-b = 2
+b = 20
 c = 3
*** End Patch`);
    expect(obs.is_error).toBe(false);
    expect(obs.fuzz).toBe(1);
    expect(await read("ws.py")).toBe("a = 1   \nb = 20\nc = 3\n"); // context keeps the file's own text
    expect(observationText(obs)).toContain("ignoring trailing whitespace");
  });

  it("changes nothing at all when a later hunk does not apply", async () => {
    const before = await snapshot();
    const obs = await apply(`*** Begin Patch
*** Add File: created.txt
+new
*** Update File: app.py
@@
-import os
+import sys
@@
-this line is not in the file
+x
*** Delete File: old.txt
*** End Patch`);
    expect(obs.is_error).toBe(true);
    expect(obs.commit).toBeUndefined();
    expect(obs.message).toContain("Patch not applied (no file was changed)");
    expect(obs.message).toContain("hunk 2 of app.py does not apply");
    expect(obs.message).toContain("this line is not in the file");
    expect(await snapshot()).toEqual(before);
  });

  it("rolls back created temp files and directories when a write fails", async () => {
    const before = await snapshot();
    // `old.txt` is a file, so creating old.txt/inner/x.txt fails after app.py's temp was written.
    const obs = await apply(`*** Begin Patch
*** Update File: app.py
-import os
+import sys
*** Add File: old.txt/inner/x.txt
+x
*** End Patch`);
    expect(obs.is_error).toBe(true);
    expect(obs.message).toContain("writing failed");
    expect(await snapshot()).toEqual(before);
    expect((await readdir(dir)).sort()).toEqual(["app.py", "lib", "old.txt"]);
  });

  it("refuses absolute paths and paths escaping the working directory", async () => {
    const before = await snapshot();
    for (const path of ["/etc/passwd", "../outside.txt", "lib/../../outside.txt"]) {
      const obs = await apply(`*** Begin Patch\n*** Add File: ${path}\n+x\n*** End Patch`);
      expect(obs.is_error).toBe(true);
      expect(obs.message).toContain(`Absolute or escaping paths are not allowed: ${path}`);
    }
    expect(existsSync(join(dir, "..", "outside.txt"))).toBe(false);
    expect(await snapshot()).toEqual(before);
    // `..` that stays inside is fine.
    expect((await apply("*** Begin Patch\n*** Add File: lib/../inside.txt\n+x\n*** End Patch")).is_error).toBe(false);
    expect(await read("inside.txt")).toBe("x\n");
  });

  it("refuses paths that leave the working directory through a symlink", async () => {
    const outside = await realpath(await mkdtemp(join(tmpdir(), "agentd-outside-")));
    try {
      await symlink(outside, join(dir, "link"));
      const obs = await apply("*** Begin Patch\n*** Add File: link/evil.txt\n+x\n*** End Patch");
      expect(obs.is_error).toBe(true);
      expect(obs.message).toContain("through a symlink");
      expect(existsSync(join(outside, "evil.txt"))).toBe(false);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it("reports a malformed header as a structured error", async () => {
    const obs = await apply("*** Begin Patch\n*** Frobnicate File: app.py\n+x\n*** End Patch");
    expect(obs).toMatchObject({ kind: "ApplyPatchObservation", is_error: true, fuzz: 0 });
    expect(obs.message).toMatch(/^Invalid patch: line 2: unexpected line "\*\*\* Frobnicate File: app\.py"/);
    expect(observationText(obs)).toBe(obs.message);

    const noEnd = await apply("*** Begin Patch\n*** Add File: a.txt\n+x");
    expect(noEnd.message).toContain("must end with '*** End Patch'");
    const exists = await apply("*** Begin Patch\n*** Add File: app.py\n+x\n*** End Patch");
    expect(exists.message).toContain("cannot add app.py: the file already exists");
    const missing = await apply("*** Begin Patch\n*** Update File: nope.py\n-a\n+b\n*** End Patch");
    expect(missing.message).toContain("cannot update nope.py: the file does not exist");
  });

  it("applies a unified diff (update, add, delete), using line numbers as hints", async () => {
    await writeFile(join(dir, "dup.txt"), "x\nsame\nx\nsame\nx\n");
    const obs = await apply(`diff --git a/app.py b/app.py
--- a/app.py
+++ b/app.py
@@ -3,3 +3,3 @@
 def main():
-    print('hello')
+    print('unified')
     return 0
--- a/dup.txt
+++ b/dup.txt
@@ -3,3 +3,3 @@
 x
-same
+changed
 x
--- /dev/null
+++ b/new/file.txt
@@ -0,0 +1,2 @@
+one
+two
\\ No newline at end of file
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-obsolete
`);
    expect(obs.is_error).toBe(false);
    expect(await read("app.py")).toContain("print('unified')");
    expect(await read("dup.txt")).toBe("x\nsame\nx\nchanged\nx\n"); // the second "same", near line 4
    expect(await read("new/file.txt")).toBe("one\ntwo");
    expect(existsSync(join(dir, "old.txt"))).toBe(false);
    expect(obs.message).toContain("A new/file.txt");
  });

  it("unwraps a patch given inside a markdown fence or an apply_patch here-document", async () => {
    const fenced = await apply("```\n*** Begin Patch\n*** Add File: f1.txt\n+a\n*** End Patch\n```");
    expect(fenced.is_error).toBe(false);
    const heredoc = await apply("apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: f2.txt\n+b\n*** End Patch\nEOF");
    expect(heredoc.is_error).toBe(false);
    expect(await read("f2.txt")).toBe("b\n");
  });
});

describe("parsePatch", () => {
  it("parses the Codex format into operations", () => {
    const ops = parsePatch("*** Begin Patch\n*** Update File: a.py\n@@ class A:\n-x\n+y\n*** End of File\n*** End Patch\n");
    expect(ops).toEqual([
      {
        type: "update",
        path: "a.py",
        movePath: null,
        hunks: [
          {
            anchor: "class A:",
            lines: [
              { op: "-", text: "x" },
              { op: "+", text: "y" },
            ],
            atEof: true,
            oldStart: null,
            oldNoNewline: false,
            newNoNewline: false,
          },
        ],
      },
    ]);
  });

  it("throws PatchParseError with the line number", () => {
    expect(() => parsePatch("*** Begin Patch\n*** Update File: a.py\n?x\n*** End Patch")).toThrow(PatchParseError);
    expect(() => parsePatch("*** Begin Patch\n*** Update File: a.py\n?x\n*** End Patch")).toThrow(/^line 3: hunk lines must start/);
    expect(() => parsePatch("*** Begin Patch\n*** Add File: a\nno plus\n*** End Patch")).toThrow(/line 3: every line of an added file/);
    expect(() => parsePatch("hello")).toThrow(/must start with '\*\*\* Begin Patch'/);
    expect(() => parsePatch("*** Begin Patch\n*** Add File: a\n+x\n*** Add File: a\n+y\n*** End Patch")).toThrow(/appears twice/);
    expect(() => parsePatch("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n")).toThrow(/hunk ends before/);
  });
});
