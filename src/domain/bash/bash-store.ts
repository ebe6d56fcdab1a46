/**
 * What the bash engine needs from persistence. Small and byte-oriented so that a LevelDB
 * implementation is a thin adapter (keys `(command_id, offset)` for output, a global dense `seq`
 * for events); `MemoryBashStore` is the reference implementation used by the unit tests.
 *
 * Contract for every implementation:
 * - Writes resolve once the data is durable (what a client was told survives a crash).
 * - The engine serialises writes per command: output appends of one command arrive in offset
 *   order with contiguous offsets, and its events in order. Different commands interleave.
 * - Output is one byte stream per command (stdout and stderr in arrival order; PTY output as is).
 *   Stream separation, where it matters (pipe mode), lives in the BashOutput events.
 */
import type { BashCommandInfo, BashEvent, BashEventKind } from "./bash-types.js";

/** Filters and paging for `searchEvents` (OpenHands `bash_events/search`). Omitted filters do not filter. */
export interface BashEventQuery {
  readonly kind?: BashEventKind;
  readonly commandId?: string;
  /** Only events with timestamp ≥ this instant (ms since the epoch). */
  readonly timestampGteMs?: number;
  /** Only events with timestamp < this instant (ms since the epoch). */
  readonly timestampLtMs?: number;
  /** Drops BashOutput events with `order` ≤ this; BashCommand events are unaffected. */
  readonly orderGt?: number;
  /** Newest first. Default oldest first (append order). */
  readonly sortDesc?: boolean;
  /** Opaque token from a previous page of the same query. */
  readonly pageToken?: string;
  /** Page size, ≥ 1 (the RPC layer caps it at 100). */
  readonly limit: number;
}

export interface BashEventPage {
  readonly items: BashEvent[];
  /** Token for the next page, or null at the end. */
  readonly nextPageToken: string | null;
}

/** A stored event with its position in the global event log. */
export interface StoredBashEvent {
  /** Dense from 1 in append order, never reused (not even after `clearEvents`). */
  readonly seq: number;
  readonly event: BashEvent;
}

/**
 * Writes stored atomically with an event (all or nothing, one fsync): a command's record, and the
 * next chunk of the event's command's output.
 */
export interface AttachedWrites {
  readonly command?: BashCommandInfo;
  readonly output?: { readonly offset: number; readonly data: Uint8Array };
}

export interface BashStore {
  /** Creates or replaces a command's record. */
  saveCommand(info: BashCommandInfo): Promise<void>;
  /** The command's record, or null. */
  getCommand(commandId: string): Promise<BashCommandInfo | null>;
  /** Every command record (any order). Used at start-up to find commands that were running. */
  listCommands(): Promise<BashCommandInfo[]>;

  /**
   * Stores `data` (non-empty) as the bytes of the command's output starting at byte `offset`,
   * which is always the current stored length (appends are contiguous).
   */
  appendOutput(commandId: string, offset: number, data: Uint8Array): Promise<void>;
  /**
   * Up to `maxBytes` stored bytes starting at byte `offset`; empty when `offset` is at or past the
   * stored end.
   */
  readOutput(commandId: string, offset: number, maxBytes: number): Promise<Uint8Array>;
  /** Number of stored output bytes of the command (0 when none). */
  outputLength(commandId: string): Promise<number>;

  /**
   * Appends events of one command to the global log, in order, with `attached` writes in the same
   * atomic write (output of their command: BashCommand's own id, BashOutput's command_id);
   * resolves with their seqs once durable.
   */
  appendEvents(events: readonly BashEvent[], attached?: AttachedWrites): Promise<number[]>;
  /** appendEvents with one event; resolves with its seq. */
  appendEvent(event: BashEvent, attached?: AttachedWrites): Promise<number>;
  /** The event with this id, or null. */
  getEvent(eventId: string): Promise<BashEvent | null>;
  /** A page of events matching `query`. Throws AgentdError invalid_argument for a bad page token. */
  searchEvents(query: BashEventQuery): Promise<BashEventPage>;
  /** Up to `limit` events with seq > `afterSeq`, ascending (replay for live event streams). */
  readEvents(afterSeq: number, limit: number): Promise<StoredBashEvent[]>;
  /** Deletes every stored event (seqs keep counting up); resolves with how many were deleted. */
  clearEvents(): Promise<number>;
}
