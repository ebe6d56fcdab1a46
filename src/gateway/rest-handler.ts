/**
 * REST ⇄ RPC translation for every route of the table (rest-routes.ts). Per request: match the
 * route, build the request message from path, query and body with the OpenHands JSON codec, call
 * the RPC in-process (same router, same interceptors), render the response with the codec.
 *
 * Quirks OpenHands clients rely on, each applied generically:
 * - a JSON body may be empty (POST /run with `Content-Type: application/json` and no bytes);
 * - bodies over `maxMessageBytes` → 413 (multipart uploads are streamed and not limited);
 * - `created_field` → 201 instead of 200 when that response bool is true;
 * - `response_body: "count"` gives a bare number, a repeated slot field an array with nulls;
 * - a server-streaming RPC whose response_body is a bytes field is a raw download:
 *   `application/octet-stream`, `Content-Disposition`, `Accept-Ranges`, and HTTP Range (one range)
 *   mapped onto the request's `offset`/`length` → 206 with `Content-Range`, 416 when unsatisfiable;
 * - a route whose body is one bytes field takes raw bytes; for UploadFile a `multipart/form-data`
 *   part named `file` (or a raw body) is streamed through CreateUpload / WriteUpload / CommitUpload
 *   in chunks, so memory stays constant whatever the file size;
 * - an explicit `limit` below 1 is refused with 422 (proto3 cannot tell 0 from "not given", and 0
 *   means "default" on the RPC);
 * - routes marked `rest_exclude_none` (event search pages, as in OpenHands) leave out nulls.
 * Errors: `{"detail": "<message>"}` with the status of the error table (rpc-errors.ts).
 */
