/**
 * Gateway benchmark (issue 3): what the REST/WebSocket gateway adds over calling the same RPC
 * directly, measured in the same run against one agentd process (run as `npm start` runs it,
 * from dist/agentd.mjs, which bench/run.ts rebuilds from this tree first).
 *
 * 1. REST `GET /server_info` vs Connect JSON over HTTP/1.1 `ServerService/GetServerInfo`.
 * 2. A REST call that reaches a domain RPC vs the same RPC over Connect JSON: `GET /api/file/stat`
 *    vs `FileService/StatFile` (falls back to `GET /api/tools/` vs `ListTools` while files are
 *    not implemented).
 *    Both sides use the same HTTP client (undici `fetch`, keep-alive), so the difference is the
 *    server's: gateway routing + codec + the in-process call vs connect-node's JSON.
 *    The two are interleaved in blocks of 100 to spread machine noise.
 * 3. WebSocket event delivery vs the gRPC stream: both subscribed to the same conversation; each
 *    SendMessage's event is timed from the send to its arrival on each. Needs EventService and
 *    ConversationService (#4, #7); until they land the row says TODO.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { WebSocket } from "ws";
import { ConversationService } from "../gen/agentd/v1/conversation_service_pb.js";
import { EventService } from "../gen/agentd/v1/event_service_pb.js";
import { AGENTD_ENTRY, median, printTable, startProcess, stopProcess, type Row } from "./lib.js";

const N = 2000;
const WARMUP = 300;
const BLOCK = 100;
const WS_EVENTS = 300;

/** Medians of two request functions, run alternately in blocks. */
async function interleaved(a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[number, number]> {
  for (let i = 0; i < WARMUP; i++) {
    await a();
    await b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let done = 0; done < N; done += BLOCK) {
    for (const [fn, out] of done % (2 * BLOCK) === 0 ? ([[a, ta], [b, tb]] as const) : ([[b, tb], [a, ta]] as const)) {
      for (let i = 0; i < BLOCK; i++) {
        const t = performance.now();
        await fn();
        out.push(performance.now() - t);
      }
    }
  }
  return [median(ta), median(tb)];
}

async function ok(res: Promise<Response>): Promise<void> {
  const r = await res;
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  await r.arrayBuffer();
}

export async function run(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), "agentd-bench-gw-"));
  const workspace = path.join(root, "workspace");
  const server = await startProcess(process.execPath, [AGENTD_ENTRY, "--port", "0", "--workspace", workspace, "--data-dir", path.join(root, "data")]);
  try {
    const url = server.url;
    const json = { "content-type": "application/json" };
    const rows: Row[] = [];

    const [restInfo, connectInfo] = await interleaved(
      () => ok(fetch(`${url}/server_info`)),
      () => ok(fetch(`${url}/agentd.v1.ServerService/GetServerInfo`, { method: "POST", headers: json, body: "{}" })),
    );
    rows.push({ what: `REST GET /server_info vs Connect JSON GetServerInfo (median of ${N})`, ours: restInfo, raw: connectInfo, unit: "ms", better: "lower", target: "≤ 1.3×" });

    const file = path.join(workspace, "bench.txt");
    await writeFile(file, "x".repeat(1000)).catch(async () => {
      const { mkdir } = await import("node:fs/promises");
      await mkdir(workspace, { recursive: true });
      await writeFile(file, "x".repeat(1000));
    });
    const stat = await fetch(`${url}/api/file/stat?path=${encodeURIComponent(file)}`);
    await stat.arrayBuffer();
    if (stat.status === 200) {
      const [rest, connect] = await interleaved(
        () => ok(fetch(`${url}/api/file/stat?path=${encodeURIComponent(file)}`)),
        () => ok(fetch(`${url}/agentd.v1.FileService/StatFile`, { method: "POST", headers: json, body: JSON.stringify({ path: file }) })),
      );
      rows.push({ what: `REST GET /api/file/stat vs Connect JSON StatFile (median of ${N})`, ours: rest, raw: connect, unit: "ms", better: "lower", target: "≤ 1.3×" });
    } else {
      const [rest, connect] = await interleaved(
        () => ok(fetch(`${url}/api/tools/`)),
        () => ok(fetch(`${url}/agentd.v1.ServerService/ListTools`, { method: "POST", headers: json, body: "{}" })),
      );
      rows.push({ what: `REST GET /api/tools/ vs Connect JSON ListTools (median of ${N}; StatFile not implemented)`, ours: rest, raw: connect, unit: "ms", better: "lower", target: "≤ 1.3×" });
    }

    const ws = await wsVsGrpc(url);
    if (ws !== undefined) {
      rows.push({ what: `event delivery: WebSocket vs gRPC WatchEvents (median of ${WS_EVENTS})`, ours: ws.ws, raw: ws.grpc, unit: "ms", better: "lower", target: "≤ 1.3×" });
    }
    printTable(rows);
    if (ws === undefined) {
      console.log("| event delivery: WebSocket vs gRPC WatchEvents | TODO | — | — | ≤ 1.3× (needs EventService.WatchEvents #4 and CreateConversation #7) |");
    }
  } finally {
    await stopProcess(server.child);
    await rm(root, { recursive: true, force: true });
  }
}

