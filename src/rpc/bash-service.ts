/**
 * BashService: thin handlers over the bash engine (src/domain/bash). Each handler validates what
 * the engine cannot (proto defaults such as 0 = "not given", enum values, page sizes), converts
 * the request, calls `BashManager`, and converts the result back. Errors are the engine's
 * AgentdErrors, mapped by the error interceptor.
 *
 * - Ids: command and event ids are 32 lower-case hex digits; a dashed UUID is accepted and
 *   normalized. Anything else names nothing (NotFound).
 * - ExecuteBashCommand waits for the command's own `timeout` (default 300 s). The transport
 *   deadline or a client going away only stops the wait; the command keeps running (it can be
 *   re-attached with WatchBashCommand).
 * - SearchBashEvents: `page_size` 0 means 100, anything else outside 1..100 is InvalidArgument;
 *   page tokens are opaque and bound to the filters and order they were issued for; `order_gt`
 *   drops BashOutput events with `order` ≤ it (BashCommand events stay), as OpenHands does.
 * - ClearBashEvents deletes every stored bash event, as OpenHands does — also those of running
 *   commands, whose later events are stored as usual. Command states and output are kept.
 * - WatchBashEvents: with `resend_all`, stored events first; then live events. Events arrive in
 *   seq order with no gap and no duplicate: the stream subscribes first, then reads the store by
 *   seq, so a slow client costs no server memory. A keepalive marks the moment the stream is live
 *   (after the replay) and follows every `keepAliveIntervalMs` (default 15 s) of silence.
 * - WatchBashCommand: output from `offset` in messages of at most 256 KiB, then the final
 *   BashCommandInfo; a keepalive carrying the current state after every `keepAliveIntervalMs` of
 *   silence.
 * - Streams end with OK when the client goes away or the server shuts down (`shutdownSignal`).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  BashCommandStatus as ProtoStatus,
  BashMode as ProtoMode,
  type BashCommandInfoSchema,
  type BashCommandSchema,
  type BashEventSchema,
  type BashOutputSchema,
} from "../../gen/agentd/v1/bash_pb.js";
import {
  BashEventKind as ProtoKind,
  BashEventSortOrder,
  BashSignal as ProtoSignal,
  type BashCommandSpec as ProtoSpec,
  type BashService,
  type WatchBashCommandResponseSchema,
  type WatchBashEventsResponseSchema,
} from "../../gen/agentd/v1/bash_service_pb.js";
import type {
  BashCommandEvent,
  BashCommandInfo,
  BashCommandSpec,
  BashCommandStatus,
  BashEvent,
  BashEventKind,
  BashManager,
  BashMode,
  BashOutputEvent,
  BashSignal,
} from "../domain/bash/index.js";
import { AgentdError } from "../errors.js";
import { KEEPALIVE_DUE, withKeepAlives } from "./keep-alives.js";

/** Default silence after which the watch streams send a keepalive (the contract says 15 s). */
export const DEFAULT_BASH_KEEPALIVE_MS = 15_000;
/** Largest page of SearchBashEvents and ListBashCommands; also the default (page_size 0). */
export const MAX_BASH_PAGE_SIZE = 100;
/** Most ids one BatchGetBashEvents takes. */
export const MAX_BASH_BATCH_IDS = 100;
/** Events read from the store per round trip by WatchBashEvents. */
const WATCH_READ_BATCH = 256;

export interface BashServiceDeps {
  /**
   * The server's bash engine (one instance, owned and closed by the modules), asked for at each
   * call so that the modules may build it lazily (after the server listens).
   */
  bash(): BashManager;
  /**
   * The highest seq of the bash event log now (0 when empty): where a WatchBashEvents without
   * `resend_all` starts.
   */
  lastEventSeq(): Promise<number>;
  /** Aborted when the server begins shutting down: open streams end with OK. */
  shutdownSignal: AbortSignal;
  /** Silence after which the watch streams send a keepalive (default 15 000 ms). */
  keepAliveIntervalMs?: number;
}

type Impl = ServiceImpl<typeof BashService>;
type EventInit = MessageInitShape<typeof BashEventSchema>;
type InfoInit = MessageInitShape<typeof BashCommandInfoSchema>;
type CommandInit = MessageInitShape<typeof BashCommandSchema>;
type OutputInit = MessageInitShape<typeof BashOutputSchema>;
type WatchEventsItem = MessageInitShape<typeof WatchBashEventsResponseSchema>;
type WatchCommandItem = MessageInitShape<typeof WatchBashCommandResponseSchema>;

