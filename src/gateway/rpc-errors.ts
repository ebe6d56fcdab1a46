/**
 * Turns whatever a gateway call throws into the REST answer or WebSocket close of the one error
 * table (src/errors.ts): `{"detail": "<message>"}` with `httpStatusOf(code, reason)`, the reason
 * taken from the ErrorDetail the server attached. Unauthenticated is always 401
 * `{"detail": "Unauthorized"}` as OpenHands answers. Internal errors keep their error_id.
 */
import { ConnectError, type Code } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/agentd/v1/error_detail_pb.js";
import { AgentdError, ERROR_TABLE, errorCodeFromGrpc, httpStatusOf, type ErrorCode } from "../errors.js";

/** An HTTP-level failure of the gateway itself (no RPC involved): 405, 413, 415, 416, 426. */
export class GatewayHttpError extends Error {
  override readonly name = "GatewayHttpError";
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface RestError {
  status: number;
  body: { detail: string; error_id?: string };
  headers: Record<string, string>;
  code: ErrorCode;
}

/** The domain code, reason and message of any thrown value. */
export function describeError(err: unknown): { code: ErrorCode; reason: string | undefined; message: string; errorId: string | undefined } {
  if (err instanceof AgentdError) return { code: err.code, reason: err.reason, message: err.message, errorId: undefined };
  if (err instanceof ConnectError) {
    const detail = err.findDetails(ErrorDetailSchema)[0];
    return {
      code: errorCodeFromGrpc(err.code),
      reason: detail?.reason === "" ? undefined : detail?.reason,
      message: err.rawMessage,
      errorId: detail?.errorId === "" ? undefined : detail?.errorId,
    };
  }
  return { code: "internal", reason: undefined, message: "internal error", errorId: undefined };
}

export function restErrorOf(err: unknown): RestError {
  if (err instanceof GatewayHttpError) {
    return { status: err.status, body: { detail: err.message }, headers: err.headers, code: err.status === 413 ? "resource_exhausted" : "invalid_argument" };
  }
  const d = describeError(err);
  if (d.code === "unauthenticated") return { status: 401, body: { detail: "Unauthorized" }, headers: {}, code: d.code };
  const body: RestError["body"] = { detail: d.message };
  if (d.errorId !== undefined) body.error_id = d.errorId;
  return { status: httpStatusOf(d.code, d.reason), body, headers: {}, code: d.code };
}

/** WebSocket close code and reason (at most 123 bytes, the protocol's limit) for an error. */
export function wsCloseOf(err: unknown): { code: number; reason: string } {
  const d = describeError(err);
  const code = ERROR_TABLE[d.code].ws;
  const reason = d.code === "not_found" && /conversation/i.test(d.message) ? "Conversation not found" : d.code === "unauthenticated" ? "Authentication failed" : d.message;
  return { code, reason: truncateUtf8(reason, 123) };
}

export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = text;
  while (Buffer.byteLength(out) > maxBytes - 3) out = out.slice(0, -1);
  return `${out}...`;
}

/** True when the error is a ConnectError (or AgentdError) with the given code. */
export function hasCode(err: unknown, code: Code): boolean {
  if (err instanceof ConnectError) return err.code === code;
  if (err instanceof AgentdError) return ERROR_TABLE[err.code].grpc === (code as number);
  return false;
}
