// Directory watches with a resumable cursor.
//
// Contract
// - Every event gets a `seq` from one counter per DirWatchService: strictly increasing, never
//   reused; not dense (starting or closing the watch of a directory consumes a number too, so a
//   cursor from before that point can never be mistaken for "nothing missed").
// - Subscribers of the same directory (same recursive flag) share one underlying watch ("tree").
//   A tree outlives its last subscriber by `lingerMs`, so a client that reconnects with
//   `afterSeq` within that time gets exactly the events it missed (replayed from a bounded ring
//   buffer of `bufferSize` events shared by all trees), then live events, with no gap and no
//   duplicate.
// - A cursor that cannot be honoured is out_of_range: ahead of the latest seq (e.g. the server
//   restarted), older than the oldest retained event of that tree, or older than the start of the
//   current watch of that directory (nobody was watching in between).
// - Events: create, modify (a regular file's size or mtime changed, or it was replaced by a file
//   of the same type), delete, rename (old and new name seen in one batch with the same inode,
//   within the tree). Changes within one coalescing window (`coalesceMs`) merge: a file created
//   and removed inside it yields nothing; many writes yield one modify. When a directory goes
//   away, entries still known inside it are reported deleted first (deepest first).
// - Upload temp files (`.<name>.agentd-upload-<id>`) are never reported; committing an upload
//   shows as create (new file) or modify (replaced file) of the target.
// - Mechanism: fs.watch per directory (recursive fs.watch is not available on Linux in Node 20);
//   new subdirectories get their own watch; each event re-lstats the named entries and diffs them
//   against a snapshot. If fs.watch fails (inotify limits, unsupported file system) the tree
//   switches to polling every `pollIntervalMs` with the same diff.
// - The watched directory itself being removed ends its subscribers with not_found.

import { type FSWatcher, watch as fsWatch } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { AgentdError } from "../../errors.js";
import { type FileType, fileTypeOf } from "./file-info.js";
import { errnoCode, mapFsError } from "./fs-errors.js";
import { isUploadTempName } from "./upload-sessions.js";
import type { ResolvedPath } from "./workspace-path.js";

export type WatchEventType = "create" | "modify" | "delete" | "rename";

/** One change under a watched directory. */
export interface WatchEvent {
  /** Cursor: resume with `afterSeq` = the last seq you processed. */
  seq: number;
  type: WatchEventType;
  /** Absolute path of the entry (its new path for rename), under the watched path as addressed. */
  path: string;
  /** rename only: the previous path. */
  oldPath?: string;
  /** What the entry is now (create/modify/rename) or was (delete). */
  fileType: FileType;
  /** When the change was noticed, ms since the epoch (per the service clock). */
  timeMs: number;
}

export interface WatchOptions {
  /** Also watch every subdirectory, present and future (default false: direct children only). */
  recursive?: boolean;
  /** Replay retained events with a larger seq first; omitted = live events only. */
  afterSeq?: number;
  /** Aborting ends the iteration (normally, without an error). */
  signal?: AbortSignal;
}

export interface DirWatchServiceOptions {
  /** ms since the epoch, for `timeMs`. */
  clock: () => number;
  /** Events retained for resume, over all directories. Default 4096. */
  bufferSize?: number;
  /** How long a directory stays watched after its last subscriber left. Default 60 s. */
  lingerMs?: number;
  /** Events a subscriber may have queued before it is ended with resource_exhausted. Default 10000. */
  maxQueue?: number;
  /** Window in which fs notifications are batched before they are diffed. Default 20 ms. */
  coalesceMs?: number;
  /** Rescan interval when polling. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Skip fs.watch and always poll (for file systems without inotify, and tests). */
  forcePolling?: boolean;
}

interface Snap {
  dev: number;
  ino: number;
  type: FileType;
  size: number;
  mtimeMs: number;
}

interface DirState {
  /** Current path relative to the tree root; updated when the directory is renamed. */
  rel: string;
  watcher: FSWatcher | undefined;
  entries: Map<string, Snap>;
}

