/**
 * Keepalives for server streams (WatchEvents, WatchBashEvents, WatchBashCommand): a quiet stream
 * still sends something every interval, so proxies keep it open and clients can tell a silent
 * stream from a dead one.
 */

/** Yielded by withKeepAlives when a keepalive is due. */
export const KEEPALIVE_DUE = Symbol("keepalive due");

/**
 * Items of `source`, with KEEPALIVE_DUE inserted whenever `intervalMs` pass without an item (or
 * keepalive) while the consumer waits. At most one `next()` of the source is outstanding, so a
 * slow consumer still holds the source back (whoever feeds the source decides when a consumer has
 * fallen too far behind). One timer serves the whole stream, re-armed for the remaining silence,
 * so an item costs no timer work. Ends (quietly) when `signal` aborts.
 */
export async function* withKeepAlives<T>(source: AsyncIterator<T>, intervalMs: number, signal: AbortSignal): AsyncGenerator<T | typeof KEEPALIVE_DUE> {
  let lastSent = performance.now();
  let wake: ((t: typeof KEEPALIVE_DUE) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const arm = (delay: number): void => {
    timer = setTimeout(() => {
      const silent = performance.now() - lastSent;
      if (silent >= intervalMs && wake !== undefined) {
        wake(KEEPALIVE_DUE);
        wake = undefined;
        arm(intervalMs);
      } else {
        arm(silent >= intervalMs ? intervalMs : intervalMs - silent);
      }
    }, Math.max(1, delay));
  };
  arm(intervalMs);
  let pending: Promise<IteratorResult<T>> | undefined;
  const aborted = new Promise<typeof KEEPALIVE_DUE>((resolve) => {
    if (signal.aborted) resolve(KEEPALIVE_DUE);
    else signal.addEventListener("abort", () => resolve(KEEPALIVE_DUE), { once: true });
  });
  try {
    for (;;) {
      if (signal.aborted) return;
      const next = (pending ??= source.next());
      const r = await Promise.race([
        new Promise<IteratorResult<T> | typeof KEEPALIVE_DUE>((resolve, reject) => {
          wake = resolve;
          next.then(resolve, reject);
        }),
        aborted,
      ]);
      wake = undefined;
      if (signal.aborted) return;
      if (r === KEEPALIVE_DUE) {
        yield KEEPALIVE_DUE;
        lastSent = performance.now();
        continue;
      }
      pending = undefined;
      if (r.done === true) return;
      lastSent = performance.now();
      yield r.value;
    }
  } finally {
    clearTimeout(timer);
    // A source next() still pending settles on its own once the source sees the abort.
    pending?.catch(() => {});
  }
}
