/**
 * FileService: thin handlers over the file engine (src/domain/files). Each handler validates what
 * the domain cannot (proto defaults such as 0 = "not given", uint64 ranges), converts the request,
 * calls `WorkspaceFiles`, and converts the result back. Errors are the domain's AgentdErrors,
 * mapped by the error interceptor.
 *
 * - `conversation_id`: when non-empty, relative paths resolve against that conversation's working
 *   directory, which is also an extra root for the call; an unknown conversation is NotFound.
 * - DownloadFile: chunks of at most 1 MiB, each with its offset; the first carries the file's
 *   info, the last the sha256 of the bytes sent. An empty range is one message with both. Disk is
 *   read only as fast as the client consumes (connect-node awaits `drain` per message), one
 *   chunk ahead, into three recycled buffers.
 * - UploadFile: one message, written atomically (temp file + fsync + rename).
 * - UploadFileStream: an upload session fed by a client stream (WorkspaceFiles.streamUpload), the
 *   next message decoded while the previous ones are written; committed only when the last
 *   message says so (a reset HTTP/2 request body ends like a finished one in Node), otherwise
 *   left open. A session the stream opened is discarded when the stream fails.
 * - WatchDirectory: ends normally (OK) when the client goes away or the server shuts down.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { FileChangeKind, FileType, type FileInfoSchema } from "../../gen/agentd/v1/file_pb.js";
import type { CreateUploadRequest, DownloadFileResponseSchema, FileService } from "../../gen/agentd/v1/file_service_pb.js";
import type { FileInfo, PathScope, WatchEventType, WorkspaceFiles } from "../domain/files/index.js";
import { AgentdError } from "../errors.js";
import { isSerialized } from "./in-process.js";

/**
 * Largest data chunk of one DownloadFile message (the contract says at most 1 MiB: well under
 * the 4 MiB receive limit most gRPC clients default to). 1 MiB rather than 256 KiB: a quarter of
 * the per-message work (message objects, envelopes, stream writes), which also keeps the V8
 * heap calm under load (bench/files.ts).
 */
export const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;
/**
 * Read buffers a download cycles through. A chunk is copied into its protobuf message as soon as
 * the handler yields it, so at most three are in use: the one being serialised, the one held back
 * for the checksum (see downloadFile) and the one being read ahead.
 */
const DOWNLOAD_READ_BUFFERS = 3;
/** Deepest ListFiles `depth` the contract accepts. */
export const MAX_RPC_LIST_DEPTH = 10;

export interface FileServiceDeps {
  /** The server's file engine (one instance, owned and closed by the modules). */
  files: WorkspaceFiles;
  /**
   * Working directory of a conversation (absolute), or undefined when there is no such
   * conversation. Only called for a non-empty `conversation_id`.
   */
  workingDirOf(conversationId: string): string | undefined | Promise<string | undefined>;
  /** Aborted when the server begins shutting down: open watches end cleanly. */
  shutdownSignal: AbortSignal;
}

type FileInfoInit = MessageInitShape<typeof FileInfoSchema>;

const FILE_TYPES: Readonly<Record<FileInfo["type"], FileType>> = {
  file: FileType.FILE,
  directory: FileType.DIRECTORY,
  symlink: FileType.SYMLINK,
  other: FileType.OTHER,
};

const CHANGE_KINDS: Readonly<Record<WatchEventType, FileChangeKind>> = {
  create: FileChangeKind.CREATE,
  modify: FileChangeKind.MODIFY,
  delete: FileChangeKind.DELETE,
  rename: FileChangeKind.RENAME,
};

/** Domain FileInfo → proto FileInfo. */
export function fileInfoToProto(info: FileInfo): FileInfoInit {
  const out: FileInfoInit = {
    path: info.path,
    name: info.name,
    type: FILE_TYPES[info.type],
    size: BigInt(info.size),
    mode: info.mode,
    modifyTime: timestampFromMs(info.mtimeMs),
  };
  if (info.symlinkTarget !== undefined) out.symlinkTarget = info.symlinkTarget;
  return out;
}

/**
 * A uint64 offset or size as a JS number. Values past 2^53 - 1 are clamped: no file is that
 * large, so the domain still answers with the right code (out_of_range, resource_exhausted).
 */
