// The stored form of a conversation: the bytes the conversation store keeps for it
// (ConversationEntry.record, opaque to storage).
//
// Format: protobuf wire format of the (undeclared) message
//   ConversationRecord {
//     bytes conversation   = 1;  // agentd.v1.Conversation, with every secret value removed
//                                //   (agent.llm.api_key and the condenser's api_key unset)
//     bytes sealed_secrets = 2;  // AES-256-GCM sealed SecretBundle (secrets.ts); absent without
//                                //   OH_SECRET_KEY or when there is nothing secret
//   }
// The Conversation keeps `secret_names`, so the names survive a restart without OH_SECRET_KEY.
// `last_seq` and `event_count` are not stored (the event log's head is the truth).

import { clone, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ConversationSchema } from "../../../gen/agentd/v1/conversation_pb.js";
import type { Conversation } from "../../../gen/agentd/v1/conversation_pb.js";
import type { SecretBundle, SecretCipher } from "../agent/secrets.js";
import { decodeSecretBundle, encodeSecretBundle, isEmptyBundle } from "../agent/secrets.js";

export interface DecodedRecord {
  conversation: Conversation;
  /** The secrets; empty when there were none, no cipher, or they did not open. */
  secrets: SecretBundle;
  /** True when sealed secrets were present but could not be opened (key changed or missing). */
  secretsLost: boolean;
}

/** The conversation without any secret value (safe to store or to log). */
export function withoutSecretValues(c: Conversation): Conversation {
  const out = clone(ConversationSchema, c);
  if (out.agent?.llm !== undefined) out.agent.llm.apiKey = undefined;
  const cond = out.agent?.condenser?.condenser;
  if (cond?.case === "llmSummarizing" && cond.value.llm !== undefined) cond.value.llm.apiKey = undefined;
  return out;
}

export function encodeRecord(c: Conversation, secrets: SecretBundle, cipher: SecretCipher | undefined): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).bytes(toBinary(ConversationSchema, withoutSecretValues(c)));
  if (cipher !== undefined && !isEmptyBundle(secrets)) {
    w.tag(2, WireType.LengthDelimited).bytes(cipher.seal(encodeSecretBundle(secrets), c.id));
  }
  return w.finish();
}

/** @throws when the bytes are not a record (the caller reports data loss for that id). */
export function decodeRecord(bytes: Uint8Array, cipher: SecretCipher | undefined): DecodedRecord {
  const r = new BinaryReader(bytes);
  let conversation: Conversation | undefined;
  let sealed: Uint8Array | undefined;
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 1 && wt === WireType.LengthDelimited) conversation = fromBinary(ConversationSchema, r.bytes());
    else if (field === 2 && wt === WireType.LengthDelimited) sealed = r.bytes();
    else r.skip(wt, field);
  }
  conversation ??= create(ConversationSchema, {});
  let secrets: SecretBundle = { secrets: {} };
  let secretsLost = false;
  if (sealed !== undefined) {
    if (cipher === undefined) secretsLost = true;
    else {
      try {
        secrets = decodeSecretBundle(cipher.open(sealed, conversation.id));
      } catch {
        secretsLost = true;
      }
    }
  }
  return { conversation, secrets, secretsLost };
}
