/**
 * One port for every surface (ARCHITECTURE.md §2). A `net.Server` peeks at the first bytes of each
 * connection: the HTTP/2 client preface goes to an `http2` server (gRPC, Connect over h2,
 * gRPC-Web over h2), anything else to an `http` server (Connect over HTTP/1.1, gRPC-Web, REST,
 * WebSocket upgrades). With TLS, ALPN picks h2 or http/1.1 instead. Neither inner server ever
 * listens; they only receive sockets.
 *
 * Invariants (reference/toolchain.md §3): peeked bytes are unshifted back; an h2 socket is left
 * paused (resuming would lose the unshifted bytes), an h1 socket is resumed; a connection that
 * sends nothing is closed after `idleSniffMs`; every socket is tracked so shutdown can end them.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { AnyResponse } from "./http-common.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

const MiB = 1024 * 1024;
/**
 * HTTP/2 flow-control windows of the server (how much a client may send before the server has
 * consumed it), per stream and per connection: 16 MiB each instead of Node's 64 KiB, which made
 * a client uploading 1 MiB chunks wait for a WINDOW_UPDATE round trip every 32-64 KiB.
 *
 * They also decide how an oversized message ends: the server refuses it after the 5-byte gRPC
 * header (ResourceExhausted) and reads no further, so whatever the client cannot send stays in
 * the client's own session buffer; Node clients close the whole connection with
 * NGHTTP2_ENHANCE_YOUR_CALM once that passes their maxSessionMemory (10 MB). With 64 KiB windows
 * a 12 MiB message took the client's connection down; with 16 MiB it gets ResourceExhausted for
 * that call, as does anything up to about 16 MiB + 10 MB (test/files/large-transfer.test.ts).
 * The frame size and the server's own maxSessionMemory stay at Node's defaults: Node peers send
 * 16 KiB DATA frames whatever the limit, and the server never buffered enough to reach 10 MB.
 */
export const HTTP2_WINDOW_BYTES = 16 * MiB;

export type RequestHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: AnyResponse) => void;
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface ListenerOptions {
  host: string;
  port: number;
  handler: RequestHandler;
  onUpgrade: UpgradeHandler;
  tls?: { cert: Buffer; key: Buffer };
  /** Close connections that send no byte within this time. Default 10 s. */
  idleSniffMs?: number;
  /** HTTP/1.1 header timeout. Default 20 s. */
  headersTimeoutMs?: number;
}

export class OnePortListener {
  readonly #front: net.Server;
  readonly #h1: http.Server;
  readonly #h2: http2.Http2Server | http2.Http2SecureServer;
  readonly #sockets = new Set<net.Socket>();
  readonly #sessions = new Set<http2.Http2Session>();

  constructor(private readonly options: ListenerOptions) {
    this.#h1 = http.createServer({ headersTimeout: options.headersTimeoutMs ?? 20_000, requestTimeout: 0, keepAliveTimeout: 65_000 }, options.handler);
    this.#h1.on("upgrade", options.onUpgrade);
    // An http.Server that never listens does not run its header-timeout checker until it sees
    // 'listening' (toolchain.md §3 caveat 3).
    this.#h1.emit("listening");
    const h2Options: http2.ServerOptions = { settings: { initialWindowSize: HTTP2_WINDOW_BYTES } };
    if (options.tls !== undefined) {
      this.#h2 = http2.createSecureServer({ ...h2Options, cert: options.tls.cert, key: options.tls.key, allowHTTP1: false }, options.handler);
    } else {
      this.#h2 = http2.createServer(h2Options, options.handler);
    }
    this.#h2.on("session", (session: http2.Http2Session) => {
      // The connection-level window is not a SETTINGS value: it is raised with a WINDOW_UPDATE.
      session.setLocalWindowSize(HTTP2_WINDOW_BYTES);
      this.#sessions.add(session);
      session.once("close", () => this.#sessions.delete(session));
    });

    const onConnection = (socket: net.Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
      socket.on("error", () => socket.destroy());
    };
    if (options.tls !== undefined) {
      const tlsServer = tls.createServer({ cert: options.tls.cert, key: options.tls.key, ALPNProtocols: ["h2", "http/1.1"] }, (socket) => {
        if (socket.alpnProtocol === "h2") this.#h2.emit("secureConnection", socket);
        else this.#h1.emit("connection", socket);
      });
      tlsServer.on("connection", onConnection);
      this.#front = tlsServer;
    } else {
      this.#front = net.createServer((socket) => {
        onConnection(socket);
        this.#sniff(socket);
      });
    }
  }

  #sniff(socket: net.Socket): void {
    let seen: Buffer = Buffer.alloc(0);
    socket.setTimeout(this.options.idleSniffMs ?? 10_000, () => socket.destroy());
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && seen.length < PREFACE.length) return; // the preface may arrive split: wait
      socket.off("data", onData);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(seen);
      if (isH2) {
        this.#h2.emit("connection", socket); // stays paused: http2 reads the unshifted bytes itself
      } else {
        this.#h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#front.once("error", reject);
      this.#front.listen(this.options.port, this.options.host, () => {
        this.#front.off("error", reject);
        resolve((this.#front.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stops accepting new connections (open ones continue). */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => this.#front.close(() => resolve()));
  }

  /** Asks HTTP/2 sessions to finish their streams and go away, and idle HTTP/1.1 sockets to close. */
  drain(): void {
    for (const session of this.#sessions) session.close();
    this.#h1.closeIdleConnections();
  }

  /** Number of open connections (used by tests to assert clean teardown). */
  get openConnections(): number {
    return this.#sockets.size;
  }

  /** Resolves when every open connection has closed, or after `timeoutMs` (then returns false). */
  async allClosed(timeoutMs: number): Promise<boolean> {
    if (this.#sockets.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const closed = Promise.all([...this.#sockets].map((s) => new Promise((r) => s.once("close", r)))).then(() => true);
    const timedOut = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), timeoutMs);
    });
    try {
      return await Promise.race([closed, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends every remaining connection at once; resolves when they are all closed. */
  async destroyAll(): Promise<void> {
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#sockets) socket.destroy();
    this.#h1.closeAllConnections();
    await this.allClosed(1000);
  }
}