/** Median send→arrival latency of the same events on the events WebSocket and on a gRPC stream. */
async function wsVsGrpc(url: string): Promise<{ ws: number; grpc: number } | undefined> {
  const transport = createGrpcTransport({ baseUrl: url });
  const conversations = createClient(ConversationService, transport);
  const events = createClient(EventService, transport);
  let conversationId: string;
  try {
    const created = await conversations.createConversation({
      agent: { llm: { model: "openai/bench-model" } },
      workspace: { workingDir: "bench" },
      conversationId: randomUUID(),
    });
    conversationId = created.conversation!.id;
    await events.countEvents({ conversationId });
  } catch (err) {
    if (ConnectError.from(err).code === Code.Unimplemented) return undefined;
    throw err;
  }
  const abort = new AbortController();
  const arrivals = { ws: new Map<string, number>(), grpc: new Map<string, number>() };
  const waiters = new Map<string, () => void>();
  const seen = (kind: "ws" | "grpc", text: string) => {
    arrivals[kind].set(text, performance.now());
    if (arrivals.ws.has(text) && arrivals.grpc.has(text)) waiters.get(text)?.();
  };
  const textOf = (content: { text?: string }[] | undefined) => content?.[0]?.text ?? "";

  const socket = new WebSocket(`${url.replace("http", "ws")}/sockets/events/${conversationId}`);
  const wsReady = new Promise<void>((resolve) => {
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { kind?: string; llm_message?: { content?: { text?: string }[] } };
      if (frame.kind === "ConversationStateUpdateEvent") resolve();
      if (frame.kind === "MessageEvent") seen("ws", textOf(frame.llm_message?.content));
    });
  });
  const grpcReady = new Promise<void>((resolve, reject) => {
    (async () => {
      for await (const item of events.watchEvents({ conversationId, liveOnly: true }, { signal: abort.signal })) {
        if (item.item.case !== "event") continue;
        const ev = item.item.value;
        if (ev.seq === 0n) resolve();
        if (ev.payload.case === "messageEvent") {
          const c = ev.payload.value.llmMessage?.content[0];
          seen("grpc", c?.content.case === "text" ? c.content.value.text : "");
        }
      }
    })().catch((err: unknown) => (abort.signal.aborted ? resolve() : reject(err as Error)));
  });
  await Promise.all([wsReady, grpcReady]);
  const ws: number[] = [];
  const grpc: number[] = [];
  const send = createClient(EventService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
  for (let i = 0; i < WS_EVENTS + 30; i++) {
    const text = `bench-${i}`;
    const both = new Promise<void>((resolve) => waiters.set(text, resolve));
    const t = performance.now();
    await send.sendMessage({ conversationId, content: [{ content: { case: "text", value: { text } } }] });
    await both;
    waiters.delete(text);
    if (i < 30) continue; // warm-up
    ws.push(arrivals.ws.get(text)! - t);
    grpc.push(arrivals.grpc.get(text)! - t);
  }
  abort.abort();
  socket.close();
  return { ws: median(ws), grpc: median(grpc) };
}
