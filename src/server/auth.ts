/**
 * Session-key authentication (ARCHITECTURE.md §8). When keys are configured every surface needs
 * one, except the open endpoints below. Keys are compared in constant time (digests of equal
 * length), against every configured key so rotation works.
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** RPCs callable without a key: server info and the gRPC health service. */
export const OPEN_RPC_SERVICES: ReadonlySet<string> = new Set(["grpc.health.v1.Health"]);
export const OPEN_RPC_METHODS: ReadonlySet<string> = new Set(["agentd.v1.ServerService/GetServerInfo"]);

export function isOpenRpc(serviceTypeName: string, methodName: string): boolean {
  return OPEN_RPC_SERVICES.has(serviceTypeName) || OPEN_RPC_METHODS.has(`${serviceTypeName}/${methodName}`);
}

/** Plain HTTP paths served without a key (probes, server info, docs). */
export const OPEN_HTTP_PATHS: ReadonlySet<string> = new Set([
  "/",
  "/alive",
  "/health",
  "/ready",
  "/server_info",
  "/docs",
  "/redoc",
  "/openapi.json",
]);

/** Path prefixes served without a key (static docs assets, the browser demo page). */
export const OPEN_HTTP_PREFIXES: readonly string[] = ["/docs/", "/_demo"];

export class SessionKeys {
  readonly #digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.#digests = keys.map(digest);
  }

  /** True when no key is configured: everything is open (the server is then loopback-only). */
  get disabled(): boolean {
    return this.#digests.length === 0;
  }

  /** Constant-time check of a presented key against every configured key. */
  accepts(candidate: string | null | undefined): boolean {
    if (this.disabled) return true;
    if (candidate === null || candidate === undefined || candidate === "") return false;
    const d = digest(candidate);
    let ok = false;
    for (const k of this.#digests) ok = timingSafeEqual(k, d) || ok;
    return ok;
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** The key a request presents: `X-Session-API-Key`, else `Authorization: Bearer <key>`. */
export function presentedKey(get: (name: string) => string | null | undefined): string | undefined {
  const direct = get("x-session-api-key");
  if (direct) return direct;
  const auth = get("authorization");
  if (auth && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, "").trim();
  return undefined;
}

export function isOpenHttpPath(pathname: string): boolean {
  return OPEN_HTTP_PATHS.has(pathname) || OPEN_HTTP_PREFIXES.some((p) => pathname.startsWith(p));
}
