/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, identical message shapes) built on the
 * @bufbuild/protobuf descriptors, so `buf curl` and grpcurl-style tools work without a schema.
 * No connect-es package provides it (reference/toolchain.md §4).
 *
 * Contract: the requested file is always sent, followed by every transitive dependency not yet sent
 * on this stream (clients cache per stream). Unknown symbols/files answer an error response with
 * code 5 (NOT_FOUND) and the stream continues.
 */
import { create, createRegistry, toBinary, type DescFile, type DescService, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ErrorResponseSchema,
  ExtensionNumberResponseSchema,
  FileDescriptorResponseSchema,
  ListServiceResponseSchema,
  ServerReflection as ReflectionV1,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

interface Index {
  serviceNames: string[];
  files: Map<string, DescFile>;
  encoded: Map<string, Uint8Array>;
  registry: Registry;
}

function buildIndex(services: readonly DescService[]): Index {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.name + ".proto")) return;
    files.set(file.name + ".proto", file);
    for (const dep of file.dependencies) visit(dep);
  };
  for (const s of services) visit(s.file);
  const encoded = new Map<string, Uint8Array>();
  for (const [name, file] of files) encoded.set(name, toBinary(FileDescriptorProtoSchema, file.proto));
  return {
    serviceNames: services.map((s) => s.typeName),
    files,
    encoded,
    registry: createRegistry(...files.values()),
  };
}

function fileOfSymbol(index: Index, symbol: string): DescFile | undefined {
  const direct = index.registry.get(symbol);
  if (direct !== undefined && "file" in direct) return direct.file;
  // "pkg.Service.Method" names a method: look up its service.
  const dot = symbol.lastIndexOf(".");
  if (dot > 0) {
    const parent = index.registry.get(symbol.slice(0, dot));
    if (parent?.kind === "service") return parent.file;
  }
  return undefined;
}

type Answer = ServerReflectionResponse["messageResponse"];

function answer(index: Index, req: ServerReflectionRequest, sent: Set<string>): Answer {
  const notFound = (what: string): Answer => ({
    case: "errorResponse",
    value: create(ErrorResponseSchema, { errorCode: 5, errorMessage: `${what} not found` }),
  });
  const withDeps = (file: DescFile): Answer => {
    const out: Uint8Array[] = [];
    const add = (f: DescFile, force: boolean) => {
      const name = f.name + ".proto";
      if (!force && sent.has(name)) return;
      sent.add(name);
      out.push(index.encoded.get(name)!);
      for (const dep of f.dependencies) add(dep, false);
    };
    add(file, true);
    return { case: "fileDescriptorResponse", value: create(FileDescriptorResponseSchema, { fileDescriptorProto: out }) };
  };
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: create(ListServiceResponseSchema, { service: index.serviceNames.map((name) => ({ name })) }),
      };
    case "fileByFilename": {
      const f = index.files.get(r.value);
      return f ? withDeps(f) : notFound(`file ${r.value}`);
    }
    case "fileContainingSymbol": {
      const f = fileOfSymbol(index, r.value);
      return f ? withDeps(f) : notFound(`symbol ${r.value}`);
    }
    case "fileContainingExtension": {
      const ext = index.registry.get(r.value.containingType);
      if (ext?.kind === "message") {
        const found = index.registry.getExtensionFor(ext, r.value.extensionNumber);
        if (found) return withDeps(found.file);
      }
      return notFound(`extension ${r.value.containingType}(${r.value.extensionNumber})`);
    }
    case "allExtensionNumbersOfType": {
      const numbers: number[] = [];
      for (const t of index.registry) {
        if (t.kind === "extension" && t.extendee.typeName === r.value) numbers.push(t.number);
      }
      return {
        case: "allExtensionNumbersResponse",
        value: create(ExtensionNumberResponseSchema, { baseTypeName: r.value, extensionNumber: numbers }),
      };
    }
    default:
      return {
        case: "errorResponse",
        value: create(ErrorResponseSchema, { errorCode: 3, errorMessage: "unsupported reflection request" }),
      };
  }
}

function makeImpl(services: readonly DescService[]) {
  // Built on the first reflection call: serialising every descriptor costs start-up time that
  // a server nobody inspects should not pay.
  let index: Index | undefined;
  return {
    async *serverReflectionInfo(requests: AsyncIterable<ServerReflectionRequest>) {
      index ??= buildIndex(services);
      const sent = new Set<string>();
      for await (const req of requests) {
        // A plain init object: the router builds the message with the schema of the version being
        // served (v1 or v1alpha), whose fields are identical.
        yield {
          validHost: req.host,
          originalRequest: { host: req.host, messageRequest: req.messageRequest },
          messageResponse: answer(index, req, sent),
        };
      }
    },
  };
}

/** Both reflection versions, over the given services and their transitive imports. */
export function createReflectionServices(services: readonly DescService[]): {
  v1: ServiceImpl<typeof ReflectionV1>;
  v1alpha: ServiceImpl<typeof ReflectionV1Alpha>;
} {
  const impl = makeImpl([...services, ReflectionV1, ReflectionV1Alpha]);
  // v1alpha messages have the same fields and numbers; the router encodes with v1alpha's schema.
  return { v1: impl, v1alpha: impl as unknown as ServiceImpl<typeof ReflectionV1Alpha> };
}
