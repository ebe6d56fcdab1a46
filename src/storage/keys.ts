/**
 * Every LevelDB keyspace of agentd, and the only code that builds or parses keys.
 *
 * All keyspaces are sublevels of one classic-level database (the data directory). LevelDB stores
 * a sublevel key as `!<sublevel>!<key>`. Keys are UTF-8 strings, values are protobuf binary of
 * `agentd.storage.v1` messages (proto/agentd/storage/v1/storage.proto), or empty for key-only
 * index entries. `<seq>`, `<ts>` and `<offset>` are non-negative integers written as 16 decimal
 * digits, zero-padded, so lexicographic key order equals numeric order. `!` separates key parts.
 *
 * | Sublevel        | Key                                    | Value             | Invariants |
 * | --------------- | -------------------------------------- | ----------------- | ---------- |
 * | `meta`          | `schema_version`                       | `SchemaVersion`   | written in the same batch as the last write of each migration; absent = empty directory (version 0) |
 * | `conv`          | `<conversation_id>`                    | `ConversationEntry` | `created_at_ms` equals the `<ts>` of its `conv-created` key |
 * | `conv-created`  | `<ts>!<conversation_id>`               | empty             | exactly one per `conv` entry, written and deleted in the same batch |
 * | `log-head`      | `<conversation_id>`                    | `LogHead`         | the conversation's event log exists iff a head without `deleting` exists; rewritten in the same batch as every append (last_seq = highest `evt` key, counts = the index entries) |
 * | `log-deleting`  | `<conversation_id>`                    | empty             | present exactly while a log's deletion is unfinished (head has `deleting`); finished at open |
 * | `evt`           | `<conversation_id>!<seq>`              | `EventRecord`     | seq dense from 1 to `last_seq`; record.seq equals the key's seq; timestamps non-decreasing in seq |
 * | `evt-id`        | `<conversation_id>!<event_id>`         | `SeqPointer`      | one per `evt` record, same batch; event ids unique per conversation |
 * | `evt-kind-source` | `<conversation_id>!<kind>!<source>!<seq>` | empty          | one per `evt` record, same batch; the head counts entries per (kind, source), so a kind-only or source-only walk merges the few existing pairs |
 * | `evt-ts`        | `<conversation_id>!<ts>!<seq>`         | empty             | sparse: only for an event whose timestamp is greater than its predecessor's (and the first), so the first entry at or after `<ts>` names the first event with timestamp ≥ ts |
 * | `bash-cmd`      | `<command_id>`                         | `BashCommandEntry`| opaque to storage |
 * | `bash-out`      | `<command_id>!<offset>`                | `OutputChunk`     | chunks of one command do not overlap; offset = byte offset of the chunk's first byte in the command's output |
 * | `bash-head`     | `log`                                  | `LogHead`         | the one head of the global bash event log; same rules as `log-head`, and records below `first_seq` are garbage |
 * | `bash-evt`      | `<seq>`                                | `BashEventRecord` | seq dense from `first_seq` to `last_seq`, never reused (clearing keeps `last_seq`) |
 * | `bash-evt-id`   | `<event_id>`                           | `SeqPointer`      | one per `bash-evt` record, same batch |
 * | `bash-evt-kind` | `<kind>!<seq>`                         | empty             | one per `bash-evt` record, same batch |
 * | `bash-evt-cmd`  | `<command_id>!<seq>`                   | empty             | one per `bash-evt` record, same batch |
 * | `bash-evt-ts`   | `<ts>!<seq>`                           | empty             | sparse, as `evt-ts` |
 *
 * Identifiers (conversation, event and command ids, kinds, sources) must match
 * {@link ID_PATTERN}: every allowed character sorts after `"`, so an id never contains the
 * separator and the range `<id>!` … `<id>"` holds exactly one id's keys.
 */

import { AgentdError } from "../errors.js";

/** The separator between key parts (the same character sublevels use). */
export const SEP = "!";
/** The character right after {@link SEP}; `<prefix>"` bounds the range of `<prefix>!…`. */
const SEP_NEXT = '"';
/** Width of every encoded integer (sequence, timestamp, offset). */
export const INT_WIDTH = 16;
/** The largest integer a key can hold (also the largest exactly representable JS integer). */
export const MAX_KEY_INT = Number.MAX_SAFE_INTEGER;

