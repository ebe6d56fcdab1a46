import { describe, expect, it } from "vitest";
import { KEEPALIVE_DUE, withKeepAlives } from "./keep-alives.js";

/** A source whose items are pushed by the test; `end()` finishes it. */
function pushed<T>(): { source: AsyncIterator<T>; push(item: T): void; end(): void; nextCalls: () => number } {
  const items: IteratorResult<T>[] = [];
  let waiting: ((r: IteratorResult<T>) => void) | undefined;
  let calls = 0;
  const deliver = (r: IteratorResult<T>) => {
    if (waiting !== undefined) {
      const w = waiting;
      waiting = undefined;
      w(r);
    } else items.push(r);
  };
  return {
    source: {
      next: () => {
        calls++;
        const r = items.shift();
        return r !== undefined ? Promise.resolve(r) : new Promise((resolve) => (waiting = resolve));
      },
    },
    push: (item) => deliver({ done: false, value: item }),
    end: () => deliver({ done: true, value: undefined }),
    nextCalls: () => calls,
  };
}

describe("withKeepAlives", () => {
  it("passes items through in order and inserts a keepalive only while the source is silent", async () => {
    const src = pushed<string>();
    const stream = withKeepAlives(src.source, 20, new AbortController().signal);
    src.push("a");
    src.push("b");
    expect((await stream.next()).value).toBe("a");
    expect((await stream.next()).value).toBe("b");
    // Nothing arrives: the consumer gets keepalives, and the source is asked only once meanwhile.
    expect((await stream.next()).value).toBe(KEEPALIVE_DUE);
    expect((await stream.next()).value).toBe(KEEPALIVE_DUE);
    expect(src.nextCalls()).toBe(3);
    // The pending next() is not lost: the item pushed now is the next one out.
    src.push("c");
    expect((await stream.next()).value).toBe("c");
    src.end();
    expect((await stream.next()).done).toBe(true);
  });

  it("ends quietly when the signal aborts, even while the source is silent", async () => {
    const src = pushed<string>();
    const ac = new AbortController();
    const stream = withKeepAlives(src.source, 60_000, ac.signal);
    const next = stream.next();
    ac.abort();
    expect(await next).toEqual({ done: true, value: undefined });
  });

  it("passes a failure of the source on", async () => {
    const failing: AsyncIterator<string> = { next: () => Promise.reject(new Error("source broke")) };
    const stream = withKeepAlives(failing, 60_000, new AbortController().signal);
    await expect(stream.next()).rejects.toThrow("source broke");
  });
});
