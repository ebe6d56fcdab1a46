/**
 * Keeps `size` warm shells of one mode ready and recycles them.
 *
 * - acquire(): an idle shell if there is one (most recently used first), else the oldest shell
 *   still starting, else a new one. Either way a refill is scheduled.
 * - release(): a shell whose job ended cleanly goes back to the idle set (while it has room) as
 *   soon as its next wrapper waits; acquire() prefers waiting for such a shell over spawning.
 *   A shell whose job left processes behind (children other than its waiting wrapper, or
 *   members of the job's process group) is "draining": never reused, retired once those
 *   processes are gone (it reaps them meanwhile) or on close(). Any other shell is killed.
 * - Refill: a shell taken less than `refillDelayMs` ago counts as coming back, so a stream of
 *   short commands reuses the same shells and causes no spawn at all; a shell kept longer (a
 *   long command) is replaced in the background.
 */
import { processGroupExists } from "./proc-tree.js";
import type { ShellHost } from "./shell-host.js";

/** Longest wait between refills while shells keep failing to start. */
const MAX_REFILL_BACKOFF_MS = 30_000;

export interface ShellPoolOptions {
  /** Idle shells to keep ready (0 disables pre-spawning). */
  readonly size: number;
  readonly spawn: () => ShellHost;
  readonly refillDelayMs: number;
  /** How often draining shells are checked for leftover processes. */
  readonly drainCheckMs: number;
}

export class ShellPool {
  private readonly idle: ShellHost[] = [];
  /** Pool shells still starting and not yet claimed by acquire(). */
  private readonly starting: ShellHost[] = [];
  private readonly draining = new Set<ShellHost>();
  /** Shells handed out by acquire() and not yet released, with when (ms, monotonic). */
  private readonly busy = new Map<ShellHost, number>();
  /** Released reusable shells on their way back to idle (settles when they are placed). */
  private readonly returning = new Set<Promise<void>>();
  private readonly all = new Set<ShellHost>();
  private refillTimer: NodeJS.Timeout | null = null;
  /** acquire() calls waiting for a shell to be spawned for them (see spawnSoon). */
  private readonly spawnQueue: { resolve: (host: ShellHost) => void; reject: (err: Error) => void }[] = [];
  private spawnTimer: NodeJS.Immediate | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private fullWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  /** acquire() calls waiting for any shell to become idle. */
  private idleWaiters: (() => void)[] = [];
  /** Shells in a row that died before becoming ready; slows refills down (exponential back-off). */
  private startFailures = 0;

  constructor(private readonly options: ShellPoolOptions) {}

  /** Starts filling the pool. */
  warm(): void {
    this.refill();
  }

  /** Idle shells ready now (for tests and metrics). */
  get idleCount(): number {
    return this.idle.length;
  }