function u64(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/** proto3 cannot tell "" from "not given"; the domain takes undefined for "not given". */
function optionalString(v: string): string | undefined {
  return v === "" ? undefined : v;
}

function checkRange(name: string, v: number, min: number, max: number): void {
  if (v < min || v > max) throw new AgentdError("invalid_argument", `${name} must be in [${min}, ${max}], got ${v}`);
}

export function createFileService(deps: FileServiceDeps): ServiceImpl<typeof FileService> {
  const { files } = deps;

  /** The per-call scope of a request's `conversation_id`. */
  async function scopeOf(conversationId: string): Promise<PathScope> {
    if (conversationId === "") return {};
    const workingDir = await deps.workingDirOf(conversationId);
    if (workingDir === undefined) {
      throw new AgentdError("not_found", `conversation ${conversationId} not found`, { conversation_id: conversationId }, "CONVERSATION_NOT_FOUND");
    }
    return { workingDir };
  }

  /** Opens an upload session from CreateUpload's fields; returns its id. */
  async function createUpload(req: CreateUploadRequest): Promise<string> {
    const session = await files.createUpload(req.path, {
      ...(await scopeOf(req.conversationId)),
      ...(req.expectedSize === 0n ? {} : { expectedSize: u64(req.expectedSize) }),
      ...(req.mode === 0 ? {} : { mode: req.mode }),
    });
    return session.uploadId;
  }

  return {
    async statFile(req) {
      return { info: fileInfoToProto(await files.stat(req.path, await scopeOf(req.conversationId))) };
    },

    async listFiles(req) {
      checkRange("depth", req.depth, 0, MAX_RPC_LIST_DEPTH);
      const page = await files.list(req.path, {
        ...(await scopeOf(req.conversationId)),
        depth: req.depth === 0 ? 1 : req.depth,
        includeHidden: req.includeHidden,
        ...(req.pageSize === 0 ? {} : { pageSize: req.pageSize }),
        ...(req.pageToken === "" ? {} : { cursor: req.pageToken }),
      });
      return { items: page.entries.map(fileInfoToProto), nextPageToken: page.nextCursor ?? "" };
    },

    async createDirectory(req) {
      await files.mkdir(req.path, await scopeOf(req.conversationId));
      return { success: true };
    },

    async moveFile(req) {
      const info = await files.move(req.source, req.destination, { ...(await scopeOf(req.conversationId)), overwrite: req.overwrite });
      return { info: fileInfoToProto(info) };
    },

    async removeFile(req) {
      await files.remove(req.path, { ...(await scopeOf(req.conversationId)), recursive: req.recursive });
      return { success: true };
    },

    async *downloadFile(req, ctx) {
      const stream = await files.read(req.path, {
        ...(await scopeOf(req.conversationId)),
        offset: u64(req.offset),
        ...(req.length === 0n ? {} : { length: u64(req.length) }),
        chunkSize: DOWNLOAD_CHUNK_BYTES,
        // Recycling is safe only when each message is serialised before the next chunk is read;
        // an in-process caller gets the chunks themselves.
        recycleBuffers: isSerialized(ctx) ? DOWNLOAD_READ_BUFFERS : 0,
        signal: ctx.signal,
      });
      let offset = stream.offset;
      let first = true;
      const message = (data: Uint8Array, sha256: string): MessageInitShape<typeof DownloadFileResponseSchema> => {
        const m: MessageInitShape<typeof DownloadFileResponseSchema> = { offset: BigInt(offset), data, sha256 };
        if (first) m.info = fileInfoToProto(stream.info);
        first = false;
        offset += data.byteLength;
        return m;
      };
      // The next chunk is read from disk while the current one is being sent (one read ahead:
      // deeper measured slower), and one chunk is held back because the sha256, known only once
      // the range is exhausted, rides on the last data message. At most three chunks are alive.
      const chunks = stream[Symbol.asyncIterator]();
      let next = chunks.next();
      try {
        let held: Uint8Array | undefined;
        for (let r = await next; r.done !== true; r = await next) {
          next = chunks.next();
          if (held !== undefined) yield message(held, "");
          held = r.value;
        }
        yield message(held ?? new Uint8Array(0), stream.result.sha256);
      } finally {
        // Stopped early (client gone, error): let the read in flight settle, then close the file.
        next.catch(() => undefined);
        await chunks.return?.(undefined).catch(() => undefined);
        await stream.close();
      }
    },

    async uploadFile(req, ctx) {
      const sha256 = optionalString(req.sha256);
      const done = await files.writeFile(req.path, req.data, {
        ...(await scopeOf(req.conversationId)),
        ...(sha256 === undefined ? {} : { sha256 }),
        signal: ctx.signal,
      });
      return { success: true, info: fileInfoToProto(done.info), sha256: done.sha256 };
    },

    async createUpload(req) {
      return { uploadId: await createUpload(req) };
    },

    async writeUpload(req) {
      const { received } = await files.writeUpload(req.uploadId, u64(req.offset), req.data);
      return { received: BigInt(received) };
    },

    async commitUpload(req) {
      const sha256 = optionalString(req.sha256);
      const done = await files.commitUpload(req.uploadId, sha256 === undefined ? {} : { sha256 });
      return { info: fileInfoToProto(done.info), sha256: done.sha256 };
    },

    async uploadFileStream(requests, ctx) {
      const messages = requests[Symbol.asyncIterator]();
      const first = await messages.next();
      if (first.done === true) throw new AgentdError("invalid_argument", "empty UploadFileStream: the first message must name the upload (create or upload_id)");
      const head = first.value;
      let uploadId: string;
      if (head.target.case === "create") {
        if (head.offset !== 0n) throw new AgentdError("invalid_argument", `offset must be 0 with create, got ${head.offset}`);
        uploadId = await createUpload(head.target.value);
      } else if (head.target.case === "uploadId") {
        uploadId = head.target.value;
      } else {
        throw new AgentdError("invalid_argument", "the first UploadFileStream message must name the upload (create or upload_id)");
      }
      let sha256 = optionalString(head.sha256);
      let commit = head.commit;
      async function* data(): AsyncGenerator<Uint8Array> {
        yield head.data;
        for (let m = await messages.next(); m.done !== true; m = await messages.next()) {
          if (commit) throw new AgentdError("invalid_argument", "no UploadFileStream message may follow the one that sets commit");
          if (m.value.target.case !== undefined || m.value.offset !== 0n) {
            throw new AgentdError("invalid_argument", "only the first UploadFileStream message may name the upload or an offset");
          }
          sha256 = optionalString(m.value.sha256) ?? sha256;
          commit = m.value.commit;
          yield m.value.data;
        }
      }
      try {
        // Messages that went through the wire are the handler's own: the next one may be decoded
        // while the previous one is being written. An in-process caller's buffers are not.
        const received = await files.streamUpload(uploadId, u64(head.offset), data(), { overlap: isSerialized(ctx), signal: ctx.signal });
        // Without commit the stream may have been cut (see the contract): the session stays open.
        if (!commit) return { uploadId, received: BigInt(received), committed: false };
        const done = await files.commitUpload(uploadId, sha256 === undefined ? {} : { sha256 });
        return { uploadId, received: BigInt(done.info.size), committed: true, info: fileInfoToProto(done.info), sha256: done.sha256 };
      } catch (err) {
        // A session this stream opened is unknown to the client: discard it. A named one stays
        // open at its received prefix (or is gone after a failed commit, as CommitUpload says).
        if (head.target.case === "create") await files.abortUpload(uploadId).catch(() => undefined);
        throw err;
      }
    },

    async abortUpload(req) {
      await files.abortUpload(req.uploadId);
      return { success: true };
    },

    async *watchDirectory(req, ctx) {
      const signal = AbortSignal.any([ctx.signal, deps.shutdownSignal]);
      const watch = await files.watch(req.path, {
        ...(await scopeOf(req.conversationId)),
        recursive: req.recursive,
        ...(req.afterSeq === 0n ? {} : { afterSeq: u64(req.afterSeq) }),
        signal,
      });
      try {
        for await (const ev of watch) {
          yield { change: { seq: BigInt(ev.seq), kind: CHANGE_KINDS[ev.type], path: ev.path, time: timestampFromMs(ev.timeMs) } };
        }
      } finally {
        watch.close();
      }
    },
  };
}
