/**
 * Cuts a command's output into BashOutput texts with OpenHands semantics: per stream, whenever
 * at least `chunkBytes` are buffered a chunk of (just under or exactly) `chunkBytes` is emitted;
 * `finish()` returns what remains of each stream for the final event.
 *
 * - Cuts never split a UTF-8 sequence (a chunk may be up to 3 bytes short of `chunkBytes`);
 *   invalid UTF-8 decodes to U+FFFD (the raw bytes stay available through watch()).
 * - With `crlfToLf` (PTY mode) "\r\n" becomes "\n" — also across chunk boundaries — so PTY text
 *   reads like pipe output. Lone "\r" (progress bars) is kept.
 * Memory: at most about `chunkBytes` per stream is buffered.
 */

export type OutputStream = "stdout" | "stderr";

export interface OutputPiece {
  readonly stream: OutputStream;
  readonly text: string;
}

class StreamBuffer {
  private parts: Buffer[] = [];
  size = 0;
  /** A trailing "\r" held back until the next byte shows whether it starts "\r\n". */
  private pendingCr = false;

  constructor(private readonly crlfToLf: boolean) {}

  add(data: Buffer): void {
    if (!this.crlfToLf) {
      this.push(data);
      return;
    }
    let src = data;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (src.length > 0 && src[0] !== 0x0a) this.push(Buffer.from([0x0d]));
    }
    if (src.length > 0 && src[src.length - 1] === 0x0d) {
      this.pendingCr = true;
      src = src.subarray(0, src.length - 1);
    }
    this.push(stripCrBeforeLf(src));
  }

  private push(data: Buffer): void {
    if (data.length === 0) return;
    this.parts.push(data);
    this.size += data.length;
  }

  /** Removes and returns the first `n` bytes, moved back to a UTF-8 boundary. */
  take(n: number): Buffer {
    const all = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    const cut = utf8Boundary(all, Math.min(n, all.length));
    const head = all.subarray(0, cut);
    const rest = all.subarray(cut);
    this.parts = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    return head;
  }

  /** Everything left, including a held "\r". */
  drain(): Buffer {
    if (this.pendingCr) {
      this.pendingCr = false;
      this.push(Buffer.from([0x0d]));
    }
    return this.take(this.size);
  }
}

export class OutputChunker {
  private readonly streams: Record<OutputStream, StreamBuffer>;

  constructor(
    private readonly chunkBytes: number,
    crlfToLf: boolean,
  ) {
    this.streams = { stdout: new StreamBuffer(crlfToLf), stderr: new StreamBuffer(crlfToLf) };
  }

  /** Adds output of one stream; returns the full chunks now ready, in order. */
  add(stream: OutputStream, data: Buffer): OutputPiece[] {
    const buf = this.streams[stream];
    buf.add(data);
    const out: OutputPiece[] = [];
    while (buf.size >= this.chunkBytes) {
      out.push({ stream, text: buf.take(this.chunkBytes).toString("utf8") });
    }
    return out;
  }

  /** The rest of each stream for the final event (null where nothing is left). */
  finish(): { stdout: string | null; stderr: string | null } {
    const text = (s: OutputStream): string | null => {
      const rest = this.streams[s].drain();
      return rest.length > 0 ? rest.toString("utf8") : null;
    };
    return { stdout: text("stdout"), stderr: text("stderr") };
  }
}

/** `data` without the "\r" of each "\r\n". */
function stripCrBeforeLf(data: Buffer): Buffer {
  let i = data.indexOf("\r\n");
  if (i === -1) return data;
  const out = Buffer.allocUnsafe(data.length);
  let w = 0;
  let r = 0;
  while (i !== -1) {
    w += data.copy(out, w, r, i);
    r = i + 1; // skip the "\r", keep the "\n"
    i = data.indexOf("\r\n", r);
  }
  w += data.copy(out, w, r);
  return out.subarray(0, w);
}

/** The largest cut ≤ `n` that does not split a UTF-8 sequence (falls back to `n` for invalid input). */
export function utf8Boundary(buf: Buffer, n: number): number {
  if (n >= buf.length) return buf.length;
  for (let c = n; c > n - 4 && c > 0; c--) {
    if ((buf[c]! & 0xc0) !== 0x80) return c; // buf[c] starts a sequence (or is ASCII)
  }
  return n;
}
