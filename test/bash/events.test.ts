/**
 * Bash events over real gRPC against a real agentd: search (kind, command, time range, order_gt,
 * sort, paging with opaque tokens), get, batch get, clear, and WatchBashEvents (replay then live,
 * no gap, no duplicate, a keepalive at the live point, clean end on server shutdown).
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BashMode, type BashEvent } from "../../gen/agentd/v1/bash_pb.js";
import { BashEventKind, BashEventSortOrder, type WatchBashEventsResponse } from "../../gen/agentd/v1/bash_service_pb.js";
import { codeOf, startBashServer, type BashClient, type BashHarness } from "./harness.js";

let h: BashHarness;

beforeAll(async () => {
  h = await startBashServer();
});
afterAll(async () => {
  await h.close();
});

const idOf = (e: BashEvent): string => e.event.value!.id;

/** Runs a pipe-mode command that prints `chunks` BashOutput events of `chunkBytes` each (1 MiB events). */
async function manyOutputs(c: BashClient): Promise<string> {
  // 2.5 MiB of output → BashOutput orders 0, 1 (1 MiB each) and 2 (the rest, with the exit code).
  const res = await c.executeBashCommand({ spec: { command: "head -c 2621440 /dev/zero | tr '\\0' x", mode: BashMode.PIPE } });
  expect(res.output).toMatchObject({ order: 2, exitCode: 0 });
  return res.output!.commandId;
}

describe("SearchBashEvents", () => {
  it("filters by command and kind, drops outputs with order ≤ order_gt, sorts and pages", async () => {
    const id = await manyOutputs(h.grpc);
    const c = h.grpc;
    const all = await c.searchBashEvents({ commandId: id });
    expect(all.items.map((e) => e.event.case)).toEqual(["command", "output", "output", "output"]);
    expect(all.nextPageToken).toBe("");
    const outputs = all.items.slice(1).map((e) => e.event.value as { order: number; stdout?: string; exitCode?: number });
    expect(outputs.map((o) => [o.order, o.stdout?.length, o.exitCode])).toEqual([
      [0, 1048576, undefined],
      [1, 1048576, undefined],
      [2, 524288, 0],
    ]);

    // The OpenHands polling pattern: BashOutput after the last order seen.
    const after0 = await c.searchBashEvents({ commandId: id, kind: BashEventKind.BASH_OUTPUT, orderGt: 0 });
    expect(after0.items.map((e) => (e.event.value as { order: number }).order)).toEqual([1, 2]);
    // order_gt leaves BashCommand events alone.
    expect((await c.searchBashEvents({ commandId: id, orderGt: 5 })).items.map((e) => e.event.case)).toEqual(["command"]);
    expect((await c.searchBashEvents({ commandId: id, kind: BashEventKind.BASH_COMMAND })).items.map(idOf)).toEqual([id]);
    // Dashed UUIDs name the same command.
    const dashed = `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20)}`;
    expect((await c.searchBashEvents({ commandId: dashed })).items.map(idOf)).toEqual(all.items.map(idOf));

    // Paging both ways; a token only works for the query it was issued for.
    const p1 = await c.searchBashEvents({ commandId: id, pageSize: 3 });
    expect(p1.items.map(idOf)).toEqual(all.items.slice(0, 3).map(idOf));
    expect(p1.nextPageToken).not.toBe("");
    const p2 = await c.searchBashEvents({ commandId: id, pageSize: 3, pageToken: p1.nextPageToken });
    expect(p2.items.map(idOf)).toEqual(all.items.slice(3).map(idOf));
    expect(p2.nextPageToken).toBe("");
    expect(await codeOf(c.searchBashEvents({ commandId: id, kind: BashEventKind.BASH_OUTPUT, pageSize: 3, pageToken: p1.nextPageToken }))).toBe(
      Code.InvalidArgument,
    );
    const d1 = await c.searchBashEvents({ commandId: id, sortOrder: BashEventSortOrder.TIMESTAMP_DESC, pageSize: 2 });
    const d2 = await c.searchBashEvents({ commandId: id, sortOrder: BashEventSortOrder.TIMESTAMP_DESC, pageSize: 2, pageToken: d1.nextPageToken });
    expect([...d1.items, ...d2.items].map(idOf)).toEqual(all.items.map(idOf).reverse());
  });

  it("filters by a timestamp range (gte inclusive, lt exclusive)", async () => {
    const a = await h.grpc.executeBashCommand({ spec: { command: "echo a" } });
    const b = await h.grpc.executeBashCommand({ spec: { command: "echo b" } });
    const aTime = a.info!.startTime!;
    const bEnd = b.output!.timestamp!;
    const ms = (t: { seconds: bigint; nanos: number }) => Number(t.seconds) * 1000 + t.nanos / 1e6;
    const window = await h.grpc.searchBashEvents({ timestampGte: aTime, timestampLt: timestampFromMs(ms(bEnd) + 1) });
    const ids = window.items.map(idOf);
    expect(ids).toContain(a.output!.commandId);
    expect(ids).toContain(b.output!.id);
    for (const e of window.items) {
      const t = ms(e.event.value!.timestamp!);
      expect(t).toBeGreaterThanOrEqual(ms(aTime));
      expect(t).toBeLessThanOrEqual(ms(bEnd));
    }
    expect((await h.grpc.searchBashEvents({ timestampGte: timestampFromMs(ms(bEnd) + 1) })).items).toEqual([]);
    expect((await h.grpc.searchBashEvents({ timestampLt: aTime, commandId: a.output!.commandId })).items).toEqual([]);
  });
});