  /**
   * Resolves when `size` idle shells are ready (at once if they are; the pool refills after
   * `refillDelayMs`). Rejects when the pool is closed first.
   */
  whenFull(): Promise<void> {
    if (this.idle.length >= this.options.size) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error("the shell pool is closed"));
    return new Promise((resolve, reject) => this.fullWaiters.push({ resolve, reject }));
  }

  /** Every live shell of this pool, in any state. */
  shells(): ShellHost[] {
    return [...this.all];
  }

  /** A ready, idle shell for one job. Rejects when a shell cannot be started. */
  async acquire(): Promise<ShellHost> {
    if (this.closed) throw new Error("the shell pool is closed");
    this.scheduleRefill();
    for (;;) {
      const warm = this.idle.pop();
      if (warm !== undefined) {
        if (warm.state !== "idle") continue;
        this.busy.set(warm, performance.now());
        return warm;
      }
      // A shell that just finished a job is usually idle again within a fraction of a
      // millisecond: wait for it (or any other becoming idle) rather than pay for a new one.
      if (this.returning.size === 0) break;
      await Promise.race([...this.returning, new Promise<void>((resolve) => this.idleWaiters.push(resolve))]);
      if (this.closed) throw new Error("the shell pool is closed");
    }
    const host = this.starting.shift() ?? (await this.spawnSoon());
    await host.ready;
    if (this.closed) {
      host.retire();
      throw new Error("the shell pool is closed");
    }
    this.busy.set(host, performance.now());
    return host;
  }

  /**
   * Gives a shell back after its job ended. `reusable` is the caller's verdict on the job (no
   * input left unread, no signal, terminal untouched); `jobPgid` is the job's process group.
   * A reusable shell is checked for leftovers once its next wrapper is waiting (the finished
   * job's wrapper is gone by then).
   */
  release(host: ShellHost, reusable: boolean, jobPgid: number | null): void {
    this.busy.delete(host);
    if (host.state === "dead") return;
    if (this.closed) {
      host.retire();
      return;
    }
    if (!reusable) {
      this.retireOrDrain(host, jobPgid);
      return;
    }
    const back = host.whenIdle().then((idle) => {
      this.returning.delete(back);
      if (!idle) return;
      if (this.closed) host.retire();
      else if (this.hasLeftovers(host, jobPgid)) this.drain(host);
      else if (this.idle.length < this.options.size) this.addIdle(host);
      else host.retire();
    });
    this.returning.add(back);
  }

  private retireOrDrain(host: ShellHost, jobPgid: number | null): void {
    // Leftovers are judged once the shell has settled; a shell that never settles is killed.
    void host.whenIdle().then((idle) => {
      if (!idle) return;
      if (!this.closed && this.hasLeftovers(host, jobPgid)) this.drain(host);
      else host.retire();
    });
  }

  private drain(host: ShellHost): void {
    this.draining.add(host);
    this.scheduleDrainCheck();
  }

  /** Kills every shell of the pool and waits until they are gone. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.refillTimer !== null) clearTimeout(this.refillTimer);
    if (this.drainTimer !== null) clearInterval(this.drainTimer);
    this.refillTimer = this.drainTimer = null;
    for (const w of this.fullWaiters.splice(0)) w.reject(new Error("the shell pool is closed"));
    for (const w of this.idleWaiters.splice(0)) w();
    if (this.spawnTimer !== null) clearImmediate(this.spawnTimer);
    this.spawnTimer = null;
    for (const w of this.spawnQueue.splice(0)) w.reject(new Error("the shell pool is closed"));
    const shells = [...this.all];
    for (const host of shells) host.retire();
    await Promise.all(shells.map((h) => h.dead));
  }

  private addIdle(host: ShellHost): void {
    this.idle.push(host);
    for (const w of this.idleWaiters.splice(0)) w();
    if (this.idle.length >= this.options.size) {
      for (const w of this.fullWaiters.splice(0)) w.resolve();
    }
  }

  /**
   * A new shell for acquire(), spawned in a later turn of the event loop, one per turn. Spawning
   * forks this process (milliseconds of blocked event loop each): a burst of 100 commands spawned
   * in one go would hold back even the commands that got warm shells, and the start of every
   * job, until the last fork. One per turn lets jobs start and output flow in between.
   */
  private spawnSoon(): Promise<ShellHost> {
    return new Promise<ShellHost>((resolve, reject) => {
      this.spawnQueue.push({ resolve, reject });
      this.scheduleSpawn();
    });
  }

  private scheduleSpawn(): void {
    if (this.spawnTimer !== null) return;
    this.spawnTimer = setImmediate(() => {
      this.spawnTimer = null;
      const next = this.spawnQueue.shift();
      if (next === undefined) return;
      if (this.closed) next.reject(new Error("the shell pool is closed"));
      else next.resolve(this.spawn());
      if (this.spawnQueue.length > 0) this.scheduleSpawn();
    });
  }

  private spawn(): ShellHost {
    const host = this.options.spawn();
    this.all.add(host);
    host.ready.then(
      () => (this.startFailures = 0),
      () => this.startFailures++,
    );
    void host.dead.then(() => this.forget(host));
    return host;
  }

  private forget(host: ShellHost): void {
    this.all.delete(host);
    this.draining.delete(host);
    this.busy.delete(host);
    const i = this.idle.indexOf(host);
    if (i !== -1) this.idle.splice(i, 1);
    const j = this.starting.indexOf(host);
    if (j !== -1) this.starting.splice(j, 1);
    if (this.draining.size === 0 && this.drainTimer !== null) {
      clearInterval(this.drainTimer);
      this.drainTimer = null;
    }
    // A pool shell that died on its own (not retired by us) is replaced.
    if (!this.closed) this.scheduleRefill();
  }

  private hasLeftovers(host: ShellHost, jobPgid: number | null): boolean {
    return host.leftovers().length > 0 || (jobPgid !== null && processGroupExists(jobPgid));
  }

  private scheduleRefill(delayMs = this.options.refillDelayMs): void {
    if (this.closed || this.refillTimer !== null) return;
    const delay = Math.min(Math.max(delayMs, this.options.refillDelayMs * 2 ** this.startFailures), MAX_REFILL_BACKOFF_MS);
    this.refillTimer = setTimeout(() => {
      this.refillTimer = null;
      this.refill();
    }, delay);
  }

  private refill(): void {
    if (this.closed) return;
    // Shells taken recently, or released and settling, are expected back; look again when the
    // oldest taken one is overdue.
    const now = performance.now();
    let returning = this.returning.size;
    let recheckAt = Infinity;
    for (const since of this.busy.values()) {
      const due = since + this.options.refillDelayMs;
      if (due > now) {
        returning++;
        recheckAt = Math.min(recheckAt, due);
      }
    }
    if (recheckAt !== Infinity) this.scheduleRefill(recheckAt - now);
    while (this.idle.length + this.starting.length + returning < this.options.size) {
      const host = this.spawn();
      this.starting.push(host);
      host.ready.then(
        () => {
          const i = this.starting.indexOf(host);
          if (i === -1) return; // claimed by acquire() meanwhile
          this.starting.splice(i, 1);
          if (this.closed) host.retire();
          else this.addIdle(host);
        },
        () => {}, // died while starting: forget() handles it
      );
    }
  }

  private scheduleDrainCheck(): void {
    if (this.drainTimer !== null) return;
    this.drainTimer = setInterval(() => {
      for (const host of this.draining) {
        if (host.leftovers().length === 0) {
          this.draining.delete(host);
          host.retire();
        }
      }
      if (this.draining.size === 0 && this.drainTimer !== null) {
        clearInterval(this.drainTimer);
        this.drainTimer = null;
      }
    }, this.options.drainCheckMs);
    this.drainTimer.unref();
  }
}
