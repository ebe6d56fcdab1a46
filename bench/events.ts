/**
 * Event log benchmark (issue 4). Everything runs in fresh temp directories, in one run:
 *
 * 1. Append throughput through EventLog.append against raw classic-level puts of the same event
 *    bytes (one key per event), both fsyncing every write batch (`sync: true`, the durability
 *    agentd acknowledges with). Raw batches are classic-level chained batches (`db.batch()`,
 *    `put()`, `write()`), its fastest batched form — the array form, `db.batch([ops])`, measured
 *    about half as fast here — and the form agentd's own writes use: 100-event batches one after the other, and 64 concurrent
 *    single-event appends (group commit on our side; LevelDB's own writer queue on the raw side).
 *    A second raw figure writes exactly the keys and values our appends wrote (read back from our
 *    directory), separating LevelDB's cost of our layout from our code's. Best of 3 alternating
 *    rounds (the machine is shared).
 * 2. SearchEvents, a page of 100, in conversations of 1k, 100k and 1M events (one store, filled
 *    with 1000-event appends without fsync): from the start, from the middle (a page token taken
 *    by paging there), from the end (newest first). Measured in-process on the domain
 *    (EventLog.search), over gRPC against agentd in-process on the same data directory, and raw:
 *    a classic-level iterator reading the same 101 records (the page plus the one naming the next
 *    page). The gRPC server is agentd in a child process (bench/events-server.ts) on the same
 *    directory, the client in this process (agentd never compresses responses). CountEvents
 *    at 1M, unfiltered and filtered by kind; raw: one get of the head key.
 * 3. Fan-out: agentd in a child process (bench/events-server.ts: the real server plus
 *    EventLog.append over IPC, fsync on), 500 gRPC WatchEvents subscribers from this process over
 *    loopback (10 HTTP/2 connections with 4 MiB receive windows), 1000 single-event appends per
 *    second for 10 s; once with max_batch 100 (batches of what is ready), once with one event per
 *    response (the default). Latency is append call (child) → event decoded by the subscriber
 *    (this process); both clocks are the wall clock (performance.timeOrigin + now()). The
 *    subscribers decode only each event's seq and text (see LightResponse): they share the two
 *    cores with the server. A subscriber ended with ResourceExhausted resumes from its last seq,
 *    as clients are meant to. "Lost" counts seqs skipped within a subscriber's stream (a protocol
 *    violation), "duplicated" seqs seen twice; events not yet received 30 s after the last append
 *    are reported separately as undelivered (overload). Server RSS is sampled every 500 ms;
 *    server and subscriber CPU come from /proc and process.cpuUsage(). A lighter run (50
 *    subscribers, 100 appends/s, one event per response) characterises the latency below
 *    saturation. Raw limit, run right after ours with the same subscribers:
 *    bench/fanout-raw-server.ts, a bare node:http2 server broadcasting the same response bytes
 *    (one encoding per event, one buffer per event-loop turn written to every stream; no
 *    storage, no connect-node).
 *
 * Environment: BENCH_EVENTS_ONLY (comma-separated subset of append, search, fanout).
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { create, createFileRegistry, toBinary, type DescMessage, type DescMethodServerStreaming } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ClassicLevel } from "classic-level";
import { EventSchema, EventSource, type Event } from "../gen/agentd/v1/event_pb.js";
import { EventService, EventSortOrder, type WatchEventsRequestSchema } from "../gen/agentd/v1/event_service_pb.js";
import { MessageRole } from "../gen/agentd/v1/message_pb.js";
import { EventLog } from "../src/domain/events/event-log.js";
import { encodeInt } from "../src/storage/keys.js";
import { WIRE_DELIMITED } from "../src/codec/wire.js";
import { openStore } from "../src/storage/open-store.js";
import { median, percentile, printTable, rssMiB, timeEach, windowedGrpcTransport, type Row } from "./lib.js";

/** BENCH_EVENTS_ONLY: comma-separated parts to run (append, search, fanout); default all. */
const ONLY = process.env.BENCH_EVENTS_ONLY?.split(",").filter((p) => p !== "");

// ---- events -------------------------------------------------------------------------------------

