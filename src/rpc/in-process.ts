/**
 * Calls made in-process (the gateway's REST and WebSocket surfaces) are never serialised: the
 * caller receives the very messages a handler yields. Handlers ask `isSerialized` before relying
 * on serialisation — handing out bytes they reuse once a response is encoded (recycled read
 * buffers), or sending pre-encoded fields meant for binary wires.
 */
import type { HandlerContext } from "@connectrpc/connect";

/** The protocol name an in-process call's handler context carries. */
export const IN_PROCESS_PROTOCOL = "in-process";

/** True when the call's messages are serialised on their way (every protocol but in-process). */
export function isSerialized(ctx: HandlerContext): boolean {
  return ctx.protocolName !== IN_PROCESS_PROTOCOL;
}
