/**
 * The gateway's in-process client: the SAME router definition and interceptor list the server
 * serves (handed over through `Modules.attachRoutes`), reached through connect's router transport.
 * So the REST and WebSocket surfaces get exactly the validation, auth, activity tracking and error
 * mapping of gRPC and Connect. The caller's session key is forwarded as `X-Session-API-Key` on
 * every call, so the auth interceptor decides as it does for any other client.
 */
import type { DescMessage, DescMethod, DescMethodStreaming, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createRouterTransport, type ConnectRouter, type Interceptor, type Transport } from "@connectrpc/connect";

export class InProcessCaller {
  #transport: Transport | undefined;

  attach(routes: (router: ConnectRouter) => void, interceptors: Interceptor[]): void {
    this.#transport = createRouterTransport(routes, { router: { interceptors } });
  }

  get attached(): boolean {
    return this.#transport !== undefined;
  }

  #t(): Transport {
    if (this.#transport === undefined) throw new ConnectError("gateway is not attached to the router yet", Code.Unavailable);
    return this.#transport;
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageShape<I>,
    key: string | undefined,
    signal?: AbortSignal,
  ): Promise<MessageShape<O>> {
    const res = await this.#t().unary(method, signal, undefined, headersOf(key), input);
    return res.message;
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
    const res = await this.#t().stream(method, signal, undefined, headersOf(key), once(input));
    return res.message;
  }

  streamAny(method: DescMethod, input: unknown, key: string | undefined, signal?: AbortSignal): Promise<AsyncIterable<Record<string, unknown>>> {
    return this.stream(method as DescMethodStreaming<DescMessage, DescMessage>, input as MessageShape<DescMessage>, key, signal) as Promise<
      AsyncIterable<Record<string, unknown>>
    >;
  }
}

function headersOf(key: string | undefined): Record<string, string> | undefined {
  return key === undefined ? undefined : { "x-session-api-key": key };
}

async function* once<T>(value: T): AsyncIterable<T> {
  yield value;
}
