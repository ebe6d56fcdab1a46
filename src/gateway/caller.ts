/**
 * The gateway's in-process client: the SAME router definition and interceptor list the server
 * serves (handed over through `Modules.attachRoutes`), its handlers invoked through the same
 * interceptors. So the REST and WebSocket surfaces get exactly the validation, auth, activity
 * tracking and error mapping of gRPC and Connect. The caller's session key is forwarded as
 * `X-Session-API-Key` on every call, so the auth interceptor decides as it does for any other
 * client.
 */
import type { DescMessage, DescMethod, DescMethodStreaming, DescMethodUnary, DescService, MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  createServiceImplSpec,
  type ConnectRouter,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { createAsyncIterable, invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { IN_PROCESS_PROTOCOL } from "../rpc/in-process.js";

/**
 * Calls go straight to the handlers through the interceptors, as the router runs them after
 * parsing a request, minus the serialisation: connect's router transport would encode every
 * request and response and parse it back (four copies of each 1 MiB download chunk). Handlers see
 * `protocolName` IN_PROCESS_PROTOCOL. Every error reaches the caller as a ConnectError.
 */
export class InProcessCaller {
  #methods: Map<string, MethodImplSpec> | undefined;
  #interceptors: Interceptor[] = [];

  attach(routes: (router: ConnectRouter) => void, interceptors: Interceptor[]): void {
    const methods = new Map<string, MethodImplSpec>();
    // The same route definition the server serves, recorded instead of mounted.
    const recorder = {
      service(service: DescService, impl: object) {
        const spec = createServiceImplSpec(service, impl);
        for (const m of Object.values(spec.methods)) methods.set(keyOf(m.method), m);
        return recorder;
      },
    };
    routes(recorder as unknown as ConnectRouter);
    this.#methods = methods;
    this.#interceptors = interceptors;
  }

  get attached(): boolean {
    return this.#methods !== undefined;
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageShape<I>,
    key: string | undefined,
    signal?: AbortSignal,
  ): Promise<MessageShape<O>> {
    const spec = this.#spec(method);
    const ctx = this.#context(spec, key, signal);
    try {
      return (await invokeUnaryImplementation(spec as MethodImplSpec<I, O> & { kind: "unary" }, ctx, input, this.#interceptors)) as MessageShape<O>;
    } catch (err) {
      throw ConnectError.from(err);
    }
  }

  /** Any unary method (descriptor known only at run time). */
  unaryAny(method: DescMethod, input: unknown, key: string | undefined, signal?: AbortSignal): Promise<Record<string, unknown>> {
    return this.unary(method as DescMethodUnary<DescMessage, DescMessage>, input as MessageShape<DescMessage>, key, signal) as Promise<Record<string, unknown>>;
  }

  async stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    input: MessageShape<I>,
    key: string | undefined,
    signal?: AbortSignal,
  ): Promise<AsyncIterable<MessageShape<O>>> {
    const spec = this.#spec(method);
    const ctx = this.#context(spec, key, signal);
    const out = transformInvokeImplementation(spec, ctx, this.#interceptors)(createAsyncIterable([input]));
    return connectErrors(out as AsyncIterable<MessageShape<O>>);
  }

  streamAny(method: DescMethod, input: unknown, key: string | undefined, signal?: AbortSignal): Promise<AsyncIterable<Record<string, unknown>>> {
    return this.stream(method as DescMethodStreaming<DescMessage, DescMessage>, input as MessageShape<DescMessage>, key, signal) as Promise<
      AsyncIterable<Record<string, unknown>>
    >;
  }

  #spec(method: DescMethod): MethodImplSpec {
    if (this.#methods === undefined) throw new ConnectError("gateway is not attached to the router yet", Code.Unavailable);
    const spec = this.#methods.get(keyOf(method));
    if (spec === undefined) throw new ConnectError(`${method.parent.typeName}.${method.name} is not served`, Code.Unimplemented);
    return spec;
  }

  #context(spec: MethodImplSpec, key: string | undefined, signal: AbortSignal | undefined): HandlerContext {
    return createHandlerContext({
      service: spec.method.parent,
      method: spec.method,
      protocolName: IN_PROCESS_PROTOCOL,
      requestMethod: "POST",
      url: `in-process:/${spec.method.parent.typeName}/${spec.method.name}`,
      ...(signal === undefined ? {} : { requestSignal: signal }),
      ...(key === undefined ? {} : { requestHeader: headersOf(key) }),
    });
  }
}

function keyOf(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** The stream, its errors as ConnectErrors (as a transport would deliver them). */
async function* connectErrors<T>(source: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  try {
    yield* source;
  } catch (err) {
    throw ConnectError.from(err);
  }
}

function headersOf(key: string | undefined): Record<string, string> | undefined {
  return key === undefined ? undefined : { "x-session-api-key": key };
}
