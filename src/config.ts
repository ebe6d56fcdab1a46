/**
 * The only reader of the environment (ARCHITECTURE.md §7). Settings come from, highest first:
 * command-line flags, environment variables, the JSON config file at
 * OPENHANDS_AGENT_SERVER_CONFIG_PATH (OpenHands field names), defaults. Everything is validated
 * against CHECKS; a bad value stops start-up with one line naming the setting (`ConfigError`).
 */
import { readFileSync } from "node:fs";
import path from "node:path";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** One webhook (OpenHands `webhooks` entries; durations in seconds). */
export interface WebhookConfig {
  base_url: string;
  headers: Record<string, string>;
  event_buffer_size: number;
  flush_delay: number;
  num_retries: number;
  retry_delay: number;
  max_queue_size: number;
}

export interface Config {
  host: string;
  port: number;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  dataDir: string;
  workspaceBase: string;
  sessionApiKeys: string[];
  insecureNoAuth: boolean;
  secretKey?: string | undefined;
  allowCorsOrigins: string[];
  allowCorsOriginRegex?: string | undefined;
  llmModel?: string | undefined;
  llmApiKey?: string | undefined;
  llmBaseUrl?: string | undefined;
  webhooks: WebhookConfig[];
  runtimeIdleTimeoutSeconds?: number | undefined;
  conversationIdleTtlSeconds: number;
  maxMessageBytes: number;
  shutdownGraceMs: number;
  logLevel: "debug" | "info" | "warn" | "error" | "silent";
  chromiumPath?: string | undefined;
  bashMaxRunningCommands: number;
  /** The environment commands inherit (bash service, agent terminal): agentd's own minus its secrets (see childEnvOf). */
  childEnv: Record<string, string>;
  buildGitSha: string;
  buildGitRef: string;
}

// ---- validation ------------------------------------------------------------------------------
// A check returns the valid value or throws Invalid with the reason; loadConfig names the setting.
// (Hand-written rather than a schema library: the whole table is a few dozen lines, and the
// library cost ~75 ms and ~14 MiB of the server's start.)

class Invalid extends Error {}

type Check<T> = (value: unknown) => T;

const text =
  (minLength = 0): Check<string> =>
  (v) => {
    if (typeof v !== "string") throw new Invalid(`expected a string, got ${describe(v)}`);
    if (v.length < minLength) throw new Invalid("must not be empty");
    return v;
  };

const num =
  (o: { int?: boolean; min?: number; max?: number; positive?: boolean } = {}): Check<number> =>
  (v) => {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new Invalid(`expected a number, got ${describe(v)}`);
    if (o.int === true && !Number.isInteger(v)) throw new Invalid(`expected an integer, got ${v}`);
    if (o.positive === true && v <= 0) throw new Invalid(`must be greater than 0, got ${v}`);
    if (o.min !== undefined && v < o.min) throw new Invalid(`must be at least ${o.min}, got ${v}`);
    if (o.max !== undefined && v > o.max) throw new Invalid(`must be at most ${o.max}, got ${v}`);
    return v;
  };

const bool: Check<boolean> = (v) => {
  if (typeof v !== "boolean") throw new Invalid(`expected true or false, got ${describe(v)}`);
  return v;
};

const optional =
  <T>(check: Check<T>): Check<T | undefined> =>
  (v) =>
    v === undefined ? undefined : check(v);

const withDefault =
  <T>(check: Check<T>, fallback: T): Check<T> =>
  (v) =>
    v === undefined ? fallback : check(v);

/** `check(value)`, with `where` in front of the reason when it fails (a list item, an object key). */
function within<T>(where: string, check: Check<T>, value: unknown): T {
  try {
    return check(value);
  } catch (err) {
    throw err instanceof Invalid ? new Invalid(`${where}: ${err.message}`) : err;
  }
}

