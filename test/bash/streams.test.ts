/**
 * The two BashService streams' lifecycle over real gRPC: keepalives after a configurable silence
 * (the service alone, on a plain connect-node HTTP/2 server with a short interval), and a clean
 * end (OK) when the server shuts down (a real agentd), where a waiting ExecuteBashCommand gets the
 * command's final state.
 */
import { mkdtemp, rm } from "node:fs/promises";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BashCommandStatus } from "../../gen/agentd/v1/bash_pb.js";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { BashManager } from "../../src/domain/bash/index.js";
import { LevelDbBashStore } from "../../src/domain/bash/leveldb-bash-store.js";
import { createBashService } from "../../src/rpc/bash-service.js";
import { openStore, type Store } from "../../src/storage/open-store.js";
import { startBashServer, type BashClient } from "./harness.js";

describe("keepalives", () => {
  let root: string;
  let store: Store;
  let bash: BashManager;
  let server: http2.Http2Server;
  let c: BashClient;
  const shutdown = new AbortController();
  const KEEPALIVE_MS = 150;
  const sessions = new Set<http2.ServerHttp2Session>();

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "agentd-bash-streams-"));
    store = await openStore(path.join(root, "data"));
    const bashStore = new LevelDbBashStore(store.bash);
    bash = new BashManager({ store: bashStore, baseEnv: { PATH: process.env.PATH }, defaultCwd: root, poolSize: 1 });
    const service = createBashService({ bash: () => bash, lastEventSeq: () => bashStore.lastEventSeq(), shutdownSignal: shutdown.signal, keepAliveIntervalMs: KEEPALIVE_MS });
    server = http2.createServer(connectNodeAdapter({ routes: (r) => r.service(BashService, service) }));
    server.on("session", (session) => sessions.add(session));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    c = createClient(BashService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
  });
  afterAll(async () => {
    shutdown.abort();
    await bash.close();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const session of sessions) session.close();
    await closed;
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  it("WatchBashCommand sends the current state after each silence, then the output and the exit", async () => {
    const { command } = await c.startBashCommand({ spec: { command: "read x; echo got $x" } });
    const id = command!.id;
    const stream = c.watchBashCommand({ commandId: id })[Symbol.asyncIterator]();
    const t = performance.now();
    const first = await stream.next();
    expect(first.value?.item).toMatchObject({ case: "keepalive", value: { id, status: BashCommandStatus.RUNNING } });
    expect(performance.now() - t).toBeGreaterThanOrEqual(KEEPALIVE_MS - 20);
    const second = await stream.next();
    expect(second.value?.item.case).toBe("keepalive");
    await c.sendBashInput({ commandId: id, text: "x\n" });
    const cases: string[] = [];
    for (let r = await stream.next(); r.done !== true; r = await stream.next()) cases.push(r.value.item.case ?? "");
    expect(cases.filter((x) => x !== "keepalive").at(-1)).toBe("exit");
    expect(cases).toContain("output");
  });

  it("WatchBashEvents sends a keepalive at the live point and after each silence, then ends with OK on shutdown", async () => {
    const stream = c.watchBashEvents({})[Symbol.asyncIterator]();
    const first = await stream.next();
    expect(first.value?.item).toMatchObject({ case: "keepalive", value: { runningCommands: 0 } });
    const t = performance.now();
    const second = await stream.next();
    expect(second.value?.item.case).toBe("keepalive");
    expect(performance.now() - t).toBeGreaterThanOrEqual(KEEPALIVE_MS - 20);
    shutdown.abort();
    // The stream ends normally (no error), even though the client never cancelled.
    const end = await stream.next();
    expect(end.done).toBe(true);
  });
});

describe("server shutdown", () => {
  it("ends open streams with OK and answers a waiting ExecuteBashCommand with the killed state", async () => {
    const h = await startBashServer();
    const { command } = await h.grpc.startBashCommand({ spec: { command: "read x" } });
    const watchCommand = (async () => {
      const cases: string[] = [];
      for await (const r of h.grpc.watchBashCommand({ commandId: command!.id })) cases.push(r.item.case ?? "");
      return cases;
    })();
    const watchEvents = (async () => {
      let n = 0;
      for await (const _ of h.grpc.watchBashEvents({ resendAll: true })) n++;
      return n;
    })();
    const executing = h.grpc.executeBashCommand({ spec: { command: "sleep 30" } });
    // Once the stream has replayed the sleep's BashCommand, the execute is surely running.
    await new Promise<void>((resolve, reject) => {
      void (async () => {
        for await (const r of h.grpc.watchBashEvents({ resendAll: true })) {
          if (r.item.case === "event" && r.item.value.event.case === "command" && r.item.value.event.value.command === "sleep 30") return resolve();
        }
        reject(new Error("stream ended"));
      })().catch(reject);
    });
    const t = performance.now();
    await h.close();
    const res = await executing;
    expect(res.info).toMatchObject({ status: BashCommandStatus.KILLED, endReason: "server shut down" });
    expect(res.output?.exitCode).toBe(-1);
    expect(await watchEvents).toBeGreaterThanOrEqual(2);
    // The watch of a command ended by the shutdown may end before or after its exit item; either way cleanly.
    expect((await watchCommand).every((x) => x === "output" || x === "exit" || x === "keepalive")).toBe(true);
    expect(performance.now() - t).toBeLessThan(5000);
  });
});
