/**
 * Agent loop benchmark (`npm run bench -- agent`), in-process on a real LevelDB (fsync on, as in
 * production) with the shared event log, the scripted OpenAI-compatible LLM answering at once and
 * a trivial tool:
 *
 * 1. Per-step overhead of the loop over a 200-step run: for each step, the time between the end of
 *    one LLM call and the start of the next minus the tool's own time (event appends with fsync,
 *    stats, view and message building, stuck detection), median; beside it the raw round trip of
 *    the scripted LLM through a bare `openai` client (what one step costs at the least). A step
 *    makes two durable appends (the action before the tool runs, the observation after; the
 *    latter overlaps the next LLM call), so the figure moves with the disk's fsync latency, which
 *    is printed for context. BENCH_NO_SYNC=1 opens the store without fsync to show the CPU part.
 * 2. 50 conversations of 20 steps each, concurrently: total time, errors, process RSS.
 * 3. RSS per idle loaded conversation: 500 conversations that each ran one exchange, loaded and
 *    idle; (RSS after − RSS before) / 500 after a full GC.
 */
import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { create } from "@bufbuild/protobuf";
import OpenAI from "openai";
import { AgentSchema, ExecutionStatus } from "../gen/agentd/v1/conversation_pb.js";
import { ContentSchema, MessageRole } from "../gen/agentd/v1/message_pb.js";
import { ConversationManager } from "../src/domain/conversations/conversation-manager.js";
import { EventLog } from "../src/domain/events/event-log.js";
import type { AnyTool } from "../src/domain/agent/tools/types.js";
import { openStore } from "../src/storage/open-store.js";
import { startScriptedLlm, type ScriptedRequest } from "../test/helpers/scripted-llm.js";
import { median, printTable, type Row } from "./lib.js";

const STEPS = 200;
const CONCURRENT = 50;
const CONCURRENT_STEPS = 20;
const IDLE = 500;

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

interface Span {
  start: number;
  end: number;
}

/** A tool that does nothing, timing itself. */
function noopTool(spans: Span[] | undefined): AnyTool {
  return {
    name: "noop",
    description: "Does nothing.",
    parameters: { type: "object", properties: { n: { type: "integer" } }, required: [] },
    readOnly: true,
    parseAction: (args: unknown) => ({ kind: "NoopAction", n: (args as { n?: number }).n ?? 0 }),
    execute: () => {
      const start = performance.now();
      const obs = { kind: "NoopObservation", content: [{ type: "text" as const, text: "ok" }], is_error: false };
      spans?.push({ start, end: performance.now() });
      return Promise.resolve(obs);
    },
  };
}

const text = (t: string) => [create(ContentSchema, { content: { case: "text", value: { text: t } } })];

/** Steps: a noop call until the conversation has `steps` tool answers, then a final message. */
function stepsUntil(steps: number) {
  return (req: ScriptedRequest) => {
    const answers = (req.body.messages as { role: string }[]).filter((m) => m.role === "tool").length;
    return answers >= steps ? { text: "done" } : { toolCalls: [{ name: "noop", arguments: { n: answers } }] };
  };
}

/** Median time of write(4 KiB) + fsync on the disk under `dir` (what one durable append costs at least). */
async function fsyncMedian(dir: string): Promise<number> {
  const f = await open(path.join(dir, "fsync-probe"), "w");
  const buf = Buffer.alloc(4096, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      await f.write(buf, 0, buf.length, 0);
      await f.sync();
      times.push(performance.now() - t);
    }
  } finally {
    await f.close();
  }
  return median(times);
}

