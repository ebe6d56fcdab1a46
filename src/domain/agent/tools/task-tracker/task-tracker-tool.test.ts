import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { SecretMasker } from "../secret-masker.js";
import { observationText } from "../text.js";
import type { ToolExecutionContext } from "../types.js";
import { TASKS_FILE_NAME, TaskTrackerTool } from "./task-tracker-tool.js";

describe("task_tracker tool", () => {
  let dir: string;
  let stateDir: string;
  let ctx: ToolExecutionContext;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentd-tasks-"));
    stateDir = join(dir, "conversations", "c1");
    ctx = { conversationId: "c1", workingDir: dir, signal: new AbortController().signal, secrets: new SecretMasker() };
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("plans, persists to TASKS.json, and a new instance views the same list", async () => {
    const tool = new TaskTrackerTool(stateDir);
    const empty = await tool.execute(tool.parseAction({ command: "view" }), ctx);
    expect(empty.task_list).toEqual([]);
    expect(observationText(empty)).toContain('No task list found. Use the "plan" command to create one.');

    const plan = await tool.execute(
      tool.parseAction({
        command: "plan",
        task_list: [
          { title: "Reproduce the bug", status: "done", notes: "fails on empty input" },
          { title: "Fix the parser", status: "in_progress" },
          { title: "Add a test", status: "todo" },
        ],
      }),
      ctx,
    );
    expect(plan).toMatchObject({ kind: "TaskTrackerObservation", is_error: false, command: "plan" });
    expect(plan.task_list[1]).toEqual({ title: "Fix the parser", notes: "", status: "in_progress" });
    expect(observationText(plan)).toContain("Task list has been updated with 3 items.");

    const stored = JSON.parse(await readFile(join(stateDir, TASKS_FILE_NAME), "utf8")) as unknown;
    expect(stored).toEqual(plan.task_list);

    const reopened = new TaskTrackerTool(stateDir);
    const view = await reopened.execute(reopened.parseAction({ command: "view" }), ctx);
    expect(view.task_list).toEqual(plan.task_list);
    expect(observationText(view)).toContain("1. [x] Reproduce the bug\n   fails on empty input\n2. [~] Fix the parser\n3. [ ] Add a test");
  });

  it("validates the task list", () => {
    const tool = new TaskTrackerTool(stateDir);
    expect(() => tool.parseAction({ command: "plan", task_list: [{ title: "x", status: "blocked" }] })).toThrow(
      /task_list\[0\]\.status is "blocked"; allowed values: todo, in_progress, done/,
    );
    expect(() => tool.parseAction({ command: "plan", task_list: [{ status: "todo" }] })).toThrow(/needs a non-empty string `title`/);
    expect(() => tool.parseAction({ command: "list" })).toThrow(/allowed values: view, plan/);
    const fromString = tool.parseAction({ command: "plan", task_list: '[{"title":"a","status":"todo"}]' });
    expect(fromString.task_list).toEqual([{ title: "a", notes: "", status: "todo" }]);
  });

  it("reports a corrupt TASKS.json as data_loss", async () => {
    const tool = new TaskTrackerTool(dir);
    await writeFile(join(dir, TASKS_FILE_NAME), "{not json");
    await expect(tool.execute(tool.parseAction({ command: "view" }), ctx)).rejects.toMatchObject({ code: "data_loss" });
  });
});
