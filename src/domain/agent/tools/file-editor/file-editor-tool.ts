// The `file_editor` tool (OpenHands FileEditorAction/FileEditorObservation): view files and
// directories, create files, replace one exact string, insert lines, and undo the last edits.
// Behaviour pinned by OpenHands and kept here:
//   - paths must be absolute ("Invalid `path` parameter: <p>. The path should be an absolute
//     path, starting with `/`." plus a suggestion when the relative path exists);
//   - `create` refuses existing files; only `view` works on directories;
//   - `str_replace` needs exactly one verbatim match, retrying once with both strings stripped of
//     surrounding whitespace; otherwise nothing is written;
//   - edits answer with a `cat -n` snippet of ±4 lines around the change;
//   - output is capped at 16 000 characters; files over 10 MB and binary files are refused;
//     images (png, jpg, gif, webp, bmp) are returned as ImageContent;
//   - `undo_edit` pops a per-file history (10 entries per file), "No edit history found for <p>."
// Failures are observations with `is_error: true`; only malformed arguments throw.

import { constants as fsConstants, type Dirent } from "node:fs";
import { access, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { extname, isAbsolute, join, resolve as resolvePath } from "node:path";

import { AgentdError } from "../agentd-error.js";
import { ArgReader, withInjectedParams } from "../args.js";
import { textContent, truncateHead } from "../text.js";
import type { Content, JsonSchemaObject, Tool, ToolExecutionContext } from "../types.js";

export const FILE_EDITOR_TOOL_NAME = "file_editor";

export const FILE_EDITOR_COMMANDS = ["view", "create", "str_replace", "insert", "undo_edit"] as const;
export type FileEditorCommand = (typeof FILE_EDITOR_COMMANDS)[number];

/** Maximum characters of file or directory text in one observation. */
export const MAX_EDITOR_OUTPUT = 16_000;
/** Files larger than this are refused. */
export const MAX_EDITABLE_FILE_BYTES = 10 * 1024 * 1024;
/** Lines of context shown around an edit. */
export const SNIPPET_CONTEXT_LINES = 4;
const MAX_HISTORY_PER_FILE = 10;

const IMAGE_TYPES: Record<string, string> = {
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".bmp": "image/bmp",
};

export interface FileEditorAction {
  kind: "FileEditorAction";
  command: FileEditorCommand;
  path: string;
  file_text: string | null;
  old_str: string | null;
  new_str: string | null;
  insert_line: number | null;
  view_range: number[] | null;
}

export interface FileEditorObservation {
  kind: "FileEditorObservation";
  content: Content[];
  is_error: boolean;
  command: FileEditorCommand;
  path: string | null;
  prev_exist: boolean;
  old_content: string | null;
  new_content: string | null;
}

const DESCRIPTION = `View, create and edit files (absolute paths only).
* \`view\` a file: its lines numbered like \`cat -n\` (use \`view_range: [start, end]\`, end -1 = end of file, for long files); \`view\` a directory: files and directories up to 2 levels deep, hidden ones excluded.
* \`create\`: write a NEW file with \`file_text\` (fails if the file exists).
* \`str_replace\`: replace \`old_str\` with \`new_str\`. \`old_str\` must match exactly one place in the file, character for character including whitespace and indentation; include enough surrounding lines to make it unique.
* \`insert\`: insert \`new_str\` after line \`insert_line\` (0 = at the top).
* \`undo_edit\`: revert the last edit of \`path\` made with this tool.
Long output is cut at ${MAX_EDITOR_OUTPUT} characters; binary files and files over 10 MB are refused; images are shown as images.`;

const PARAMETERS: JsonSchemaObject = withInjectedParams(
  {
    type: "object",
    properties: {
      command: { type: "string", enum: [...FILE_EDITOR_COMMANDS], description: "The operation to perform." },
      path: { type: "string", description: "Absolute path of the file or directory, e.g. /workspace/app/main.py." },
      file_text: { type: "string", description: "Content of the new file (create)." },
      old_str: { type: "string", description: "Exact text to replace; must occur exactly once (str_replace)." },
      new_str: { type: "string", description: "Replacement text (str_replace) or text to insert (insert)." },
      insert_line: { type: "integer", minimum: 0, description: "Line after which new_str is inserted; 0 inserts at the top (insert)." },
      view_range: {
        type: "array",
        items: { type: "integer" },
        description: "[start, end] 1-based inclusive line range to view; end -1 means end of file (view of a file).",
      },
    },
    required: ["command", "path"],
  },
  false,
);

/** A failure reported to the LLM as an error observation. */
class EditorError extends Error {}

function invalidParam(name: string, value: string, hint: string): EditorError {
  return new EditorError(`Invalid \`${name}\` parameter: ${value}. ${hint}`);
}

interface LoadedFile {
  text: string;
  encoding: "utf8" | "latin1";
}

/** Lines of `text` without the empty element a trailing newline would add. */
function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** `cat -n` numbering: six-wide right-aligned numbers and a tab. */
function numbered(lines: string[], firstLine: number): string {
  return lines.map((line, i) => `${String(i + firstLine).padStart(6)}\t${line}`).join("\n");
}

function isBinary(buf: Buffer): boolean {
  const sample = buf.subarray(0, 8192);
  if (sample.includes(0)) return true;
  let control = 0;
  for (const b of sample) if (b < 7 || (b > 13 && b < 32 && b !== 27)) control++;
  return sample.length > 0 && control / sample.length > 0.1;
}

function decode(buf: Buffer): { text: string; encoding: "utf8" | "latin1" } {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(buf), encoding: "utf8" };
  } catch {
    return { text: buf.toString("latin1"), encoding: "latin1" };
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

export class FileEditorTool implements Tool<FileEditorAction, FileEditorObservation> {
  readonly name = FILE_EDITOR_TOOL_NAME;
  readonly description = DESCRIPTION;
  readonly parameters = PARAMETERS;
  readonly readOnly = false;

  /** Per-file undo history: content before each edit, `null` = the file did not exist. */
  readonly #history = new Map<string, (string | null)[]>();

  isUsable(): boolean {
    return true;
  }

  parseAction(args: unknown): FileEditorAction {
    const r = new ArgReader(this.name, args);
    const viewRange = r.integerArray("view_range") ?? null;
    if (viewRange !== null && viewRange.length !== 2) {
      throw r.fail("parameter `view_range` must be two integers [start, end]");
    }
    return {
      kind: "FileEditorAction",
      command: r.oneOf("command", FILE_EDITOR_COMMANDS),
      path: r.requiredString("path"),
      file_text: r.string("file_text") ?? null,
      old_str: r.string("old_str") ?? null,
      new_str: r.string("new_str") ?? null,
      insert_line: r.integer("insert_line") ?? null,
      view_range: viewRange,
    };
  }

  async execute(action: FileEditorAction, ctx: ToolExecutionContext): Promise<FileEditorObservation> {
    if (ctx.signal.aborted) throw new AgentdError("canceled", "the file_editor call was cancelled");
    try {
      const obs = await this.#dispatch(action, ctx);
      // File text can contain the conversation's secrets; observations are stored and shown.
      const mask = (s: string | null): string | null => (s === null ? null : ctx.secrets.mask(s));
      return {
        ...obs,
        content: obs.content.map((c) => (c.type === "text" ? { ...c, text: ctx.secrets.mask(c.text) } : c)),
        old_content: mask(obs.old_content),
        new_content: mask(obs.new_content),
      };
    } catch (err) {
      if (!(err instanceof EditorError)) throw err;
      return {
        kind: "FileEditorObservation",
        content: [textContent(ctx.secrets.mask(err.message))],
        is_error: true,
        command: action.command,
        path: action.path,
        prev_exist: false,
        old_content: null,
        new_content: null,
      };
    }
  }

  async #dispatch(action: FileEditorAction, ctx: ToolExecutionContext): Promise<FileEditorObservation> {
    const path = action.path;
    await this.#validatePath(action.command, path, ctx.workingDir);
    switch (action.command) {
      case "view":
        return this.#view(path, action.view_range);
      case "create":
        if (action.file_text === null) throw new EditorError("Parameter `file_text` is required for command: create.");
        return this.#create(path, action.file_text);
      case "str_replace":
        if (action.old_str === null) throw new EditorError("Parameter `old_str` is required for command: str_replace.");
        return this.#strReplace(path, action.old_str, action.new_str ?? "");
      case "insert":
        if (action.insert_line === null) throw new EditorError("Parameter `insert_line` is required for command: insert.");
        if (action.new_str === null) throw new EditorError("Parameter `new_str` is required for command: insert.");
        return this.#insert(path, action.insert_line, action.new_str);
      case "undo_edit":
        return this.#undo(path);
    }
  }

  async #validatePath(command: FileEditorCommand, path: string, workingDir: string): Promise<void> {
    if (!isAbsolute(path)) {
      let hint = "The path should be an absolute path, starting with `/`.";
      const suggestion = resolvePath(workingDir, path);
      if (await exists(suggestion)) hint += ` Maybe you meant ${suggestion}?`;
      throw invalidParam("path", path, hint);
    }
    const present = await exists(path);
    if (command === "create") {
      if (present) {
        throw invalidParam("path", path, `File already exists at: ${path}. Cannot overwrite files using command \`create\`.`);
      }
      return;
    }
    if (!present) throw invalidParam("path", path, `The path ${path} does not exist. Please provide a valid path.`);
    if (command !== "view" && (await stat(path)).isDirectory()) {
      throw invalidParam("path", path, `The path ${path} is a directory and only the \`view\` command can be used on directories.`);
    }
  }

  async #load(path: string): Promise<LoadedFile> {
    const info = await stat(path);
    if (info.size > MAX_EDITABLE_FILE_BYTES) {
      throw new EditorError(
        `File validation failed for ${path}: File is too large (${(info.size / 1024 / 1024).toFixed(1)}MB). ` +
          `Maximum allowed size is ${MAX_EDITABLE_FILE_BYTES / 1024 / 1024}MB.`,
      );
    }
    const buf = await readFile(path);
    if (isBinary(buf)) {
      throw new EditorError(
        `File validation failed for ${path}: File appears to be binary and this file type cannot be read or edited by this tool.`,
      );
    }
    return decode(buf);
  }

  async #write(path: string, text: string, encoding: "utf8" | "latin1"): Promise<void> {
    try {
      await writeFile(path, text, { encoding });
    } catch (err) {
      throw new EditorError(`Ran into ${(err as Error).message} while trying to write to ${path}`);
    }
  }

  #remember(path: string, before: string | null): void {
    const stack = this.#history.get(path) ?? [];
    stack.push(before);
    if (stack.length > MAX_HISTORY_PER_FILE) stack.shift();
    this.#history.set(path, stack);
  }

  #observation(
    command: FileEditorCommand,
    path: string,
    text: string,
    fields: Partial<Pick<FileEditorObservation, "prev_exist" | "old_content" | "new_content">> = {},
  ): FileEditorObservation {
    return {
      kind: "FileEditorObservation",
      content: [textContent(text)],
      is_error: false,
      command,
      path,
      prev_exist: fields.prev_exist ?? true,
      old_content: fields.old_content ?? null,
      new_content: fields.new_content ?? null,
    };
  }

  async #view(path: string, viewRange: number[] | null): Promise<FileEditorObservation> {
    const info = await stat(path);
    if (info.isDirectory()) {
      if (viewRange !== null) {
        throw invalidParam("view_range", JSON.stringify(viewRange), "The `view_range` parameter is not allowed when `path` points to a directory.");
      }
      return this.#observation("view", path, await this.#listDirectory(path));
    }

    const mime = IMAGE_TYPES[extname(path).toLowerCase()];
    if (mime !== undefined) {
      if (info.size > MAX_EDITABLE_FILE_BYTES) await this.#load(path); // throws the size error
      const data = await readFile(path);
      return {
        ...this.#observation("view", path, `Image file ${path} read successfully. Displaying image content.`),
        content: [
          textContent(`Image file ${path} read successfully. Displaying image content.`),
          { type: "image", image_urls: [`data:${mime};base64,${data.toString("base64")}`], cache_prompt: false },
        ],
      };
    }

    const file = await this.#load(path);
    const lines = splitLines(file.text);
    let start = 1;
    let end = lines.length;
    let note = "";
    if (viewRange !== null) {
      const [s, e] = viewRange as [number, number];
      const range = JSON.stringify(viewRange).replace(",", ", ");
      if (s < 1 || s > lines.length) {
        throw invalidParam("view_range", range, `Its first element \`${s}\` should be within the range of lines of the file: [1, ${lines.length}].`);
      }
      end = e === -1 ? lines.length : e;
      if (end > lines.length) {
        note = `NOTE: We only show up to ${lines.length} since there're only ${lines.length} lines in this file.\n`;
        end = lines.length;
      }
      if (end < s) {
        throw invalidParam("view_range", range, `Its second element \`${e}\` should be greater than or equal to the first element \`${s}\`.`);
      }
      start = s;
    }
    const body = truncateHead(
      numbered(lines.slice(start - 1, end), start),
      MAX_EDITOR_OUTPUT,
      "\n<response clipped: only part of this file is shown. View other parts with `view_range`, " +
        "after finding the line numbers you need with `grep -n` in the terminal.>",
    );
    return this.#observation("view", path, `${note}Here's the result of running \`cat -n\` on ${path}:\n${body}\n`);
  }

  async #listDirectory(path: string): Promise<string> {
    const root = path.replace(/\/+$/, "") || "/";
    const entries: string[] = [`${root}/`];
    const top = (await readdir(root, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
    const hidden = top.filter((e) => e.name.startsWith(".")).length;
    for (const entry of top) {
      if (entry.name.startsWith(".")) continue;
      const full = join(root, entry.name);
      const isDir = entry.isDirectory();
      entries.push(isDir ? `${full}/` : full);
      if (!isDir) continue;
      let children: Dirent[] = [];
      try {
        children = (await readdir(full, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
      } catch {
        continue; // unreadable subdirectory: listed, not expanded
      }
      for (const child of children) {
        if (child.name.startsWith(".")) continue;
        const childPath = join(full, child.name);
        entries.push(child.isDirectory() ? `${childPath}/` : childPath);
      }
    }
    let text = `Here's the files and directories up to 2 levels deep in ${root}, excluding hidden items:\n${entries.join("\n")}`;
    if (hidden > 0) {
      text += `\n\n${hidden} hidden files/directories in this directory are excluded. You can use 'ls -la ${root}' to see them.`;
    }
    return truncateHead(
      text,
      MAX_EDITOR_OUTPUT,
      "\n<response clipped: the directory listing is too long. List subdirectories one at a time, " +
        "or use `find`/`ls` in the terminal.>",
    );
  }

  async #create(path: string, fileText: string): Promise<FileEditorObservation> {
    try {
      await mkdir(resolvePath(path, ".."), { recursive: true });
    } catch (err) {
      throw new EditorError(`Ran into ${(err as Error).message} while trying to create the parent directory of ${path}`);
    }
    await this.#write(path, fileText, "utf8");
    this.#remember(path, null);
    return this.#observation("create", path, `File created successfully at: ${path}`, {
      prev_exist: false,
      new_content: fileText,
    });
  }

  #snippet(text: string, fromLine: number, toLine: number): string {
    const lines = splitLines(text);
    const start = Math.max(1, fromLine);
    const end = Math.min(lines.length, toLine);
    return numbered(lines.slice(start - 1, end), start);
  }

  async #strReplace(path: string, oldStr: string, newStr: string): Promise<FileEditorObservation> {
    if (oldStr === newStr) {
      throw invalidParam("new_str", newStr, "No replacement was performed. `new_str` and `old_str` must be different.");
    }
    const file = await this.#load(path);
    const content = file.text;
    let find = oldStr;
    let replacement = newStr;
    let positions = occurrences(content, find);
    if (positions.length === 0 && find.trim() !== find) {
      // Retry without surrounding whitespace (LLMs often add or drop a trailing newline).
      find = find.trim();
      replacement = replacement.trim();
      positions = find === "" ? [] : occurrences(content, find);
    }
    if (positions.length === 0) {
      throw new EditorError(`No replacement was performed, old_str \`${find}\` did not appear verbatim in ${path}.`);
    }
    const lineOf = (index: number): number => content.slice(0, index).split("\n").length;
    if (positions.length > 1) {
      const lines = [...new Set(positions.map(lineOf))].sort((a, b) => a - b);
      throw new EditorError(
        `No replacement was performed. Multiple occurrences of old_str \`${find}\` in lines [${lines.join(", ")}]. Please ensure it is unique.`,
      );
    }
    const at = positions[0] as number;
    const updated = content.slice(0, at) + replacement + content.slice(at + find.length);
    await this.#write(path, updated, file.encoding);
    this.#remember(path, content);
    const line = lineOf(at);
    const snippet = this.#snippet(
      updated,
      line - SNIPPET_CONTEXT_LINES,
      line + replacement.split("\n").length - 1 + SNIPPET_CONTEXT_LINES,
    );
    return this.#observation(
      "str_replace",
      path,
      `The file ${path} has been edited. Here's the result of running \`cat -n\` on a snippet of ${path}:\n${snippet}\n` +
        "Review the changes and make sure they are as expected. Edit the file again if necessary.",
      { prev_exist: true, old_content: content, new_content: updated },
    );
  }

  async #insert(path: string, insertLine: number, newStr: string): Promise<FileEditorObservation> {
    const file = await this.#load(path);
    const content = file.text;
    const lines = splitLines(content);
    if (insertLine < 0 || insertLine > lines.length) {
      throw invalidParam("insert_line", String(insertLine), `It should be within the range of allowed values: [0, ${lines.length}]`);
    }
    const inserted = newStr.split("\n");
    const result = [...lines.slice(0, insertLine), ...inserted, ...lines.slice(insertLine)];
    const trailingNewline = content === "" || content.endsWith("\n");
    const updated = result.join("\n") + (trailingNewline ? "\n" : "");
    await this.#write(path, updated, file.encoding);
    this.#remember(path, content);
    const snippet = this.#snippet(
      updated,
      insertLine - SNIPPET_CONTEXT_LINES + 1,
      insertLine + inserted.length + SNIPPET_CONTEXT_LINES,
    );
    return this.#observation(
      "insert",
      path,
      `The file ${path} has been edited. Here's the result of running \`cat -n\` on a snippet of the edited file:\n${snippet}\n` +
        "Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
      { prev_exist: true, old_content: content, new_content: updated },
    );
  }

  async #undo(path: string): Promise<FileEditorObservation> {
    const stack = this.#history.get(path);
    if (stack === undefined || stack.length === 0) throw new EditorError(`No edit history found for ${path}.`);
    const current = await this.#load(path);
    const previous = stack.pop() as string | null;
    if (stack.length === 0) this.#history.delete(path);
    if (previous === null) {
      await rm(path, { force: true });
      return this.#observation(
        "undo_edit",
        path,
        `Last edit to ${path} undone successfully. The file had been created by that edit and has been removed.`,
        { prev_exist: true, old_content: current.text, new_content: null },
      );
    }
    await this.#write(path, previous, current.encoding);
    const body = truncateHead(numbered(splitLines(previous), 1), MAX_EDITOR_OUTPUT, "\n<response clipped>");
    return this.#observation(
      "undo_edit",
      path,
      `Last edit to ${path} undone successfully. Here's the result of running \`cat -n\` on ${path}:\n${body}\n`,
      { prev_exist: true, old_content: current.text, new_content: previous },
    );
  }
}

/** Start indexes of the non-overlapping occurrences of `needle` in `haystack`. */
function occurrences(haystack: string, needle: string): number[] {
  const out: number[] = [];
  if (needle === "") return out;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) out.push(i);
  return out;
}