function message(text: string, source: EventSource): Event {
  return create(EventSchema, {
    source,
    payload: {
      case: "messageEvent",
      value: { llmMessage: { role: source === EventSource.USER ? MessageRole.USER : MessageRole.ASSISTANT, content: [{ content: { case: "text", value: { text } } }] } },
    },
  });
}

/** A realistic mix (~200–300 bytes each): user message, action, observation, agent message. */
function templates(): Event[] {
  return [
    message("Please list the files in the project and run the unit tests, then summarise failures.", EventSource.USER),
    create(EventSchema, {
      source: EventSource.AGENT,
      payload: { case: "actionEvent", value: { toolName: "terminal", toolCallId: "call_0123456789abcdef", thought: [{ content: { case: "text", value: { text: "I'll run the test suite first to see what fails." } } }] } },
    }),
    create(EventSchema, {
      source: EventSource.ENVIRONMENT,
      payload: { case: "observationEvent", value: { toolName: "terminal", toolCallId: "call_0123456789abcdef", actionId: randomUUID() } },
    }),
    message("All 42 tests passed. The project has 3 modules: api, core and cli; nothing needs fixing.", EventSource.AGENT),
  ];
}

function mix(n: number): Event[] {
  const t = templates();
  return Array.from({ length: n }, (_, i) => t[i % t.length]!);
}

const secs = (ms: number) => ms / 1000;

// ---- 1. append throughput -----------------------------------------------------------------------

export async function appendThroughput(root: string): Promise<Row[]> {
  const N = 20_000;
  const BATCH = 100;
  const CONCURRENCY = 64;
  const events = mix(N);
  // The bytes our append stores as the event body (id set, seq and timestamp cleared).
  const bodies = events.map((e) => toBinary(EventSchema, { ...e, id: randomUUID(), seq: 0n, timestamp: undefined }));

  const ours = async (round: number) => {
    const store = await openStore(path.join(root, `ours-${round}`));
    const log = new EventLog(store.events);
    const a = randomUUID();
    const b = randomUUID();
    await log.createLog(a);
    await log.createLog(b);
    let t = performance.now();
    for (let i = 0; i < N; i += BATCH) await log.append(a, events.slice(i, i + BATCH));
    const batched = N / secs(performance.now() - t);
    let next = 0;
    t = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) await log.append(b, [events[next++]!]);
      }),
    );
    const single = N / secs(performance.now() - t);
    log.close();
    await store.close();
    return { batched, single, dir: path.join(root, `ours-${round}`), conv: a };
  };

  // Raw, writing exactly the keys and values our batched append wrote (records, the id, kind/source
  // and timestamp index entries, and the head once per batch), read back from our directory: what
  // LevelDB costs for our layout, without our code.
  const rawSameLayout = async (from: { dir: string; conv: string }, round: number) => {
    const src = new ClassicLevel<string, Uint8Array>(from.dir, { keyEncoding: "utf8", valueEncoding: "view" });
    await src.open();
    const entries: [string, Uint8Array][] = [];
    let head: [string, Uint8Array] | undefined;
    for await (const [key, value] of src.iterator()) {
      if (!key.includes(from.conv)) continue;
      if (key.startsWith("!log-head!")) head = [key, value];
      else entries.push([key, value]);
    }
    await src.close();
    const db = new ClassicLevel<string, Uint8Array>(path.join(root, `raw-layout-${round}`), { keyEncoding: "utf8", valueEncoding: "view" });
    await db.open();
    const perBatch = Math.ceil(entries.length / (N / BATCH));
    const t = performance.now();
    for (let i = 0; i < entries.length; i += perBatch) {
      const batch = db.batch();
      for (const [key, value] of entries.slice(i, i + perBatch)) batch.put(key, value);
      if (head !== undefined) batch.put(head[0], head[1]);
      await batch.write({ sync: true });
    }
    const batched = N / secs(performance.now() - t);
    await db.close();
    return { batched, keysPerEvent: entries.length / N };
  };

  const raw = async (round: number) => {
    const db = new ClassicLevel<string, Uint8Array>(path.join(root, `raw-${round}`), { keyEncoding: "utf8", valueEncoding: "view" });
    await db.open();
    const key = (c: string, seq: number) => `!evt!${c}!${encodeInt("seq", seq)}`;
    let t = performance.now();
    for (let i = 0; i < N; i += BATCH) {
      const batch = db.batch();
      for (let j = i; j < i + BATCH; j++) batch.put(key("a", j + 1), bodies[j]!);
      await batch.write({ sync: true });
    }
    const batched = N / secs(performance.now() - t);
    let next = 0;
    t = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) {
          const i = next++;
          await db.put(key("b", i + 1), bodies[i]!, { sync: true });
        }
      }),
    );
    const single = N / secs(performance.now() - t);
    await db.close();
    return { batched, single };
  };

  // Alternate and keep the best of two rounds each: the machine is shared.
  const rs: Awaited<ReturnType<typeof raw>>[] = [];
  const os_: Awaited<ReturnType<typeof ours>>[] = [];
  const ls: Awaited<ReturnType<typeof rawSameLayout>>[] = [];
  for (let round = 1; round <= 3; round++) {
    rs.push(await raw(round));
    const o = await ours(round);
    os_.push(o);
    ls.push(await rawSameLayout(o, round));
  }
  const best = <T>(xs: T[], f: (x: T) => number) => Math.max(...xs.map(f));
  return [
    { what: `append, ${BATCH}-event batches, fsync each (events/s)`, ours: best(os_, (o) => o.batched), raw: best(rs, (r) => r.batched), unit: "ev/s", better: "higher", target: "≥ 0.5×" },
    {
      what: `  same, raw writing our layout (${ls[0]!.keysPerEvent.toFixed(1)} keys/event + head)`,
      ours: best(os_, (o) => o.batched),
      raw: best(ls, (l) => l.batched),
      unit: "ev/s",
      better: "higher",
      target: "—",
    },
    { what: `append, ${CONCURRENCY} concurrent single events, fsync (events/s)`, ours: best(os_, (o) => o.single), raw: best(rs, (r) => r.single), unit: "ev/s", better: "higher", target: "≥ 0.5×" },
  ];
}