function object(v: unknown): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Invalid(`expected an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

const list =
  <T>(check: Check<T>): Check<T[]> =>
  (v) => {
    if (!Array.isArray(v)) throw new Invalid(`expected a list, got ${describe(v)}`);
    return v.map((item, i) => within(`item ${i}`, check, item));
  };

const stringRecord: Check<Record<string, string>> = (v) =>
  Object.fromEntries(Object.entries(object(v)).map(([k, x]) => [k, within(k, text(), x)]));

const oneOf =
  <const T extends string>(...values: T[]): Check<T> =>
  (v) => {
    if (!values.includes(v as T)) throw new Invalid(`expected one of ${values.join(", ")}, got ${describe(v)}`);
    return v as T;
  };

const url: Check<string> = (v) => {
  const s = text(1)(v);
  if (!URL.canParse(s)) throw new Invalid(`not a URL: ${JSON.stringify(s)}`);
  return s;
};

const webhook: Check<WebhookConfig> = (v) => {
  const o = object(v);
  const field = <T>(key: keyof WebhookConfig, check: Check<T>): T => within(key, check, o[key]);
  return {
    base_url: field("base_url", url),
    headers: field("headers", withDefault(stringRecord, {})),
    event_buffer_size: field("event_buffer_size", withDefault(num({ int: true, min: 1 }), 5)),
    flush_delay: field("flush_delay", withDefault(num({ min: 0 }), 30)),
    num_retries: field("num_retries", withDefault(num({ int: true, min: 0 }), 3)),
    retry_delay: field("retry_delay", withDefault(num({ min: 0 }), 5)),
    max_queue_size: field("max_queue_size", withDefault(num({ int: true, min: 1 }), 1000)),
  };
};

const CHECKS: { readonly [K in keyof Config]-?: Check<Config[K]> } = {
  host: text(1),
  port: num({ int: true, min: 0, max: 65535 }),
  tlsCert: optional(text()),
  tlsKey: optional(text()),
  dataDir: text(1),
  workspaceBase: text(1),
  sessionApiKeys: list(text(1)),
  insecureNoAuth: bool,
  secretKey: optional(text(1)),
  allowCorsOrigins: list(text()),
  allowCorsOriginRegex: optional(text()),
  llmModel: optional(text()),
  llmApiKey: optional(text()),
  llmBaseUrl: optional(text()),
  webhooks: list(webhook),
  runtimeIdleTimeoutSeconds: optional(num({ int: true, positive: true })),
  conversationIdleTtlSeconds: num({ positive: true }),
  maxMessageBytes: num({ int: true, min: 64 * 1024, max: 256 * 1024 * 1024 }),
  shutdownGraceMs: num({ int: true, min: 0 }),
  logLevel: oneOf("debug", "info", "warn", "error", "silent"),
  chromiumPath: optional(text()),
  bashMaxRunningCommands: num({ int: true, min: 1, max: 4096 }),
  childEnv: stringRecord,
  buildGitSha: text(),
  buildGitRef: text(),
};

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return JSON.stringify(v);
}

/** One documented setting: its flag, its environment variable(s), its config-file key. */
interface Setting {
  key: keyof Config;
  flag?: string;
  env?: string[];
  file?: string;
  type: "string" | "int" | "number" | "bool" | "list" | "json";
  help: string;
  default?: unknown;
}

export const SETTINGS: readonly Setting[] = [
  { key: "host", flag: "--host", env: ["AGENTD_HOST"], type: "string", default: "127.0.0.1", help: "Address to listen on. A non-loopback address needs a session key or --insecure-no-auth." },
  { key: "port", flag: "--port", env: ["AGENTD_PORT", "PORT"], type: "int", default: 8000, help: "Port for every surface (gRPC, Connect, gRPC-Web, REST, WebSocket). 0 picks a free port." },
  { key: "tlsCert", flag: "--tls-cert", env: ["AGENTD_TLS_CERT"], type: "string", help: "PEM certificate: serve TLS (ALPN h2 and http/1.1) on the same port." },
  { key: "tlsKey", flag: "--tls-key", env: ["AGENTD_TLS_KEY"], type: "string", help: "PEM private key for --tls-cert." },
  { key: "dataDir", flag: "--data-dir", env: ["AGENTD_DATA_DIR"], type: "string", help: "LevelDB data directory. Default <workspace>/.agentd." },
  { key: "workspaceBase", flag: "--workspace", env: ["WORKSPACE_BASE"], type: "string", default: "./workspace", help: "Workspace base: conversations' working directories live here; file paths must resolve inside it." },
  { key: "sessionApiKeys", env: ["OH_SESSION_API_KEYS", "OH_SESSION_API_KEYS_<n>", "SESSION_API_KEY"], file: "session_api_keys", type: "list", default: [], help: "Session keys accepted on every surface (several for rotation). Empty: no auth, loopback only." },
  { key: "insecureNoAuth", flag: "--insecure-no-auth", type: "bool", default: false, help: "Allow a non-loopback --host without a session key (logs a warning)." },
  { key: "secretKey", env: ["OH_SECRET_KEY"], file: "secret_key", type: "string", help: "Key from which the at-rest encryption key for secrets is derived. Unset: secrets are kept in memory only." },
  { key: "allowCorsOrigins", env: ["OH_ALLOW_CORS_ORIGINS", "OH_ALLOW_CORS_ORIGINS_<n>"], file: "allow_cors_origins", type: "list", default: [], help: "Extra browser origins allowed by CORS (localhost and 127.0.0.1 always are)." },
  { key: "allowCorsOriginRegex", env: ["OH_ALLOW_CORS_ORIGIN_REGEX"], file: "allow_cors_origin_regex", type: "string", help: "Regex of browser origins allowed by CORS." },
  { key: "llmModel", env: ["LLM_MODEL"], type: "string", help: "Default model for conversations whose agent names none (provider/model)." },
  { key: "llmApiKey", env: ["LLM_API_KEY"], type: "string", help: "API key for the default model." },
  { key: "llmBaseUrl", env: ["LLM_BASE_URL"], type: "string", help: "OpenAI-compatible base URL for the default model." },
  { key: "webhooks", env: ["OH_WEBHOOKS"], file: "webhooks", type: "json", default: [], help: "Webhooks (JSON array of {base_url, headers, event_buffer_size, flush_delay, num_retries, retry_delay})." },
  { key: "runtimeIdleTimeoutSeconds", env: ["OH_RUNTIME_IDLE_TIMEOUT_SECONDS"], type: "int", help: "Sandbox idle timeout, reported in /server_info." },
  { key: "conversationIdleTtlSeconds", env: ["OH_CONVERSATION_IDLE_TTL_SECONDS"], file: "conversation_idle_ttl_seconds", type: "number", default: 1200, help: "Idle conversations are unloaded from memory after this many seconds." },
  { key: "maxMessageBytes", flag: "--max-message-bytes", env: ["AGENTD_MAX_MESSAGE_BYTES"], type: "int", default: 8 * 1024 * 1024, help: "Largest request message or REST JSON body accepted (bytes)." },
  { key: "shutdownGraceMs", flag: "--shutdown-grace-ms", env: ["AGENTD_SHUTDOWN_GRACE_MS"], type: "int", default: 5000, help: "On SIGTERM, how long open calls may finish before connections are closed." },
  { key: "logLevel", flag: "--log-level", env: ["LOG_LEVEL"], type: "string", default: "info", help: "debug, info, warn, error or silent. Logs are JSON lines on stderr." },
  { key: "bashMaxRunningCommands", flag: "--bash-max-commands", env: ["AGENTD_BASH_MAX_COMMANDS"], type: "int", default: 128, help: "Bash commands running at once (BashService); one more is refused with ResourceExhausted." },
  { key: "chromiumPath", env: ["CHROMIUM_PATH"], type: "string", help: "Chromium executable for the browser tool. Default /usr/bin/chromium, then Playwright's cache." },
  { key: "buildGitSha", env: ["OPENHANDS_BUILD_GIT_SHA"], type: "string", default: "unknown", help: "Build commit reported in /server_info." },
  { key: "buildGitRef", env: ["OPENHANDS_BUILD_GIT_REF"], type: "string", default: "unknown", help: "Build ref reported in /server_info." },
];

const CONFIG_FILE_ENV = "OPENHANDS_AGENT_SERVER_CONFIG_PATH";

/** Settings whose values are secrets: their variables never reach commands (see childEnvOf). */
const SECRET_SETTINGS: ReadonlySet<keyof Config> = new Set<keyof Config>(["sessionApiKeys", "secretKey", "llmApiKey", "webhooks"]);

/**
 * The environment child processes (bash commands, the agent's terminal) inherit: `env` without
 * the variables of secret settings (session keys, OH_SECRET_KEY, LLM_API_KEY, OH_WEBHOOKS, whose
 * headers may hold tokens), so `env` in a command cannot print them into events.
 */
export function childEnvOf(env: NodeJS.ProcessEnv): Record<string, string> {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const s of SETTINGS) {
    if (!SECRET_SETTINGS.has(s.key)) continue;
    for (const name of s.env ?? []) {
      if (name.endsWith("_<n>")) prefixes.push(name.slice(0, -3));
      else exact.add(name);
    }
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || exact.has(k) || prefixes.some((p) => k.startsWith(p))) continue;
    out[k] = v;
  }
  return out;
}

function convert(setting: Setting, raw: string, origin: string): unknown {
  const fail = (why: string): never => {
    throw new ConfigError(`invalid ${origin}: ${why}`);
  };
  switch (setting.type) {
    case "string":
      return raw;
    case "int": {
      if (!/^-?\d+$/.test(raw.trim())) fail(`expected an integer, got ${JSON.stringify(raw)}`);
      return Number(raw);
    }
    case "number": {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n)) fail(`expected a number, got ${JSON.stringify(raw)}`);
      return n;
    }
    case "bool":
      return /^(1|true|yes)$/i.test(raw.trim());
    case "list":
    case "json": {
      if (setting.type === "list" && !raw.trim().startsWith("[")) return [raw];
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        return fail("expected JSON");
      }
    }
  }
}

/** Reads `NAME_0`, `NAME_1`, … until the first gap. */
function indexedList(env: NodeJS.ProcessEnv, prefix: string): string[] | undefined {
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const v = env[`${prefix}_${i}`];
    if (v === undefined) break;
    out.push(v);
  }
  return out.length > 0 ? out : undefined;
}

export interface ParsedArgs {
  command: string;
  flags: Map<string, string | true>;
}

/** Splits argv into a command (first non-flag word, default "serve") and `--flag[=value]` pairs. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const flags = new Map<string, string | true>();
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      if (eq > 0) {
        flags.set(arg.slice(0, eq), arg.slice(eq + 1));
        continue;
      }
      const setting = SETTINGS.find((s) => s.flag === arg);
      const takesValue = setting !== undefined && setting.type !== "bool";
      const next = argv[i + 1];
      if (takesValue) {
        if (next === undefined || next.startsWith("--")) throw new ConfigError(`invalid ${arg}: a value is required`);
        flags.set(arg, next);
        i++;
      } else {
        flags.set(arg, true);
      }
    } else if (command === undefined) {
      command = arg;
    } else {
      throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}`);
    }
  }
  return { command: command ?? "serve", flags };
}

