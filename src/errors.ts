/**
 * The one error table of agentd (ARCHITECTURE.md §7). Domain code throws `AgentdError` with a
 * code from this table; every surface maps it from here: Connect/gRPC code, HTTP status of the REST
 * gateway, WebSocket close code. Nothing else in the code base maps errors.
 */

export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unauthenticated"
  | "permission_denied"
  | "resource_exhausted"
  | "unavailable"
  | "data_loss"
  | "internal"
  | "deadline_exceeded"
  | "canceled"
  | "unimplemented";

/** Thrown for every expected failure. `message` is one line, names the offending value, never a secret. */
export class AgentdError extends Error {
  override readonly name = "AgentdError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Dynamic facts clients may branch on (ids, offsets, the seq to resume from). */
    readonly metadata: Record<string, string> = {},
    /** Stable machine-readable reason; defaults to the upper-cased code. */
    readonly reason: string = code.toUpperCase(),
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ErrorMapping {
  /** Numeric gRPC/Connect code (same numbering as @connectrpc/connect's `Code`). */
  readonly grpc: number;
  /** HTTP status on the REST gateway (OpenHands-compatible where it differs from Connect's). */
  readonly http: number;
  /** WebSocket close code when the error ends a socket. */
  readonly ws: number;
}

/**
 * The table. REST statuses follow the OpenHands contract where it has one (validation → 422,
 * conflicts → 409); the rest follows Connect's HTTP mapping.
 */
export const ERROR_TABLE: Readonly<Record<ErrorCode, ErrorMapping>> = {
  canceled: { grpc: 1, http: 499, ws: 1000 },
  invalid_argument: { grpc: 3, http: 422, ws: 1008 },
  deadline_exceeded: { grpc: 4, http: 504, ws: 1011 },
  not_found: { grpc: 5, http: 404, ws: 4004 },
  already_exists: { grpc: 6, http: 409, ws: 1008 },
  permission_denied: { grpc: 7, http: 403, ws: 1008 },
  resource_exhausted: { grpc: 8, http: 429, ws: 1013 },
  failed_precondition: { grpc: 9, http: 400, ws: 1008 },
  aborted: { grpc: 10, http: 409, ws: 1011 },
  out_of_range: { grpc: 11, http: 400, ws: 1008 },
  unimplemented: { grpc: 12, http: 501, ws: 1011 },
  internal: { grpc: 13, http: 500, ws: 1011 },
  unavailable: { grpc: 14, http: 503, ws: 1012 },
  data_loss: { grpc: 15, http: 500, ws: 1011 },
  unauthenticated: { grpc: 16, http: 401, ws: 4001 },
};

/**
 * Reasons whose REST status differs from their code's, as OpenHands clients expect (e.g. running a
 * conversation that already runs is FailedPrecondition on gRPC but 409 on REST). Part of the table.
 */
export const REST_STATUS_BY_REASON: Readonly<Record<string, number>> = {
  CONVERSATION_ALREADY_RUNNING: 409,
};

/** The REST status of an error: the reason override, else the code's. */
export function httpStatusOf(code: ErrorCode, reason?: string): number {
  return (reason !== undefined ? REST_STATUS_BY_REASON[reason] : undefined) ?? ERROR_TABLE[code].http;
}

const CODE_BY_GRPC = new Map<number, ErrorCode>(
  (Object.entries(ERROR_TABLE) as [ErrorCode, ErrorMapping][]).map(([code, m]) => [m.grpc, code]),
);

/** The domain code for a numeric gRPC code (2 = Unknown and anything unmapped → internal). */
export function errorCodeFromGrpc(grpc: number): ErrorCode {
  return CODE_BY_GRPC.get(grpc) ?? "internal";
}

export function isAgentdError(err: unknown): err is AgentdError {
  return err instanceof AgentdError;
}

/** Shorthands for the common cases; each returns (does not throw) the error. */
export const errors = {
  invalidArgument: (message: string, metadata?: Record<string, string>) =>
    new AgentdError("invalid_argument", message, metadata),
  notFound: (message: string, reason?: string, metadata?: Record<string, string>) =>
    new AgentdError("not_found", message, metadata, reason),
  failedPrecondition: (message: string, reason?: string) =>
    new AgentdError("failed_precondition", message, {}, reason),
  permissionDenied: (message: string, reason?: string) =>
    new AgentdError("permission_denied", message, {}, reason),
  resourceExhausted: (message: string, reason?: string, metadata?: Record<string, string>) =>
    new AgentdError("resource_exhausted", message, metadata, reason),
  unavailable: (message: string) => new AgentdError("unavailable", message),
  unimplemented: (message: string) => new AgentdError("unimplemented", message),
} as const;
