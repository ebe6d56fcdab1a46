import type { Page } from "playwright-core";

// Scripts evaluated inside the page. They are kept as plain JavaScript source (not TypeScript
// functions passed to page.evaluate) because transpilers such as tsx/esbuild inject helpers like
// `__name(...)` into function bodies, which do not exist in the page and would break evaluation.
// Each script is an arrow function taking one JSON argument; `evaluate` below calls it.

/**
 * An expression for document.title as the browser computes it, the value `page.title()` gives.
 * It goes through Document.prototype because in the page's main world, where these scripts run,
 * named elements (`<form name="title">`, `<img name="title">`) shadow document.title; Playwright's
 * utility world, where page.title() runs, does not see them. Never throws ("" instead), so a title
 * cannot fail the script it is part of.
 */
const READ_TITLE = `(() => {
  try {
    const d = Object.getOwnPropertyDescriptor(Document.prototype, "title");
    return d && d.get ? d.get.call(document) : "";
  } catch (e) {
    return "";
  }
})()`;

/** Attribute that carries an interactive element's index; set by get_state, read by click/type. */
export const INDEX_ATTR = "data-agentd-index";

/** At most this many elements are numbered per page (the rest are counted, not numbered). */
export const MAX_NUMBERED_ELEMENTS = 1000;

/** What get_state lists; the order is the document order at numbering time. */
export const INTERACTIVE_SELECTOR = [
  "a",
  "button",
  "input",
  "select",
  "textarea",
  "summary",
  "[role=button]",
  "[role=link]",
  "[role=checkbox]",
  "[role=radio]",
  "[role=switch]",
  "[role=tab]",
  "[role=menuitem]",
  "[role=option]",
  "[role=textbox]",
  "[onclick]",
  "[contenteditable='']",
  "[contenteditable=true]",
  "[contenteditable=plaintext-only]",
].join(",");

export interface ElementInfo {
  index: number;
  tag: string;
  attrs: Record<string, string>;
  text: string;
  inView: boolean;
}

export interface NumberedPage {
  elements: ElementInfo[];
  /** Visible interactive elements beyond MAX_NUMBERED_ELEMENTS (not numbered). */
  omitted: number;
  scrollY: number;
  scrollHeight: number;
  viewportWidth: number;
  viewportHeight: number;
  /** The page title, read in the same evaluation (see pageTitle for why). */
  title: unknown;
}

const NUMBER_ELEMENTS = `(opts) => {
  const ATTR = opts.attr;
  for (const el of document.querySelectorAll("[" + ATTR + "]")) el.removeAttribute(ATTR);
  const clip = (s, n) => {
    s = String(s == null ? "" : s).replace(/\\s+/g, " ").trim();
    return s.length > n ? s.slice(0, n) + "…" : s;
  };
  const visible = (el) => {
    if (typeof el.checkVisibility === "function" &&
        !el.checkVisibility({ checkOpacity: false, checkVisibilityCSS: true })) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const elements = [];
  let omitted = 0;
  for (const el of document.querySelectorAll(opts.selector)) {
    const tag = el.tagName.toLowerCase();
    if (tag === "input" && el.type === "hidden") continue;
    if (!visible(el)) continue;
    if (elements.length >= opts.max) { omitted++; continue; }
    const index = elements.length;
    el.setAttribute(ATTR, String(index));
    const r = el.getBoundingClientRect();
    const attrs = {};
    for (const a of ["type", "name", "id", "role", "placeholder", "aria-label", "title", "href", "target", "alt"]) {
      const v = el.getAttribute(a);
      if (v) attrs[a] = clip(v, 120);
    }
    if (el.labels && el.labels.length > 0) attrs.label = clip(el.labels[0].innerText, 80);
    if ((tag === "input" || tag === "textarea") && el.type !== "password" && el.value) attrs.value = clip(el.value, 120);
    if (tag === "input" && (el.type === "checkbox" || el.type === "radio")) attrs.checked = String(el.checked);
    if (el.disabled) attrs.disabled = "true";
    if (el.isContentEditable && tag !== "input" && tag !== "textarea") attrs.contenteditable = "true";
    let text;
    if (tag === "select") {
      const sel = el.selectedOptions && el.selectedOptions[0];
      attrs.selected = clip(sel ? sel.label : "", 80);
      text = "options: " + Array.from(el.options).slice(0, 20).map((o) => clip(o.label, 40)).join(" | ") +
        (el.options.length > 20 ? " | …" : "");
    } else if (tag === "input" || tag === "textarea") {
      text = "";
    } else {
      text = clip(el.innerText || el.textContent, 100);
    }
    elements.push({
      index, tag, attrs, text,
      inView: r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth,
    });
  }
  const se = document.scrollingElement || document.documentElement;
  return {
    elements, omitted,
    scrollY: Math.round(scrollY), scrollHeight: se ? se.scrollHeight : 0,
    viewportWidth: innerWidth, viewportHeight: innerHeight,
    title: ${READ_TITLE},
  };
}`;

