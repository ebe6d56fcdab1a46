/** Shared measurement helpers for the benchmarks. */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { create } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { EventSchema, EventSource, type Event } from "../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../gen/agentd/v1/message_pb.js";

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Times `n` sequential runs of `fn` after `warmup` unmeasured ones; returns milliseconds. */
export async function timeEach(n: number, warmup: number, fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

/**
 * Times `ours` and `raw` alternately, one call each per round (after `warmup` rounds), so machine
 * load drifting during the run hits both alike. Returns the durations of each, in ms.
 */
export async function timeInterleaved(n: number, warmup: number, ours: () => Promise<unknown>, raw: () => Promise<unknown>): Promise<{ ours: number[]; raw: number[] }> {
  for (let i = 0; i < warmup; i++) {
    await ours();
    await raw();
  }
  const out = { ours: [] as number[], raw: [] as number[] };
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    await ours();
    out.ours.push(performance.now() - t);
    t = performance.now();
    await raw();
    out.raw.push(performance.now() - t);
  }
  return out;
}

export interface Row {
  what: string;
  ours: number;
  raw: number;
  unit: string;
  /** "lower" when smaller is better (latency), "higher" for throughput. */
  better: "lower" | "higher";
  target: string;
}

/** Prints rows as a markdown table with the ratio ours/raw. */
export function printTable(rows: readonly Row[]): void {
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(3));
  console.log("| measurement | ours | raw limit | ratio (ours/raw) | target |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const r of rows) {
    const ratio = r.raw === 0 ? "n/a" : (r.ours / r.raw).toFixed(2);
    console.log(`| ${r.what} | ${fmt(r.ours)} ${r.unit} | ${r.raw === 0 ? "—" : `${fmt(r.raw)} ${r.unit}`} | ${ratio} | ${r.target} |`);
  }
}

/** Resident set size of a process in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? "0");
  return kb / 1024;
}

/** Starts a server process that prints `{"listening": url}` on its first stdout line. */
/** What `npm start` runs; bench/run.ts rebuilds it from the current tree before any benchmark. */
export const AGENTD_ENTRY = path.resolve("dist/agentd.mjs");

export function startProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; url: string; line: Record<string, string> }> {
  const child = spawn(cmd, args, { env: { ...process.env, LOG_LEVEL: "warn", ...env }, stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", (text) => {
      const line = JSON.parse(text) as Record<string, string>;
      resolve({ child, url: line.listening!, line });
    });
    child.once("exit", (code) => reject(new Error(`${cmd} exited with ${code}`)));
  });
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

/**
 * A connect-node gRPC transport with `windowBytes` HTTP/2 receive windows, per stream and per
 * connection (Node's default is 64 KiB for both: a receiver that must take a lot quickly — a bulk
 * download, hundreds of busy streams on one connection — is otherwise held to one window per
 * event-loop round trip of its WINDOW_UPDATEs).
 */
export function windowedGrpcTransport(baseUrl: string, windowBytes: number, options: Partial<GrpcTransportOptions> = {}): Transport {
  const nodeOptions = { settings: { initialWindowSize: windowBytes } };
  const sessionManager = new WindowedSessionManager(baseUrl, {}, nodeOptions, windowBytes);
  return createGrpcTransport({ ...options, baseUrl, nodeOptions, sessionManager });
}

/** Raises the connection-level receive window of each HTTP/2 session it opens (not an http2.connect option). */
class WindowedSessionManager extends Http2SessionManager {
  readonly #tuned = new WeakSet<object>();

  constructor(
    url: ConstructorParameters<typeof Http2SessionManager>[0],
    pingOptions: ConstructorParameters<typeof Http2SessionManager>[1],
    http2SessionOptions: ConstructorParameters<typeof Http2SessionManager>[2],
    private readonly windowBytes: number,
  ) {
    super(url, pingOptions, http2SessionOptions);
  }

  override async request(...args: Parameters<Http2SessionManager["request"]>): ReturnType<Http2SessionManager["request"]> {
    const stream = await super.request(...args);
    const session = stream.session;
    if (session !== undefined && !this.#tuned.has(session)) {
      this.#tuned.add(session);
      session.setLocalWindowSize(this.windowBytes);
    }
    return stream;
  }
}

const FAN_OUT_PAD = " ".repeat(120);

/**
 * The event the fan-out benchmark appends (bench/events-server.ts) and its raw limit broadcasts
 * (bench/fanout-raw-server.ts): an agent message whose text is `t=<ms>` — the wall-clock time
 * (performance.timeOrigin + now(), µs resolution) at the call, which subscribers subtract from
 * their receive time (bench/events.ts) — padded to an ordinary event's size.
 */
export function fanOutEvent(): Event {
  const t = performance.timeOrigin + performance.now();
  return create(EventSchema, {
    source: EventSource.AGENT,
    payload: { case: "messageEvent", value: { llmMessage: { role: MessageRole.ASSISTANT, content: [{ content: { case: "text", value: { text: `t=${t}${FAN_OUT_PAD}` } } }] } } },
  });
}