import { create, type DescField, type DescMessage, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import busboy from "busboy";
import type { Readable } from "node:stream";
import { fieldFromOpenHandsJson, fieldToOpenHandsJson, fromOpenHandsJson, toOpenHandsJson } from "../codec/openhands-json.js";
import { AgentdError } from "../errors.js";
import { presentedKey } from "../server/auth.js";
import type { AnyRequest, AnyResponse } from "../server/http-common.js";
import type { Logger } from "../server/logger.js";
import type { InProcessCaller } from "./caller.js";
import type { RestRoute, RestRouteTable } from "./rest-routes.js";
import { GatewayHttpError, hasCode, restErrorOf } from "./rpc-errors.js";
import { Code } from "@connectrpc/connect";

/** Chunk size of streamed uploads (at most half the message limit). */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;
/**
 * WriteUpload calls a streamed upload keeps in flight: the next chunk is collected while the
 * previous ones are written (the upload session accepts chunks ahead of its received prefix).
 */
const UPLOAD_IN_FLIGHT = 4;

type Fields = Record<string, unknown>;

export interface RestHandlerOptions {
  table: RestRouteTable;
  caller: InProcessCaller;
  maxMessageBytes: number;
  logger: Logger;
}

export class RestHandler {
  readonly #table: RestRouteTable;
  readonly #caller: InProcessCaller;
  readonly #maxBytes: number;
  readonly #logger: Logger;

  constructor(options: RestHandlerOptions) {
    this.#table = options.table;
    this.#caller = options.caller;
    this.#maxBytes = options.maxMessageBytes;
    this.#logger = options.logger;
  }

  /** Serves the request if its path is a route (any method); false otherwise. */
  handle(req: AnyRequest, res: AnyResponse, pathname: string): boolean {
    const m = this.#table.match(req.method ?? "GET", pathname);
    switch (m.type) {
      case "not_found":
        return false;
      case "bad_path":
        sendJson(res, 400, { detail: "malformed path" });
        return true;
      case "method_not_allowed":
        sendJson(res, 405, { detail: "Method Not Allowed" }, { allow: m.allowed.join(", ") });
        return true;
      case "match":
        this.serveMatched(m.route, m.vars, req, res);
        return true;
    }
  }

  /** Serves a route, answering any failure with the error table's status and `{detail}`. */
  serveMatched(route: RestRoute, vars: string[], req: AnyRequest, res: AnyResponse): void {
    this.serve(route, vars, req, res).catch((err: unknown) => this.#fail(res, err, route));
  }

  /** Serves a matched route; never rejects for client errors (they are answered). */
  async serve(route: RestRoute, vars: string[], req: AnyRequest, res: AnyResponse): Promise<void> {
    const key = keyOf(req);
    const ac = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    const query = parseQuery(req.url ?? "");
    const extensions = wantsExtensions(req, query);
    if (route.rawBody && route.bodyField !== undefined) {
      await this.#serveRawBody(route, vars, query, req, res, key, ac.signal, extensions);
      return;
    }
    const input = await this.#buildInput(route, vars, query, req);
    if (route.download) {
      await this.#serveDownload(route, input, req, res, key, ac.signal);
      return;
    }
    if (route.method.methodKind === "server_streaming") {
      await this.#serveNdjson(route, input, res, key, ac.signal, extensions);
      return;
    }
    const out = await this.#caller.unaryAny(route.method, input, key, ac.signal);
    this.#sendResult(route, out, res, extensions);
  }

  #sendResult(route: RestRoute, out: Fields, res: AnyResponse, extensions: boolean): void {
    const excludeNone = route.excludeNone;
    let status = 200;
    if (route.createdField !== undefined && out[route.createdField.localName] === true) status = 201;
    const json: JsonValue =
      route.responseField !== undefined
        ? fieldToOpenHandsJson(route.responseField, out[route.responseField.localName], { excludeNone, extensions })
        : toOpenHandsJson(route.method.output, out as never, { excludeNone, extensions });
    sendJson(res, status, json);
  }

  async #buildInput(route: RestRoute, vars: string[], query: Map<string, string[]>, req: AnyRequest): Promise<Fields> {
    const inputDesc = route.method.input;
    let msg: Fields;
    if (route.bodyAll) {
      const json = await readJsonBody(req, this.#maxBytes);
      msg = (json === undefined ? create(inputDesc) : fromOpenHandsJson(inputDesc, json)) as unknown as Fields;
    } else {
      msg = create(inputDesc) as unknown as Fields;
      if (route.bodyField !== undefined) {
        const json = await readJsonBody(req, this.#maxBytes);
        if (json !== undefined && json !== null) setField(msg, route.bodyField, fieldFromOpenHandsJson(route.bodyField, json, ""));
      } else if (route.getBodyArrayField !== undefined && hasBody(req)) {
        const json = await readJsonBody(req, this.#maxBytes);
        if (Array.isArray(json)) setField(msg, route.getBodyArrayField, fieldFromOpenHandsJson(route.getBodyArrayField, json, route.getBodyArrayField.name));
      }
      applyQuery(route, query, msg);
    }
    applyPath(route, vars, msg);
    return msg;
  }

  #fail(res: AnyResponse, err: unknown, route: RestRoute): void {
    const e = restErrorOf(err);
    if (e.status >= 500 && e.code === "internal") {
      this.#logger.error("gateway call failed", { route: route.id, error: err instanceof Error ? err.message : String(err) });
    }
    if (res.headersSent) {
      // A download broke after its headers: cut the connection so the client sees the truncation.
      res.destroy();
      return;
    }
    const headers = { ...e.headers };
    if (e.status === 413) headers.connection = "close";
    sendJson(res, e.status, e.body, headers);
  }

  // ---------------------------------------------------------------------------------------------
  // Streaming responses

  /** Server-streaming RPCs with an HTTP rule but no bytes response: one JSON line per message. */
  async #serveNdjson(route: RestRoute, input: Fields, res: AnyResponse, key: string | undefined, signal: AbortSignal, extensions: boolean): Promise<void> {
    const stream = await this.#caller.streamAny(route.method, input, key, signal);
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    let r = first;
    while (r.done !== true) {
      const line = JSON.stringify(renderStreamItem(route, r.value, extensions)) + "\n";
      if (!res.write(line)) await drained(res);
      r = await it.next();
    }
    res.end();
  }

  async #serveDownload(route: RestRoute, input: Fields, req: AnyRequest, res: AnyResponse, key: string | undefined, signal: AbortSignal): Promise<void> {
    const dataField = route.responseField!;
    const offsetField = route.method.input.fields.find((f) => f.name === "offset");
    const lengthField = route.method.input.fields.find((f) => f.name === "length");
    const rangeHeader = headerOf(req, "range");
    let range = rangeHeader !== undefined && offsetField !== undefined && lengthField !== undefined ? parseRange(rangeHeader) : undefined;
    const sub = new AbortController();
    const onAbort = () => sub.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (range?.suffix !== undefined) {
        // "bytes=-N": the size is needed first; the first message of a plain call carries it.
        const probe = new AbortController();
        const head = await this.#firstMessage(route.method, input, key, probe.signal);
        probe.abort();
        const size = sizeOf(head.first);
        range = size === undefined ? undefined : { start: Math.max(0, size - range.suffix), end: size - 1 };
      }
      if (range !== undefined) {
        input[offsetField!.localName] = BigInt(range.start);
        if (range.end !== undefined) input[lengthField!.localName] = BigInt(range.end - range.start + 1);
      }
      let started: { first: Fields | undefined; it: AsyncIterator<Fields> };
      try {
        started = await this.#firstMessage(route.method, input, key, sub.signal);
      } catch (err) {
        if (range !== undefined && hasCode(err, Code.OutOfRange)) throw new GatewayHttpError(416, "Range Not Satisfiable");
        throw err;
      }
      const info = started.first?.info as Fields | undefined;
      const size = sizeOf(started.first);
      const headers: Record<string, string> = {
        "content-type": "application/octet-stream",
        "accept-ranges": "bytes",
      };
      const name = typeof info?.name === "string" && info.name !== "" ? info.name : baseName(String(input.path ?? "download"));
      headers["content-disposition"] = contentDisposition(name);
      let status = 200;
      if (range !== undefined && size !== undefined) {
        if (range.start >= size && !(size === 0 && range.start === 0)) {
          throw new GatewayHttpError(416, "Range Not Satisfiable", { "content-range": `bytes */${size}` });
        }
        const end = Math.min(range.end ?? size - 1, size - 1);
        status = 206;
        headers["content-range"] = `bytes ${range.start}-${end}/${size}`;
        headers["content-length"] = String(Math.max(0, end - range.start + 1));
      } else if (size !== undefined) {
        headers["content-length"] = String(size);
      }
      res.writeHead(status, headers);
      let msg = started.first;
      while (msg !== undefined) {
        const data = msg[dataField.localName] as Uint8Array;
        // The next chunk is asked for before waiting for the socket, so reading, hashing and
        // framing it overlap sending this one (one chunk ahead: memory stays two chunks).
        const next = started.it.next();
        if (data.length > 0 && !res.write(data)) {
          try {
            await drained(res);
          } catch (err) {
            next.catch(() => undefined); // the client is gone; the finally below cancels the call
            throw err;
          }
        }
        const r = await next;
        msg = r.done === true ? undefined : r.value;
      }
      res.end();
    } finally {
      signal.removeEventListener("abort", onAbort);
      sub.abort();
    }
  }

  async #firstMessage(method: DescMethod, input: Fields, key: string | undefined, signal: AbortSignal): Promise<{ first: Fields | undefined; it: AsyncIterator<Fields> }> {
    const stream = await this.#caller.streamAny(method, input, key, signal);
    const it = stream[Symbol.asyncIterator]();
    const r = await it.next();
    return { first: r.done === true ? undefined : r.value, it };
  }

  // ---------------------------------------------------------------------------------------------
  // Raw and multipart bodies

  async #serveRawBody(
    route: RestRoute,
    vars: string[],
    query: Map<string, string[]>,
    req: AnyRequest,
    res: AnyResponse,
    key: string | undefined,
    signal: AbortSignal,
    extensions: boolean,
  ): Promise<void> {
    const msg = create(route.method.input) as unknown as Fields;
    applyQuery(route, query, msg);
    applyPath(route, vars, msg);
    const session = uploadSessionOf(route);
    const contentType = headerOf(req, "content-type") ?? "";
    if (session !== undefined) {
      const out = /^multipart\/form-data/i.test(contentType)
        ? await this.#multipartUpload(session, msg, req, key, signal)
        : await this.#streamUpload(session, msg, req, key, signal);
      this.#sendResult(route, out, res, extensions);
      return;
    }
    if (/^multipart\/form-data/i.test(contentType)) throw new GatewayHttpError(415, "multipart bodies are only accepted by upload routes");
    const body = await readBody(req, this.#maxBytes);
    setField(msg, route.bodyField!, new Uint8Array(body.buffer, body.byteOffset, body.length));
    const out = await this.#caller.unaryAny(route.method, msg, key, signal);
    this.#sendResult(route, out, res, extensions);
  }

  #multipartUpload(session: UploadSession, msg: Fields, req: AnyRequest, key: string | undefined, signal: AbortSignal): Promise<Fields> {
    return new Promise<Fields>((resolve, reject) => {
      let bb: busboy.Busboy;
      try {
        bb = busboy({ headers: req.headers as Record<string, string>, limits: { files: 1, fields: 50, parts: 100 } });
      } catch (err) {
        reject(new GatewayHttpError(422, `file: ${err instanceof Error ? err.message : "malformed multipart body"}`));
        return;
      }
      let handled = false;
      let file: Readable | undefined;
      // `req.pipe(bb)` does not pass a client disconnect on: the file stream would wait for bytes
      // forever and the upload session would linger until its idle expiry. End it instead, so
      // the upload fails and its session (with the temp file) is aborted at once.
      const onAbort = () => {
        const gone = new AgentdError("canceled", "client disconnected during the upload");
        file?.destroy(gone);
        if (!handled) reject(gone);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const settle = <T>(fn: (v: T) => void) => (v: T) => {
        signal.removeEventListener("abort", onAbort);
        fn(v);
      };
      bb.on("file", (name, stream) => {
        if (name !== "file" || handled) {
          stream.resume();
          return;
        }
        handled = true;
        file = stream;
        if (signal.aborted) onAbort();
        this.#streamUpload(session, msg, stream, key, signal).then(settle(resolve), (err: unknown) => {
          if (!stream.destroyed) stream.resume(); // keep draining so the request completes
          settle(reject)(err);
        });
      });
      bb.on("close", () => {
        if (!handled) settle(reject)(new AgentdError("invalid_argument", "file: multipart field \"file\" is required"));
      });
      bb.on("error", (err) => settle(reject)(new GatewayHttpError(422, `file: ${err instanceof Error ? err.message : "malformed multipart body"}`)));
      (req as Readable).pipe(bb);
    });
  }

  /**
   * Streams `source` through an upload session: chunks of UPLOAD_CHUNK_BYTES (at most half the
   * message limit), UPLOAD_IN_FLIGHT WriteUpload calls at once, so reading the body, the RPC and
   * the disk overlap; memory stays about UPLOAD_IN_FLIGHT chunks (times the copies a call makes).
   * A chunk refused with OutOfRange (a service that takes chunks only in order, or a full window)
   * is sent again once the writes before it have landed, and the rest of the upload goes one
   * chunk at a time. On any other failure (a write, the source, the client going away) the writes
   * in flight settle and the session is aborted, which removes its temp file.
   */
  async #streamUpload(session: UploadSession, msg: Fields, source: AsyncIterable<Buffer>, key: string | undefined, signal: AbortSignal): Promise<Fields> {
    const chunkBytes = Math.max(1, Math.min(UPLOAD_CHUNK_BYTES, Math.floor(this.#maxBytes / 2)));
    const created = await this.#caller.unaryAny(session.create, copyFields(session.create.input, msg), key, signal);
    const uploadId = created.uploadId as string;
    const inFlight = new Set<Promise<void>>();
    let limit = UPLOAD_IN_FLIGHT;
    let failure: { err: unknown } | undefined;
    /** Chunks refused as out of order, to send again in offset order once nothing is in flight. */
    const deferred: { at: bigint; chunk: Buffer; size: number }[] = [];
    let offset = 0n;
    // Chunk buffers are reused once their call has settled (the call serialises the request, so
    // the bytes are no longer needed): UPLOAD_IN_FLIGHT + 1 buffers for the whole upload instead
    // of a fresh one per chunk, which also spares the garbage collector.
    const spare: Buffer[] = [];
    const send = (at: bigint, chunk: Buffer, size: number) => {
      const w = create(session.write.input) as unknown as Fields;
      w.uploadId = uploadId;
      w.offset = at;
      w.data = new Uint8Array(chunk.buffer, chunk.byteOffset, size);
      return this.#caller.unaryAny(session.write, w, key, signal);
    };
    const write = (chunk: Buffer, size: number) => {
      const at = offset;
      offset += BigInt(size);
      const call: Promise<void> = send(at, chunk, size).then(
        () => {
          spare.push(chunk);
        },
        (err: unknown) => {
          if (failure === undefined && hasCode(err, Code.OutOfRange)) {
            limit = 1;
            deferred.push({ at, chunk, size });
          } else {
            failure ??= { err };
          }
        },
      );
      const tracked = call.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    };
    const resend = async () => {
      await Promise.all(inFlight);
      if (failure !== undefined) throw failure.err;
      deferred.sort((x, y) => (x.at < y.at ? -1 : 1));
      for (const d of deferred.splice(0)) {
        await send(d.at, d.chunk, d.size);
        spare.push(d.chunk);
      }
    };
    const room = async () => {
      while (inFlight.size >= limit && failure === undefined) await Promise.race(inFlight);
      if (failure !== undefined) throw failure.err;
      if (deferred.length > 0) await resend();
    };
    try {
      let cur: Buffer | undefined;
      let size = 0;
      for await (const chunk of source) {
        let c = chunk;
        while (c.length > 0) {
          cur ??= spare.pop() ?? Buffer.allocUnsafe(chunkBytes);
          const n = c.copy(cur, size);
          size += n;
          c = c.subarray(n);
          if (size === chunkBytes) {
            await room();
            write(cur, size);
            cur = undefined;
            size = 0;
          }
        }
      }
      if (cur !== undefined && size > 0) {
        await room();
        write(cur, size);
      }
      await resend();
      const commit = create(session.commit.input) as unknown as Fields;
      commit.uploadId = uploadId;
      if (typeof msg.sha256 === "string") commit.sha256 = msg.sha256;
      const done = await this.#caller.unaryAny(session.commit, commit, key, signal);
      return { success: true, info: done.info, sha256: done.sha256 };
    } catch (err) {
      await Promise.all(inFlight);
      if (session.abort !== undefined) {
        const a = create(session.abort.input) as unknown as Fields;
        a.uploadId = uploadId;
        await this.#caller.unaryAny(session.abort, a, key).catch(() => undefined);
      }
      throw err;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Upload sessions

interface UploadSession {
  create: DescMethod;
  write: DescMethod;
  commit: DescMethod;
  abort: DescMethod | undefined;
}

const sessions = new WeakMap<RestRoute, UploadSession | null>();

/**
 * The session RPCs a one-shot upload route streams through: its service's CreateUpload,
 * WriteUpload and CommitUpload (and AbortUpload). Only an UploadX method with such siblings
 * qualifies; other bytes-body routes (WriteUpload itself) take the body in one message.
 */
function uploadSessionOf(route: RestRoute): UploadSession | undefined {
  const cached = sessions.get(route);
  if (cached !== undefined) return cached ?? undefined;
  let found: UploadSession | null = null;
  if (/^Upload/.test(route.method.name)) {
    const by = (n: string) => route.service.methods.find((m) => m.name === n && m.methodKind === "unary");
    const c = by("CreateUpload");
    const w = by("WriteUpload");
    const k = by("CommitUpload");
    if (c !== undefined && w !== undefined && k !== undefined) found = { create: c, write: w, commit: k, abort: by("AbortUpload") };
  }
  sessions.set(route, found);
  return found ?? undefined;
}

/** A message of `desc` with the same-named fields of `from` (path, conversation_id, ...). */
function copyFields(desc: DescMessage, from: Fields): Fields {
  const out = create(desc) as unknown as Fields;
  for (const f of desc.fields) {
    if (f.localName in from && from[f.localName] !== undefined && f.oneof === undefined) out[f.localName] = from[f.localName];
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Request parts

/** The key the caller presents: header, bearer, or the (deprecated) `session_api_key` query. */
export function keyOf(req: AnyRequest): string | undefined {
  const h = presentedKey((n) => headerOf(req, n));
  if (h !== undefined) return h;
  const url = req.url ?? "";
  const q = url.indexOf("?");
  if (q < 0 || url.indexOf("session_api_key", q) < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get("session_api_key") ?? undefined;
}

export function headerOf(req: AnyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function parseQuery(url: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const q = url.indexOf("?");
  if (q < 0 || q === url.length - 1) return out;
  for (const [k, v] of new URLSearchParams(url.slice(q + 1))) {
    const list = out.get(k);
    if (list === undefined) out.set(k, [v]);
    else list.push(v);
  }
  return out;
}

function applyQuery(route: RestRoute, query: Map<string, string[]>, msg: Fields): void {
  for (const [name, values] of query) {
    const binding = route.query.get(name);
    if (binding === undefined) continue;
    const leaf = binding.leaf;
    const value = leaf.fieldKind === "list" ? values : values[values.length - 1]!;
    const converted = fieldFromOpenHandsJson(leaf, value, name);
    if (leaf.name === "page_size" && typeof converted === "number" && converted < 1) {
      throw new AgentdError("invalid_argument", `${name}: must be at least 1, got ${converted}`, { field: name });
    }
    setChain(msg, binding.fields, converted);
  }
}

function applyPath(route: RestRoute, vars: string[], msg: Fields): void {
  let i = 0;
  for (const seg of route.segments) {
    if (seg.type !== "var") continue;
    const raw = vars[i++]!;
    const leaf = seg.fields[seg.fields.length - 1]!;
    setChain(msg, seg.fields, fieldFromOpenHandsJson(leaf, raw, seg.name));
  }
}

function setChain(msg: Fields, chain: DescField[], value: unknown): void {
  let cur = msg;
  for (let i = 0; i < chain.length - 1; i++) {
    const f = chain[i]!;
    let next = cur[f.localName] as Fields | undefined;
    if (next === undefined) {
      next = create(f.message!) as unknown as Fields;
      cur[f.localName] = next;
    }
    cur = next;
  }
  setField(cur, chain[chain.length - 1]!, value);
}

function setField(msg: Fields, field: DescField, value: unknown): void {
  if (field.oneof !== undefined) msg[field.oneof.localName] = { case: field.localName, value };
  else msg[field.localName] = value;
}

function hasBody(req: AnyRequest): boolean {
  const len = headerOf(req, "content-length");
  if (len !== undefined) return len !== "0";
  return headerOf(req, "transfer-encoding") !== undefined;
}

/** Reads the whole body, refusing more than `limit` bytes with 413. */
export async function readBody(req: AnyRequest, limit: number): Promise<Buffer> {
  const declared = headerOf(req, "content-length");
  if (declared !== undefined && Number(declared) > limit) {
    throw new GatewayHttpError(413, `request body larger than ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new GatewayHttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/** Parses a JSON body; an empty body is `undefined` (OpenHands clients POST nothing to /run). */
async function readJsonBody(req: AnyRequest, limit: number): Promise<unknown> {
  const body = await readBody(req, limit);
  if (body.length === 0) return undefined;
  const text = body.toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AgentdError("invalid_argument", `request body: invalid JSON (${err instanceof Error ? err.message : "parse error"})`);
  }
}

// ------------------------------------------------------------------------------------------------
// Responses

export function sendJson(res: AnyResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  (res as { writeHead(s: number, h: Record<string, string>): unknown }).writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function renderStreamItem(route: RestRoute, msg: Fields, extensions: boolean): JsonValue {
  if (route.responseField !== undefined) return fieldToOpenHandsJson(route.responseField, msg[route.responseField.localName], { extensions });
  return toOpenHandsJson(route.method.output, msg as never, { extensions });
}

/**
 * Whether the client opted in to agentd's extension fields (`rest_extension`, e.g. the event
 * `seq`): header `X-Agentd-Extensions: true` or query `agentd_extensions=true`. Off by default so
 * that OpenHands clients that reject unknown fields keep working.
 */
export function wantsExtensions(req: AnyRequest, query: Map<string, string[]>): boolean {
  const header = headerOf(req, "x-agentd-extensions");
  const flag = header ?? query.get("agentd_extensions")?.[0];
  return flag !== undefined && /^(1|true|yes)$/i.test(flag);
}

function drained(res: AnyResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      res.off("close", onClose);
      resolve();
    };
    const onClose = () => {
      res.off("drain", onDrain);
      reject(new AgentdError("canceled", "client went away"));
    };
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}

function sizeOf(first: Fields | undefined): number | undefined {
  const info = first?.info as Fields | undefined;
  const size = info?.size;
  return typeof size === "bigint" ? Number(size) : typeof size === "number" ? size : undefined;
}

function baseName(p: string): string {
  const parts = p.split("/").filter((s) => s !== "");
  return parts[parts.length - 1] ?? "download";
}

/** `attachment; filename="x"`, plus RFC 5987 `filename*` for names that are not plain ASCII. */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, "_").replace(/["\\]/g, "_");
  const plain = `attachment; filename="${ascii}"`;
  return ascii === name ? plain : `${plain}; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/**
 * One byte range: "bytes=a-b", "bytes=a-" or "bytes=-n". Several ranges, other units and malformed
 * values give undefined (the whole file is sent, as RFC 9110 allows).
 */
export function parseRange(header: string): { start: number; end?: number; suffix?: number } | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null) return undefined;
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return undefined;
  if (a === "") return { start: 0, suffix: Number(b) };
  const start = Number(a);
  if (b === "") return { start };
  const end = Number(b);
  if (end < start) return undefined;
  return { start, end };
}
