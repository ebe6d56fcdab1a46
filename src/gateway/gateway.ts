/**
 * The REST/WebSocket gateway (ARCHITECTURE.md §2, §3): OpenHands-compatible REST routes generated
 * from the `google.api.http` annotations, the two OpenHands WebSockets, the OpenAPI document and
 * Swagger UI, and the /_demo browser page. It plugs into the server through the `Modules` hooks:
 * `attachRoutes` (the router and interceptors it calls in-process), `handleHttp`, `onUpgrade`.
 *
 * Paths it owns besides the route table: `/` (server info, as OpenHands without a static dir),
 * `/openapi.json`, `/docs`, `/redoc`, `/_demo`, and the socket paths (plain GET → 426).
 * Auth of plain HTTP paths is checked by the server before `handleHttp` (app.ts); the gateway
 * forwards the caller's key so the RPC interceptors check it again, identically to gRPC.
 */
import type http from "node:http";
import type { Duplex } from "node:stream";
import type { DescService, JsonObject } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { pathnameOf, type AnyRequest, type AnyResponse } from "../server/http-common.js";
import type { Logger } from "../server/logger.js";
import { InProcessCaller } from "./caller.js";
import { serveDemo } from "./demo.js";
import { serveDocs } from "./docs.js";
import { buildOpenApi } from "./openapi.js";
import { RestHandler } from "./rest-handler.js";
import { RestRouteTable, type RestRoute } from "./rest-routes.js";
import { SocketGateway, type KeyCheck } from "./sockets.js";

export interface GatewayOptions {
  /** The services whose annotated RPCs become REST routes. */
  services: readonly DescService[];
  keys: KeyCheck;
  /** Largest JSON body / WebSocket frame accepted (config.maxMessageBytes). */
  maxMessageBytes: number;
  logger: Logger;
  /** Aborted when the server shuts down: sockets close with 1001. */
  shutdownSignal?: AbortSignal;
  pingIntervalMs?: number;
  authTimeoutMs?: number;
}

/** Paths served with another path's operation (OpenHands serves server info at "/"). */
export const PATH_ALIASES: Readonly<Record<string, string>> = { "/": "/server_info" };

export class Gateway {
  readonly table: RestRouteTable;
  readonly #caller = new InProcessCaller();
  readonly #rest: RestHandler;
  readonly #sockets: SocketGateway;
  readonly #aliases = new Map<string, RestRoute>();
  #openApi: JsonObject | undefined;
  #openApiText: string | undefined;

  constructor(options: GatewayOptions) {
    this.table = new RestRouteTable(options.services);
    this.#rest = new RestHandler({ table: this.table, caller: this.#caller, maxMessageBytes: options.maxMessageBytes, logger: options.logger });
    this.#sockets = new SocketGateway({
      caller: this.#caller,
      keys: options.keys,
      maxMessageBytes: options.maxMessageBytes,
      logger: options.logger,
      pingIntervalMs: options.pingIntervalMs,
      authTimeoutMs: options.authTimeoutMs,
    });
    for (const [alias, target] of Object.entries(PATH_ALIASES)) {
      const m = this.table.match("GET", target);
      if (m.type === "match") this.#aliases.set(alias, m.route);
    }
    options.shutdownSignal?.addEventListener("abort", () => this.#sockets.close(), { once: true });
  }

  /** Hook for `Modules.attachRoutes`: the router and interceptors the server serves. */
  attachRoutes = (routes: (router: ConnectRouter) => void, interceptors: Interceptor[]): void => {
    this.#caller.attach(routes, interceptors);
  };

  /** Hook for `Modules.handleHttp`. */
  handleHttp = (req: AnyRequest, res: AnyResponse): boolean => {
    const pathname = pathnameOf(req);
    const method = req.method ?? "GET";
    if (method === "GET" || method === "HEAD") {
      const alias = this.#aliases.get(pathname);
      if (alias !== undefined) {
        this.#rest.serveMatched(alias, [], req, res);
        return true;
      }
      if (pathname === "/openapi.json") {
        this.#openApiText ??= JSON.stringify(this.openApi());
        (res as http.ServerResponse).writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(this.#openApiText)) });
        res.end(this.#openApiText);
        return true;
      }
      if (serveDocs(pathname, res)) return true;
      if (serveDemo(pathname, res)) return true;
      if (this.#sockets.handlePlain(res, pathname)) return true;
    }
    return this.#rest.handle(req, res, pathname);
  };

  /** Hook for `Modules.onUpgrade`. */
  onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    return this.#sockets.handleUpgrade(req, socket, head, pathnameOf(req));
  };

  /** The OpenAPI 3.1 document (built once). */
  openApi(): JsonObject {
    this.#openApi ??= buildOpenApi(this.table, { aliases: PATH_ALIASES });
    return this.#openApi;
  }

  /** Open WebSockets. */
  get openSockets(): number {
    return this.#sockets.size;
  }

  /** Closes the sockets (1001). REST calls in flight finish on their own. */
  close(): Promise<void> {
    this.#sockets.close();
    return Promise.resolve();
  }
}

export function createGateway(options: GatewayOptions): Gateway {
  return new Gateway(options);
}