const STATUS: Readonly<Record<BashCommandStatus, ProtoStatus>> = {
  running: ProtoStatus.RUNNING,
  exited: ProtoStatus.EXITED,
  killed: ProtoStatus.KILLED,
  timed_out: ProtoStatus.TIMED_OUT,
  lost: ProtoStatus.LOST,
};
const MODE_TO_PROTO: Readonly<Record<BashMode, ProtoMode>> = { pty: ProtoMode.PTY, pipe: ProtoMode.PIPE };
const MODE_OF: Readonly<Record<number, BashMode>> = {
  [ProtoMode.UNSPECIFIED]: "pty",
  [ProtoMode.PTY]: "pty",
  [ProtoMode.PIPE]: "pipe",
};
const KIND_OF: Readonly<Record<number, BashEventKind | undefined>> = {
  [ProtoKind.UNSPECIFIED]: undefined,
  [ProtoKind.BASH_COMMAND]: "BashCommand",
  [ProtoKind.BASH_OUTPUT]: "BashOutput",
};
const SIGNAL_OF: Readonly<Record<number, BashSignal>> = {
  [ProtoSignal.INTERRUPT]: "SIGINT",
  [ProtoSignal.TERMINATE]: "SIGTERM",
  [ProtoSignal.KILL]: "SIGKILL",
};

const UUID_DASHED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX_ID = /^[0-9a-f]{32}$/i;

/** A command or event id in the engine's form (32 lower-case hex); other strings unchanged. */
export function bashIdOf(id: string): string {
  if (HEX_ID.test(id)) return id.toLowerCase();
  if (UUID_DASHED.test(id)) return id.replaceAll("-", "").toLowerCase();
  return id;
}

// ---- conversions ----------------------------------------------------------------------------------

function timestampOf(iso: string): Timestamp {
  return timestampFromMs(Date.parse(iso));
}

export function commandEventToProto(e: BashCommandEvent): CommandInit {
  return { id: e.id, timestamp: timestampOf(e.timestamp), command: e.command, cwd: e.cwd, timeout: Math.ceil(e.timeout) };
}

export function outputEventToProto(e: BashOutputEvent): OutputInit {
  return {
    id: e.id,
    timestamp: timestampOf(e.timestamp),
    commandId: e.command_id,
    order: e.order,
    exitCode: e.exit_code ?? undefined,
    stdout: e.stdout ?? undefined,
    stderr: e.stderr ?? undefined,
  };
}

export function bashEventToProto(e: BashEvent): EventInit {
  return e.kind === "BashCommand"
    ? { event: { case: "command", value: commandEventToProto(e) } }
    : { event: { case: "output", value: outputEventToProto(e) } };
}

export function commandInfoToProto(info: BashCommandInfo, nowMs: number = Date.now()): InfoInit {
  return {
    id: info.id,
    command: info.command,
    cwd: info.cwd,
    status: STATUS[info.status],
    exitCode: info.exitCode ?? undefined,
    signal: info.signal ?? undefined,
    timedOut: info.timedOut,
    startTime: timestampFromMs(info.startTime),
    endTime: info.endTime === null ? undefined : timestampFromMs(info.endTime),
    duration: durationFromMs(Math.max(0, (info.endTime ?? nowMs) - info.startTime)),
    pid: info.pid ?? 0,
    mode: MODE_TO_PROTO[info.mode],
    cols: info.cols,
    rows: info.rows,
    outputSize: BigInt(info.outputBytes),
    outputTruncated: info.outputTruncated,
    endReason: info.endReason ?? "",
    timeout: Math.ceil(info.timeoutSeconds),
  };
}

/** Proto spec → engine spec. @throws AgentdError invalid_argument (missing spec, unknown mode). */
export function specOf(spec: ProtoSpec | undefined): BashCommandSpec {
  if (spec === undefined) throw new AgentdError("invalid_argument", "spec is required");
  const mode = MODE_OF[spec.mode];
  if (mode === undefined) throw new AgentdError("invalid_argument", `invalid spec.mode ${spec.mode}: expected pty or pipe`, { mode: String(spec.mode) });
  return {
    command: spec.command,
    cwd: spec.cwd,
    timeoutSeconds: spec.timeout,
    env: spec.env,
    mode,
    cols: spec.cols,
    rows: spec.rows,
  };
}

