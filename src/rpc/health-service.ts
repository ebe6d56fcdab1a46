/**
 * grpc.health.v1.Health for Kubernetes gRPC probes and load balancers. Service "" is the whole
 * server; each agentd service is listed by its full name. All are SERVING once start-up is
 * complete and NOT_SERVING from the moment shutdown begins.
 */
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { Health} from "../../gen/grpc/health/v1/health_pb.js";
import { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

export type ServingState = "starting" | "serving" | "stopping";

/** Holds the serving state and wakes Watch streams when it changes. */
export class HealthState {
  #state: ServingState = "starting";
  readonly #waiters = new Set<() => void>();

  get state(): ServingState {
    return this.#state;
  }

  set(state: ServingState): void {
    if (state === this.#state) return;
    this.#state = state;
    for (const wake of [...this.#waiters]) wake();
  }

  /** Resolves at the next change or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

export function createHealthService(health: HealthState, serviceNames: readonly string[]): ServiceImpl<typeof Health> {
  const known = new Set(["", ...serviceNames]);
  const status = () => (health.state === "serving" ? Status.SERVING : Status.NOT_SERVING);
  return {
    check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      return { status: status() };
    },
    async *watch(req, ctx) {
      // Per the health protocol, an unknown service is reported as SERVICE_UNKNOWN, not an error.
      if (!known.has(req.service)) {
        yield { status: Status.SERVICE_UNKNOWN };
        return;
      }
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const now = status();
        if (now !== last) {
          yield { status: now };
          last = now;
        }
        if (health.state === "stopping") return;
        await health.changed(ctx.signal);
      }
    },
    list() {
      const statuses: Record<string, ReturnType<typeof create<typeof HealthCheckResponseSchema>>> = {};
      for (const name of known) statuses[name] = create(HealthCheckResponseSchema, { status: status() });
      return { statuses };
    },
  };
}