export interface IndexLookup {
  /** Whether any element on the page carries an index (false: get_state never ran on this page). */
  numbered: boolean;
  /** Highest index present, -1 when none. */
  maxIndex: number;
  found: boolean;
  tag: string | null;
  /** Absolute href when the element is a link. */
  href: string | null;
  inputType: string | null;
  editable: boolean;
}

const LOOKUP_INDEX = `(opts) => {
  const all = document.querySelectorAll("[" + opts.attr + "]");
  let maxIndex = -1;
  for (const el of all) maxIndex = Math.max(maxIndex, Number(el.getAttribute(opts.attr)));
  const el = document.querySelector("[" + opts.attr + '="' + opts.index + '"]');
  return {
    numbered: all.length > 0, maxIndex, found: !!el,
    tag: el ? el.tagName.toLowerCase() : null,
    href: el && el.tagName === "A" && el.href ? el.href : null,
    inputType: el && el.tagName === "INPUT" ? el.type : null,
    editable: !!(el && el.isContentEditable),
  };
}`;

export interface ExtractedContent {
  markdown: string;
  /** True when extraction stopped at the size cap. */
  truncated: boolean;
  /** The page title, read in the same evaluation (see pageTitle for why). */
  title: unknown;
}

// DOM → markdown: headings, paragraphs, lists, tables, code blocks, emphasis and (optionally)
// links. Hidden elements and script/style/media are skipped. Stops once `max` chars are emitted.
const EXTRACT_MARKDOWN = `(opts) => {
  const SKIP = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "SVG", "CANVAS", "IFRAME", "OBJECT",
    "EMBED", "HEAD", "META", "LINK", "VIDEO", "AUDIO", "INPUT", "SELECT", "TEXTAREA", "OPTION"]);
  const BLOCK = new Set(["P", "DIV", "SECTION", "ARTICLE", "MAIN", "HEADER", "FOOTER", "NAV", "ASIDE",
    "FORM", "FIELDSET", "FIGURE", "FIGCAPTION", "DL", "DT", "DD", "ADDRESS", "DETAILS", "SUMMARY", "CENTER"]);
  const parts = [];
  let size = 0;
  let truncated = false;
  let last = "\\n";
  let nl = 2; // trailing newlines emitted so far (2 at the start: no leading blank lines)
  const push = (s) => {
    if (!s || truncated) return;
    if (size + s.length > opts.max) { s = s.slice(0, Math.max(0, opts.max - size)); truncated = true; }
    if (!s) return;
    parts.push(s); size += s.length; last = s[s.length - 1];
    const m = /\\n*$/.exec(s)[0].length;
    nl = m === s.length ? nl + m : m;
  };
  const text = (s) => {
    s = s.replace(/\\s+/g, " ");
    if (last === "\\n" || last === " " || last === "[") s = s.replace(/^ /, "");
    push(s);
  };
  const newline = () => { if (nl < 1) push("\\n"); };
  const block = () => { while (nl < 2 && !truncated) push("\\n"); };
  const hidden = (el) => typeof el.checkVisibility === "function" && !el.checkVisibility({ checkVisibilityCSS: true });
  const cell = (el) => String(el.innerText || "").replace(/\\s+/g, " ").trim().replace(/\\|/g, "\\\\|");
  const children = (el, depth) => { for (const c of el.childNodes) { if (truncated) return; walk(c, depth); } };
  // Top-level lists are blocks; nested ones continue their parent item on the next line.
  const list = (el, depth) => {
    const edge = depth > 0 ? newline : block;
    edge();
    let n = 1;
    for (const li of el.children) {
      if (truncated) return;
      if (li.tagName !== "LI" || hidden(li)) { walk(li, depth + 1); continue; }
      newline();
      push("   ".repeat(depth) + (el.tagName === "OL" ? n++ + ". " : "- "));
      children(li, depth + 1);
    }
    edge();
  };
  const walk = (node, depth) => {
    if (truncated) return;
    if (node.nodeType === 3) { text(node.data); return; }
    if (node.nodeType !== 1) return;
    const el = node;
    const tag = el.tagName;
    if (SKIP.has(tag) || hidden(el)) return;
    if (/^H[1-6]$/.test(tag)) {
      block(); push("#".repeat(Number(tag[1])) + " "); children(el, depth); block(); return;
    }
    switch (tag) {
      case "BR": push("\\n"); return;
      case "HR": block(); push("---"); block(); return;
      case "PRE": block(); push("\`\`\`\\n" + el.textContent.replace(/\\n$/, "") + "\\n\`\`\`"); block(); return;
      case "CODE": push("\`"); push(el.textContent); push("\`"); return;
      case "STRONG": case "B": push("**"); children(el, depth); push("**"); return;
      case "EM": case "I": push("_"); children(el, depth); push("_"); return;
      case "BLOCKQUOTE": block(); push("> "); children(el, depth); block(); return;
      case "UL": case "OL": list(el, depth); return;
      case "LI": newline(); push("- "); children(el, depth); newline(); return;
      case "IMG": {
        const alt = (el.getAttribute("alt") || "").trim();
        if (opts.links && el.src) push("![" + alt + "](" + el.src + ")");
        else if (alt) text(" [image: " + alt + "] ");
        return;
      }
      case "A": {
        const href = el.href;
        if (opts.links && href && !href.startsWith("javascript:")) {
          push("["); children(el, depth); push("](" + href + ")");
        } else children(el, depth);
        return;
      }
      case "TABLE": {
        block();
        let first = true;
        for (const row of el.rows) {
          if (truncated) return;
          const cells = Array.from(row.cells).map(cell);
          push("| " + cells.join(" | ") + " |\\n");
          if (first) { push("|" + cells.map(() => " --- |").join("") + "\\n"); first = false; }
        }
        block();
        return;
      }
      default:
        if (BLOCK.has(tag)) { block(); children(el, depth); block(); }
        else children(el, depth);
    }
  };
  if (document.body) walk(document.body, 0);
  const markdown = parts.join("")
    .split("\\n").map((l) => l.replace(/[ \\t]+$/, "")).join("\\n")
    .replace(/\\n{3,}/g, "\\n\\n").trim();
  return { markdown, truncated, title: ${READ_TITLE} };
}`;

