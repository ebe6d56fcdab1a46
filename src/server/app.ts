/**
 * The composition root: builds every part of agentd from a Config and serves it on one port.
 * `createApp` opens nothing and listens on nothing until `start()`; tests and the CLI both use it.
 *
 * Shutdown (SIGTERM/SIGINT, or `stop()`): health goes NOT_SERVING, the port stops accepting,
 * server streams end cleanly (OK status), HTTP/2 sessions get GOAWAY and idle HTTP/1.1 sockets
 * close; after `shutdownGraceMs` whatever is left is destroyed; then the domain closes (commands
 * killed, browsers closed) and storage closes last.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor, ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { Config } from "../config.js";
import { createHealthService, HealthState } from "../rpc/health-service.js";
import { createReflectionServices } from "../rpc/reflection-service.js";
import { isOpenHttpPath, presentedKey, SessionKeys } from "./auth.js";
import { CorsPolicy } from "./cors.js";
import { pathnameOf, sendJson, type AnyRequest, type AnyResponse } from "./http-common.js";
import { activityInterceptor, authInterceptor, errorInterceptor } from "./interceptors.js";
import { OnePortListener } from "./listener.js";
import { createLogger, type Logger } from "./logger.js";
import { buildModules, type Modules } from "./modules.js";

/** A service and how to register its implementation; methods left out answer Unimplemented. */
export interface RegisteredService {
  desc: DescService;
  register(router: ConnectRouter): void;
}

export function registered<S extends DescService>(desc: S, impl: Partial<ServiceImpl<S>>): RegisteredService {
  return { desc, register: (router) => router.service(desc, impl) };
}

export interface AppOptions {
  logger?: Logger;
}

export interface RunningApp {
  readonly port: number;
  readonly url: string;
  /** Open client connections (tests assert it reaches 0). */
  openConnections(): number;
  stop(): Promise<void>;
}

export class AgentdApp {
  readonly logger: Logger;
  readonly health = new HealthState();
  readonly keys: SessionKeys;
  readonly #shutdown = new AbortController();
  #lastActivityMs = Date.now();
  #modules: Modules | undefined;
  #listener: OnePortListener | undefined;
  #stopping: Promise<void> | undefined;

  constructor(readonly config: Config, options: AppOptions = {}) {
    this.logger = options.logger ?? createLogger(config.logLevel);
    this.keys = new SessionKeys(config.sessionApiKeys);
  }

  /** Aborted when shutdown begins; server streams watch it to end cleanly. */
  get shutdownSignal(): AbortSignal {
    return this.#shutdown.signal;
  }

  touch = (): void => {
    this.#lastActivityMs = Date.now();
  };

  get lastActivityMs(): number {
    return this.#lastActivityMs;
  }

  /** The built modules once start() has run (tests and benchmarks reach the domain through it). */
  get modules(): Modules | undefined {
    return this.#modules;
  }

