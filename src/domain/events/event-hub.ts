/**
 * In-process fan-out of a conversation's events to its live watchers.
 *
 * Each subscriber has its own bounded queue. Publishing is O(subscribers) and never waits: a
 * subscriber whose queue is full is marked overflowed, its queue is dropped (so its memory is
 * released at once), and the next read tells its reader to end the stream; the producer and the
 * other subscribers are unaffected. Events are shared between subscribers: treat them as
 * immutable.
 */

import type { AgentdError } from "../../errors.js";
import type { Event } from "../../../gen/agentd/v1/event_pb.js";

/** Thrown by {@link Subscriber.nextBatch} once the subscriber's queue has overflowed. */
export class SubscriberOverflow extends Error {
  override readonly name = "SubscriberOverflow";
}

/** One live subscription. Read it from one consumer at a time. */
export class Subscriber {
  private queue: Event[] = [];
  private head = 0;
  private overflowed = false;
  private ended: { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly limit: number,
    private readonly detach: (s: Subscriber) => void,
  ) {}

  /** Items waiting to be read. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /**
   * Called by the hub; never blocks. The reader is not woken here: the hub wakes it with
   * {@link wakeUp} once for everything it published in this turn (an overflow wakes it at once).
   */
  push(event: Event): void {
    if (this.overflowed || this.ended !== undefined) return;
    if (this.queued >= this.limit) {
      this.overflowed = true;
      this.queue = [];
      this.head = 0;
      this.detach(this);
      this.notify();
    } else {
      this.queue.push(event);
    }
  }

  /** Wakes a reader waiting for events. */
  wakeUp(): void {
    this.notify();
  }

  /** Called by the hub: ends the subscription; queued events are still delivered first. */
  end(error: unknown): void {
    if (this.ended !== undefined) return;
    this.ended = { error };
    this.detach(this);
    this.notify();
  }