async function waitAll(manager: ConversationManager, ids: string[]): Promise<void> {
  const terminal = new Set([ExecutionStatus.FINISHED, ExecutionStatus.ERROR, ExecutionStatus.STUCK, ExecutionStatus.PAUSED]);
  for (;;) {
    if (ids.every((id) => terminal.has(manager.status(id)))) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(ids.map(async (id) => (await manager.live(id)).settled()));
}

export async function run(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), "agentd-bench-agent-"));
  const workspace = path.join(root, "workspace");
  await mkdir(workspace, { recursive: true });
  const llm = await startScriptedLlm();
  const store = await openStore(path.join(root, "data"), { sync: process.env.BENCH_NO_SYNC === undefined });
  const log = new EventLog(store.events);
  const llmSpans: Span[] = [];
  let toolSpans: Span[] | undefined;
  const manager = new ConversationManager({
    conversations: store.conversations,
    eventStore: store.events,
    events: log,
    workspaceBase: workspace,
    stateRoot: path.join(root, "state"),
    externalToolSets: { noop: () => [noopTool(toolSpans)] },
    onLlmCall: (ms) => {
      const end = performance.now();
      llmSpans.push({ start: end - ms, end });
    },
  });
  await manager.start();
  const agent = create(AgentSchema, { llm: { model: "openai/scripted", baseUrl: llm.baseUrl, apiKey: "bench" }, tools: [{ name: "noop" }] });
  const rows: Row[] = [];
  const idleRows: Row[] = [];
  try {
    // 3. Idle loaded conversations (measured first, on a fresh heap; one warm-up conversation).
    llm.enqueue({ text: "warm-up" });
    const warm = await manager.create({ agent, initialMessage: { role: MessageRole.USER, content: text("warm up") } });
    await waitAll(manager, [warm.conversation.id]);
    gc();
    const before = process.memoryUsage().rss;
    const heapBefore = process.memoryUsage().heapUsed;
    llm.enqueue(...Array.from({ length: IDLE }, () => ({ text: "hello" })));
    const idle: string[] = [];
    for (let i = 0; i < IDLE; i++) {
      const r = await manager.create({ agent, initialMessage: { role: MessageRole.USER, content: text(`hi ${i}`) } });
      idle.push(r.conversation.id);
    }
    await waitAll(manager, idle);
    gc();
    await new Promise((r) => setTimeout(r, 100));
    gc();
    const perConv = (process.memoryUsage().rss - before) / IDLE / 1024;
    const heapPerConv = (process.memoryUsage().heapUsed - heapBefore) / IDLE / 1024;
    idleRows.push({ what: `RSS per idle loaded conversation (${IDLE}, one exchange each)`, ours: perConv, raw: 0, unit: "KiB", better: "lower", target: "≤ 256 KiB" });
    idleRows.push({ what: `JS heap per idle loaded conversation`, ours: heapPerConv, raw: 0, unit: "KiB", better: "lower", target: "—" });
    // 1. One long run.
    toolSpans = [];
    llm.enqueue(...Array.from({ length: STEPS + 1 }, () => stepsUntil(STEPS)));
    llmSpans.length = 0;
    const { conversation } = await manager.create({
      agent,
      stuckDetection: false,
      maxIterations: STEPS + 10,
      initialMessage: { role: MessageRole.USER, content: text("run the noop tool 200 times") },
    });
    await waitAll(manager, [conversation.id]);
    const spans = toolSpans;
    const overhead: number[] = [];
    for (let i = 0; i + 1 < llmSpans.length && i < spans.length; i++) {
      overhead.push(llmSpans[i + 1]!.start - llmSpans[i]!.end - (spans[i]!.end - spans[i]!.start));
    }
    const llmMedian = median(llmSpans.map((s) => s.end - s.start));

    // The raw round trip: a bare openai client against the same server.
    const raw = new OpenAI({ apiKey: "bench", baseURL: llm.baseUrl, maxRetries: 0 });
    const rawTimes: number[] = [];
    for (let i = 0; i < STEPS; i++) {
      llm.enqueue({ toolCalls: [{ name: "noop", arguments: { n: i } }] });
      const t = performance.now();
      await raw.chat.completions.create({ model: "scripted", messages: [{ role: "user", content: "go" }] });
      rawTimes.push(performance.now() - t);
    }
    rows.push({ what: "(context) raw fsync of a 4 KiB write on the data disk, median of 50", ours: await fsyncMedian(root), raw: 0, unit: "ms", better: "lower", target: "—" });
    rows.push({
      what: `loop overhead per step (median of ${overhead.length}; excl. LLM ${llmMedian.toFixed(2)} ms and tool)`,
      ours: median(overhead),
      raw: median(rawTimes),
      unit: "ms",
      better: "lower",
      target: "≤ 3 ms",
    });

    // 2. Concurrency.
    toolSpans = undefined;
    llm.enqueue(...Array.from({ length: CONCURRENT * (CONCURRENT_STEPS + 1) }, () => stepsUntil(CONCURRENT_STEPS)));
    const t0 = performance.now();
    const ids = await Promise.all(
      Array.from({ length: CONCURRENT }, async () => {
        const r = await manager.create({ agent, stuckDetection: false, initialMessage: { role: MessageRole.USER, content: text("go") } });
        return r.conversation.id;
      }),
    );
    await waitAll(manager, ids);
    const total = performance.now() - t0;
    const errors = ids.filter((id) => manager.status(id) !== ExecutionStatus.FINISHED).length;
    const rss = process.memoryUsage().rss / 2 ** 20;
    rows.push({ what: `${CONCURRENT} conversations × ${CONCURRENT_STEPS} steps: total time`, ours: total, raw: 0, unit: "ms", better: "lower", target: "—" });
    rows.push({ what: `${CONCURRENT} conversations × ${CONCURRENT_STEPS} steps: errors`, ours: errors, raw: 0, unit: "", better: "lower", target: "0" });
    rows.push({ what: `${CONCURRENT} conversations × ${CONCURRENT_STEPS} steps: process RSS`, ours: rss, raw: 0, unit: "MiB", better: "lower", target: "—" });

  } finally {
    await manager.close();
    log.close();
    await store.close();
    await llm.close();
    await rm(root, { recursive: true, force: true });
  }
  printTable([...rows, ...idleRows]);
}
