// Confirmation mode and the security analyzer (reference §8).
//
// After the agent's actions of one LLM response are recorded, each gets a risk: with the LLM
// security analyzer it is the `security_risk` argument the model gave the call (read-only tools
// are always UNKNOWN); without an analyzer every risk is UNKNOWN. The policy then decides:
//   NeverConfirm → never ask; AlwaysConfirm → always ask; ConfirmRisky{threshold, confirm_unknown}
//   → ask when a risk is at or above the threshold (LOW < MEDIUM < HIGH), or UNKNOWN and
//   confirm_unknown (default true).
// A response made only of think/finish calls never asks.

import { create } from "@bufbuild/protobuf";
import { ConfirmationPolicySchema } from "../../../gen/agentd/v1/conversation_pb.js";
import type { ConfirmationPolicy, SecurityAnalyzer } from "../../../gen/agentd/v1/conversation_pb.js";
import { SecurityRisk } from "../../../gen/agentd/v1/message_pb.js";

/** Tools whose calls never need confirmation. */
export const NEVER_CONFIRMED_TOOLS: ReadonlySet<string> = new Set(["think", "finish"]);

const RANK: Record<SecurityRisk, number> = {
  [SecurityRisk.UNSPECIFIED]: 0,
  [SecurityRisk.UNKNOWN]: 0,
  [SecurityRisk.LOW]: 1,
  [SecurityRisk.MEDIUM]: 2,
  [SecurityRisk.HIGH]: 3,
};

/** The default policy (NeverConfirm). */
export function neverConfirm(): ConfirmationPolicy {
  return create(ConfirmationPolicySchema, { policy: { case: "neverConfirm", value: {} } });
}

/** The risk the conversation assigns to a call, given its analyzer. */
export function assessRisk(analyzer: SecurityAnalyzer | undefined, modelRisk: SecurityRisk): SecurityRisk {
  if (analyzer?.analyzer.case === "llm") return modelRisk === SecurityRisk.UNSPECIFIED ? SecurityRisk.UNKNOWN : modelRisk;
  return SecurityRisk.UNKNOWN;
}

/** Whether one call of `risk` needs the user's confirmation under `policy`. */
export function shouldConfirm(policy: ConfirmationPolicy | undefined, risk: SecurityRisk): boolean {
  switch (policy?.policy.case) {
    case undefined:
    case "neverConfirm":
      return false;
    case "alwaysConfirm":
      return true;
    case "confirmRisky": {
      const p = policy.policy.value;
      const threshold = p.threshold === SecurityRisk.UNSPECIFIED || p.threshold === SecurityRisk.UNKNOWN ? SecurityRisk.HIGH : p.threshold;
      if (RANK[risk] === 0) return p.confirmUnknown ?? true;
      return RANK[risk] >= RANK[threshold];
    }
  }
}

/** Whether a batch of calls (one LLM response) needs confirmation. */
export function batchNeedsConfirmation(
  policy: ConfirmationPolicy | undefined,
  calls: ReadonlyArray<{ toolName: string; risk: SecurityRisk }>,
): boolean {
  const relevant = calls.filter((c) => !NEVER_CONFIRMED_TOOLS.has(c.toolName));
  return relevant.some((c) => shouldConfirm(policy, c.risk));
}
