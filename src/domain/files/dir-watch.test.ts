import { appendFile, mkdir, mkdtemp, realpath, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AgentdError } from "../../errors.js";
import type { WatchEvent, WatchStream } from "./dir-watch.js";
import { WorkspaceFiles, type WorkspaceFilesOptions } from "./workspace-files.js";

let base: string;
let ws: string;
let files: WorkspaceFiles;

function service(watch: WorkspaceFilesOptions["watch"] = {}): WorkspaceFiles {
  return new WorkspaceFiles({ roots: [ws], defaultWorkingDir: ws, uploadIdleTimeoutMs: 60_000, watch: { ...modeOpts, ...watch } });
}

let modeOpts: WorkspaceFilesOptions["watch"] = {};

beforeEach(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), "agentd-files-watch-")));
  ws = join(base, "ws");
  await mkdir(ws);
  files = service(modeOpts);
});

afterEach(async () => {
  await files.close();
  expect(files.activity).toEqual({ uploads: 0, watches: 0 });
  await rm(base, { recursive: true, force: true });
});

/** Pulls events from a watch until one matches; everything pulled is kept in `seen`. */
function reader(stream: WatchStream): {
  seen: WatchEvent[];
  until: (pred: (e: WatchEvent) => boolean) => Promise<WatchEvent>;
  next: () => Promise<IteratorResult<WatchEvent>>;
} {
  const it = stream[Symbol.asyncIterator]();
  const seen: WatchEvent[] = [];
  return {
    seen,
    next: () => it.next(),
    async until(pred) {
      for (;;) {
        const r = await it.next();
        if (r.done === true) throw new Error(`watch ended; saw ${JSON.stringify(seen)}`);
        seen.push(r.value);
        if (pred(r.value)) return r.value;
      }
    },
  };
}

const at = (rel: string, type?: WatchEvent["type"]) => (e: WatchEvent) => e.path === join(ws, rel) && (type === undefined || e.type === type);

function brief(events: WatchEvent[]): string[] {
  return events.map((e) => `${e.seq} ${e.type} ${e.path.slice(ws.length + 1)}${e.oldPath === undefined ? "" : ` <- ${e.oldPath.slice(ws.length + 1)}`}`);
}

async function failure(p: Promise<unknown>): Promise<AgentdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof AgentdError)) throw new Error(`expected an AgentdError, got ${String(err)}`);
  return err;
}

async function basicSequence(svc: WorkspaceFiles): Promise<void> {
  const stream = await svc.watch(".");
  const r = reader(stream);
  await writeFile(join(ws, "a.txt"), "1");
  expect(await r.until(at("a.txt", "create"))).toMatchObject({ fileType: "file" });
  await appendFile(join(ws, "a.txt"), "more");
  await r.until(at("a.txt", "modify"));
  await rename(join(ws, "a.txt"), join(ws, "b.txt"));
  expect(await r.until(at("b.txt", "rename"))).toMatchObject({ oldPath: join(ws, "a.txt"), fileType: "file" });
  await rm(join(ws, "b.txt"));
  await r.until(at("b.txt", "delete"));
  await mkdir(join(ws, "sub"));
  expect(await r.until(at("sub", "create"))).toMatchObject({ fileType: "directory" });
  // Not recursive: a change inside `sub` is not reported (the marker proves we waited past it).
  await writeFile(join(ws, "sub", "inner"), "x");
  await writeFile(join(ws, "marker"), "x");
  await r.until(at("marker", "create"));
  expect(r.seen.some((e) => e.path.includes("inner"))).toBe(false);
  const seqs = r.seen.map((e) => e.seq);
  expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  expect(new Set(seqs).size).toBe(seqs.length);
  stream.close();
}

// Every behaviour holds for fs.watch and for the polling fallback.
const modes: [string, WorkspaceFilesOptions["watch"]][] = [
  ["fs.watch", {}],
  ["polling", { forcePolling: true, pollIntervalMs: 25 }],
];

