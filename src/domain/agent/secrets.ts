// Secrets of conversations: the at-rest cipher, the sealed bundle format, and the registry the
// terminal and the masker read from.
//
// At rest (ARCHITECTURE.md §8): when the server has OH_SECRET_KEY, the secret values of a
// conversation (its LLM API keys and its conversation secrets) are sealed with AES-256-GCM under a
// key derived from OH_SECRET_KEY with scrypt (N=2^14, r=8, p=1, fixed salt "agentd/secrets/v1";
// the salt is fixed so the same OH_SECRET_KEY opens the data on every start). Every sealed blob
// binds the conversation id as additional authenticated data, so a blob copied onto another
// conversation does not open. Without OH_SECRET_KEY nothing secret is written: the values live in
// memory only and are lost on restart (the conversation keeps the secret *names*, and its LLM falls
// back to the server's default key). A blob that does not open (key changed) is treated the same
// way and logged once.
//
// Sealed blob: version byte 0x01 | 12-byte random nonce | ciphertext | 16-byte GCM tag.
// Plaintext: protobuf wire format of the (undeclared) message
//   SecretBundle { string llm_api_key = 1; string condenser_api_key = 2;
//                  repeated SecretEntry secrets = 3; }
//   SecretEntry  { string name = 1; oneof { string static_value = 2; Lookup lookup = 3; } }
//   Lookup       { string url = 1; map<string,string> headers = 2; }

import { createCipheriv, createDecipheriv, randomBytes, scrypt } from "node:crypto";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { AgentdError } from "../../errors.js";

/** What every secret value is shown as in responses and events. */
export const REDACTED = "**********";

/** Valid secret names (they become environment variable names). */
export const SECRET_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Where a secret's value comes from. */
export type SecretSourceValue =
  | { kind: "static"; value: string }
  | { kind: "lookup"; url: string; headers: Record<string, string> };

/** Everything secret about one conversation. */
export interface SecretBundle {
  llmApiKey?: string | undefined;
  condenserApiKey?: string | undefined;
  secrets: Record<string, SecretSourceValue>;
}

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SALT = "agentd/secrets/v1";

/** AES-256-GCM with a key derived from OH_SECRET_KEY. */
export class SecretCipher {
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  /** Derives the key (scrypt, ~50 ms, once per process). */
  static async fromSecretKey(secretKey: string): Promise<SecretCipher> {
    if (secretKey === "") throw new AgentdError("invalid_argument", "OH_SECRET_KEY is empty");
    const key = await new Promise<Buffer>((resolve, reject) =>
      scrypt(secretKey, SALT, 32, { N: 1 << 14, r: 8, p: 1 }, (err, k) => (err ? reject(err) : resolve(k))),
    );
    return new SecretCipher(key);
  }

  /** Seals `plaintext`, bound to `aad` (the conversation id). */
  seal(plaintext: Uint8Array, aad: string): Uint8Array {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, nonce);
    cipher.setAAD(Buffer.from(aad, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]);
  }

  /** Opens a sealed blob. @throws AgentdError data_loss when it does not open (wrong key, tampered). */
  open(sealed: Uint8Array, aad: string): Uint8Array {
    if (sealed.length < 1 + NONCE_BYTES + TAG_BYTES || sealed[0] !== VERSION) {
      throw new AgentdError("data_loss", "sealed secrets are malformed");
    }
    const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    const body = sealed.subarray(1 + NONCE_BYTES, sealed.length - TAG_BYTES);
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, nonce);
      decipher.setAAD(Buffer.from(aad, "utf8"));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(body), decipher.final()]);
    } catch (err) {
      throw new AgentdError("data_loss", "sealed secrets do not open with this OH_SECRET_KEY", {}, "SECRETS_UNREADABLE", { cause: err });
    }
  }
}

/** True when the bundle holds nothing. */
export function isEmptyBundle(b: SecretBundle): boolean {
  return !b.llmApiKey && !b.condenserApiKey && Object.keys(b.secrets).length === 0;
}

