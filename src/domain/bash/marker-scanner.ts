/**
 * Finds the warm shell's control markers in a command's output stream.
 *
 * A marker is `ESC ] 7771 ; <field> ; <field> ... BEL` (an OSC sequence, which terminals ignore)
 * whose first field is a nonce the engine generated for this shell or job. Anything that looks
 * like a marker but carries an unknown nonce, or is longer than MAX_MARKER_BODY, is ordinary
 * output. A marker may be split across reads: a possible marker start at the end of a chunk is
 * held back (at most MAX_MARKER_BODY + prefix bytes) until the next chunk decides it.
 */

export const MARKER_PREFIX = Buffer.from("\x1b]7771;", "latin1");
const BEL = 0x07;
/** Longest marker body (between the prefix and BEL) that is recognised. */
export const MAX_MARKER_BODY = 96;

export type ScanPart = { readonly data: Buffer } | { readonly marker: readonly string[] };

export class MarkerScanner {
  private held: Buffer | null = null;

  /** @param accept decides whether the `;`-separated fields of a candidate are a real marker. */
  constructor(private readonly accept: (fields: readonly string[]) => boolean) {}

  /** Splits `chunk` (plus any held bytes) into output data and markers, in stream order. */
  push(chunk: Buffer): ScanPart[] {
    const buf = this.held === null ? chunk : Buffer.concat([this.held, chunk]);
    this.held = null;
    const parts: ScanPart[] = [];
    let start = 0; // first byte not yet emitted
    let from = 0; // where to look for the next prefix
    for (;;) {
      const p = buf.indexOf(MARKER_PREFIX, from);
      if (p === -1) {
        const keep = partialPrefixLength(buf, Math.max(start, buf.length - MARKER_PREFIX.length + 1));
        const end = buf.length - keep;
        if (end > start) parts.push({ data: buf.subarray(start, end) });
        if (keep > 0) this.held = Buffer.from(buf.subarray(end));
        return parts;
      }
      const bodyStart = p + MARKER_PREFIX.length;
      const bel = buf.indexOf(BEL, bodyStart);
      if (bel === -1 && buf.length - bodyStart <= MAX_MARKER_BODY) {
        // Maybe a marker still arriving: hold it back.
        if (p > start) parts.push({ data: buf.subarray(start, p) });
        this.held = Buffer.from(buf.subarray(p));
        return parts;
      }
      if (bel !== -1 && bel - bodyStart <= MAX_MARKER_BODY) {
        const fields = buf.toString("latin1", bodyStart, bel).split(";");
        if (this.accept(fields)) {
          if (p > start) parts.push({ data: buf.subarray(start, p) });
          parts.push({ marker: fields });
          start = from = bel + 1;
          continue;
        }
      }
      from = p + 1; // not a marker: it stays output
    }
  }

  /** Returns (and forgets) bytes held back as a possible marker start; used when the stream ends. */
  flush(): Buffer | null {
    const held = this.held;
    this.held = null;
    return held;
  }
}

/** Length of the longest suffix of `buf` (starting at or after `min`) that is a proper prefix of MARKER_PREFIX. */
function partialPrefixLength(buf: Buffer, min: number): number {
  for (let i = Math.max(min, 0); i < buf.length; i++) {
    if (buf[i] !== MARKER_PREFIX[0]) continue;
    const n = buf.length - i;
    if (buf.compare(MARKER_PREFIX, 0, n, i, buf.length) === 0) return n;
  }
  return 0;
}
