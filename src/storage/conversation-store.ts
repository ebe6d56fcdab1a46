/**
 * Conversation records (keyspaces `conv` and `conv-created` in keys.ts): opaque bytes owned by the
 * conversation engine, listed in creation order. A conversation record and its event log are
 * created together and deleted together:
 * - create() writes the record, its created-time index entry and an empty event log in one batch;
 * - delete() removes the record and index entry in the same batch that marks the log deleting,
 *   then the log's keys (see EventStore.deleteLog).
 * So a record exists exactly when its conversation's event log exists.
 */

import { create } from "@bufbuild/protobuf";
import { AgentdError } from "../errors.js";
import { ConversationEntrySchema } from "../../gen/agentd/storage/v1/storage_pb.js";
import { WriteBatch, decodeValue, encodeValue } from "./db.js";
import type { StorageContext } from "./db.js";
import type { EventStore } from "./event-store.js";
import { checkId, conversationKeys, encodeInt, isValidId } from "./keys.js";

/** A stored conversation record. */
export interface ConversationItem {
  readonly id: string;
  readonly createdAtMs: number;
  readonly record: Uint8Array;
}

/** A position in the creation-ordered listing (exclusive: the listing continues after it). */
export interface ConversationCursor {
  readonly createdAtMs: number;
  readonly id: string;
}

export interface ListConversationsOptions {
  /** "asc" (oldest first, default) or "desc". */
  readonly order?: "asc" | "desc";
  /** Continue after this item (as returned in `next`). */
  readonly after?: ConversationCursor;
  /** 1..1000, default 100. */
  readonly limit?: number;
}

export class ConversationStore {
  constructor(
    private readonly ctx: StorageContext,
    private readonly events: EventStore,
  ) {}

  /**
   * Creates the record and the conversation's empty event log atomically.
   * @throws AgentdError already_exists when the conversation exists; invalid_argument for a
   *   malformed id or time.
   */
  async create(id: string, createdAtMs: number, record: Uint8Array): Promise<void> {
    checkId("conversation id", id);
    const batch = new WriteBatch(this.ctx)
      .put("conv", conversationKeys.record(id), this.encode(createdAtMs, record))
      .put("conv-created", conversationKeys.created(createdAtMs, id), new Uint8Array(0));
    await this.events.createLog(id, createdAtMs, batch);
  }

  /**
   * Replaces the record (the creation time stays). Durable when it resolves.
   * @throws AgentdError not_found when the conversation does not exist.
   */
  async update(id: string, record: Uint8Array): Promise<void> {
    checkId("conversation id", id);
    await this.events.exclusive(id, async (exists) => {
      const current = exists ? await this.get(id) : null;
      if (current === null) throw notFound(id);
      await new WriteBatch(this.ctx).put("conv", conversationKeys.record(id), this.encode(current.createdAtMs, record)).write();
    });
  }

  /** The record, or null. @throws AgentdError data_loss when it is unreadable. */
  async get(id: string): Promise<ConversationItem | null> {
    if (!isValidId(id)) return null;
    const bytes = await this.ctx.sub.conv.get(conversationKeys.record(id));
    return bytes === undefined ? null : this.decode(id, bytes);
  }

  /** Records in input order, null where missing. @throws AgentdError data_loss. */
  async getMany(ids: readonly string[]): Promise<(ConversationItem | null)[]> {
    const valid = ids.filter(isValidId);
    const values = await this.ctx.sub.conv.getMany(valid.map(conversationKeys.record));
    const found = new Map<string, ConversationItem>();
    valid.forEach((id, i) => {
      const v = values[i];
      if (v !== undefined) found.set(id, this.decode(id, v));
    });
    return ids.map((id) => found.get(id) ?? null);
  }

  /**
   * One page of records in creation order (ties by id). `next` is set when more may follow.
   * Each page seeks directly to its cursor, so its cost does not depend on the number of
   * conversations. @throws AgentdError invalid_argument for a bad limit; data_loss.
   */
  async list(options: ListConversationsOptions = {}): Promise<{ items: ConversationItem[]; next?: ConversationCursor }> {
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new AgentdError("invalid_argument", `invalid limit ${limit}: expected 1..1000`);
    }
    const reverse = options.order === "desc";
    const range: { gt?: string; lt?: string; reverse: boolean; limit: number } = { reverse, limit: limit + 1 };
    if (options.after !== undefined) {
      checkId("conversation id", options.after.id);
      const key = conversationKeys.created(options.after.createdAtMs, options.after.id);
      if (reverse) range.lt = key;
      else range.gt = key;
    }
    const keys = await this.ctx.sub["conv-created"].keys(range).all();
    const page = keys.slice(0, limit).map(conversationKeys.parseCreated);
    const records = await this.getMany(page.map((p) => p.conversationId));
    // A record missing here was deleted between the two reads; it is simply left out.
    const items = records.filter((r): r is ConversationItem => r !== null);
    const last = page[page.length - 1];
    return keys.length > limit && last !== undefined
      ? { items, next: { createdAtMs: last.createdAtMs, id: last.conversationId } }
      : { items };
  }

  /** Number of conversations (walks the created-time index, keys only). */
  async count(): Promise<number> {
    const it = this.ctx.sub["conv-created"].keys();
    let n = 0;
    try {
      for (;;) {
        const keys = await it.nextv(1000);
        if (keys.length === 0) return n;
        n += keys.length;
      }
    } finally {
      await it.close();
    }
  }

  /**
   * Deletes the record and the conversation's whole event log; resolves when every key is gone.
   * @throws AgentdError not_found when the conversation does not exist.
   */
  async delete(id: string): Promise<void> {
    checkId("conversation id", id);
    const current = await this.get(id);
    const batch = new WriteBatch(this.ctx).del("conv", conversationKeys.record(id));
    if (current !== null) batch.del("conv-created", conversationKeys.created(current.createdAtMs, id));
    await this.events.deleteLog(id, batch);
  }

  private encode(createdAtMs: number, record: Uint8Array): Uint8Array {
    encodeInt("creation time", createdAtMs);
    return encodeValue(ConversationEntrySchema, create(ConversationEntrySchema, { createdAtMs: BigInt(createdAtMs), record }));
  }

  private decode(id: string, bytes: Uint8Array): ConversationItem {
    const m = decodeValue(ConversationEntrySchema, bytes, `conversation record ${id}`, { conversation_id: id });
    return { id, createdAtMs: Number(m.createdAtMs), record: m.record };
  }
}

function notFound(id: string): AgentdError {
  return new AgentdError("not_found", `conversation ${id} not found`, { conversation_id: id }, "CONVERSATION_NOT_FOUND");
}
