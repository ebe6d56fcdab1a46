// The `task_tracker` tool (OpenHands TaskTrackerAction/TaskTrackerObservation): the agent's own
// plan for the conversation. `plan` replaces the whole list, `view` shows it. The list is
// persisted as `<stateDir>/TASKS.json` (OpenHands: `<conversation dir>/TASKS.json`) so it survives
// a restart; writes go through a temp file and a rename, so a crash never leaves half a file.

import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { AgentdError } from "../agentd-error.js";
import { ArgReader, isRecord, withInjectedParams } from "../args.js";
import { textContent } from "../text.js";
import type { Content, JsonSchemaObject, Tool, ToolExecutionContext } from "../types.js";

export const TASK_TRACKER_TOOL_NAME = "task_tracker";
export const TASKS_FILE_NAME = "TASKS.json";

export const TASK_STATUSES = ["todo", "in_progress", "done"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export interface TaskItem {
  title: string;
  notes: string;
  status: TaskStatus;
}

export interface TaskTrackerAction {
  kind: "TaskTrackerAction";
  command: "view" | "plan";
  task_list: TaskItem[];
}

export interface TaskTrackerObservation {
  kind: "TaskTrackerObservation";
  content: Content[];
  is_error: boolean;
  command: "view" | "plan";
  task_list: TaskItem[];
}

const DESCRIPTION = `Keep a structured plan for multi-step work.
* \`plan\` replaces the whole task list with \`task_list\` (send every task, not only the changed ones).
* \`view\` shows the current list.
Each task has a \`title\`, optional \`notes\` and a \`status\` (todo, in_progress, done). Keep one task in_progress at a time and mark tasks done as soon as they are finished.`;

const PARAMETERS: JsonSchemaObject = withInjectedParams(
  {
    type: "object",
    properties: {
      command: { type: "string", enum: ["view", "plan"], description: "`view` the list or `plan` (replace) it." },
      task_list: {
        type: "array",
        description: "The complete new task list (plan only).",
        items: {
          type: "object",
          properties: {
            title: { type: "string", description: "What the task is." },
            notes: { type: "string", description: "Details, findings, next steps." },
            status: { type: "string", enum: [...TASK_STATUSES], description: "todo, in_progress or done." },
          },
          required: ["title", "status"],
        },
      },
    },
    required: ["command"],
  },
  false,
);

function parseTaskList(r: ArgReader): TaskItem[] {
  let raw = r.raw("task_list");
  if (raw === undefined || raw === null) return [];
  if (typeof raw === "string") {
    try {
      raw = JSON.parse(raw) as unknown;
    } catch {
      throw r.fail("parameter `task_list` must be an array of {title, notes, status}");
    }
  }
  if (!Array.isArray(raw)) throw r.fail("parameter `task_list` must be an array of {title, notes, status}");
  return raw.map((item, i) => {
    if (!isRecord(item) || typeof item.title !== "string" || item.title.trim() === "") {
      throw r.fail(`task_list[${i}] needs a non-empty string \`title\``);
    }
    const status = item.status ?? "todo";
    if (typeof status !== "string" || !(TASK_STATUSES as readonly string[]).includes(status)) {
      throw r.fail(`task_list[${i}].status is ${JSON.stringify(status)}; allowed values: ${TASK_STATUSES.join(", ")}`);
    }
    const notes = item.notes ?? "";
    if (typeof notes !== "string") throw r.fail(`task_list[${i}].notes must be a string`);
    return { title: item.title, notes, status: status as TaskStatus };
  });
}

function render(tasks: TaskItem[]): string {
  const mark: Record<TaskStatus, string> = { todo: "[ ]", in_progress: "[~]", done: "[x]" };
  const done = tasks.filter((t) => t.status === "done").length;
  const lines = tasks.map((t, i) => {
    const notes = t.notes.trim() === "" ? "" : `\n   ${t.notes.trim().split("\n").join("\n   ")}`;
    return `${i + 1}. ${mark[t.status]} ${t.title}${notes}`;
  });
  return `Task list (${done}/${tasks.length} done):\n${lines.join("\n")}`;
}

export class TaskTrackerTool implements Tool<TaskTrackerAction, TaskTrackerObservation> {
  readonly name = TASK_TRACKER_TOOL_NAME;
  readonly description = DESCRIPTION;
  readonly parameters = PARAMETERS;
  readonly readOnly = false;

  readonly #file: string;
  readonly #dir: string;
  #queue: Promise<unknown> = Promise.resolve();

  /** @param stateDir the conversation's state directory; TASKS.json lives there (created on first plan). */
  constructor(stateDir: string) {
    this.#dir = stateDir;
    this.#file = join(stateDir, TASKS_FILE_NAME);
  }

  isUsable(): boolean {
    return true;
  }

  parseAction(args: unknown): TaskTrackerAction {
    const r = new ArgReader(this.name, args);
    const command = r.oneOf("command", ["view", "plan"] as const);
    return { kind: "TaskTrackerAction", command, task_list: command === "plan" ? parseTaskList(r) : [] };
  }

  execute(action: TaskTrackerAction, ctx: ToolExecutionContext): Promise<TaskTrackerObservation> {
    if (ctx.signal.aborted) return Promise.reject(new AgentdError("canceled", "the task_tracker call was cancelled"));
    // Serialised so two plans in one step are written in order.
    const run = this.#queue.then(() => this.#execute(action));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The persisted list ([] when none was planned yet). Throws AgentdError "data_loss" on a corrupt file. */
  async load(): Promise<TaskItem[]> {
    let text: string;
    try {
      text = await readFile(this.#file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (!Array.isArray(parsed)) throw new Error("not an array");
      return parseTaskList(new ArgReader(this.name, { task_list: parsed }));
    } catch (err) {
      throw new AgentdError("data_loss", `${this.#file} is not a valid task list: ${(err as Error).message}`);
    }
  }

  async #execute(action: TaskTrackerAction): Promise<TaskTrackerObservation> {
    if (action.command === "view") {
      const tasks = await this.load();
      const text = tasks.length === 0 ? 'No task list found. Use the "plan" command to create one.' : render(tasks);
      return { kind: "TaskTrackerObservation", content: [textContent(text)], is_error: false, command: "view", task_list: tasks };
    }
    await mkdir(this.#dir, { recursive: true });
    const tmp = `${this.#file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(action.task_list, null, 2)}\n`, "utf8");
    await rename(tmp, this.#file);
    const text =
      action.task_list.length === 0
        ? "Task list has been cleared."
        : `Task list has been updated with ${action.task_list.length} item${action.task_list.length === 1 ? "" : "s"}.\n\n${render(action.task_list)}`;
    return {
      kind: "TaskTrackerObservation",
      content: [textContent(text)],
      is_error: false,
      command: "plan",
      task_list: action.task_list,
    };
  }
}
