import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { AgentdError } from "../agentd-error.js";
import { SecretMasker } from "../secret-masker.js";
import { observationText } from "../text.js";
import type { ToolExecutionContext } from "../types.js";
import { FileEditorTool, MAX_EDITOR_OUTPUT, type FileEditorObservation } from "./file-editor-tool.js";

describe("file_editor tool", () => {
  let dir: string;
  let tool: FileEditorTool;
  let ctx: ToolExecutionContext;

  const run = (args: Record<string, unknown>): Promise<FileEditorObservation> => tool.execute(tool.parseAction(args), ctx);
  const text = (obs: FileEditorObservation): string => observationText(obs);

  beforeEach(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), "agentd-editor-")));
    tool = new FileEditorTool();
    ctx = { conversationId: "c", workingDir: dir, signal: new AbortController().signal, secrets: new SecretMasker() };
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe("view", () => {
    it("shows a file with cat -n numbering", async () => {
      const file = join(dir, "a.py");
      await writeFile(file, "import os\nprint(1)\n");
      const obs = await run({ command: "view", path: file });
      expect(obs).toMatchObject({ kind: "FileEditorObservation", is_error: false, command: "view", path: file, prev_exist: true });
      expect(text(obs)).toBe(`Here's the result of running \`cat -n\` on ${file}:\n     1\timport os\n     2\tprint(1)\n`);
    });

    it("shows a line range, -1 meaning the end of the file", async () => {
      const file = join(dir, "lines.txt");
      await writeFile(file, Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join("\n") + "\n");
      expect(text(await run({ command: "view", path: file, view_range: [3, 4] }))).toContain("     3\tline 3\n     4\tline 4\n");
      const tail = text(await run({ command: "view", path: file, view_range: [9, -1] }));
      expect(tail).toContain("     9\tline 9\n    10\tline 10\n");
      expect(tail).not.toContain("line 8");
      const past = text(await run({ command: "view", path: file, view_range: [9, 20] }));
      expect(past).toContain("NOTE: We only show up to 10");
    });

    it("validates the line range", async () => {
      const file = join(dir, "short.txt");
      await writeFile(file, "a\nb\nc\n");
      const bad = await run({ command: "view", path: file, view_range: [0, 2] });
      expect(bad.is_error).toBe(true);
      expect(text(bad)).toBe(
        "Invalid `view_range` parameter: [0, 2]. Its first element `0` should be within the range of lines of the file: [1, 3].",
      );
      const reversed = await run({ command: "view", path: file, view_range: [3, 2] });
      expect(text(reversed)).toContain("should be greater than or equal to the first element `3`");
      expect(() => tool.parseAction({ command: "view", path: file, view_range: [1] })).toThrow(AgentdError);
    });

    it("lists a directory two levels deep without hidden entries", async () => {
      await mkdir(join(dir, "src", "deep", "deeper"), { recursive: true });
      await writeFile(join(dir, "src", "main.ts"), "");
      await writeFile(join(dir, "src", "deep", "deeper", "x.ts"), "");
      await writeFile(join(dir, ".env"), "");
      await writeFile(join(dir, "README.md"), "");
      const obs = await run({ command: "view", path: dir });
      const listing = text(obs);
      expect(listing).toContain(`up to 2 levels deep in ${dir}, excluding hidden items:`);
      expect(listing).toContain(`${dir}/README.md`);
      expect(listing).toContain(`${dir}/src/`);
      expect(listing).toContain(`${dir}/src/main.ts`);
      expect(listing).toContain(`${dir}/src/deep/`);
      expect(listing).not.toContain("deeper");
      expect(listing).not.toContain(".env\n");
      expect(listing).toContain("1 hidden files/directories in this directory are excluded");
      const ranged = await run({ command: "view", path: dir, view_range: [1, 2] });
      expect(text(ranged)).toContain("The `view_range` parameter is not allowed when `path` points to a directory.");
    });

    it("truncates long output at 16 000 characters", async () => {
      const file = join(dir, "big.txt");
      await writeFile(file, "x".repeat(100) + "\n".repeat(1) + Array.from({ length: 2000 }, (_, i) => `row ${i}`).join("\n"));
      const out = text(await run({ command: "view", path: file }));
      expect(out.length).toBeLessThan(MAX_EDITOR_OUTPUT + 400);
      expect(out).toContain("<response clipped");
      expect(out).not.toContain("row 1999");
    });

    it("refuses binary and oversized files, and returns images as image content", async () => {
      const bin = join(dir, "blob.bin");
      await writeFile(bin, Buffer.from([0, 1, 2, 3, 0, 255]));
      const binObs = await run({ command: "view", path: bin });
      expect(binObs.is_error).toBe(true);
      expect(text(binObs)).toContain("File appears to be binary");

      const big = join(dir, "big.log");
      await writeFile(big, Buffer.alloc(10 * 1024 * 1024 + 1, 97));
      const bigObs = await run({ command: "view", path: big });
      expect(bigObs.is_error).toBe(true);
      expect(text(bigObs)).toContain("File is too large (10.0MB). Maximum allowed size is 10MB.");

      const png = join(dir, "pixel.png");
      const pixel = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
      await writeFile(png, pixel);
      const img = await run({ command: "view", path: png });
      expect(img.is_error).toBe(false);
      expect(img.content[1]).toEqual({ type: "image", image_urls: [`data:image/png;base64,${pixel.toString("base64")}`], cache_prompt: false });
    });
  });

  describe("paths", () => {
    it("requires absolute paths and suggests the absolute one when it exists", async () => {
      await writeFile(join(dir, "rel.txt"), "x\n");
      const obs = await run({ command: "view", path: "rel.txt" });
      expect(obs.is_error).toBe(true);
      expect(text(obs)).toBe(
        `Invalid \`path\` parameter: rel.txt. The path should be an absolute path, starting with \`/\`. Maybe you meant ${dir}/rel.txt?`,
      );
      const missing = await run({ command: "view", path: "nope.txt" });
      expect(text(missing)).toBe("Invalid `path` parameter: nope.txt. The path should be an absolute path, starting with `/`.");
    });

    it("reports missing paths and non-view commands on directories", async () => {
      const missing = join(dir, "missing.txt");
      expect(text(await run({ command: "view", path: missing }))).toBe(
        `Invalid \`path\` parameter: ${missing}. The path ${missing} does not exist. Please provide a valid path.`,
      );
      const onDir = await run({ command: "str_replace", path: dir, old_str: "a", new_str: "b" });
      expect(text(onDir)).toContain("is a directory and only the `view` command can be used on directories.");
    });
  });

  describe("create", () => {
    it("creates a file with parent directories and refuses to overwrite", async () => {
      const file = join(dir, "new", "pkg", "mod.py");
      const obs = await run({ command: "create", path: file, file_text: "x = 1\n" });
      expect(obs).toMatchObject({ is_error: false, prev_exist: false, new_content: "x = 1\n", old_content: null });
      expect(text(obs)).toBe(`File created successfully at: ${file}`);
      expect(await readFile(file, "utf8")).toBe("x = 1\n");

      const again = await run({ command: "create", path: file, file_text: "y" });
      expect(again.is_error).toBe(true);
      expect(text(again)).toBe(
        `Invalid \`path\` parameter: ${file}. File already exists at: ${file}. Cannot overwrite files using command \`create\`.`,
      );
      expect(await readFile(file, "utf8")).toBe("x = 1\n");
    });

    it("needs file_text", async () => {
      const obs = await run({ command: "create", path: join(dir, "f.txt") });
      expect(obs.is_error).toBe(true);
      expect(text(obs)).toBe("Parameter `file_text` is required for command: create.");
    });
  });

  describe("str_replace", () => {
    let file: string;
    const original = Array.from({ length: 12 }, (_, i) => `line ${i + 1}`).join("\n") + "\n";

    beforeEach(async () => {
      file = join(dir, "edit.txt");
      await writeFile(file, original);
    });

    it("replaces exactly one occurrence and shows a ±4 line snippet", async () => {
      const obs = await run({ command: "str_replace", path: file, old_str: "line 6\n", new_str: "line six\n" });
      expect(obs.is_error).toBe(false);
      expect(obs.old_content).toBe(original);
      expect(obs.new_content).toBe(original.replace("line 6\n", "line six\n"));
      expect(await readFile(file, "utf8")).toBe(obs.new_content);
      const out = text(obs);
      expect(out).toContain(`The file ${file} has been edited. Here's the result of running \`cat -n\` on a snippet of ${file}:`);
      expect(out).toContain("     2\tline 2\n");
      expect(out).toContain("     6\tline six\n");
      expect(out).toContain("    11\tline 11\n");
      expect(out).not.toContain("line 1\n");
      expect(out).not.toContain("line 12");
      expect(out).toContain("Review the changes");
    });

    it("refuses when old_str does not occur verbatim", async () => {
      const obs = await run({ command: "str_replace", path: file, old_str: "line 99", new_str: "x" });
      expect(obs.is_error).toBe(true);
      expect(text(obs)).toBe(`No replacement was performed, old_str \`line 99\` did not appear verbatim in ${file}.`);
      expect(await readFile(file, "utf8")).toBe(original);
    });

    it("refuses multiple occurrences and names their lines", async () => {
      const obs = await run({ command: "str_replace", path: file, old_str: "line 1", new_str: "x" });
      expect(obs.is_error).toBe(true);
      expect(text(obs)).toBe(
        "No replacement was performed. Multiple occurrences of old_str `line 1` in lines [1, 10, 11, 12]. Please ensure it is unique.",
      );
      expect(await readFile(file, "utf8")).toBe(original);
    });

    it("retries once without surrounding whitespace", async () => {
      const obs = await run({ command: "str_replace", path: file, old_str: "  line 7  \n\n", new_str: "\nline seven\n" });
      expect(obs.is_error).toBe(false);
      expect(await readFile(file, "utf8")).toContain("line 6\nline seven\nline 8\n");
    });

    it("refuses identical old_str and new_str", async () => {
      const obs = await run({ command: "str_replace", path: file, old_str: "line 2", new_str: "line 2" });
      expect(text(obs)).toContain("`new_str` and `old_str` must be different");
    });
  });

  describe("insert", () => {
    it("inserts after the given line, 0 meaning the top", async () => {
      const file = join(dir, "ins.txt");
      await writeFile(file, "a\nb\nc\n");
      const obs = await run({ command: "insert", path: file, insert_line: 2, new_str: "x\ny" });
      expect(obs.is_error).toBe(false);
      expect(await readFile(file, "utf8")).toBe("a\nb\nx\ny\nc\n");
      expect(text(obs)).toContain("     3\tx\n     4\ty\n");
      await run({ command: "insert", path: file, insert_line: 0, new_str: "top" });
      expect(await readFile(file, "utf8")).toBe("top\na\nb\nx\ny\nc\n");
    });

    it("validates insert_line", async () => {
      const file = join(dir, "ins.txt");
      await writeFile(file, "a\nb\n");
      const obs = await run({ command: "insert", path: file, insert_line: 5, new_str: "x" });
      expect(obs.is_error).toBe(true);
      expect(text(obs)).toBe("Invalid `insert_line` parameter: 5. It should be within the range of allowed values: [0, 2]");
      expect(() => tool.parseAction({ command: "insert", path: file, insert_line: "two", new_str: "x" })).toThrow(/insert_line/);
      expect(text(await run({ command: "insert", path: file, new_str: "x" }))).toBe(
        "Parameter `insert_line` is required for command: insert.",
      );
    });
  });

  describe("undo_edit", () => {
    it("pops the per-file history, then reports there is none", async () => {
      const file = join(dir, "u.txt");
      await writeFile(file, "one\n");
      await run({ command: "str_replace", path: file, old_str: "one", new_str: "two" });
      await run({ command: "str_replace", path: file, old_str: "two", new_str: "three" });
      const first = await run({ command: "undo_edit", path: file });
      expect(first.is_error).toBe(false);
      expect(text(first)).toContain(`Last edit to ${file} undone successfully.`);
      expect(await readFile(file, "utf8")).toBe("two\n");
      await run({ command: "undo_edit", path: file });
      expect(await readFile(file, "utf8")).toBe("one\n");
      const none = await run({ command: "undo_edit", path: file });
      expect(none.is_error).toBe(true);
      expect(text(none)).toBe(`No edit history found for ${file}.`);
    });

    it("undoing a create removes the file", async () => {
      const file = join(dir, "created.txt");
      await run({ command: "create", path: file, file_text: "hi\n" });
      await run({ command: "undo_edit", path: file });
      expect(existsSync(file)).toBe(false);
    });
  });

  it("masks secrets in what it shows and stores", async () => {
    ctx = { ...ctx, secrets: new SecretMasker({ TOKEN: "tok-abcdef" }) };
    const file = join(dir, "cfg.txt");
    await writeFile(file, "token=tok-abcdef\n");
    const view = await run({ command: "view", path: file });
    expect(text(view)).toContain("token=<secret-hidden>");
    const edit = await run({ command: "str_replace", path: file, old_str: "token=", new_str: "TOKEN=" });
    expect(edit.old_content).toBe("token=<secret-hidden>\n");
    expect(await readFile(file, "utf8")).toBe("TOKEN=tok-abcdef\n");
  });

  it("rejects malformed arguments with invalid_argument", () => {
    expect(() => tool.parseAction({ command: "delete", path: "/x" })).toThrow(/allowed values: view, create/);
    expect(() => tool.parseAction({ command: "view" })).toThrow(/missing required parameter `path`/);
  });
});
