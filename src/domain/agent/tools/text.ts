// Text helpers shared by the tools: content items, middle truncation, terminal escape cleanup.

import type { Content, Observation, TextContent } from "./types.js";

/** OpenHands `Observation.ERROR_MESSAGE_HEADER`: prepended to an error observation for the LLM. */
export const ERROR_MESSAGE_HEADER = "[An error occurred during execution.]\n";

export function textContent(text: string): TextContent {
  return { type: "text", text, cache_prompt: false };
}

/** The concatenated text items of an observation's content. */
export function observationText(observation: { content: Content[] }): string {
  return observation.content
    .filter((c): c is TextContent => c.type === "text")
    .map((c) => c.text)
    .join("");
}

/** What the LLM sees for an observation without a tool-specific renderer: the error header, then the content. */
export function defaultLlmContent(observation: Observation): Content[] {
  return observation.is_error ? [textContent(ERROR_MESSAGE_HEADER), ...observation.content] : observation.content;
}

/**
 * `text` cut to at most `max` characters (plus the notice) by dropping the middle: the head and
 * the tail are what an agent needs (the command, and the error at the end). The notice says how
 * many characters were dropped. Unchanged when it fits.
 */
export function truncateMiddle(text: string, max: number, what = "output"): string {
  if (text.length <= max) return text;
  const omitted = text.length - max;
  const head = Math.ceil(max / 2);
  const tail = max - head;
  return (
    text.slice(0, head) +
    `\n[... ${omitted} characters of ${what} omitted: it exceeded ${max} characters; ` +
    `the beginning and the end are shown ...]\n` +
    (tail > 0 ? text.slice(text.length - tail) : "")
  );
}

/**
 * `text` cut to at most `max` characters keeping the head, with `notice` appended when cut.
 * Used for file views, where line numbers make the kept part self-explanatory.
 */
export function truncateHead(text: string, max: number, notice: string): string {
  if (text.length <= max) return text;
  return text.slice(0, max) + notice;
}

// CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), and two-character ESC sequences.
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[@-Z\\-_]|\x1b[()][0-9A-Za-z]/g;
// Control characters other than tab and newline (carriage returns are handled separately).
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;

/**
 * Terminal output made readable for an LLM: CRLF → LF, escape sequences removed, and a line
 * rewritten with bare CRs (progress bars) reduced to what was drawn last.
 */
export function cleanTerminalOutput(raw: string): string {
  const noEsc = raw.replace(ANSI, "").replace(/\r+\n/g, "\n");
  const lines = noEsc.split("\n").map((line) => {
    const drawn = line.replace(/\r+$/, "");
    const cr = drawn.lastIndexOf("\r");
    return cr === -1 ? drawn : drawn.slice(cr + 1);
  });
  return lines.join("\n").replace(CONTROL, "");
}
