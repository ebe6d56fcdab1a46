// Reading the LLM's tool arguments. LLMs get types slightly wrong all the time ("true" for true,
// "30" for 30, a JSON-encoded array as a string), so the readers coerce those obvious cases and
// reject everything else with a one-line message that names the tool, the parameter and what was
// expected, because that message goes back to the LLM.

import { AgentdError } from "./agentd-error.js";
import { SECURITY_RISKS, type JsonSchema, type JsonSchemaObject, type SecurityRisk } from "./types.js";

/** Parameters the agent adds to every tool schema; stripped before `parseAction`. */
export const INJECTED_PARAMS = ["security_risk", "summary"] as const;

const SECURITY_RISK_PARAM: JsonSchema = {
  type: "string",
  enum: [...SECURITY_RISKS],
  description:
    "Your assessment of this call's risk: LOW (read-only or easily undone), MEDIUM (changes the " +
    "workspace), HIGH (destructive, irreversible or touches systems outside the workspace).",
};

const SUMMARY_PARAM: JsonSchema = {
  type: "string",
  description: "A short (about 10 words) human-readable summary of what this call does.",
};

/**
 * `schema` plus the injected `security_risk` (only for tools that can change things) and `summary`
 * parameters. Idempotent, and does not mutate its input.
 */
export function withInjectedParams(schema: JsonSchemaObject, readOnly: boolean): JsonSchemaObject {
  const properties: Record<string, JsonSchema> = { ...schema.properties };
  if (!readOnly && !("security_risk" in properties)) properties.security_risk = SECURITY_RISK_PARAM;
  if (!("summary" in properties)) properties.summary = SUMMARY_PARAM;
  return { ...schema, properties };
}

/** The per-call metadata the LLM adds to its arguments, normalised. */
export interface CallMetadata {
  securityRisk: SecurityRisk;
  summary: string | undefined;
}

const RISK_ALIASES: Record<string, SecurityRisk> = {
  LOW: "LOW",
  MEDIUM: "MEDIUM",
  MED: "MEDIUM",
  MODERATE: "MEDIUM",
  HIGH: "HIGH",
  CRITICAL: "HIGH",
  UNKNOWN: "UNKNOWN",
};

/**
 * Splits the raw arguments into the tool's own arguments and the call metadata. Common
 * `security_risk` mistakes ("low", "Medium", "SecurityRisk.HIGH", "moderate") are repaired;
 * anything unrecognisable becomes UNKNOWN rather than failing the call.
 */
export function splitCallMetadata(args: unknown): { args: unknown; meta: CallMetadata } {
  if (!isRecord(args)) return { args, meta: { securityRisk: "UNKNOWN", summary: undefined } };
  const { security_risk: risk, summary, ...rest } = args;
  let securityRisk: SecurityRisk = "UNKNOWN";
  if (typeof risk === "string") {
    const key = risk.trim().toUpperCase().replace(/^SECURITYRISK\./, "").replace(/_RISK$/, "");
    securityRisk = RISK_ALIASES[key] ?? "UNKNOWN";
  }
  return {
    args: rest,
    meta: { securityRisk, summary: typeof summary === "string" && summary.trim() !== "" ? summary.trim() : undefined },
  };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(tool: string, message: string): AgentdError {
  return new AgentdError("invalid_argument", `${tool}: ${message}`, { tool });
}

/** Typed, lenient access to one call's arguments; every failure is an "invalid_argument" AgentdError. */
export class ArgReader {
  readonly #tool: string;
  readonly #args: Record<string, unknown>;

  constructor(tool: string, args: unknown) {
    this.#tool = tool;
    if (args === undefined || args === null) args = {};
    if (typeof args === "string") {
      try {
        args = JSON.parse(args) as unknown;
      } catch {
        throw invalid(tool, "arguments must be a JSON object");
      }
    }
    if (!isRecord(args)) throw invalid(tool, "arguments must be a JSON object");
    this.#args = args;
  }

  has(name: string): boolean {
    return this.#args[name] !== undefined && this.#args[name] !== null;
  }

  string(name: string): string | undefined {
    const v = this.#args[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    throw invalid(this.#tool, `parameter \`${name}\` must be a string`);
  }

  requiredString(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw invalid(this.#tool, `missing required parameter \`${name}\` (a string)`);
    return v;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback?: T): T {
    const v = this.string(name);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw invalid(this.#tool, `missing required parameter \`${name}\` (one of ${allowed.join(", ")})`);
    }
    if (!(allowed as readonly string[]).includes(v)) {
      throw invalid(this.#tool, `parameter \`${name}\` is ${JSON.stringify(v)}; allowed values: ${allowed.join(", ")}`);
    }
    return v as T;
  }

  boolean(name: string, fallback: boolean): boolean {
    const v = this.#args[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "boolean") return v;
    if (v === "true" || v === "True") return true;
    if (v === "false" || v === "False") return false;
    throw invalid(this.#tool, `parameter \`${name}\` must be a boolean (true or false)`);
  }

  number(name: string, opts: { min?: number } = {}): number | undefined {
    const v = this.#args[name];
    if (v === undefined || v === null || v === "") return undefined;
    const n = typeof v === "number" ? v : typeof v === "string" ? Number(v.trim()) : NaN;
    if (!Number.isFinite(n)) throw invalid(this.#tool, `parameter \`${name}\` must be a number`);
    if (opts.min !== undefined && n < opts.min) {
      throw invalid(this.#tool, `parameter \`${name}\` is ${n}; it must be >= ${opts.min}`);
    }
    return n;
  }

  integer(name: string, opts: { min?: number } = {}): number | undefined {
    const n = this.number(name, opts);
    if (n !== undefined && !Number.isInteger(n)) throw invalid(this.#tool, `parameter \`${name}\` must be an integer`);
    return n;
  }

  /** An array of integers; a JSON-encoded array in a string is accepted. */
  integerArray(name: string): number[] | undefined {
    let v = this.#args[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string") {
      try {
        v = JSON.parse(v) as unknown;
      } catch {
        throw invalid(this.#tool, `parameter \`${name}\` must be an array of integers`);
      }
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === "number" && Number.isInteger(x))) {
      throw invalid(this.#tool, `parameter \`${name}\` must be an array of integers`);
    }
    return v as number[];
  }

  /** The raw value, for structured parameters the tool validates itself. */
  raw(name: string): unknown {
    return this.#args[name];
  }

  fail(message: string): AgentdError {
    return invalid(this.#tool, message);
  }
}
