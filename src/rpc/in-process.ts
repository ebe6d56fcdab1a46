/**
 * The protocol name of calls made in-process (the gateway's REST and WebSocket surfaces): their
 * requests and responses are never serialised. A handler that would hand out bytes it later
 * reuses (e.g. recycled read buffers, safe once a response is serialised) must not do so for them,
 * and a handler that prefers pre-encoded fields for binary wires must send plain messages.
 */
export const IN_PROCESS_PROTOCOL = "in-process";