// ---- 2. search and count at 1k / 100k / 1M --------------------------------------------------------

interface Positions {
  conv: string;
  size: number;
  /** Page token whose page starts at seq size/2 + 1. */
  middleToken: string;
}

export async function searchAndCount(root: string): Promise<{ search: Row[]; count: Row[] }> {
  const dir = path.join(root, "search");
  const SIZES = [1_000, 100_000, 1_000_000];
  const RUNS = 200;
  const store = await openStore(dir, { sync: false });
  const log = new EventLog(store.events);
  const fillStarted = performance.now();
  const positions: Positions[] = [];
  const batch = mix(1000);
  for (const size of SIZES) {
    const conv = randomUUID();
    await log.createLog(conv);
    for (let i = 0; i < size; i += batch.length) await log.append(conv, batch.slice(0, Math.min(batch.length, size - i)));
    // The middle via the cursor: page there as a client would.
    let token = "";
    for (let seen = 0; seen < size / 2; seen += 100) token = (await log.search(conv, { limit: 100, pageToken: token })).nextPageToken;
    positions.push({ conv, size, middleToken: token });
  }
  console.log(`(filled ${SIZES.map((s) => s.toLocaleString("en")).join(" + ")} events in ${secs(performance.now() - fillStarted).toFixed(1)} s)`);

  type Where = "start" | "middle" | "end";
  const WHERE: Where[] = ["start", "middle", "end"];
  const domain = new Map<string, number>();
  for (const p of positions) {
    for (const where of WHERE) {
      const q = where === "start" ? {} : where === "middle" ? { pageToken: p.middleToken } : { order: "desc" as const };
      domain.set(`${p.size}/${where}`, median(await timeEach(RUNS, 20, () => log.search(p.conv, { limit: 100, ...q }))));
    }
  }
  const big = positions[positions.length - 1]!;
  const domainCount = median(await timeEach(RUNS, 20, () => log.count(big.conv)));
  const domainCountKind = median(await timeEach(RUNS, 20, () => log.count(big.conv, { kind: "ActionEvent" })));
  log.close();
  await store.close();

  // Raw: the same records straight from LevelDB.
  const rawDb = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: "utf8", valueEncoding: "view" });
  await rawDb.open();
  const raw = new Map<string, number>();
  const rec = (c: string, seq: number) => `!evt!${c}!${encodeInt("seq", seq)}`;
  for (const p of positions) {
    for (const where of WHERE) {
      const opts =
        where === "start"
          ? { gte: rec(p.conv, 1), lt: `!evt!${p.conv}"`, limit: 101 }
          : where === "middle"
            ? { gte: rec(p.conv, p.size / 2 + 1), lt: `!evt!${p.conv}"`, limit: 101 }
            : { gte: rec(p.conv, 1), lt: `!evt!${p.conv}"`, limit: 101, reverse: true };
      raw.set(`${p.size}/${where}`, median(await timeEach(RUNS, 20, () => rawDb.iterator(opts).all())));
    }
  }
  const rawHead = median(await timeEach(RUNS, 20, () => rawDb.get(`!log-head!${big.conv}`)));
  await rawDb.close();

  // Over gRPC: agentd in a child process on the same directory, the client here.
  const server = await startBenchServer(dir, path.join(root, "search-ws"));
  const client = createClient(EventService, createGrpcTransport({ baseUrl: server.url }));
  const rpc = new Map<string, number>();
  const rpcQuery = (p: Positions, where: Where) =>
    ({ conversationId: p.conv, pageSize: 100, ...(where === "start" ? {} : where === "middle" ? { pageToken: p.middleToken } : { sortOrder: EventSortOrder.TIMESTAMP_DESC }) });
  // Warm both processes' JIT on every shape first: without it the first size measured pays for
  // the server's compilation and the 1M/1k ratios flatter the large logs.
  for (let i = 0; i < 100; i++) for (const p of positions) for (const where of WHERE) await client.searchEvents(rpcQuery(p, where));
  for (const p of positions) {
    for (const where of WHERE) rpc.set(`${p.size}/${where}`, median(await timeEach(RUNS, 20, () => client.searchEvents(rpcQuery(p, where)))));
  }
  const rpcCount = median(await timeEach(RUNS, 20, () => client.countEvents({ conversationId: big.conv })));
  const rpcCountKind = median(await timeEach(RUNS, 20, () => client.countEvents({ conversationId: big.conv, filter: { kind: "ActionEvent" } })));
  await server.stop();

  const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);
  const search: Row[] = [];
  for (const p of positions) {
    for (const where of WHERE) {
      const k = `${p.size}/${where}`;
      search.push({ what: `SearchEvents 100 @ ${label(p.size)}, ${where}, gRPC (median)`, ours: rpc.get(k)!, raw: raw.get(k)!, unit: "ms", better: "lower", target: "≤ 3 ms" });
      search.push({ what: `  same, domain EventLog.search (median)`, ours: domain.get(k)!, raw: raw.get(k)!, unit: "ms", better: "lower", target: "≤ 3 ms" });
    }
  }
  for (const where of WHERE) {
    search.push({ what: `time(1M)/time(1k), ${where}, gRPC`, ours: rpc.get(`1000000/${where}`)! / rpc.get(`1000/${where}`)!, raw: 0, unit: "×", better: "lower", target: "≤ 2" });
    search.push({ what: `time(1M)/time(1k), ${where}, domain`, ours: domain.get(`1000000/${where}`)! / domain.get(`1000/${where}`)!, raw: 0, unit: "×", better: "lower", target: "≤ 2" });
  }
  const count: Row[] = [
    { what: "CountEvents @ 1M, unfiltered, gRPC (median)", ours: rpcCount, raw: rawHead, unit: "ms", better: "lower", target: "≤ 2 ms" },
    { what: "CountEvents @ 1M, kind=ActionEvent, gRPC (median)", ours: rpcCountKind, raw: rawHead, unit: "ms", better: "lower", target: "≤ 2 ms" },
    { what: "  domain count @ 1M, unfiltered (median)", ours: domainCount, raw: rawHead, unit: "ms", better: "lower", target: "≤ 2 ms" },
    { what: "  domain count @ 1M, kind=ActionEvent (median)", ours: domainCountKind, raw: rawHead, unit: "ms", better: "lower", target: "≤ 2 ms" },
  ];
  return { search, count };
}