describe.each(modes)("watch (%s)", (_mode, opts) => {
  beforeAll(() => {
    modeOpts = opts;
  });
  afterAll(() => {
    modeOpts = {};
  });

  it("sees create, modify, rename and delete with increasing seq", async () => {
    await basicSequence(files);
  });

  it("recursive: follows new subdirectories, moves across them and directory renames", async () => {
    await mkdir(join(ws, "pre/existing"), { recursive: true });
    const stream = await files.watch(".", { recursive: true });
    const r = reader(stream);
    await writeFile(join(ws, "pre/existing/f"), "x");
    await r.until(at("pre/existing/f", "create"));

    await mkdir(join(ws, "n1/n2"), { recursive: true });
    await writeFile(join(ws, "n1/n2/f"), "x");
    await r.until(at("n1/n2/f", "create"));
    expect(r.seen.filter((e) => e.type === "create").map((e) => e.path.slice(ws.length + 1))).toEqual(expect.arrayContaining(["n1", "n1/n2", "n1/n2/f"]));
    // The parent is announced before what it contains.
    const order = r.seen.map((e) => e.path.slice(ws.length + 1));
    expect(order.indexOf("n1")).toBeLessThan(order.indexOf("n1/n2"));

    await rename(join(ws, "n1/n2/f"), join(ws, "n1/g"));
    expect(await r.until(at("n1/g"))).toMatchObject({ type: "rename", oldPath: join(ws, "n1/n2/f") });

    await rename(join(ws, "n1"), join(ws, "m1"));
    expect(await r.until(at("m1"))).toMatchObject({ type: "rename", oldPath: join(ws, "n1"), fileType: "directory" });
    await writeFile(join(ws, "m1/n2/new"), "x");
    await r.until(at("m1/n2/new", "create"));

    await rm(join(ws, "m1"), { recursive: true });
    await r.until(at("m1", "delete"));
    const deleted = r.seen.filter((e) => e.type === "delete").map((e) => e.path.slice(ws.length + 1));
    expect(deleted).toEqual(expect.arrayContaining(["m1/n2/new", "m1/n2", "m1/g", "m1"]));
    expect(deleted.indexOf("m1/n2/new")).toBeLessThan(deleted.indexOf("m1/n2"));
    stream.close();
  });

  it("shows an upload commit as create/modify of the target, never the temp file", async () => {
    const stream = await files.watch(".");
    const r = reader(stream);
    await files.writeFile("up.txt", "one");
    expect(await r.until(at("up.txt"))).toMatchObject({ type: "create" });
    await files.writeFile("up.txt", "two");
    await r.until(at("up.txt", "modify"));
    await writeFile(join(ws, "marker"), "");
    await r.until(at("marker"));
    expect(r.seen.some((e) => e.path.includes(".agentd-upload-") || (e.oldPath ?? "").includes(".agentd-upload-"))).toBe(false);
    stream.close();
  });

  it("resume from afterSeq replays exactly the missed events, then continues live", async () => {
    const continuous = reader(await files.watch("."));
    const b = await files.watch(".");
    const br = reader(b);
    await writeFile(join(ws, "one"), "1");
    const last = await br.until(at("one", "create"));
    b.close();
    expect((await br.next()).done).toBe(true);

    await writeFile(join(ws, "two"), "2");
    await continuous.until(at("two", "create"));
    await appendFile(join(ws, "one"), "+");
    await continuous.until(at("one", "modify"));
    await rename(join(ws, "two"), join(ws, "three"));
    await continuous.until(at("three", "rename"));
    await rm(join(ws, "one"));
    await continuous.until(at("one", "delete"));
    const missed = continuous.seen.filter((e) => e.seq > last.seq);

    const resumed = reader(await files.watch(".", { afterSeq: last.seq }));
    await resumed.until((e) => e.seq === (missed[missed.length - 1] as WatchEvent).seq);
    expect(brief(resumed.seen)).toEqual(brief(missed));
    await writeFile(join(ws, "live"), "");
    const live = await resumed.until(at("live", "create"));
    expect(live.seq).toBeGreaterThan((missed[missed.length - 1] as WatchEvent).seq);
  });

  it("resumes after every subscriber left (the watch lingers)", async () => {
    const first = await files.watch(".");
    const r = reader(first);
    await writeFile(join(ws, "a"), "");
    const last = await r.until(at("a", "create"));
    first.close();
    expect(files.activity.watches).toBe(1);
    await writeFile(join(ws, "b"), "");
    // Nobody is subscribed: prove the change was recorded by resuming and reading it.
    const resumed = reader(await files.watch(".", { afterSeq: last.seq }));
    const ev = await resumed.until(at("b"));
    expect(ev).toMatchObject({ type: "create" });
    expect(resumed.seen).toHaveLength(1);
  });

  it("a cursor the service cannot honour → out_of_range", async () => {
    const small = service({ bufferSize: 3 });
    try {
      const r = reader(await small.watch("."));
      await writeFile(join(ws, "f0"), "");
      const first = await r.until(at("f0", "create"));
      for (let i = 1; i <= 5; i++) {
        await writeFile(join(ws, `f${i}`), "");
        await r.until(at(`f${i}`, "create"));
      }
      const old = await failure(small.watch(".", { afterSeq: first.seq }));
      expect(old.code).toBe("out_of_range");
      expect(old.message).toContain("older than the retained events");
      expect(old.reason).toBe("WATCH_CURSOR_EXPIRED");
      const ahead = await failure(small.watch(".", { afterSeq: small.latestWatchSeq + 10 }));
      expect(ahead.code).toBe("out_of_range");
      expect(ahead.message).toContain("ahead of the latest");
      // Another directory was not watched while those seqs were handed out.
      await mkdir(join(ws, "other"));
      const unwatched = await failure(small.watch("other", { afterSeq: first.seq }));
      expect(unwatched.code).toBe("out_of_range");
      expect(unwatched.message).toContain("not retained");
      expect((await failure(small.watch(".", { afterSeq: -1 }))).code).toBe("invalid_argument");
    } finally {
      await small.close();
    }
  });

  it("abort ends the iterator; close releases every watcher", async () => {
    const ac = new AbortController();
    const stream = await files.watch(".", { signal: ac.signal, recursive: true });
    const r = reader(stream);
    const pending = r.next();
    ac.abort();
    expect((await pending).done).toBe(true);
    expect((await r.next()).done).toBe(true);
    expect((await failure(files.watch(".", { signal: ac.signal }))).code).toBe("canceled");

    const open = reader(await files.watch("."));
    const waiting = open.next();
    await files.close();
    expect((await waiting).done).toBe(true);
    expect(files.activity.watches).toBe(0);
  });

  it("ends with not_found when the watched directory is removed; refuses files", async () => {
    await mkdir(join(ws, "gone"));
    await writeFile(join(ws, "gone/f"), "");
    const r = reader(await files.watch("gone"));
    await rm(join(ws, "gone"), { recursive: true });
    const err = await r.until(() => false).catch((e: unknown) => e);
    expect((err as AgentdError).code).toBe("not_found");
    expect(r.seen.map((e) => e.type)).toEqual(["delete"]);
    expect((await failure(files.watch("gone"))).code).toBe("not_found");
    await writeFile(join(ws, "file"), "");
    expect((await failure(files.watch("file"))).code).toBe("failed_precondition");
  });
});