function pageSizeOf(n: number): number {
  if (n === 0) return MAX_BASH_PAGE_SIZE;
  if (!Number.isInteger(n) || n < 1 || n > MAX_BASH_PAGE_SIZE) {
    throw new AgentdError("invalid_argument", `invalid page_size ${n}: expected 1..${MAX_BASH_PAGE_SIZE} (0 means ${MAX_BASH_PAGE_SIZE})`, {
      page_size: String(n),
    });
  }
  return n;
}

/** Milliseconds since the epoch, fractions kept. @throws AgentdError invalid_argument. */
function msOf(ts: Timestamp, name: string): number {
  if (ts.nanos < 0 || ts.nanos > 999_999_999 || ts.seconds < -62_135_596_800n || ts.seconds > 253_402_300_799n) {
    throw new AgentdError("invalid_argument", `invalid ${name}: seconds ${ts.seconds}, nanos ${ts.nanos} is not a valid timestamp`);
  }
  return Number(ts.seconds) * 1000 + ts.nanos / 1e6;
}

// ---- the service --------------------------------------------------------------------------------

export function createBashService(deps: BashServiceDeps): Impl {
  const keepAliveMs = deps.keepAliveIntervalMs ?? DEFAULT_BASH_KEEPALIVE_MS;

  return {
    async executeBashCommand(req, ctx) {
      const bash = deps.bash();
      const result = await bash.execute(specOf(req.spec), { signal: ctx.signal });
      return { output: outputEventToProto(result.output), info: commandInfoToProto(result.info) };
    },

    async startBashCommand(req) {
      const bash = deps.bash();
      const { command } = await bash.start(specOf(req.spec));
      return { command: commandEventToProto(command) };
    },

    async searchBashEvents(req) {
      const bash = deps.bash();
      const limit = pageSizeOf(req.pageSize);
      if (!(req.kind in KIND_OF)) throw new AgentdError("invalid_argument", `invalid kind ${req.kind}: expected BashCommand or BashOutput`, { kind: String(req.kind) });
      let sortDesc: boolean;
      if (req.sortOrder === BashEventSortOrder.UNSPECIFIED || req.sortOrder === BashEventSortOrder.TIMESTAMP) sortDesc = false;
      else if (req.sortOrder === BashEventSortOrder.TIMESTAMP_DESC) sortDesc = true;
      else throw new AgentdError("invalid_argument", `invalid sort_order ${req.sortOrder}`, { sort_order: String(req.sortOrder) });
      const page = await bash.searchEvents({
        kind: KIND_OF[req.kind],
        commandId: req.commandId === "" ? undefined : bashIdOf(req.commandId),
        timestampGteMs: req.timestampGte === undefined ? undefined : msOf(req.timestampGte, "timestamp_gte"),
        timestampLtMs: req.timestampLt === undefined ? undefined : msOf(req.timestampLt, "timestamp_lt"),
        orderGt: req.orderGt,
        sortDesc,
        pageToken: req.pageToken === "" ? undefined : req.pageToken,
        limit,
      });
      return { items: page.items.map(bashEventToProto), nextPageToken: page.nextPageToken ?? "" };
    },

    async getBashEvent(req) {
      const bash = deps.bash();
      const event = await bash.getEvent(bashIdOf(req.eventId));
      if (event === null) throw new AgentdError("not_found", `bash event ${req.eventId} not found`, { event_id: req.eventId }, "EVENT_NOT_FOUND");
      return { event: bashEventToProto(event) };
    },

    async batchGetBashEvents(req) {
      const bash = deps.bash();
      if (req.eventIds.length > MAX_BASH_BATCH_IDS) {
        throw new AgentdError("invalid_argument", `too many event_ids: ${req.eventIds.length}, at most ${MAX_BASH_BATCH_IDS}`, {
          count: String(req.eventIds.length),
        });
      }
      const found = await Promise.all(req.eventIds.map((id) => bash.getEvent(bashIdOf(id))));
      return { events: found.map((event) => (event === null ? {} : { event: bashEventToProto(event) })) };
    },

    async clearBashEvents() {
      const bash = deps.bash();
      return { clearedCount: BigInt(await bash.clearEvents()) };
    },

    async *watchBashEvents(req, ctx) {
      const bash = deps.bash();
      const stop = new AbortController();
      const signal = AbortSignal.any([ctx.signal, deps.shutdownSignal, stop.signal]);
      // Subscribe before reading where to start, so nothing stored after that read is missed.
      const wake = new Wakeup();
      const unsubscribe = bash.subscribe(() => wake.notify());
      try {
        const afterSeq = req.resendAll ? 0 : await deps.lastEventSeq();
        const keepAlive = (): WatchEventsItem => ({
          item: { case: "keepalive", value: { runningCommands: bash.stats().runningCommands, time: timestampFromMs(Date.now()) } },
        });
        const source = eventsFrom(bash, afterSeq, wake, signal);
        for await (const item of withKeepAlives(source, keepAliveMs, signal)) {
          if (item === LIVE || item === KEEPALIVE_DUE) yield keepAlive();
          else yield { item: { case: "event", value: bashEventToProto(item) } };
        }
      } finally {
        unsubscribe();
        stop.abort();
      }
    },

    async *watchBashCommand(req, ctx) {
      const bash = deps.bash();
      const commandId = bashIdOf(req.commandId);
      const stop = new AbortController();
      const signal = AbortSignal.any([ctx.signal, deps.shutdownSignal, stop.signal]);
      const offset = req.offset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(req.offset);
      const items = bash.watch(commandId, { offset, signal })[Symbol.asyncIterator]();
      try {
        for await (const item of withKeepAlives(items, keepAliveMs, signal)) {
          if (item === KEEPALIVE_DUE) yield { item: { case: "keepalive", value: commandInfoToProto(await bash.get(commandId)) } } satisfies WatchCommandItem;
          else if (item.type === "output") yield { item: { case: "output", value: { offset: BigInt(item.offset), data: item.data } } };
          else yield { item: { case: "exit", value: commandInfoToProto(item.info) } };
        }
      } finally {
        stop.abort();
        await items.return?.();
      }
    },

    async sendBashInput(req) {
      const bash = deps.bash();
      const text = req.text === "" ? null : Buffer.from(req.text, "utf8");
      const data = text === null ? req.data : req.data.byteLength === 0 ? text : Buffer.concat([req.data, text]);
      await bash.sendInput(bashIdOf(req.commandId), data);
      return { success: true };
    },

    async signalBashCommand(req) {
      const bash = deps.bash();
      const sig = SIGNAL_OF[req.signal];
      if (sig === undefined) throw new AgentdError("invalid_argument", `invalid signal ${req.signal}: expected interrupt, terminate or kill`, { signal: String(req.signal) });
      await bash.signal(bashIdOf(req.commandId), sig);
      return { success: true };
    },

    async resizeBashCommand(req) {
      const bash = deps.bash();
      await bash.resize(bashIdOf(req.commandId), req.cols, req.rows);
      return { success: true };
    },

    async getBashCommand(req) {
      const bash = deps.bash();
      return { command: commandInfoToProto(await bash.get(bashIdOf(req.commandId))) };
    },

    async listBashCommands(req) {
      const bash = deps.bash();
      const limit = pageSizeOf(req.pageSize);
      const now = Date.now();
      const commands = await bash.list({ includeEnded: req.includeEnded, limit });
      return { commands: commands.map((c) => commandInfoToProto(c, now)) };
    },
  };
}

