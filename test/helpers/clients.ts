/** Real clients of every kind, pointed at a test server. */
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";

export type TransportKind = "grpc" | "connect-h2" | "connect-h1" | "connect-json-h1" | "grpc-web-h1" | "grpc-web-h2";

export const TRANSPORT_KINDS: readonly TransportKind[] = ["grpc", "connect-h2", "connect-h1", "connect-json-h1", "grpc-web-h1", "grpc-web-h2"];

export function transport(baseUrl: string, kind: TransportKind, headers: Record<string, string> = {}): Transport {
  const interceptors = Object.keys(headers).length === 0 ? [] : [
    ((next) => (req) => {
      for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
      return next(req);
    }) satisfies Interceptor,
  ];
  switch (kind) {
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors });
    case "connect-h2":
      return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, interceptors });
    case "connect-h1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors });
    case "connect-json-h1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors });
    case "grpc-web-h1":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
    case "grpc-web-h2":
      return createGrpcWebTransport({ baseUrl, httpVersion: "2", interceptors });
  }
}

export function client<S extends DescService>(service: S, baseUrl: string, kind: TransportKind = "grpc", headers?: Record<string, string>): Client<S> {
  return createClient(service, transport(baseUrl, kind, headers));
}

/** A unary call through @grpc/grpc-js (a different gRPC implementation than the server's). */
export function grpcJsUnary<I extends DescMessage, O extends DescMessage>(
  port: number,
  path: string,
  input: I,
  output: O,
  request: MessageShape<I>,
  metadata: Record<string, string> = {},
): Promise<MessageShape<O>> {
  const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise<MessageShape<O>>((resolve, reject) => {
    c.makeUnaryRequest(
      path,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      request,
      md,
      (err, res) => {
        c.close();
        if (err) reject(err);
        else resolve(res!);
      },
    );
  });
}
