/**
 * CORS for browsers (Connect-web, gRPC-Web, REST). Allowed origins: any localhost / 127.0.0.1 /
 * [::1] origin (as OpenHands does), the configured list, and the configured regex. Connect and
 * gRPC-Web response headers are exposed so browser clients can read statuses and trailers.
 */
import type { AnyRequest, AnyResponse } from "./http-common.js";

const ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOW_HEADERS = [
  "Content-Type", "Connect-Protocol-Version", "Connect-Timeout-Ms", "Connect-Accept-Encoding", "Connect-Content-Encoding",
  "Grpc-Timeout", "X-Grpc-Web", "X-User-Agent", "X-Session-API-Key", "Authorization", "X-Request-Id", "Range",
].join(", ");
const EXPOSE_HEADERS = [
  "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Connect-Content-Encoding", "Connect-Accept-Encoding",
  "X-Request-Id", "Content-Disposition", "Content-Range", "Accept-Ranges",
].join(", ");

const LOCAL_ORIGIN = /^https?:\/\/(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/;

export class CorsPolicy {
  readonly #origins: Set<string>;
  readonly #regex: RegExp | undefined;

  constructor(origins: readonly string[], regex: string | undefined) {
    this.#origins = new Set(origins);
    this.#regex = regex === undefined ? undefined : new RegExp(`^(?:${regex})$`);
  }

  allows(origin: string): boolean {
    return LOCAL_ORIGIN.test(origin) || this.#origins.has(origin) || this.#origins.has("*") || (this.#regex?.test(origin) ?? false);
  }

  /**
   * Adds CORS headers for an allowed origin. Returns true when the request was a preflight and has
   * been answered.
   */
  apply(req: AnyRequest, res: AnyResponse): boolean {
    const origin = req.headers.origin;
    if (typeof origin !== "string" || !this.allows(origin)) return false;
    res.setHeader("Access-Control-Allow-Origin", origin);
    res.setHeader("Access-Control-Allow-Credentials", "true");
    res.setHeader("Vary", "Origin");
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      res.setHeader("Access-Control-Allow-Methods", ALLOW_METHODS);
      res.setHeader("Access-Control-Allow-Headers", ALLOW_HEADERS);
      res.setHeader("Access-Control-Max-Age", "7200");
      res.statusCode = 204;
      res.end();
      return true;
    }
    res.setHeader("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    return false;
  }
}
