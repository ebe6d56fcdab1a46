import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ConfirmationPolicySchema, SecurityAnalyzerSchema } from "../../../gen/agentd/v1/conversation_pb.js";
import { SecurityRisk } from "../../../gen/agentd/v1/message_pb.js";
import { assessRisk, batchNeedsConfirmation, shouldConfirm } from "./confirmation.js";

const always = create(ConfirmationPolicySchema, { policy: { case: "alwaysConfirm", value: {} } });
const never = create(ConfirmationPolicySchema, { policy: { case: "neverConfirm", value: {} } });
const risky = (threshold: SecurityRisk, confirmUnknown?: boolean) =>
  create(ConfirmationPolicySchema, { policy: { case: "confirmRisky", value: { threshold, confirmUnknown } } });

describe("confirmation policy", () => {
  it("NeverConfirm and AlwaysConfirm", () => {
    expect(shouldConfirm(never, SecurityRisk.HIGH)).toBe(false);
    expect(shouldConfirm(undefined, SecurityRisk.HIGH)).toBe(false);
    expect(shouldConfirm(always, SecurityRisk.LOW)).toBe(true);
  });

  it("ConfirmRisky compares against the threshold; UNKNOWN follows confirm_unknown (default true)", () => {
    const p = risky(SecurityRisk.MEDIUM);
    expect(shouldConfirm(p, SecurityRisk.LOW)).toBe(false);
    expect(shouldConfirm(p, SecurityRisk.MEDIUM)).toBe(true);
    expect(shouldConfirm(p, SecurityRisk.HIGH)).toBe(true);
    expect(shouldConfirm(p, SecurityRisk.UNKNOWN)).toBe(true);
    expect(shouldConfirm(risky(SecurityRisk.MEDIUM, false), SecurityRisk.UNKNOWN)).toBe(false);
    expect(shouldConfirm(risky(SecurityRisk.UNSPECIFIED), SecurityRisk.MEDIUM)).toBe(false); // default HIGH
  });

  it("think and finish never ask", () => {
    expect(batchNeedsConfirmation(always, [{ toolName: "finish", risk: SecurityRisk.UNKNOWN }, { toolName: "think", risk: SecurityRisk.HIGH }])).toBe(false);
    expect(batchNeedsConfirmation(always, [{ toolName: "finish", risk: SecurityRisk.UNKNOWN }, { toolName: "terminal", risk: SecurityRisk.LOW }])).toBe(true);
  });

  it("the LLM analyzer uses the model's risk; without one every risk is UNKNOWN", () => {
    const llm = create(SecurityAnalyzerSchema, { analyzer: { case: "llm", value: {} } });
    expect(assessRisk(llm, SecurityRisk.HIGH)).toBe(SecurityRisk.HIGH);
    expect(assessRisk(llm, SecurityRisk.UNSPECIFIED)).toBe(SecurityRisk.UNKNOWN);
    expect(assessRisk(undefined, SecurityRisk.LOW)).toBe(SecurityRisk.UNKNOWN);
  });
});