/** An event as retained: paths relative to the tree root ("" is the root, "/"-separated). */
interface StoredEvent {
  seq: number;
  treeKey: string;
  type: WatchEventType;
  rel: string;
  oldRel?: string;
  fileType: FileType;
  timeMs: number;
}

function relJoin(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

function isUnder(rel: string, dir: string): boolean {
  return rel === dir || rel.startsWith(`${dir}/`);
}

async function snapOf(abs: string): Promise<Snap | undefined> {
  try {
    const st = await lstat(abs);
    return { dev: st.dev, ino: st.ino, type: fileTypeOf(st), size: st.size, mtimeMs: st.mtimeMs };
  } catch (err) {
    // Gone, or not reachable by us: absent. Anything else (EMFILE, EIO) must not be mistaken for
    // a deletion: it fails the watch instead.
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EACCES") return undefined;
    throw err;
  }
}

/** One subscription; the consumer side of a WatchStream. */
class Subscriber {
  readonly #queue: WatchEvent[] = [];
  #head = 0;
  #wake: (() => void) | undefined;
  #ended = false;
  #error: unknown;
  readonly #cleanups: (() => void)[] = [];
  lastSeq: number;

  constructor(
    readonly lexicalRoot: string,
    startSeq: number,
    private readonly maxQueue: number,
    private readonly onEnd: (s: Subscriber) => void,
  ) {
    this.lastSeq = startSeq;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(ev: StoredEvent): void {
    if (this.#ended) return;
    if (this.#queue.length - this.#head >= this.maxQueue) {
      this.end(
        new AgentdError("resource_exhausted", `watch of ${this.lexicalRoot} fell behind by ${this.maxQueue} events; resume with afterSeq ${this.lastSeq}`, {
          after_seq: String(this.lastSeq),
        }, "WATCH_CONSUMER_TOO_SLOW"),
      );
      return;
    }
    const out: WatchEvent = { seq: ev.seq, type: ev.type, path: join(this.lexicalRoot, ev.rel), fileType: ev.fileType, timeMs: ev.timeMs };
    if (ev.oldRel !== undefined) out.oldPath = join(this.lexicalRoot, ev.oldRel);
    this.#queue.push(out);
    this.#wake?.();
  }

  /** Runs `fn` once when the stream ends (however it ends). */
  onEnded(fn: () => void): void {
    this.#cleanups.push(fn);
  }

  /**
   * Ends the stream. Without an error (abort, close) it stops at once and queued events are
   * dropped; with one, the consumer first drains what is queued, then gets the error.
   */
  end(error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    if (error === undefined) {
      this.#queue.length = 0;
      this.#head = 0;
    }
    this.#wake?.();
    this.onEnd(this);
    for (const fn of this.#cleanups.splice(0)) fn();
  }

  async *events(): AsyncGenerator<WatchEvent> {
    try {
      for (;;) {
        if (this.#head < this.#queue.length) {
          const ev = this.#queue[this.#head++] as WatchEvent;
          if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
            this.#queue.splice(0, this.#head);
            this.#head = 0;
          }
          this.lastSeq = ev.seq;
          yield ev;
          continue;
        }
        if (this.#ended) {
          if (this.#error !== undefined) throw this.#error;
          return;
        }
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
      }
    } finally {
      this.end();
    }
  }
}

/**
 * A live watch: iterate it (once) for events. Ends when the signal aborts, `close()` is called or
 * the service closes; throws not_found if the directory is removed, resource_exhausted if the
 * consumer falls too far behind. Call `close()` if you stop without iterating to the end.
 */
export class WatchStream implements AsyncIterable<WatchEvent> {
  #iterating = false;

  constructor(
    /** Latest seq when the watch was established: a valid `afterSeq` for a later resume. */
    readonly startSeq: number,
    private readonly sub: Subscriber,
  ) {}

  close(): void {
    this.sub.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    if (this.#iterating) throw new AgentdError("failed_precondition", "a watch stream can be iterated only once");
    this.#iterating = true;
    return this.sub.events();
  }
}

type Emit = (tree: WatchTree, type: WatchEventType, rel: string, fileType: FileType, oldRel?: string) => void;

/** The underlying watch of one directory, shared by its subscribers. */
class WatchTree {
  readonly subs = new Set<Subscriber>();
  readonly dirs = new Map<string, DirState>();
  /** Highest seq of this tree's events evicted from the ring (resume below it is impossible). */
  evictedUpTo = 0;
  closed = false;
  lingerTimer: NodeJS.Timeout | undefined;
  /** Names to re-examine per directory. Keyed by state, not path, so a rename in between is harmless. */
  #pending = new Map<DirState, Set<string> | "all">();
  #flushTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #polling: boolean;
  /** Serialises snapshot work: start, flushes and polls never interleave. */
  #chain: Promise<void> = Promise.resolve();
  #rootIno = 0;

  constructor(
    readonly key: string,
    readonly realRoot: string,
    readonly recursive: boolean,
    /** Events with a larger seq are covered by this tree. */
    readonly startSeq: number,
    private readonly opts: Required<Pick<DirWatchServiceOptions, "coalesceMs" | "pollIntervalMs" | "forcePolling">>,
    private readonly emit: Emit,
    private readonly onFail: (tree: WatchTree, err: unknown) => void,
  ) {
    this.#polling = opts.forcePolling;
  }

  /** Takes the initial snapshot and starts watching. Throws not_found / failed_precondition. */
  async start(shown: string): Promise<void> {
    let st;
    try {
      st = await lstat(this.realRoot);
    } catch (err) {
      throw mapFsError(err, shown);
    }
    if (!st.isDirectory()) throw new AgentdError("failed_precondition", `not a directory: ${shown}`, { path: shown });
    this.#rootIno = st.ino;
    await this.#serial(() => this.#addDir("", false));
    if (this.#polling) this.#startPolling();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.#flushTimer);
    clearInterval(this.#pollTimer);
    clearTimeout(this.lingerTimer);
    for (const d of this.dirs.values()) d.watcher?.close();
    this.dirs.clear();
    this.#pending.clear();
  }

  #abs(rel: string): string {
    return rel === "" ? this.realRoot : join(this.realRoot, rel);
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(async () => {
      if (!this.closed) await fn();
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }

  #note(state: DirState, name: string | null): void {
    if (this.closed) return;
    const cur = this.#pending.get(state);
    if (name === null) this.#pending.set(state, "all");
    else if (cur === undefined) this.#pending.set(state, new Set([name]));
    else if (cur !== "all") cur.add(name);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#flushTimer !== undefined || this.closed) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#serial(() => this.#flush()).catch((err: unknown) => this.onFail(this, err));
    }, this.opts.coalesceMs);
  }

  #startPolling(): void {
    if (this.#pollTimer !== undefined || this.closed) return;
    this.#pollTimer = setInterval(() => {
      for (const state of this.dirs.values()) this.#pending.set(state, "all");
      this.#schedule();
    }, this.opts.pollIntervalMs);
  }

  /** fs.watch failed for some directory: switch the whole tree to polling. */
  #toPolling(): void {
    if (this.#polling || this.closed) return;
    this.#polling = true;
    for (const d of this.dirs.values()) {
      d.watcher?.close();
      d.watcher = undefined;
    }
    for (const state of this.dirs.values()) this.#pending.set(state, "all");
    this.#schedule();
    this.#startPolling();
  }

  #watchDir(state: DirState): void {
    if (this.#polling) return;
    try {
      // inotify follows the directory's inode, so after a rename this watcher keeps reporting
      // for the same DirState, whose `rel` is updated by #moveDir.
      const w = fsWatch(this.#abs(state.rel), (_event, name) => this.#note(state, typeof name === "string" ? name : null));
      w.on("error", () => this.#toPolling());
      state.watcher = w;
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT" || code === "ENOTDIR") return; // vanished: the parent's diff reports it
      this.#toPolling();
    }
  }

  /** Starts tracking directory `rel` (watch first, then snapshot, so nothing falls in between). */
  async #addDir(rel: string, announce: boolean): Promise<void> {
    if (this.closed || this.dirs.has(rel)) return;
    const state: DirState = { rel, watcher: undefined, entries: new Map() };
    this.dirs.set(rel, state);
    this.#watchDir(state);
    let names: string[];
    try {
      names = await readdir(this.#abs(rel));
    } catch (err) {
      const code = errnoCode(err);
      if (code !== "ENOENT" && code !== "ENOTDIR" && code !== "EACCES") throw err;
      this.#dropDir(rel);
      return;
    }
    names.sort();
    for (const name of names) {
      if (state.entries.has(name)) continue;
      const childRel = relJoin(rel, name);
      const snap = await snapOf(this.#abs(childRel));
      if (snap === undefined) continue;
      state.entries.set(name, snap);
      if (announce && !isUploadTempName(name)) this.emit(this, "create", childRel, snap.type);
      if (snap.type === "directory" && this.recursive) await this.#addDir(childRel, announce);
    }
  }

  /** Stops tracking `rel` and everything below it. */
  #dropDir(rel: string): void {
    for (const [k, d] of this.dirs) {
      if (isUnder(k, rel)) {
        d.watcher?.close();
        this.dirs.delete(k);
      }
    }
  }

  /** A tracked directory was renamed within the tree: re-key it and everything below it. */
  #moveDir(oldRel: string, newRel: string): void {
    const moved = [...this.dirs].filter(([k]) => isUnder(k, oldRel));
    for (const [k] of moved) this.dirs.delete(k);
    for (const [k, state] of moved) {
      state.rel = newRel + k.slice(oldRel.length);
      this.dirs.set(state.rel, state);
    }
  }

  /** Reports every still-known entry below directory `rel` as deleted, deepest first. */
  #reportSubtreeDeleted(rel: string): void {
    const d = this.dirs.get(rel);
    if (d === undefined) return;
    for (const [name, snap] of [...d.entries].reverse()) {
      const childRel = relJoin(rel, name);
      if (snap.type === "directory") this.#reportSubtreeDeleted(childRel);
      if (!isUploadTempName(name)) this.emit(this, "delete", childRel, snap.type);
    }
    d.entries.clear();
  }

  async #rootGone(): Promise<boolean> {
    const snap = await snapOf(this.realRoot);
    return snap === undefined || snap.type !== "directory" || snap.ino !== this.#rootIno;
  }

  async #flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = new Map();
    const appeared: { rel: string; snap: Snap; replaced: Snap | undefined }[] = [];
    const gone: { rel: string; snap: Snap }[] = [];
    const modified: { rel: string; snap: Snap }[] = [];

    const rootState = this.dirs.get("");
    const rootBatch = rootState === undefined ? undefined : batch.get(rootState);
    if (rootBatch !== undefined && (rootBatch === "all" || rootBatch.has(basename(this.realRoot))) && (await this.#rootGone())) {
      this.#reportSubtreeDeleted("");
      this.onFail(this, new AgentdError("not_found", `watched directory was removed: ${this.realRoot}`));
      return;
    }

    for (const [state, names] of batch) {
      if (this.dirs.get(state.rel) !== state) continue; // dropped meanwhile (its directory went away)
      const dirRel = state.rel;
      let list: Iterable<string>;
      if (names === "all") {
        let onDisk: string[];
        try {
          onDisk = await readdir(this.#abs(dirRel));
        } catch (err) {
          const code = errnoCode(err);
          if (code !== "ENOENT" && code !== "ENOTDIR" && code !== "EACCES") throw err;
          onDisk = []; // the directory itself is gone: everything known in it is gone
        }
        list = new Set([...state.entries.keys(), ...onDisk].sort());
      } else {
        list = [...names].sort();
      }
      for (const name of list) {
        const rel = relJoin(dirRel, name);
        const now = await snapOf(this.#abs(rel));
        const before = state.entries.get(name);
        if (now === undefined) {
          if (before !== undefined) {
            state.entries.delete(name);
            gone.push({ rel, snap: before });
          }
          continue;
        }
        state.entries.set(name, now);
        if (before === undefined) appeared.push({ rel, snap: now, replaced: undefined });
        else if (before.ino !== now.ino || before.dev !== now.dev || before.type !== now.type) {
          appeared.push({ rel, snap: now, replaced: before });
        } else if (now.type === "file" && (now.size !== before.size || now.mtimeMs !== before.mtimeMs)) {
          modified.push({ rel, snap: now });
        }
      }
    }

    // Pair disappearances with appearances of the same inode: renames within the tree.
    const goneByIno = new Map<string, number>();
    gone.forEach((g, i) => goneByIno.set(`${g.snap.dev}:${g.snap.ino}`, i));
    const paired = new Set<number>();
    const creates: typeof appeared = [];
    for (const a of appeared) {
      const i = goneByIno.get(`${a.snap.dev}:${a.snap.ino}`);
      if (i === undefined || paired.has(i)) {
        creates.push(a);
        continue;
      }
      paired.add(i);
      const g = gone[i] as { rel: string; snap: Snap };
      const newName = basename(a.rel);
      if (isUploadTempName(basename(g.rel))) {
        // An upload commit: the temp file was renamed over (or onto) the target.
        if (!isUploadTempName(newName)) this.emit(this, a.replaced === undefined ? "create" : "modify", a.rel, a.snap.type);
      } else if (isUploadTempName(newName)) {
        this.emit(this, "delete", g.rel, g.snap.type);
      } else {
        this.emit(this, "rename", a.rel, a.snap.type, g.rel);
      }
      if (a.snap.type === "directory" && this.recursive) {
        this.#dropDir(a.rel); // a directory it replaced, if any
        if (this.dirs.has(g.rel)) this.#moveDir(g.rel, a.rel);
        else await this.#addDir(a.rel, true);
      }
    }
    // Deletes deepest first (children before their directory), creates shallowest first.
    const depth = (rel: string): number => rel.split("/").length;
    const deletes = gone.filter((_, i) => !paired.has(i)).sort((x, y) => depth(y.rel) - depth(x.rel));
    creates.sort((x, y) => depth(x.rel) - depth(y.rel));
    for (const g of deletes) {
      if (g.snap.type === "directory") {
        this.#reportSubtreeDeleted(g.rel);
        this.#dropDir(g.rel);
      }
      if (!isUploadTempName(basename(g.rel))) this.emit(this, "delete", g.rel, g.snap.type);
    }
    for (const a of creates) {
      if (isUploadTempName(basename(a.rel))) continue;
      if (a.replaced !== undefined && a.replaced.type === a.snap.type && a.snap.type !== "directory") {
        this.emit(this, "modify", a.rel, a.snap.type);
        continue;
      }
      if (a.replaced !== undefined) {
        if (a.replaced.type === "directory") {
          this.#reportSubtreeDeleted(a.rel);
          this.#dropDir(a.rel);
        }
        this.emit(this, "delete", a.rel, a.replaced.type);
      }
      this.emit(this, "create", a.rel, a.snap.type);
      if (a.snap.type === "directory" && this.recursive) await this.#addDir(a.rel, true);
    }
    for (const m of modified) {
      if (!isUploadTempName(basename(m.rel))) this.emit(this, "modify", m.rel, m.snap.type);
    }
  }
}

/** Bounded FIFO of retained events. */
class Ring {
  readonly #buf: (StoredEvent | undefined)[];
  #start = 0;
  #count = 0;

  constructor(readonly capacity: number) {
    this.#buf = new Array<StoredEvent | undefined>(capacity);
  }

  /** Appends; returns the evicted event when full. */
  push(ev: StoredEvent): StoredEvent | undefined {
    if (this.#count < this.capacity) {
      this.#buf[(this.#start + this.#count++) % this.capacity] = ev;
      return undefined;
    }
    const evicted = this.#buf[this.#start];
    this.#buf[this.#start] = ev;
    this.#start = (this.#start + 1) % this.capacity;
    return evicted;
  }

  *after(seq: number, treeKey: string): Generator<StoredEvent> {
    for (let i = 0; i < this.#count; i++) {
      const ev = this.#buf[(this.#start + i) % this.capacity] as StoredEvent;
      if (ev.seq > seq && ev.treeKey === treeKey) yield ev;
    }
  }
}

/** All directory watches of one file service, with one seq counter and one retention ring. */
export class DirWatchService {
  readonly #trees = new Map<string, WatchTree>();
  /** Trees being started, so concurrent watch() calls of one directory share one. */
  readonly #starting = new Map<string, Promise<WatchTree>>();
  readonly #ring: Ring;
  readonly #clock: () => number;
  readonly #lingerMs: number;
  readonly #maxQueue: number;
  readonly #treeOpts: Required<Pick<DirWatchServiceOptions, "coalesceMs" | "pollIntervalMs" | "forcePolling">>;
  #seq = 0;
  #closed = false;

  constructor(opts: DirWatchServiceOptions) {
    this.#clock = opts.clock;
    this.#ring = new Ring(Math.max(1, opts.bufferSize ?? 4096));
    this.#lingerMs = opts.lingerMs ?? 60_000;
    this.#maxQueue = opts.maxQueue ?? 10_000;
    this.#treeOpts = {
      coalesceMs: opts.coalesceMs ?? 20,
      pollIntervalMs: opts.pollIntervalMs ?? 1_000,
      forcePolling: opts.forcePolling ?? false,
    };
  }

  /** The latest seq handed out (0 before the first event). */
  get latestSeq(): number {
    return this.#seq;
  }

  /** Directories currently watched (including lingering ones); for tests and metrics. */
  get activeWatches(): number {
    return this.#trees.size;
  }

  /**
   * Watches the directory `resolved.real`; returns once the watch is established (changes made
   * after this resolves are seen). Replays retained events after `afterSeq` first.
   * Throws not_found / failed_precondition (not a directory), out_of_range (cursor not honoured),
   * invalid_argument (bad afterSeq), unavailable (service closed).
   */
  async watch(resolved: ResolvedPath, opts: WatchOptions = {}): Promise<WatchStream> {
    if (this.#closed) throw new AgentdError("unavailable", "file service is closed");
    const { afterSeq } = opts;
    if (afterSeq !== undefined && (!Number.isSafeInteger(afterSeq) || afterSeq < 0)) {
      throw new AgentdError("invalid_argument", `afterSeq must be a non-negative integer, got ${String(afterSeq)}`);
    }
    if (afterSeq !== undefined && afterSeq > this.#seq) {
      throw new AgentdError("out_of_range", `watch cursor ${afterSeq} is ahead of the latest event seq ${this.#seq} (the server may have restarted); watch without afterSeq`, {
        after_seq: String(afterSeq),
        latest_seq: String(this.#seq),
      }, "WATCH_CURSOR_AHEAD");
    }
    if (opts.signal?.aborted) throw new AgentdError("canceled", `watch of ${resolved.path} was canceled`);
    const recursive = opts.recursive ?? false;
    const key = `${recursive ? "r" : "d"}:${resolved.real}`;
    const tree = await this.#treeFor(key, resolved, recursive);

    // From here to the subscription nothing awaits: the replay and the live feed meet exactly.
    if (this.#closed || tree.closed) throw new AgentdError("unavailable", `watch of ${resolved.path} was closed while starting`);
    if (afterSeq !== undefined) {
      if (afterSeq < tree.startSeq) {
        throw new AgentdError("out_of_range", `events after seq ${afterSeq} under ${resolved.path} were not retained: the directory is watched only since seq ${tree.startSeq}`, {
          after_seq: String(afterSeq),
          oldest_seq: String(tree.startSeq),
        }, "WATCH_CURSOR_EXPIRED");
      }
      if (afterSeq < tree.evictedUpTo) {
        throw new AgentdError("out_of_range", `watch cursor ${afterSeq} is older than the retained events under ${resolved.path} (oldest resumable seq ${tree.evictedUpTo})`, {
          after_seq: String(afterSeq),
          oldest_seq: String(tree.evictedUpTo),
        }, "WATCH_CURSOR_EXPIRED");
      }
    }
    clearTimeout(tree.lingerTimer);
    tree.lingerTimer = undefined;
    const startSeq = this.#seq;
    const sub = new Subscriber(resolved.path, afterSeq ?? startSeq, this.#maxQueue, (s) => this.#unsubscribe(tree, s));
    if (afterSeq !== undefined) for (const ev of this.#ring.after(afterSeq, key)) sub.push(ev);
    tree.subs.add(sub);
    if (opts.signal !== undefined) {
      const signal = opts.signal;
      const onAbort = (): void => sub.end();
      signal.addEventListener("abort", onAbort, { once: true });
      // Drop the listener when the stream ends some other way (no leak on long-lived signals).
      sub.onEnded(() => signal.removeEventListener("abort", onAbort));
    }
    return new WatchStream(startSeq, sub);
  }

  /** Ends every watch (iterators finish normally) and releases all watchers and timers. */
  close(): void {
    this.#closed = true;
    for (const tree of [...this.#trees.values()]) {
      for (const s of [...tree.subs]) s.end();
      this.#closeTree(tree);
    }
  }

  async #treeFor(key: string, resolved: ResolvedPath, recursive: boolean): Promise<WatchTree> {
    const existing = this.#trees.get(key);
    if (existing !== undefined) return existing;
    const pending = this.#starting.get(key);
    if (pending !== undefined) return pending;
    // The tree reserves a seq of its own: a cursor handed out before it existed (for another
    // directory, or for an earlier watch of this one) is then always below its start.
    const startSeq = ++this.#seq;
    const tree = new WatchTree(key, resolved.real, recursive, startSeq, this.#treeOpts, this.#emit, (t, err) => this.#fail(t, err));
    const starting = tree.start(resolved.path).then(
      () => {
        this.#starting.delete(key);
        if (this.#closed) {
          tree.close();
          return tree;
        }
        this.#trees.set(key, tree);
        this.#armLinger(tree); // until someone subscribes
        return tree;
      },
      (err: unknown) => {
        this.#starting.delete(key);
        tree.close();
        throw err;
      },
    );
    this.#starting.set(key, starting);
    return starting;
  }

  readonly #emit: Emit = (tree, type, rel, fileType, oldRel) => {
    const ev: StoredEvent = { seq: ++this.#seq, treeKey: tree.key, type, rel, fileType, timeMs: this.#clock() };
    if (oldRel !== undefined) ev.oldRel = oldRel;
    const evicted = this.#ring.push(ev);
    if (evicted !== undefined) {
      const owner = this.#trees.get(evicted.treeKey);
      if (owner !== undefined && evicted.seq > owner.evictedUpTo) owner.evictedUpTo = evicted.seq;
    }
    for (const s of tree.subs) s.push(ev);
  };

  #fail(tree: WatchTree, err: unknown): void {
    const error = err instanceof AgentdError ? err : mapFsError(err, tree.realRoot);
    for (const s of [...tree.subs]) s.end(error);
    this.#closeTree(tree);
  }

  #unsubscribe(tree: WatchTree, sub: Subscriber): void {
    tree.subs.delete(sub);
    if (tree.subs.size === 0 && !tree.closed) this.#armLinger(tree);
  }

  #armLinger(tree: WatchTree): void {
    clearTimeout(tree.lingerTimer);
    if (tree.subs.size > 0) return;
    tree.lingerTimer = setTimeout(() => this.#closeTree(tree), this.#lingerMs);
    tree.lingerTimer.unref();
  }

  #closeTree(tree: WatchTree): void {
    if (tree.closed) return;
    tree.close();
    if (this.#trees.get(tree.key) === tree) this.#trees.delete(tree.key);
    // Gap marker: changes while nobody watches get no seq, so a cursor from before this point
    // must not be accepted by a later watch of the same directory (it would claim "no gap").
    this.#seq++;
  }
}
