/** Small helpers shared by the plain HTTP routes and the REST gateway. */
import type http from "node:http";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";

type NodeHandlerFn = NonNullable<ConnectNodeAdapterOptions["fallback"]>;

/** A request from either inner server (HTTP/1.1 or HTTP/2). */
export type AnyRequest = Parameters<NodeHandlerFn>[0];
/** A response of either inner server. */
export type AnyResponse = Parameters<NodeHandlerFn>[1];

/** Writes a JSON body with a status; `body` is serialised as-is. */
export function sendJson(res: AnyResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  (res as http.ServerResponse).writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** The path of a request without its query string. */
export function pathnameOf(req: AnyRequest): string {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}