  /** Builds the domain, registers every service and starts listening. */
  async start(): Promise<RunningApp> {
    const modules = await buildModules(this);
    this.#modules = modules;
    const interceptors: Interceptor[] = [authInterceptor(this.keys), activityInterceptor(this.touch), errorInterceptor(this.logger)];
    const services = modules.services;
    const reflection = createReflectionServices([...services.map((s) => s.desc), Health]);
    const routes = (router: ConnectRouter) => {
      for (const s of services) s.register(router);
      router.service(Health, createHealthService(this.health, services.map((s) => s.desc.typeName)));
      router.service(ReflectionV1, reflection.v1);
      router.service(ReflectionV1Alpha, reflection.v1alpha);
    };
    modules.attachRoutes?.(routes, interceptors);
    const cors = new CorsPolicy(this.config.allowCorsOrigins, this.config.allowCorsOriginRegex);
    const rpc = connectNodeAdapter({
      routes,
      interceptors,
      readMaxBytes: this.config.maxMessageBytes,
      writeMaxBytes: this.config.maxMessageBytes,
      // Responses are never compressed (compressed requests are accepted): agentd's clients sit on
      // loopback or a LAN, where gzip only costs time — about a millisecond per 100-event page,
      // and it would cap a file transfer at one core's gzip speed.
      compressMinBytes: Number.MAX_SAFE_INTEGER,
      fallback: (req, res) => this.#plainHttp(req, res, modules),
    });
    const handler = (req: AnyRequest, res: AnyResponse) => {
      const started = performance.now();
      const requestId = typeof req.headers["x-request-id"] === "string" ? req.headers["x-request-id"].slice(0, 128) : randomUUID();
      res.setHeader("X-Request-Id", requestId);
      if (this.logger.enabled("info")) {
        res.once("finish", () => {
          this.logger.info("request", {
            request_id: requestId,
            method: req.method,
            path: pathnameOf(req),
            status: res.statusCode,
            http: req.httpVersion,
            duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
          });
        });
      }
      if (cors.apply(req, res)) return;
      rpc(req, res);
    };
    let tls: { cert: Buffer; key: Buffer } | undefined;
    if (this.config.tlsCert !== undefined && this.config.tlsKey !== undefined) {
      tls = { cert: await readFile(this.config.tlsCert), key: await readFile(this.config.tlsKey) };
    }
    const listener = new OnePortListener({
      host: this.config.host,
      port: this.config.port,
      tls,
      handler,
      onUpgrade: (req, socket, head) => {
        if (!(modules.onUpgrade?.(req, socket, head) ?? false)) {
          socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        }
      },
    });
    this.#listener = listener;
    const port = await listener.listen();
    this.health.set("serving");
    const host = this.config.host.includes(":") ? `[${this.config.host}]` : this.config.host;
    const url = `${tls ? "https" : "http"}://${host}:${port}`;
    this.logger.info("listening", { url, data_dir: this.config.dataDir, workspace: this.config.workspaceBase, auth: !this.keys.disabled });
    return { port, url, openConnections: () => listener.openConnections, stop: () => this.stop() };
  }

  /** /alive, /health, /ready and whatever the modules (the REST gateway) serve; 404 otherwise. */
  #plainHttp(req: AnyRequest, res: AnyResponse, modules: Modules): void {
    const pathname = pathnameOf(req);
    if (req.method === "GET" || req.method === "HEAD") {
      if (pathname === "/alive" || pathname === "/health") return sendJson(res, 200, { status: "ok" });
      if (pathname === "/ready") {
        return this.health.state === "serving"
          ? sendJson(res, 200, { status: "ready" })
          : sendJson(res, 503, { status: "initializing", message: "Server is still initializing" });
      }
    }
    if (!isOpenHttpPath(pathname) && !this.keys.accepts(presentedKey((n) => headerOf(req, n)) ?? queryKey(req))) {
      return sendJson(res, 401, { detail: "Unauthorized" });
    }
    if (modules.handleHttp?.(req, res) === true) return;
    sendJson(res, 404, { detail: "Not Found" });
  }

  /** Idempotent graceful stop; see the module comment for the order. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.health.set("stopping");
    this.#shutdown.abort();
    const listener = this.#listener;
    if (listener !== undefined) {
      const accepting = listener.stopAccepting();
      // Streams have seen the shutdown signal and end with OK; give their final frames a moment to
      // flush (a turn of the event loop), then ask sessions to go away and wait for clients.
      await new Promise((r) => setImmediate(r));
      listener.drain();
      if (!(await listener.allClosed(this.config.shutdownGraceMs))) {
        this.logger.warn("closing connections that outlived the shutdown grace", { open: listener.openConnections });
      }
      await listener.destroyAll();
      await accepting;
    }
    await this.#modules?.close();
    if (listener !== undefined) this.logger.info("stopped");
  }
}

function headerOf(req: AnyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `?session_api_key=` (deprecated in OpenHands but still accepted, as there). */
function queryKey(req: AnyRequest): string | undefined {
  const url = req.url ?? "";
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get("session_api_key") ?? undefined;
}