export interface ScrollResult {
  y: number;
  height: number;
  viewport: number;
  /** True when an inner scrollable element moved instead of the window. */
  inner: boolean;
  moved: boolean;
}

// Scrolls by 80 % of the viewport so consecutive screens overlap a little. Falls back to the
// nearest scrollable ancestor of the viewport centre when the window itself cannot move (apps
// whose body does not scroll). "instant" defeats CSS smooth scrolling so the result is final.
const SCROLL = `(opts) => {
  const se = document.scrollingElement || document.documentElement;
  const dy = Math.round(innerHeight * 0.8) * (opts.direction === "down" ? 1 : -1);
  const before = scrollY;
  window.scrollBy({ top: dy, behavior: "instant" });
  if (scrollY !== before) {
    return { y: Math.round(scrollY), height: se.scrollHeight, viewport: innerHeight, inner: false, moved: true };
  }
  let el = document.elementFromPoint(innerWidth / 2, innerHeight / 2);
  while (el && !(el.scrollHeight > el.clientHeight && /(auto|scroll)/.test(getComputedStyle(el).overflowY))) {
    el = el.parentElement;
  }
  if (el) {
    const b = el.scrollTop;
    el.scrollBy({ top: dy, behavior: "instant" });
    return { y: Math.round(el.scrollTop), height: el.scrollHeight, viewport: el.clientHeight, inner: true, moved: el.scrollTop !== b };
  }
  return { y: Math.round(scrollY), height: se.scrollHeight, viewport: innerHeight, inner: false, moved: false };
}`;

// The value of the <select> option whose label (or, failing that, value) equals the text.
const MATCH_OPTION = `(opts) => {
  const el = document.querySelector("[" + opts.attr + '="' + opts.index + '"]');
  if (!el || !el.options) return null;
  const want = opts.text.trim();
  for (const o of el.options) if (o.label.trim() === want || o.text.trim() === want) return o.value;
  for (const o of el.options) if (o.value === opts.text) return o.value;
  return null;
}`;

function run<T>(page: Page, source: string, arg: unknown): Promise<T> {
  return page.evaluate(`(${source})(${JSON.stringify(arg)})`) as Promise<T>;
}

/**
 * The page's title (what `page.title()` returns), evaluated in the page's main world.
 *
 * Playwright installs a helper script into each JavaScript world of a document the first time it
 * evaluates there, and `page.title()` evaluates in its separate utility world. Reading the title in
 * the main world — where every script of this file runs — means a fresh document pays that
 * installation once instead of twice; get_state and get_content go further and return the title
 * from their own evaluation. The value is `unknown` because the page's own scripts can redefine
 * the getter in the main world; callers keep strings only.
 */
export function pageTitle(page: Page): Promise<unknown> {
  return page.evaluate(READ_TITLE) as Promise<unknown>;
}

/** Re-numbers the visible interactive elements of the page and describes them. */
export function numberElements(page: Page): Promise<NumberedPage> {
  return run(page, NUMBER_ELEMENTS, { attr: INDEX_ATTR, selector: INTERACTIVE_SELECTOR, max: MAX_NUMBERED_ELEMENTS });
}

/** Looks up the element carrying `index` (and whether the page is numbered at all). */
export function lookupIndex(page: Page, index: number): Promise<IndexLookup> {
  return run(page, LOOKUP_INDEX, { attr: INDEX_ATTR, index });
}

/** The page's visible text as markdown, cut at `maxChars`. */
export function extractMarkdown(page: Page, links: boolean, maxChars: number): Promise<ExtractedContent> {
  return run(page, EXTRACT_MARKDOWN, { links, max: maxChars });
}

/** Scrolls one screen up or down. */
export function scrollPage(page: Page, direction: "up" | "down"): Promise<ScrollResult> {
  return run(page, SCROLL, { direction });
}

/** Value of the option of select `index` whose label or value is `text`; null when none. */
export function matchOption(page: Page, index: number, text: string): Promise<string | null> {
  return run(page, MATCH_OPTION, { attr: INDEX_ATTR, index, text });
}