/** Protobuf wire encoding of a bundle (see the header comment). */
export function encodeSecretBundle(b: SecretBundle): Uint8Array {
  const w = new BinaryWriter();
  if (b.llmApiKey) w.tag(1, WireType.LengthDelimited).string(b.llmApiKey);
  if (b.condenserApiKey) w.tag(2, WireType.LengthDelimited).string(b.condenserApiKey);
  for (const [name, src] of Object.entries(b.secrets)) {
    w.tag(3, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(name);
    if (src.kind === "static") {
      w.tag(2, WireType.LengthDelimited).string(src.value);
    } else {
      w.tag(3, WireType.LengthDelimited).fork();
      w.tag(1, WireType.LengthDelimited).string(src.url);
      for (const [k, v] of Object.entries(src.headers)) {
        w.tag(2, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(k).tag(2, WireType.LengthDelimited).string(v).join();
      }
      w.join();
    }
    w.join();
  }
  return w.finish();
}

function readSub(r: BinaryReader, each: (field: number, wt: WireType, sub: BinaryReader) => void): void {
  const sub = new BinaryReader(r.bytes());
  while (sub.pos < sub.len) {
    const [field, wt] = sub.tag();
    each(field, wt, sub);
  }
}

/** Decodes `encodeSecretBundle` output; unknown fields are skipped. */
export function decodeSecretBundle(bytes: Uint8Array): SecretBundle {
  const out: SecretBundle = { secrets: {} };
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wt] = r.tag();
    if (field === 1 && wt === WireType.LengthDelimited) out.llmApiKey = r.string();
    else if (field === 2 && wt === WireType.LengthDelimited) out.condenserApiKey = r.string();
    else if (field === 3 && wt === WireType.LengthDelimited) {
      let name = "";
      let src: SecretSourceValue | undefined;
      readSub(r, (f, t, s) => {
        if (f === 1 && t === WireType.LengthDelimited) name = s.string();
        else if (f === 2 && t === WireType.LengthDelimited) src = { kind: "static", value: s.string() };
        else if (f === 3 && t === WireType.LengthDelimited) {
          const lookup: SecretSourceValue = { kind: "lookup", url: "", headers: {} };
          readSub(s, (lf, lt, ls) => {
            if (lf === 1 && lt === WireType.LengthDelimited) lookup.url = ls.string();
            else if (lf === 2 && lt === WireType.LengthDelimited) {
              let k = "";
              let v = "";
              readSub(ls, (hf, ht, hs) => {
                if (hf === 1 && ht === WireType.LengthDelimited) k = hs.string();
                else if (hf === 2 && ht === WireType.LengthDelimited) v = hs.string();
                else hs.skip(ht, hf);
              });
              lookup.headers[k] = v;
            } else ls.skip(lt, lf);
          });
          src = lookup;
        } else s.skip(t, f);
      });
      if (name !== "" && src !== undefined) out.secrets[name] = src;
    } else r.skip(wt, field);
  }
  return out;
}

/**
 * Validates secret names.
 * @throws AgentdError invalid_argument naming the first bad name (never the value).
 */
export function checkSecretNames(names: Iterable<string>): void {
  for (const name of names) {
    if (!SECRET_NAME_PATTERN.test(name)) {
      throw new AgentdError("invalid_argument", `invalid secret name ${JSON.stringify(name.slice(0, 80))}: expected ^[A-Za-z_][A-Za-z0-9_]{0,63}$`, { secret_name: name.slice(0, 80) });
    }
  }
}

/** Longest time a LookupSecret fetch may take. */
const LOOKUP_TIMEOUT_MS = 10_000;

/**
 * Resolves every source to a value: static values as they are, lookup secrets fetched with GET
 * (body text, trailing newline trimmed). A lookup that fails is left out and reported through
 * `onError` with the secret's name only.
 */
export async function resolveSecretValues(
  sources: Record<string, SecretSourceValue>,
  onError: (name: string, reason: string) => void = () => {},
  fetchImpl: typeof fetch = fetch,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  await Promise.all(
    Object.entries(sources).map(async ([name, src]) => {
      if (src.kind === "static") {
        out[name] = src.value;
        return;
      }
      try {
        const res = await fetchImpl(src.url, { headers: src.headers, signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS) });
        if (!res.ok) throw new Error(`status ${res.status}`);
        out[name] = (await res.text()).replace(/\r?\n$/, "");
      } catch (err) {
        onError(name, err instanceof Error ? err.message : String(err));
      }
    }),
  );
  return out;
}
