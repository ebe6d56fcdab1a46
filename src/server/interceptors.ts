/**
 * The interceptors every RPC passes through, on every surface (the REST/WebSocket gateway calls the
 * same router in-process, so it gets them too). Order, outermost first:
 *   1. auth     — Unauthenticated unless the RPC is open or a valid session key is presented;
 *   2. activity — marks the server busy (idle_time in server info);
 *   3. errors   — turns AgentdError into ConnectError with an ErrorDetail, and anything unexpected
 *                 into Internal with an error_id that is logged with the cause.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import type { DescMessage } from "@bufbuild/protobuf";
import { ErrorDetailSchema } from "../../gen/agentd/v1/error_detail_pb.js";
import { AgentdError, ERROR_TABLE } from "../errors.js";
import { isOpenRpc, presentedKey, type SessionKeys } from "./auth.js";
import type { Logger } from "./logger.js";

export function authInterceptor(keys: SessionKeys): Interceptor {
  return (next) => async (req) => {
    if (keys.disabled || isOpenRpc(req.service.typeName, req.method.name)) return next(req);
    if (!keys.accepts(presentedKey((n) => req.header.get(n)))) {
      throw new ConnectError("missing or invalid session key", Code.Unauthenticated);
    }
    return next(req);
  };
}

/** Calls `touch` for every RPC except the ones probes make, so idle_time means "no client work". */
export function activityInterceptor(touch: () => void): Interceptor {
  return (next) => (req) => {
    if (!isOpenRpc(req.service.typeName, req.method.name)) touch();
    return next(req);
  };
}

/** Maps any thrown value to the ConnectError clients see (the error table of src/errors.ts). */
export function toConnectError(err: unknown, logger: Logger): ConnectError {
  if (err instanceof AgentdError) {
    const detail = { desc: ErrorDetailSchema, value: { reason: err.reason, metadata: err.metadata } };
    return new ConnectError(err.message, ERROR_TABLE[err.code].grpc as Code, undefined, [detail], err);
  }
  if (err instanceof ConnectError) return err;
  const errorId = randomUUID().replaceAll("-", "");
  logger.error("internal error", {
    error_id: errorId,
    error: err instanceof Error ? err.message : String(err),
    stack: err instanceof Error ? err.stack : undefined,
  });
  const detail = { desc: ErrorDetailSchema, value: { reason: "INTERNAL", errorId } };
  return new ConnectError(`internal error (error_id ${errorId})`, Code.Internal, undefined, [detail], err);
}

export function errorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    let res: UnaryResponse<DescMessage, DescMessage> | StreamResponse<DescMessage, DescMessage>;
    try {
      res = await next(req);
    } catch (err) {
      throw toConnectError(err, logger);
    }
    if (!res.stream) return res;
    const inner = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* inner;
        } catch (err) {
          throw toConnectError(err, logger);
        }
      })(),
    };
  };
}
