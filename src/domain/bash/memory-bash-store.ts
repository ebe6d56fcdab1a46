/**
 * In-memory BashStore: the reference implementation of the contract in bash-store.ts, used by
 * the engine's unit tests (and usable for an ephemeral server). Everything is lost on exit.
 * Stored arrays are kept as given: callers must not mutate them afterwards.
 */
import { AgentdError } from "../../errors.js";
import type { AttachedWrites, BashEventPage, BashEventQuery, BashStore, StoredBashEvent } from "./bash-store.js";
import { commandIdOf, type BashCommandInfo, type BashEvent } from "./bash-types.js";

interface OutputLog {
  /** Chunks in offset order; chunk i covers [offsets[i], offsets[i] + chunks[i].length). */
  readonly offsets: number[];
  readonly chunks: Uint8Array[];
  length: number;
}

export class MemoryBashStore implements BashStore {
  private readonly commands = new Map<string, BashCommandInfo>();
  private readonly outputs = new Map<string, OutputLog>();
  private events: StoredBashEvent[] = [];
  private readonly eventsById = new Map<string, StoredBashEvent>();
  private lastSeq = 0;

  async saveCommand(info: BashCommandInfo): Promise<void> {
    this.commands.set(info.id, info);
  }

  async getCommand(commandId: string): Promise<BashCommandInfo | null> {
    return this.commands.get(commandId) ?? null;
  }

  async listCommands(): Promise<BashCommandInfo[]> {
    return [...this.commands.values()];
  }

  async appendOutput(commandId: string, offset: number, data: Uint8Array): Promise<void> {
    this.checkOutput(commandId, offset, data);
    this.putOutput(commandId, offset, data);
  }

  private checkOutput(commandId: string, offset: number, data: Uint8Array): void {
    const length = this.outputs.get(commandId)?.length ?? 0;
    if (offset !== length) throw new AgentdError("invalid_argument", `output of command ${commandId} appended at ${offset}, expected ${length}`);
    if (data.byteLength === 0) throw new AgentdError("invalid_argument", `empty output chunk for command ${commandId}`);
  }

  private putOutput(commandId: string, offset: number, data: Uint8Array): void {
    let log = this.outputs.get(commandId);
    if (log === undefined) {
      log = { offsets: [], chunks: [], length: 0 };
      this.outputs.set(commandId, log);
    }
    log.offsets.push(offset);
    log.chunks.push(data);
    log.length += data.byteLength;
  }

  async readOutput(commandId: string, offset: number, maxBytes: number): Promise<Uint8Array> {
    const log = this.outputs.get(commandId);
    if (log === undefined || offset >= log.length || maxBytes <= 0) return new Uint8Array(0);
    // The last chunk starting at or before `offset` contains it.
    let lo = 0;
    let hi = log.offsets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (log.offsets[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    const want = Math.min(maxBytes, log.length - offset);
    const first = log.chunks[lo]!;
    const from = offset - log.offsets[lo]!;
    if (first.byteLength - from >= want) return first.subarray(from, from + want);
    const out = new Uint8Array(want);
    let at = 0;
    for (let i = lo; at < want; i++) {
      const chunk = log.chunks[i]!;
      const start = i === lo ? from : 0;
      const take = Math.min(chunk.byteLength - start, want - at);
      out.set(chunk.subarray(start, start + take), at);
      at += take;
    }
    return out;
  }

  async outputLength(commandId: string): Promise<number> {
    return this.outputs.get(commandId)?.length ?? 0;
  }

  async appendEvents(events: readonly BashEvent[], attached: AttachedWrites = {}): Promise<number[]> {
    // All checks first: nothing is written when one fails.
    const ids = new Set<string>();
    for (const event of events) {
      if (this.eventsById.has(event.id) || ids.has(event.id)) throw new AgentdError("already_exists", `bash event ${event.id} already exists`);
      ids.add(event.id);
    }
    const commandId = events[0] === undefined ? undefined : commandIdOf(events[0]);
    if (attached.output !== undefined) {
      if (commandId === undefined) throw new AgentdError("invalid_argument", "attached output needs an event");
      this.checkOutput(commandId, attached.output.offset, attached.output.data);
      this.putOutput(commandId, attached.output.offset, attached.output.data);
    }
    if (attached.command !== undefined) this.commands.set(attached.command.id, attached.command);
    return events.map((event) => {
      const stored = { seq: ++this.lastSeq, event };
      this.events.push(stored);
      this.eventsById.set(event.id, stored);
      return stored.seq;
    });
  }

  async appendEvent(event: BashEvent, attached: AttachedWrites = {}): Promise<number> {
    return (await this.appendEvents([event], attached))[0]!;
  }

  async getEvent(eventId: string): Promise<BashEvent | null> {
    return this.eventsById.get(eventId)?.event ?? null;
  }

  async searchEvents(query: BashEventQuery): Promise<BashEventPage> {
    let from: number | undefined;
    if (query.pageToken !== undefined && query.pageToken !== "") {
      if (!/^[1-9][0-9]{0,15}$/.test(query.pageToken)) {
        throw new AgentdError("invalid_argument", `invalid page token ${JSON.stringify(query.pageToken)}`);
      }
      from = Number(query.pageToken);
    }
    const matches = (s: StoredBashEvent): boolean => {
      const e = s.event;
      if (query.kind !== undefined && e.kind !== query.kind) return false;
      if (query.commandId !== undefined && commandIdOf(e) !== query.commandId) return false;
      if (query.timestampGteMs !== undefined || query.timestampLtMs !== undefined) {
        const t = Date.parse(e.timestamp);
        if (query.timestampGteMs !== undefined && t < query.timestampGteMs) return false;
        if (query.timestampLtMs !== undefined && t >= query.timestampLtMs) return false;
      }
      if (query.orderGt !== undefined && e.kind === "BashOutput" && e.order <= query.orderGt) return false;
      return true;
    };
    const ordered = query.sortDesc === true ? [...this.events].reverse() : this.events;
    const items: BashEvent[] = [];
    let nextPageToken: string | null = null;
    for (const s of ordered) {
      if (from !== undefined && (query.sortDesc === true ? s.seq > from : s.seq < from)) continue;
      if (!matches(s)) continue;
      if (items.length === query.limit) {
        nextPageToken = String(s.seq);
        break;
      }
      items.push(s.event);
    }
    return { items, nextPageToken };
  }

  async readEvents(afterSeq: number, limit: number): Promise<StoredBashEvent[]> {
    // Seqs ascend with the array index: find the first one above afterSeq.
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid]!.seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return this.events.slice(lo, lo + limit);
  }

  async clearEvents(): Promise<number> {
    const n = this.events.length;
    this.events = [];
    this.eventsById.clear();
    return n;
  }
}