/** Flags that are not settings but CLI actions. */
const ACTION_FLAGS = new Set(["--help", "-h", "--check-browser", "--version"]);

/**
 * Builds the validated configuration.
 * @throws ConfigError with one line naming the offending setting.
 */
export function loadConfig(flags: ReadonlyMap<string, string | true>, env: NodeJS.ProcessEnv = process.env): Config {
  for (const flag of flags.keys()) {
    if (!ACTION_FLAGS.has(flag) && !SETTINGS.some((s) => s.flag === flag)) {
      throw new ConfigError(`unknown flag ${flag} (see agentd --help)`);
    }
  }
  let file: Record<string, unknown> = {};
  const filePath = env[CONFIG_FILE_ENV];
  if (filePath !== undefined && filePath !== "") {
    let text: string;
    try {
      text = readFileSync(filePath, "utf8");
    } catch (err) {
      throw new ConfigError(`invalid ${CONFIG_FILE_ENV}: cannot read ${filePath} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      file = parsed as Record<string, unknown>;
    } catch {
      throw new ConfigError(`invalid ${CONFIG_FILE_ENV}: ${filePath} is not a JSON object`);
    }
  }

  const values: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    let value: unknown = s.default;
    if (s.file !== undefined && file[s.file] !== undefined) value = file[s.file];
    for (const name of [...(s.env ?? [])].reverse()) {
      // Earlier names in the list win over later ones (e.g. OH_SESSION_API_KEYS_<n> over SESSION_API_KEY).
      if (name.endsWith("_<n>")) {
        const list = indexedList(env, name.slice(0, -4));
        if (list !== undefined) value = list;
      } else if (env[name] !== undefined && env[name] !== "") {
        value = convert(s, env[name]!, name);
      }
    }
    if (s.flag !== undefined && flags.has(s.flag)) {
      const raw = flags.get(s.flag)!;
      value = raw === true ? true : convert(s, raw, s.flag);
    }
    values[s.key] = value;
  }
  values.childEnv = childEnvOf(env);
  values.workspaceBase = path.resolve(String(values.workspaceBase));
  values.dataDir = path.resolve(values.dataDir === undefined ? path.join(String(values.workspaceBase), ".agentd") : String(values.dataDir));

  const config = {} as Record<keyof Config, unknown>;
  for (const key of Object.keys(CHECKS) as (keyof Config)[]) {
    try {
      config[key] = (CHECKS[key] as Check<unknown>)(values[key]);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      const setting = SETTINGS.find((s) => s.key === key);
      const name = setting?.flag ?? setting?.env?.[0] ?? key;
      throw new ConfigError(`invalid ${name}: ${err.message}`);
    }
  }
  return checkCombinations(config as Config);
}

/** Rules that span settings. @throws ConfigError */
function checkCombinations(config: Config): Config {
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new ConfigError("invalid --tls-cert/--tls-key: give both or neither");
  }
  if (config.allowCorsOriginRegex !== undefined) {
    try {
      new RegExp(config.allowCorsOriginRegex);
    } catch {
      throw new ConfigError("invalid OH_ALLOW_CORS_ORIGIN_REGEX: not a regular expression");
    }
  }
  return config;
}

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Refuses to expose an unauthenticated server beyond this machine (ARCHITECTURE.md §8).
 * @throws ConfigError when binding a non-loopback address with no key and no --insecure-no-auth.
 */
export function checkBindSafety(config: Config): "ok" | "insecure" {
  if (config.sessionApiKeys.length > 0 || isLoopbackHost(config.host)) return "ok";
  if (config.insecureNoAuth) return "insecure";
  throw new ConfigError(
    `refusing to listen on ${config.host} without a session key: set OH_SESSION_API_KEYS_0 (or SESSION_API_KEY), or pass --insecure-no-auth`,
  );
}

/** The --help text, generated from SETTINGS so it cannot drift from the code. */
export function helpText(): string {
  const lines = [
    "Usage: agentd [serve] [flags]",
    "       agentd --check-browser",
    "",
    "Serves gRPC, Connect, gRPC-Web, REST and WebSocket on one port.",
    "",
    "Settings (flag, environment variable, default):",
  ];
  for (const s of SETTINGS) {
    const names = [s.flag, ...(s.env ?? [])].filter((x) => x !== undefined).join(", ");
    const def = s.default === undefined ? "" : ` (default ${JSON.stringify(s.default)})`;
    lines.push(`  ${names}${def}`, `      ${s.help}`);
  }
  lines.push("", `Config file: JSON at $${CONFIG_FILE_ENV} (OpenHands keys: session_api_keys, secret_key, allow_cors_origins, webhooks, ...).`);
  lines.push("  --check-browser   launch Chromium, render about:blank, exit 0 (or 1 with the reason)");
  lines.push("  --help            this text");
  return lines.join("\n");
}
