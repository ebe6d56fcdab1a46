// Key names the agent may send with `is_input: true` (OpenHands/tmux spelling), as the bytes a
// terminal would send. Anything that is not a key name is literal text followed by Enter.

const NAMED_KEYS: Record<string, string> = {
  UP: "\x1b[A",
  DOWN: "\x1b[B",
  RIGHT: "\x1b[C",
  LEFT: "\x1b[D",
  HOME: "\x1b[H",
  END: "\x1b[F",
  PGUP: "\x1b[5~",
  PGDN: "\x1b[6~",
  TAB: "\t",
  ESC: "\x1b",
  BS: "\x7f",
  ENTER: "\r",
};

/** The control key in a `C-<letter>` name (e.g. "c" for "C-c"), or undefined. */
export function controlKeyLetter(input: string): string | undefined {
  const m = /^C-([A-Za-z])$/.exec(input.trim());
  return m?.[1]?.toLowerCase();
}

/**
 * The bytes to write for one `is_input` command: `C-<letter>` → the control character, a named
 * key (UP, TAB, ...) → its escape sequence, anything else → the text and a carriage return
 * (Enter). `special` is true for keys, which get no Enter.
 */
export function encodeInput(input: string): { bytes: string; special: boolean } {
  const letter = controlKeyLetter(input);
  if (letter !== undefined) return { bytes: String.fromCharCode(letter.charCodeAt(0) & 0x1f), special: true };
  const named = NAMED_KEYS[input.trim().toUpperCase()];
  if (named !== undefined && input.trim() === input.trim().toUpperCase()) return { bytes: named, special: true };
  return { bytes: `${input}\r`, special: false };
}