// ---- 3. fan-out ---------------------------------------------------------------------------------

interface Subscriber {
  last: number;
  lost: number;
  duplicated: number;
  resumes: number;
  ready: boolean;
  /** The stream failed with something other than ResourceExhausted. */
  error?: string;
}

interface BenchServer {
  child: ChildProcess;
  url: string;
  conversationId: string;
  appendFailures(): number;
  stop(): Promise<void>;
}

/** agentd in a child process (bench/events-server.ts) on `dataDir`. */
function startBenchServer(dataDir: string, workspace: string): Promise<BenchServer> {
  return startChildServer("bench/events-server.ts", [dataDir, workspace]);
}

/**
 * A bench server child speaking the IPC protocol of bench/events-server.ts: agentd, or the raw
 * fan-out limit (bench/fanout-raw-server.ts).
 */
async function startChildServer(script: string, args: string[]): Promise<BenchServer> {
  const child: ChildProcess = fork(path.resolve(script), args, {
    // EVENTS_BENCH_NODE_ARGS: extra node flags for the server child (e.g. --cpu-prof).
    execArgv: ["--import", "tsx", ...(process.env.EVENTS_BENCH_NODE_ARGS ?? "").split(" ").filter((a) => a !== "")],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const ready = await new Promise<{ url: string; conversationId: string }>((resolve, reject) => {
    child.once("message", (m) => resolve(m as { url: string; conversationId: string }));
    child.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
  });
  let appendFailures = 0;
  child.on("message", (m: { type: string; failed?: number }) => {
    if (m.type === "appended") appendFailures += m.failed ?? 0;
  });
  return {
    child,
    ...ready,
    appendFailures: () => appendFailures,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.send({ type: "stop" });
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * What a fan-out subscriber decodes of each WatchEventsResponse: the same wire bytes, with the
 * event (field 1) and the batch (field 3) taken as raw bytes and read by {@link visitEvents} —
 * each event's seq and its message text (which carries the append time), everything else
 * skipped. The subscribers share two cores with the server; a full decode of every event
 * (~12 µs here, mostly allocation) would make them, not agentd, the bottleneck of 500 000
 * deliveries a second.
 */
const LightResponse: DescMessage = (() => {
  const file = create(FileDescriptorProtoSchema, {
    name: "agentd_bench_light.proto",
    package: "agentd.bench",
    syntax: "proto3",
    messageType: [
      {
        name: "Response",
        field: [
          { name: "event", number: 1, label: FieldDescriptorProto_Label.OPTIONAL, type: FieldDescriptorProto_Type.BYTES, jsonName: "event" },
          // Repeated: a batch may arrive as several occurrences of the field, which a full decode
          // merges into one EventBatch (see src/rpc/event-service.ts); here each is kept apart.
          { name: "events", number: 3, label: FieldDescriptorProto_Label.REPEATED, type: FieldDescriptorProto_Type.BYTES, jsonName: "events" },
        ],
      },
    ],
  });
  return createFileRegistry(file, () => undefined).getMessage("agentd.bench.Response")!;
})();

// The light decoder reads one buffer at a time through module-level state (`wire`, `at`): no
// cursor, string or result object per event, so the subscribers' garbage stays near zero.
let wire: Uint8Array = new Uint8Array(0);
let at = 0;
const DELIMITED_TAG = (field: number): number => (field << 3) | WIRE_DELIMITED;

function readVarint(): number {
  let v = 0;
  for (let scale = 1; ; scale *= 0x80) {
    if (at >= wire.length) throw new Error("truncated varint");
    const b = wire[at++]!;
    v += (b & 0x7f) * scale;
    if (b < 0x80) return v;
  }
}

function skipValue(wireType: number): void {
  if (wireType === 0) readVarint();
  else if (wireType === WIRE_DELIMITED) {
    const len = readVarint(); // before reading `at`: `at += readVarint()` would add to the old position
    at += len;
  }
  else if (wireType === 1) at += 8;
  else if (wireType === 5) at += 4;
  else throw new Error(`unsupported wire type ${wireType}`);
}

/**
 * Field numbers of agentd.v1 from MessageEvent to the text: MessageEvent.llm_message 1,
 * LlmMessage.content 2 (the first), Content.text 1, TextContent.text 1.
 */
const TEXT_PATH = [1, 2, 1, 1] as const;

/** The append time in the message text (`t=<ms> …`) of the MessageEvent in `wire[at, end)`, or NaN. */
function appendTimeIn(end: number): number {
  for (const field of TEXT_PATH) {
    let found = false;
    while (at < end) {
      const tag = readVarint();
      if (tag === DELIMITED_TAG(field)) {
        const len = readVarint();
        end = at + len;
        found = true;
        break;
      }
      skipValue(tag & 7);
    }
    if (!found) return NaN;
  }
  // "t=" then decimal digits with a fraction, ended by a space.
  if (wire[at] !== 0x74 || wire[at + 1] !== 0x3d) return NaN;
  let value = 0;
  let scale = 0;
  for (let i = at + 2; i < end; i++) {
    const c = wire[i]!;
    if (c === 0x2e) scale = 1;
    else if (c >= 0x30 && c <= 0x39) {
      if (scale === 0) value = value * 10 + (c - 0x30);
      else value += (c - 0x30) / (scale *= 10);
    } else break;
  }
  return value;
}

type EventVisitor = (seq: number, appendedAt: number) => void;

/** Visits the seq (field 2) and append time of the event in `wire[at, end)`. */
function visitEvent(end: number, visit: EventVisitor): void {
  let seq = 0;
  let appendedAt = NaN;
  while (at < end) {
    const tag = readVarint();
    if (tag === 2 << 3) seq = readVarint();
    else if (tag === DELIMITED_TAG(10)) {
      const stop = readVarint() + at;
      appendedAt = appendTimeIn(stop);
      at = stop;
    } else skipValue(tag & 7);
  }
  visit(seq, appendedAt);
}

/** Visits the events of one response: its `event`, or each event of its batch's occurrences (raw bytes). */
function visitEvents(res: { event: Uint8Array; events: Uint8Array[] }, visit: EventVisitor): void {
  if (res.event.length > 0) {
    wire = res.event;
    at = 0;
    visitEvent(wire.length, visit);
    return;
  }
  for (const part of res.events) {
    wire = part;
    at = 0;
    while (at < part.length) {
      const tag = readVarint();
      if (tag !== DELIMITED_TAG(1)) {
        skipValue(tag & 7);
        continue;
      }
      const stop = readVarint() + at;
      visitEvent(stop, visit);
      at = stop;
    }
  }
}

/** WatchEvents, its responses decoded with {@link LightResponse}. */
const watchEventsLight = { ...EventService.method.watchEvents, output: LightResponse } as unknown as DescMethodServerStreaming<
  typeof WatchEventsRequestSchema,
  DescMessage
>;

/** What one fan-out run measured (ours or raw). */
interface FanOutRun {
  latencies: number[];
  delivered: number;
  lost: number;
  duplicated: number;
  serverCpuPerDelivery: number;
  rssMax: number;
  rssMedian: number;
}

export async function fanOut(root: string, subscribers = 500, ratePerSec = 1000, seconds = 10, maxBatch = 0): Promise<Row[]> {
  const run = async (server: BenchServer, label: string): Promise<FanOutRun> => {
    try {
      return await driveFanOut(server, label, subscribers, ratePerSec, seconds, maxBatch);
    } finally {
      await server.stop();
    }
  };
  const ours = await run(await startBenchServer(path.join(root, "fanout"), path.join(root, "fanout-ws")), "agentd");
  const raw = await run(await startChildServer("bench/fanout-raw-server.ts", [String(maxBatch)]), "raw http2");
  const perResponse = maxBatch > 1 ? `max_batch ${maxBatch}` : "one event per response";
  const what = `fan-out ${subscribers}×, ${ratePerSec}/s, ${perResponse}`;
  return [
    { what: `${what}: append→receive p50`, ours: median(ours.latencies), raw: median(raw.latencies), unit: "ms", better: "lower", target: "—" },
    { what: `${what}: append→receive p99`, ours: percentile(ours.latencies, 99), raw: percentile(raw.latencies, 99), unit: "ms", better: "lower", target: "≤ 50 ms" },
    { what: `${what}: delivered within ${DRAIN_MS / 1000} s of the last append`, ours: ours.delivered, raw: raw.delivered, unit: "%", better: "higher", target: "100 %" },
    { what: "fan-out: events lost (skipped within a stream)", ours: ours.lost, raw: raw.lost, unit: "", better: "lower", target: "0" },
    { what: "fan-out: events duplicated (all subscribers)", ours: ours.duplicated, raw: raw.duplicated, unit: "", better: "lower", target: "0" },
    { what: "fan-out: server CPU per delivered event", ours: ours.serverCpuPerDelivery, raw: raw.serverCpuPerDelivery, unit: "µs", better: "lower", target: "—" },
    { what: "fan-out: server RSS during the run, max", ours: ours.rssMax, raw: raw.rssMax, unit: "MiB", better: "lower", target: "—" },
    { what: "fan-out: server RSS during the run, median", ours: ours.rssMedian, raw: raw.rssMedian, unit: "MiB", better: "lower", target: "—" },
  ];
}

/**
 * Subscribers get DRAIN_MS after the last append to receive everything; what is still missing
 * then is reported as undelivered (overload), apart from events skipped within a stream (lost).
 */
const DRAIN_MS = 30_000;

async function driveFanOut(server: BenchServer, label: string, subscribers: number, ratePerSec: number, seconds: number, maxBatch: number): Promise<FanOutRun> {
  const { child, appendFailures } = server;
  const total = ratePerSec * seconds;
  const CONNECTIONS = 10;
  // 4 MiB receive windows: a connection carries 50 busy streams (see windowedGrpcTransport).
  const transports = Array.from({ length: CONNECTIONS }, () => windowedGrpcTransport(server.url, 4 * 1024 * 1024, { binaryOptions: { readUnknownFields: false } }));
  const latencies = new Float64Array(subscribers * total);
  let nLat = 0;
  let responses = 0;
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one listener per subscriber stream
  const subs: Subscriber[] = [];
  let readyCount = 0;
  let allReady!: () => void;
  const allReadyP = new Promise<void>((r) => (allReady = r));
  let doneCount = 0;
  let allDone!: () => void;
  const allDoneP = new Promise<void>((r) => (allDone = r));

  const runSubscriber = async (s: Subscriber, i: number): Promise<void> => {
    const transport = transports[i % CONNECTIONS]!;
    let now = 0; // receive time of the response being visited
    let finished = false;
    const visit: EventVisitor = (seq, appendedAt) => {
      if (seq === 0) {
        if (!s.ready) {
          s.ready = true;
          if (++readyCount === subscribers) allReady();
        }
        return;
      }
      if (seq <= s.last) s.duplicated++;
      else {
        if (seq > s.last + 1) s.lost += seq - s.last - 1;
        s.last = seq;
      }
      if (!Number.isNaN(appendedAt)) latencies[nLat++] = now - appendedAt;
      if (seq === total && !finished) {
        finished = true;
        if (++doneCount === subscribers) allDone();
      }
    };
    for (;;) {
      try {
        const request = { conversationId: server.conversationId, afterSeq: BigInt(s.last), maxBatch };
        const call = await transport.stream(watchEventsLight, abort.signal, undefined, undefined, (async function* () {
          yield request;
        })());
        for await (const message of call.message) {
          responses++;
          now = performance.timeOrigin + performance.now();
          visitEvents(message as unknown as { event: Uint8Array; events: Uint8Array[] }, visit);
          if (finished) return;
        }
        return; // ended by the abort
      } catch (err) {
        if (abort.signal.aborted) return;
        if (ConnectError.from(err).code === Code.ResourceExhausted) {
          s.resumes++; // resume from the cursor, as clients are meant to
          continue;
        }
        s.error = ConnectError.from(err).message;
        if (++doneCount === subscribers) allDone();
        return;
      }
    }
  };

  const runs: Promise<void>[] = [];
  for (let i = 0; i < subscribers; i++) {
    const s: Subscriber = { last: 0, lost: 0, duplicated: 0, resumes: 0, ready: false };
    subs.push(s);
    runs.push(runSubscriber(s, i));
  }
  await allReadyP;
  const rssBefore = rssMiB(child.pid!);
  const cpuBefore = cpuSeconds(child.pid!);
  const ownCpuBefore = process.cpuUsage();

  // 1000 appends/s: every 10 ms, 10 separate appends (drift-corrected schedule).
  const TICK_MS = 10;
  const perTick = (ratePerSec * TICK_MS) / 1000;
  const rss: number[] = [];
  const rssTimer = setInterval(() => rss.push(rssMiB(child.pid!)), 500);
  const t0 = performance.now();
  for (let k = 0; k < total / perTick; k++) {
    const due = t0 + k * TICK_MS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    child.send({ type: "append", count: perTick });
  }
  const sendSecs = secs(performance.now() - t0);
  const deadline = setTimeout(() => abort.abort(), DRAIN_MS);
  await Promise.race([allDoneP, new Promise((r) => abort.signal.addEventListener("abort", r))]);
  clearTimeout(deadline);
  clearInterval(rssTimer);
  const serverCpu = cpuSeconds(child.pid!) - cpuBefore;
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const drainSecs = secs(performance.now() - t0);
  const allDelivered = doneCount === subscribers && subs.every((s) => s.error === undefined);
  abort.abort();
  await Promise.allSettled(runs);
  const undelivered = subs.reduce((n, s) => n + Math.max(0, total - s.last), 0);

  const lost = subs.reduce((n, s) => n + s.lost, 0);
  const duplicated = subs.reduce((n, s) => n + s.duplicated, 0);
  const resumes = subs.reduce((n, s) => n + s.resumes, 0);
  const failed = subs.filter((s) => s.error !== undefined);
  if (failed.length > 0) console.log(`(${label}: ${failed.length} streams failed, e.g. ${failed[0]!.error})`);
  console.log(
    `(fan-out, ${label}: ${subscribers} subscribers, ${total} appends in ${sendSecs.toFixed(1)} s, ${nLat.toLocaleString("en")} deliveries, ` +
      `${responses.toLocaleString("en")} responses (max_batch ${maxBatch}), ${resumes} resumes after ResourceExhausted, ${appendFailures()} failed appends, RSS before ${rssBefore.toFixed(0)} MiB, ` +
      `${allDelivered ? `all delivered ${drainSecs.toFixed(1)} s after the first append` : `${undelivered.toLocaleString("en")} deliveries missing ${DRAIN_MS / 1000} s after the last append`}; ` +
      `CPU: server ${serverCpu.toFixed(1)} s, subscribers ${((ownCpu.user + ownCpu.system) / 1e6).toFixed(1)} s)`,
  );
  return {
    latencies: Array.from(latencies.subarray(0, nLat)),
    delivered: (100 * (subscribers * total - undelivered)) / (subscribers * total),
    lost,
    duplicated,
    serverCpuPerDelivery: (serverCpu * 1e6) / Math.max(1, nLat),
    rssMax: Math.max(...rss),
    rssMedian: median(rss),
  };
}

/** CPU time (user + system) a process has used, in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat (utime, stime), counted from the state field (3rd) after the name.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
/** sysconf(_SC_CLK_TCK): 100 on Linux. */
const CLOCK_TICKS = 100;

// ---- entry --------------------------------------------------------------------------------------

export async function run(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), "agentd-bench-events-"));
  try {
    if (ONLY === undefined || ONLY.includes("append")) {
      console.log("Durability: ours and raw both fsync every write batch (LevelDB `sync: true`).");
      printTable(await appendThroughput(root));
    }
    if (ONLY === undefined || ONLY.includes("search")) {
      const { search, count } = await searchAndCount(root);
      console.log();
      printTable(search);
      console.log();
      printTable(count);
    }
    if (ONLY !== undefined && !ONLY.includes("fanout")) return;
    // Batched (max_batch 100) is how a watcher of a busy conversation should subscribe; one
    // event per response is the default and what OpenHands-style clients get.
    console.log();
    printTable(await fanOut(path.join(root, "batched"), 500, 1000, 10, 100));
    console.log();
    printTable(await fanOut(path.join(root, "single"), 500, 1000, 10, 0));
    console.log();
    printTable(await fanOut(path.join(root, "light"), 50, 100, 10, 0));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