/** Allowed identifiers: 1–128 characters of `[A-Za-z0-9._:-]`, starting with a letter or digit. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The sublevel names, exactly as in the table above (the keys test checks they agree). */
export const SUBLEVELS = [
  "meta",
  "conv",
  "conv-created",
  "log-head",
  "log-deleting",
  "evt",
  "evt-id",
  "evt-kind-source",
  "evt-ts",
  "bash-cmd",
  "bash-out",
  "bash-head",
  "bash-evt",
  "bash-evt-id",
  "bash-evt-kind",
  "bash-evt-cmd",
  "bash-evt-ts",
] as const;
export type SublevelName = (typeof SUBLEVELS)[number];

/** A key range in the form classic-level iterators take (bounds are inclusive). */
export interface KeyRange {
  readonly gte: string;
  readonly lte: string;
}

/** True when `value` is a valid identifier (see {@link ID_PATTERN}). */
export function isValidId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/**
 * Returns `value` when it is a valid identifier.
 * @throws AgentdError invalid_argument naming `what` when it is not.
 */
export function checkId(what: string, value: string): string {
  if (!ID_PATTERN.test(value)) {
    const shown = value.length > 64 ? `${value.slice(0, 64)}…` : value;
    throw new AgentdError(
      "invalid_argument",
      `invalid ${what} ${JSON.stringify(shown)}: expected 1-128 characters of [A-Za-z0-9._:-]`,
      { [what.replace(/ /g, "_")]: shown },
    );
  }
  return value;
}

/**
 * Encodes a non-negative integer as 16 zero-padded digits.
 * @throws AgentdError invalid_argument when it is not an integer in 0..MAX_KEY_INT.
 */
export function encodeInt(what: string, n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new AgentdError("invalid_argument", `invalid ${what} ${n}: expected an integer in 0..${MAX_KEY_INT}`);
  }
  return String(n).padStart(INT_WIDTH, "0");
}

/** Parses the trailing 16-digit integer of a key (the seq of every seq-suffixed key). */
export function trailingInt(key: string): number {
  return Number(key.slice(key.length - INT_WIDTH));
}

/** All keys that start with `prefix!`. */
function under(prefix: string): KeyRange {
  return { gte: prefix + SEP, lte: prefix + SEP_NEXT };
}

/** Keys `prefix!<n>` for n in [lo, hi]. */
function intRange(prefix: string, lo: number, hi: number): KeyRange {
  const p = prefix === "" ? "" : prefix + SEP;
  return { gte: p + encodeInt("sequence", lo), lte: p + encodeInt("sequence", hi) };
}

// ---- meta ---------------------------------------------------------------------------------------

/** The key of the schema version in `meta`. */
export const SCHEMA_VERSION_KEY = "schema_version";

// ---- conversations ------------------------------------------------------------------------------

/** Keys of the `conv` and `conv-created` sublevels. */
export const conversationKeys = {
  /** `conv`: the conversation record. */
  record: (conversationId: string): string => conversationId,
  /** `conv-created`: the created-time index entry. */
  created: (createdAtMs: number, conversationId: string): string =>
    encodeInt("creation time", createdAtMs) + SEP + conversationId,
  /** Splits a `conv-created` key into its parts. */
  parseCreated: (key: string): { createdAtMs: number; conversationId: string } => ({
    createdAtMs: Number(key.slice(0, INT_WIDTH)),
    conversationId: key.slice(INT_WIDTH + 1),
  }),
};

// ---- append-only logs ---------------------------------------------------------------------------

/**
 * Key builders of one family of append-only logs (see indexed-log.ts). Conversation event logs
 * are many logs keyed by conversation id; the bash event log is a single log whose keys carry no
 * log id (its `logId` argument is ignored).
 */
