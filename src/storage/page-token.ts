/**
 * Opaque page tokens for searching an event log: base64url (no padding) of an `EventPageToken`
 * (proto/agentd/storage/v1/storage.proto) holding the next page's first seq and a hash of the
 * filters the token was issued for. Here because only storage knows the storage messages; the
 * domain decides what the seq and the hash mean.
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AgentdError } from "../errors.js";
import { EventPageTokenSchema } from "../../gen/agentd/storage/v1/storage_pb.js";

/** What a page token carries. */
export interface PageCursor {
  /** Seq of the first event of the next page. */
  readonly nextSeq: number;
  /** 64-bit hash of the filters, as an unsigned bigint. */
  readonly filterHash: bigint;
}

/** Encodes a cursor as an opaque, URL-safe token. */
export function encodePageToken(cursor: PageCursor): string {
  const bytes = toBinary(
    EventPageTokenSchema,
    create(EventPageTokenSchema, { nextSeq: BigInt(cursor.nextSeq), filterHash: BigInt.asUintN(64, cursor.filterHash) }),
  );
  return Buffer.from(bytes).toString("base64url");
}

/**
 * Decodes a token made by {@link encodePageToken}.
 * @throws AgentdError invalid_argument (reason INVALID_PAGE_TOKEN) for anything else.
 */
export function decodePageToken(token: string): PageCursor {
  const invalid = (): AgentdError =>
    new AgentdError("invalid_argument", `invalid page token ${JSON.stringify(token.slice(0, 64))}`, {}, "INVALID_PAGE_TOKEN");
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(token)) throw invalid();
  let seq: bigint;
  let filterHash: bigint;
  try {
    const m = fromBinary(EventPageTokenSchema, Buffer.from(token, "base64url"));
    seq = m.nextSeq;
    filterHash = m.filterHash;
  } catch {
    throw invalid();
  }
  if (seq < 1n || seq > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid();
  // Round-trip check: rejects tokens with extra bytes or non-canonical encodings.
  if (encodePageToken({ nextSeq: Number(seq), filterHash }) !== token) throw invalid();
  return { nextSeq: Number(seq), filterHash };
}