// ---- internals ------------------------------------------------------------------------------------

/** Marks the moment a WatchBashEvents stream has replayed what was stored and is live. */
const LIVE = Symbol("live");

/**
 * A level-triggered wake-up: notify() while nobody waits is remembered, so a waiter that armed
 * (reset) before reading and waits after reading never misses a notification in between.
 */
class Wakeup {
  private pending = false;
  private waiter: (() => void) | null = null;

  notify(): void {
    this.pending = true;
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  reset(): void {
    this.pending = false;
  }

  /** Resolves at the next notify() since the last reset(), or when `signal` aborts. */
  wait(signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener("abort", done);
        this.waiter = null;
        resolve();
      };
      this.waiter = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

/**
 * Stored bash events with seq > `afterSeq`, in seq order, read from the store as they are
 * committed (the engine notifies after each commit). Yields LIVE once, the first time it has
 * caught up. Storage commits in seq order, so reading by seq is gap-free and duplicate-free.
 */
async function* eventsFrom(bash: BashManager, afterSeq: number, wake: Wakeup, signal: AbortSignal): AsyncGenerator<BashEvent | typeof LIVE> {
  let last = afterSeq;
  let live = false;
  while (!signal.aborted) {
    wake.reset();
    const page = await bash.readEvents(last, WATCH_READ_BATCH);
    for (const s of page) {
      last = s.seq;
      yield s.event;
    }
    if (page.length === WATCH_READ_BATCH) continue;
    if (!live) {
      live = true;
      yield LIVE;
    }
    await wake.wait(signal);
  }
}