export interface LogKeys {
  /** Sublevel of the heads. */
  readonly headSublevel: SublevelName;
  /** Sublevel of the "deletion unfinished" markers, when logs of this family can be deleted. */
  readonly deletingSublevel: SublevelName | undefined;
  readonly recordSublevel: SublevelName;
  readonly idSublevel: SublevelName;
  readonly tsSublevel: SublevelName;
  /** The sublevel of each secondary index, in the order the log family declares its indexes. */
  readonly indexSublevels: readonly SublevelName[];
  head(logId: string): string;
  record(logId: string, seq: number): string;
  /** Records with seq in [lo, hi]. */
  recordRange(logId: string, lo: number, hi: number): KeyRange;
  id(logId: string, id: string): string;
  /** A secondary index entry: the indexed values (in the index's attribute order), then seq. */
  index(logId: string, values: readonly string[], seq: number): string;
  /** Entries of one indexed value tuple with seq in [lo, hi]. */
  indexRange(logId: string, values: readonly string[], lo: number, hi: number): KeyRange;
  ts(logId: string, timestampMs: number, seq: number): string;
  /** Timestamp index entries with timestamp ≥ `fromMs`. */
  tsFrom(logId: string, fromMs: number): KeyRange;
  /** Every key of one log in a per-log sublevel (records, ids, secondary and ts indexes). */
  all(logId: string): KeyRange;
}

/** Keys of conversation event logs: sublevels `log-head`, `log-deleting`, `evt*`. */
export const eventLogKeys: LogKeys = {
  headSublevel: "log-head",
  deletingSublevel: "log-deleting",
  recordSublevel: "evt",
  idSublevel: "evt-id",
  tsSublevel: "evt-ts",
  indexSublevels: ["evt-kind-source"],
  head: (c) => c,
  record: (c, seq) => c + SEP + encodeInt("sequence", seq),
  recordRange: (c, lo, hi) => intRange(c, lo, hi),
  id: (c, id) => c + SEP + id,
  index: (c, values, seq) => c + SEP + values.join(SEP) + SEP + encodeInt("sequence", seq),
  indexRange: (c, values, lo, hi) => intRange(c + SEP + values.join(SEP), lo, hi),
  ts: (c, ts, seq) => c + SEP + encodeInt("timestamp", ts) + SEP + encodeInt("sequence", seq),
  tsFrom: (c, ts) => ({ gte: c + SEP + encodeInt("timestamp", ts), lte: c + SEP_NEXT }),
  all: (c) => under(c),
};

/** The key of the one head in `bash-head`. */
const BASH_HEAD_KEY = "log";

/** Keys of the global bash event log: sublevels `bash-head`, `bash-evt*`. */
export const bashLogKeys: LogKeys = {
  headSublevel: "bash-head",
  deletingSublevel: undefined,
  recordSublevel: "bash-evt",
  idSublevel: "bash-evt-id",
  tsSublevel: "bash-evt-ts",
  indexSublevels: ["bash-evt-kind", "bash-evt-cmd"],
  head: () => BASH_HEAD_KEY,
  record: (_l, seq) => encodeInt("sequence", seq),
  recordRange: (_l, lo, hi) => intRange("", lo, hi),
  id: (_l, id) => id,
  index: (_l, values, seq) => values.join(SEP) + SEP + encodeInt("sequence", seq),
  indexRange: (_l, values, lo, hi) => intRange(values.join(SEP), lo, hi),
  ts: (_l, ts, seq) => encodeInt("timestamp", ts) + SEP + encodeInt("sequence", seq),
  tsFrom: (_l, ts) => ({ gte: encodeInt("timestamp", ts), lte: "~" }),
  all: () => ({ gte: "", lte: "~" }),
};

// ---- bash commands and output -------------------------------------------------------------------

/** Keys of `bash-cmd` and `bash-out`. */
export const bashKeys = {
  /** `bash-cmd`: the command record. */
  command: (commandId: string): string => commandId,
  /** `bash-out`: the output chunk that starts at byte `offset`. */
  output: (commandId: string, offset: number): string => commandId + SEP + encodeInt("offset", offset),
  /** `bash-out`: chunks starting in [lo, hi]. */
  outputRange: (commandId: string, lo: number, hi: number): KeyRange => intRange(commandId, lo, hi),
  /** `bash-out`: every chunk of one command. */
  allOutput: (commandId: string): KeyRange => under(commandId),
};