describe("GetBashEvent / BatchGetBashEvents", () => {
  it("returns events by id, with empty slots for unknown ids", async () => {
    const r = await h.grpc.executeBashCommand({ spec: { command: "echo get" } });
    const outputId = r.output!.id;
    const got = await h.grpc.getBashEvent({ eventId: outputId });
    expect(got.event?.event).toMatchObject({ case: "output", value: { id: outputId, stdout: "get\n", exitCode: 0 } });
    const batch = await h.json.batchGetBashEvents({ eventIds: [r.output!.commandId, "ffffffffffffffffffffffffffffffff", outputId] });
    expect(batch.events.map((s) => s.event?.event.case)).toEqual(["command", undefined, "output"]);
  });
});

describe("WatchBashEvents", () => {
  it("replays stored events, marks the live point with a keepalive, then streams live ones with no gap or duplicate", async () => {
    const before = await h.grpc.executeBashCommand({ spec: { command: "echo before" } });
    const abort = new AbortController();
    const items: WatchBashEventsResponse["item"][] = [];
    const stream = h.grpc.watchBashEvents({ resendAll: true }, { signal: abort.signal })[Symbol.asyncIterator]();
    // Replay up to the keepalive that marks the live point.
    for (;;) {
      const r = await stream.next();
      if (r.done === true) throw new Error("stream ended");
      items.push(r.value.item);
      if (r.value.item.case === "keepalive") break;
    }
    const replayed = items.filter((i) => i.case === "event").map((i) => idOf(i.value as BashEvent));
    expect(replayed).toContain(before.output!.commandId);
    expect(replayed).toContain(before.output!.id);
    expect(new Set(replayed).size).toBe(replayed.length);

    // Live: a command started now arrives as BashCommand then BashOutput.
    const live = await h.grpc.executeBashCommand({ spec: { command: "echo live" } });
    const seen: string[] = [];
    while (!seen.includes(live.output!.id)) {
      const r = await stream.next();
      if (r.done === true) throw new Error("stream ended");
      if (r.value.item.case === "event") seen.push(idOf(r.value.item.value));
    }
    expect(seen.slice(-2)).toEqual([live.output!.commandId, live.output!.id]);
    expect(seen.filter((id) => replayed.includes(id))).toEqual([]);
    abort.abort();
    await stream.return?.();
  });

  it("without resend_all, sends a keepalive at once and then only new events", async () => {
    const old = await h.grpc.executeBashCommand({ spec: { command: "echo old" } });
    const abort = new AbortController();
    const stream = h.grpc.watchBashEvents({}, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = await stream.next();
    expect(first.value?.item.case).toBe("keepalive");
    const fresh = await h.grpc.executeBashCommand({ spec: { command: "echo new" } });
    const r = await stream.next();
    expect(r.value?.item.case).toBe("event");
    expect(idOf(r.value!.item.value as BashEvent)).toBe(fresh.output!.commandId);
    expect(idOf(r.value!.item.value as BashEvent)).not.toBe(old.output!.commandId);
    abort.abort();
    await stream.return?.();
  });
});

describe("ClearBashEvents", () => {
  it("deletes every stored event (as OpenHands) and keeps command states and output", async () => {
    const own = await startBashServer();
    try {
      const r = await own.grpc.executeBashCommand({ spec: { command: "echo keep", mode: BashMode.PIPE } });
      const id = r.output!.commandId;
      const cleared = await own.grpc.clearBashEvents({});
      expect(cleared.clearedCount).toBe(2n);
      expect((await own.grpc.searchBashEvents({})).items).toEqual([]);
      expect(await codeOf(own.grpc.getBashEvent({ eventId: id }))).toBe(Code.NotFound);
      expect((await own.grpc.getBashCommand({ commandId: id })).command?.exitCode).toBe(0);
      let out = "";
      for await (const res of own.grpc.watchBashCommand({ commandId: id })) if (res.item.case === "output") out += Buffer.from(res.item.value.data).toString();
      expect(out).toBe("keep\n");
      // New events keep being stored.
      await own.grpc.executeBashCommand({ spec: { command: "echo again" } });
      expect((await own.grpc.searchBashEvents({})).items).toHaveLength(2);
      expect((await own.grpc.clearBashEvents({})).clearedCount).toBe(2n);
    } finally {
      await own.close();
    }
  });
});