  /**
   * Every queued event, up to `max` (≥ 1), oldest first; waits while none is queued. Resolves
   * undefined when `signal` aborts or the subscription was closed.
   * @throws SubscriberOverflow when the queue overflowed; the error given to end() when ended.
   */
  async nextBatch(max: number, signal?: AbortSignal): Promise<Event[] | undefined> {
    for (;;) {
      if (signal?.aborted === true) return undefined;
      if (this.overflowed) throw new SubscriberOverflow("subscriber queue overflowed");
      if (this.head < this.queue.length) {
        const end = Math.min(this.queue.length, this.head + max);
        const batch = this.queue.slice(this.head, end);
        this.queue.fill(undefined as unknown as Event, this.head, end); // release them for GC
        this.head = end;
        if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
        return batch;
      }
      if (this.ended !== undefined) {
        if (this.ended.error === undefined) return undefined;
        throw this.ended.error;
      }
      await new Promise<void>((resolve) => {
        const onAbort = (): void => this.notify();
        signal?.addEventListener("abort", onAbort, { once: true });
        this.wake = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  }

  /** Stops receiving events (idempotent). */
  close(): void {
    this.end(undefined);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** How long a conversation's recent events outlive its last watcher. */
const RECENT_GRACE_MS = 10_000;

/**
 * The subscribers of every conversation, and — while a conversation has subscribers — its most
 * recent stored events (two subscriber queues' worth, shared objects): a watcher that
 * re-attaches (after falling behind, or a reconnect) replays from these, already encoded for the
 * wire once, instead of reading and decoding its own copies from storage. Under a burst of resumes
 * that is one copy of the recent events instead of one per watcher. The window costs at most what
 * a few more subscriber queues could hold, and goes RECENT_GRACE_MS after the last subscriber.
 */
export class EventHub {
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  /** Per watched conversation: stored events with contiguous seqs, oldest first (2 to 2.5 × queueLimit). */
  private readonly recent = new Map<string, Event[]>();
  private readonly forgetTimers = new Map<string, NodeJS.Timeout>();
  /** Subscribers given events since the last wake-up turn. */
  private readonly toWake = new Set<Subscriber>();
  private wakeScheduled = false;

  /** @param queueLimit events a subscriber may have unread before it is ended (≥ 1). */
  constructor(private readonly queueLimit: number) {
    if (!Number.isInteger(queueLimit) || queueLimit < 1) throw new RangeError(`queue limit ${queueLimit} must be a positive integer`);
  }

  /** Registers a subscriber; it receives everything published from now on. */
  subscribe(conversationId: string): Subscriber {
    let set = this.subscribers.get(conversationId);
    if (set === undefined) {
      set = new Set();
      this.subscribers.set(conversationId, set);
    }
    const s = new Subscriber(this.queueLimit, (gone) => {
      const current = this.subscribers.get(conversationId);
      current?.delete(gone);
      if (current?.size === 0) {
        this.subscribers.delete(conversationId);
        this.forgetLater(conversationId);
      }
    });
    set.add(s);
    return s;
  }

  /**
   * Delivers events, in order, to every subscriber of the conversation. Never blocks. Readers are
   * woken on the next turn of the event loop, once for everything published until then: events
   * published close together reach a reader that takes batches (Subscriber.nextBatch) together,
   * so under load a broadcast costs per batch, not per event.
   */
  publish(conversationId: string, events: readonly Event[]): void {
    const set = this.subscribers.get(conversationId);
    if (set === undefined && !this.recent.has(conversationId)) return;
    this.remember(conversationId, events);
    if (set === undefined) return;
    for (const s of set) {
      for (const e of events) s.push(e);
      this.toWake.add(s);
    }
    if (!this.wakeScheduled) {
      this.wakeScheduled = true;
      setImmediate(() => {
        this.wakeScheduled = false;
        const woken = [...this.toWake];
        this.toWake.clear();
        for (const s of woken) s.wakeUp();
      });
    }
  }

  /** Number of live subscribers of a conversation. */
  count(conversationId: string): number {
    return this.subscribers.get(conversationId)?.size ?? 0;
  }

  /**
   * The kept events with seq ≥ `fromSeq`, when the kept window reaches back to `fromSeq` (an empty
   * list when `fromSeq` is just past the newest); undefined when it does not (read storage).
   * Events stored but not yet published are not in it: a watcher subscribed first gets them live.
   */
  recentFrom(conversationId: string, fromSeq: number): Event[] | undefined {
    const w = this.recent.get(conversationId);
    if (w === undefined || w.length === 0) return undefined;
    const first = Number(w[0]!.seq);
    const last = Number(w[w.length - 1]!.seq);
    if (fromSeq < first || fromSeq > last + 1) return undefined;
    return w.slice(fromSeq - first);
  }

  /** Ends every subscriber of a conversation with `error` (e.g. when it is deleted). */
  end(conversationId: string, error: AgentdError): void {
    this.recent.delete(conversationId);
    clearTimeout(this.forgetTimers.get(conversationId));
    this.forgetTimers.delete(conversationId);
    for (const s of [...(this.subscribers.get(conversationId) ?? [])]) s.end(error);
  }

  /**
   * Drops the conversation's window unless it is watched again within RECENT_GRACE_MS: watchers
   * that all fell behind in the same instant (they are ended together) come back to resume.
   */
  private forgetLater(conversationId: string): void {
    if (!this.recent.has(conversationId)) return;
    clearTimeout(this.forgetTimers.get(conversationId));
    const timer = setTimeout(() => {
      this.forgetTimers.delete(conversationId);
      if (!this.subscribers.has(conversationId)) this.recent.delete(conversationId);
    }, RECENT_GRACE_MS);
    timer.unref();
    this.forgetTimers.set(conversationId, timer);
  }

  private remember(conversationId: string, events: readonly Event[]): void {
    let w = this.recent.get(conversationId) ?? [];
    for (const e of events) {
      const seq = Number(e.seq);
      if (seq === 0) continue; // transient: never replayed
      // Appends publish in seq order; anything else starts the window afresh, so it stays contiguous.
      if (w.length > 0 && Number(w[w.length - 1]!.seq) + 1 !== seq) w = [];
      w.push(e);
    }
    // Twice a subscriber queue, so a watcher ended for falling a queue behind resumes inside it;
    // trimmed in steps, so that keeping an event costs O(1) amortised.
    const keep = 2 * this.queueLimit;
    if (w.length > keep + Math.ceil(keep / 4)) w = w.slice(w.length - keep);
    this.recent.set(conversationId, w);
  }

  /** Ends every subscriber (server shutdown). */
  endAll(error: AgentdError): void {
    for (const id of new Set([...this.subscribers.keys(), ...this.recent.keys()])) this.end(id, error);
  }
}
