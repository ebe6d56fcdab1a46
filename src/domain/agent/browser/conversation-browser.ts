import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Browser, BrowserContext, CDPSession, Dialog, Download, Page } from "playwright-core";
import { AgentdError } from "../../../errors.js";
import { firstLine } from "./find-chromium.js";
import { extractMarkdown, lookupIndex, matchOption, numberElements, pageTitle, scrollPage } from "./page-scripts.js";
import type { ElementInfo, IndexLookup } from "./page-scripts.js";
import type { BrowserAction } from "./types.js";
import { checkNavigationUrl, isAllowedLandingUrl } from "./url-policy.js";
import { isPlaywrightTimeout } from "./playwright.js";

/** Characters of page markdown returned per browser_get_content call. */
export const CONTENT_PAGE_SIZE = 10_000;
/** Extraction stops here; pages beyond this are reported as cut. */
export const MAX_EXTRACT_CHARS = 1_000_000;
/** Cap on the element listing of browser_get_state. */
export const STATE_MAX_CHARS = 20_000;
/** Downloads land in `<workingDir>/<DOWNLOADS_DIR>/`. */
export const DOWNLOADS_DIR = "downloads";
/** Longest a click waits for a popup it caused to finish opening (bounded by the action deadline). */
const POPUP_WAIT_MS = 3_000;
/** Longest navigate waits for the `load` event after DOMContentLoaded (subresources may hang). */
const LOAD_WAIT_MS = 3_000;
/** Longest a failed navigation waits for Chromium's error page to commit. */
const ERROR_PAGE_WAIT_MS = 2_000;

export interface ActionResult {
  text: string;
  screenshot?: string;
}

export interface ConversationBrowserOptions {
  workingDir: string;
  /** file:// navigation is allowed under these directories only. */
  fileRoots: readonly string[];
  contentPageSize: number;
  /** Per-action timeout, only for messages (the deadline itself is passed to run()). */
  actionTimeoutMs: number;
}

interface Tab {
  id: string;
  page: Page;
}

/**
 * One conversation's browsing state: an isolated BrowserContext (own cookies, storage, cache),
 * its tabs with short ids, the active tab, and events (popups, downloads, dialogs) that happened
 * between actions. Not safe for concurrent actions: BrowserManager runs one action at a time per
 * conversation.
 */
export class ConversationBrowser {
  readonly #tabs = new Map<string, Tab>();
  readonly #tabIds = new WeakMap<Page, string>();
  #activeId: string | undefined;
  /** Events to report in the next observation. */
  readonly #notes: string[] = [];
  /** Pages opened by the page itself (popups) and not yet reported as such. */
  readonly #newPopups: string[] = [];
  readonly #downloads = new Set<Promise<void>>();
  readonly #reservedNames = new Set<string>();
  #contextId: string | undefined;

  private constructor(
    readonly browser: Browser,
    readonly context: BrowserContext,
    readonly opts: ConversationBrowserOptions,
    /** Browser-level CDP session; resolves to undefined when none could be opened, never rejects. */
    readonly browserCdp: Promise<CDPSession | undefined>,
  ) {
    context.on("page", (page) => this.#register(page, true));
  }

  /**
   * Creates the isolated context; tabs are opened lazily by the first action that needs one.
   * `browserCdp` may still be opening (it must never reject); only popup counting waits for it.
   */
  static async create(
    browser: Browser,
    browserCdp: Promise<CDPSession | undefined>,
    opts: ConversationBrowserOptions & { viewport: { width: number; height: number } },
  ): Promise<ConversationBrowser> {
    const context = await browser.newContext({ viewport: opts.viewport, acceptDownloads: true });
    return new ConversationBrowser(browser, context, opts, browserCdp);
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
  }

  /** Notes gathered since the last call (popups, downloads, dialogs, tabs closed by pages). */
  takeNotes(): string[] {
    this.#popupsToNotes();
    return this.#notes.splice(0);
  }

  /** Popups not caused by a click (timers, scripts) are reported as notes. */
  #popupsToNotes(): void {
    for (const id of this.#newPopups.splice(0)) {
      const tab = this.#tabs.get(id);
      if (tab) this.#notes.push(`The page opened new tab ${id}: ${tab.page.url()}`);
    }
  }

  /** Waits (at most until `deadline`) for downloads still being saved. */
  async settleDownloads(deadline: number): Promise<void> {
    if (this.#downloads.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
    });
    await Promise.race([Promise.all([...this.#downloads]), bound]);
    clearTimeout(timer);
    if (this.#downloads.size > 0) this.#notes.push(`${this.#downloads.size} download(s) still in progress; they will be saved under ${this.#downloadsDir()}`);
  }

  // ---- tabs ---------------------------------------------------------------------------------

  #register(page: Page, fromContextEvent: boolean): string {
    const known = this.#tabIds.get(page);
    if (known !== undefined) return known;
    let id: string;
    do id = randomBytes(2).toString("hex");
    while (this.#tabs.has(id));
    this.#tabs.set(id, { id, page });
    this.#tabIds.set(page, id);
    page.on("close", () => {
      // Tabs we close ourselves are removed before closing, so this only sees window.close().
      if (!this.#tabs.delete(id)) return;
      this.#notes.push(`Tab ${id} was closed by its page.`);
      if (this.#activeId === id) this.#activeId = [...this.#tabs.keys()].at(-1);
    });
    page.on("dialog", (d) => this.#onDialog(d));
    page.on("download", (d) => this.#onDownload(d));
    // A page we did not open ourselves (window.open, target=_blank) is a popup.
    if (fromContextEvent && !this.#creating) this.#newPopups.push(id);
    return id;
  }

  /** Set while we open a tab ourselves, so the context "page" event does not count it as a popup. */
  #creating = false;

  async #newTab(): Promise<Tab> {
    this.#creating = true;
    let page: Page;
    try {
      page = await this.context.newPage();
    } finally {
      this.#creating = false;
    }
    const id = this.#register(page, false);
    this.#activeId = id;
    return { id, page };
  }

  /** The active tab, opening a blank one when none is open. */
  async #active(): Promise<Tab> {
    const tab = this.#activeId !== undefined ? this.#tabs.get(this.#activeId) : undefined;
    if (tab && !tab.page.isClosed()) return tab;
    const last = [...this.#tabs.values()].filter((t) => !t.page.isClosed()).at(-1);
    if (last) {
      this.#activeId = last.id;
      return last;
    }
    return this.#newTab();
  }

  // ---- events -------------------------------------------------------------------------------

  #onDialog(d: Dialog): void {
    // Alerts and "leave page?" prompts are accepted so the page can continue; confirm/prompt are
    // dismissed, because accepting one may confirm something destructive the agent never saw.
    const accept = d.type() === "alert" || d.type() === "beforeunload";
    this.#notes.push(`The page showed a ${d.type()} dialog (${accept ? "accepted" : "dismissed"}): "${clip(d.message(), 300)}"`);
    (accept ? d.accept() : d.dismiss()).catch(() => undefined);
  }

  #downloadsDir(): string {
    return path.join(this.opts.workingDir, DOWNLOADS_DIR);
  }

  #onDownload(d: Download): void {
    const work = this.#saveDownload(d);
    this.#downloads.add(work);
    void work.finally(() => this.#downloads.delete(work));
  }

  async #saveDownload(d: Download): Promise<void> {
    try {
      const target = await this.#uniqueTarget(safeFileName(d.suggestedFilename()));
      await d.saveAs(target);
      this.#notes.push(`Downloaded ${clip(d.url(), 300)} and saved it to ${target}`);
    } catch (err) {
      this.#notes.push(`Download of ${clip(d.url(), 300)} failed: ${firstLine(err)}`);
    }
  }

  /** A path in the downloads dir that neither exists nor is reserved by a concurrent download. */
  async #uniqueTarget(name: string): Promise<string> {
    const dir = this.#downloadsDir();
    const ext = path.extname(name);
    const base = name.slice(0, name.length - ext.length);
    for (let n = 0; ; n++) {
      const candidate = path.join(dir, n === 0 ? name : `${base} (${n})${ext}`);
      if (this.#reservedNames.has(candidate)) continue;
      const exists = await stat(candidate).then(
        () => true,
        () => false,
      );
      if (exists) continue;
      this.#reservedNames.add(candidate);
      return candidate;
    }
  }

  // ---- actions ------------------------------------------------------------------------------

  /**
   * Runs one action. Playwright waits are bounded by `deadline` (epoch ms). Expected failures
   * throw AgentdError with an LLM-readable message; the manager turns them into error observations.
   */
  async run(action: BrowserAction, deadline: number): Promise<ActionResult> {
    switch (action.kind) {
      case "BrowserNavigateAction":
        return this.#navigate(action.url, action.new_tab, deadline);
      case "BrowserClickAction":
        return this.#click(action.index, action.new_tab, deadline);
      case "BrowserTypeAction":
        return this.#type(action.index, action.text, deadline);
      case "BrowserGetStateAction":
        return this.#getState(action.include_screenshot, deadline);
      case "BrowserGetContentAction":
        return this.#getContent(action.extract_links, action.start_from_char);
      case "BrowserScrollAction":
        return this.#scroll(action.direction);
      case "BrowserGoBackAction":
        return this.#goBack(deadline);
      case "BrowserListTabsAction":
        return { text: await this.#listTabs() };
      case "BrowserSwitchTabAction":
        return this.#switchTab(action.tab_id);
      case "BrowserCloseTabAction":
        return this.#closeTab(action.tab_id);
    }
  }

  async #navigate(rawUrl: string, newTab: boolean, deadline: number): Promise<ActionResult> {
    const url = await checkNavigationUrl(rawUrl, this.opts.fileRoots);
    const tab = newTab ? await this.#newTab() : await this.#active();
    const status = await this.#goto(tab.page, url, deadline);
    await this.#enforceLanding(tab.page, deadline);
    const lines = [`Navigated to ${tab.page.url()}${status}`, `Title: ${await safeTitle(tab.page)}`];
    if (newTab) lines.push(`Opened in new tab ${tab.id} (now the active tab).`);
    lines.push("Use browser_get_state to list the interactive elements or browser_get_content to read the text.");
    return { text: lines.join("\n") };
  }

  /** Loads `url` and returns a status suffix for the observation (" (HTTP 404)", " (download)"). */
  async #goto(page: Page, url: string, deadline: number): Promise<string> {
    let suffix = "";
    try {
      const response = await page.goto(url, { waitUntil: "domcontentloaded", timeout: remaining(deadline) });
      if (response && response.status() >= 400) suffix = ` (HTTP ${response.status()} ${response.statusText()})`;
    } catch (err) {
      const msg = firstLine(err);
      if (msg.includes("Download is starting")) return " (the URL is a download; see the note about where it was saved)";
      if (isPlaywrightTimeout(err)) {
        throw new AgentdError("deadline_exceeded", `navigation to ${clip(url, 300)} timed out after ${this.opts.actionTimeoutMs} ms: the page did not finish loading`);
      }
      const net = /net::ERR_[A-Z_]+/.exec(msg);
      if (net && net[0] !== "net::ERR_ABORTED") {
        // goto rejects before Chromium commits its error page; a navigation issued before that
        // commit would be "interrupted" by it. Let it land so the tab is usable right away.
        await page
          .waitForURL((u) => u.protocol === "chrome-error:", { waitUntil: "commit", timeout: Math.min(ERROR_PAGE_WAIT_MS, remaining(deadline)) })
          .catch(() => undefined);
      }
      throw new AgentdError("unavailable", `navigation to ${clip(url, 300)} failed: ${net ? net[0] : msg}`);
    }
    // Best effort: give subresources a moment so scripts that render on "load" have run. A page
    // whose images never finish must not fail the action, so this wait is bounded and optional.
    await page.waitForLoadState("load", { timeout: Math.min(LOAD_WAIT_MS, remaining(deadline)) }).catch(() => undefined);
    return suffix;
  }

  /** Moves the page to about:blank if it ended up on a file:// URL outside the roots. */
  async #enforceLanding(page: Page, deadline: number): Promise<void> {
    const url = page.url();
    if (await isAllowedLandingUrl(url, this.opts.fileRoots)) return;
    await page.goto("about:blank", { timeout: remaining(deadline) }).catch(() => undefined);
    throw new AgentdError("permission_denied", `the page went to ${clip(url, 300)}, which is outside the workspace; the tab was reset to about:blank`);
  }

  /** Resolves an index to its element, numbering the page first if get_state never ran on it. */
  async #resolve(page: Page, index: number): Promise<IndexLookup> {
    let found = await lookupIndex(page, index);
    if (!found.numbered) {
      await numberElements(page);
      found = await lookupIndex(page, index);
    }
    if (found.found) return found;
    throw new AgentdError(
      "out_of_range",
      found.maxIndex < 0
        ? `element index ${index} does not exist: the page has no interactive elements`
        : `element index ${index} does not exist on this page (valid indexes: 0–${found.maxIndex}); call browser_get_state to refresh the indexes`,
    );
  }

  async #click(index: number, newTab: boolean, deadline: number): Promise<ActionResult> {
    const tab = await this.#active();
    const el = await this.#resolve(tab.page, index);
    const what = `element ${index} <${el.tag}>`;
    if (newTab && el.href !== null) {
      // Open the link's target in a new tab ourselves: deterministic, and it goes through the same
      // URL policy as browser_navigate.
      const url = await checkNavigationUrl(el.href, this.opts.fileRoots);
      const opened = await this.#newTab();
      const status = await this.#goto(opened.page, url, deadline);
      await this.#enforceLanding(opened.page, deadline);
      return { text: `Opened the link of ${what} in new tab ${opened.id} (now the active tab): ${opened.page.url()}${status}\nTitle: ${await safeTitle(opened.page)}` };
    }
    const before = tab.page.url();
    this.#popupsToNotes();
    const locator = tab.page.locator(`[data-agentd-index="${index}"]`);
    try {
      await locator.click({ timeout: remaining(deadline), ...(newTab ? { modifiers: ["ControlOrMeta" as const] } : {}) });
    } catch (err) {
      if (isPlaywrightTimeout(err)) {
        throw new AgentdError("deadline_exceeded", `could not click ${what} within ${this.opts.actionTimeoutMs} ms (it may be covered, disabled or moving)`);
      }
      throw err;
    }
    const lines = [`Clicked ${what}.`];
    const popups = await this.#awaitPopups(deadline);
    if (!tab.page.isClosed()) {
      await tab.page.waitForLoadState("domcontentloaded", { timeout: remaining(deadline) }).catch(() => undefined);
      await this.#enforceLanding(tab.page, deadline);
      if (tab.page.url() !== before) lines.push(`The tab navigated to ${tab.page.url()}\nTitle: ${await safeTitle(tab.page)}`);
    } else {
      lines.push("The click closed the tab.");
    }
    for (const popup of popups) {
      await popup.page.waitForLoadState("domcontentloaded", { timeout: Math.min(POPUP_WAIT_MS, remaining(deadline)) }).catch(() => undefined);
      await this.#enforceLanding(popup.page, deadline);
      lines.push(`The click opened new tab ${popup.id}: ${popup.page.url()} (title: ${await safeTitle(popup.page)})`);
    }
    const last = popups.at(-1);
    if (last) {
      this.#activeId = last.id;
      lines.push(`Tab ${last.id} is now the active tab (browser_switch_tab ${tab.id} to go back).`);
    }
    return { text: lines.join("\n") };
  }

  /**
   * Popups caused by the last input, in opening order. Playwright announces a popup only after it
   * has initialised it, which can be just after the click returns. So we ask Chromium how many page
   * targets this context has (the target exists as soon as window.open / target=_blank ran) and
   * wait for the "page" events of the ones Playwright has not announced yet.
   */
  async #awaitPopups(deadline: number): Promise<Tab[]> {
    const expected = await this.#countPageTargets();
    const limit = Math.min(deadline, Date.now() + POPUP_WAIT_MS);
    while (expected !== undefined && this.context.pages().length < expected && Date.now() < limit) {
      await this.context.waitForEvent("page", { timeout: Math.max(1, limit - Date.now()) }).catch(() => undefined);
    }
    const ids = this.#newPopups.splice(0);
    // Links with target=_blank are noopener by default, so page.opener() cannot attribute them;
    // actions are serialised per conversation, so what opened during the click came from it.
    return ids.map((id) => this.#tabs.get(id)).filter((t): t is Tab => t !== undefined);
  }

  async #countPageTargets(): Promise<number | undefined> {
    const browserCdp = await this.browserCdp;
    if (!browserCdp) return undefined;
    try {
      if (this.#contextId === undefined) {
        const page = this.context.pages()[0];
        if (!page) return undefined;
        const cdp = await this.context.newCDPSession(page);
        const info = (await cdp.send("Target.getTargetInfo")) as { targetInfo: { browserContextId?: string } };
        await cdp.detach().catch(() => undefined);
        this.#contextId = info.targetInfo.browserContextId;
      }
      const { targetInfos } = (await browserCdp.send("Target.getTargets")) as {
        targetInfos: { type: string; subtype?: string; browserContextId?: string }[];
      };
      // Prerendered pages (speculation rules) are page targets Playwright never announces.
      return targetInfos.filter((t) => t.type === "page" && t.subtype === undefined && t.browserContextId === this.#contextId).length;
    } catch {
      return undefined;
    }
  }

  async #type(index: number, text: string, deadline: number): Promise<ActionResult> {
    const tab = await this.#active();
    const el = await this.#resolve(tab.page, index);
    const what = `element ${index} <${el.tag}${el.inputType ? ` type=${el.inputType}` : ""}>`;
    const locator = tab.page.locator(`[data-agentd-index="${index}"]`);
    const timeout = remaining(deadline);
    try {
      if (el.tag === "select") {
        const value = await matchOption(tab.page, index, text);
        if (value === null) throw new AgentdError("invalid_argument", `${what} has no option labelled or valued "${clip(text, 100)}"`);
        await locator.selectOption({ value }, { timeout });
        return { text: `Selected option "${clip(text, 100)}" in ${what}.` };
      }
      if (el.inputType !== null && NOT_TYPABLE.has(el.inputType)) {
        throw new AgentdError(
          "failed_precondition",
          el.inputType === "file" ? `${what} is a file upload field; uploads are not supported` : `${what} does not take text; use browser_click on it`,
        );
      }
      if (el.tag !== "input" && el.tag !== "textarea" && !el.editable) {
        throw new AgentdError("failed_precondition", `${what} does not take text; pick an input, textarea or editable element from browser_get_state`);
      }
      await locator.fill(text, { timeout });
    } catch (err) {
      if (isPlaywrightTimeout(err)) {
        throw new AgentdError("deadline_exceeded", `could not type into ${what} within ${this.opts.actionTimeoutMs} ms (it may be hidden, disabled or read-only)`);
      }
      throw err;
    }
    // The text is not echoed back: it may be a password or token.
    return { text: `Typed ${text.length} character(s) into ${what}.` };
  }

  async #getState(includeScreenshot: boolean, deadline: number): Promise<ActionResult> {
    const tab = await this.#active();
    const page = tab.page;
    const numbered = await numberElements(page);
    const lines = [
      `URL: ${page.url()}`,
      `Title: ${titleText(numbered.title)}`,
      `Tab: ${tab.id} (${this.#tabs.size} tab${this.#tabs.size === 1 ? "" : "s"} open)`,
      `Viewport: ${numbered.viewportWidth}x${numbered.viewportHeight}, scrolled to y=${numbered.scrollY} of ${numbered.scrollHeight} px`,
      "",
    ];
    if (numbered.elements.length === 0) {
      lines.push("No interactive elements are visible on this page.");
    } else {
      lines.push("Interactive elements ([index] <tag attributes> text; * = outside the viewport):");
      let size = lines.join("\n").length;
      let shown = 0;
      for (const e of numbered.elements) {
        const line = describeElement(e);
        if (size + line.length + 1 > STATE_MAX_CHARS) break;
        lines.push(line);
        size += line.length + 1;
        shown++;
      }
      const hidden = numbered.elements.length - shown + numbered.omitted;
      if (hidden > 0) lines.push(`… ${hidden} more interactive element(s) not listed (listing capped at ${STATE_MAX_CHARS} characters).`);
    }
    const result: ActionResult = { text: lines.join("\n") };
    if (includeScreenshot) {
      const png = await page.screenshot({ type: "png", timeout: remaining(deadline) });
      result.screenshot = png.toString("base64");
    }
    return result;
  }

  async #getContent(links: boolean, start: number): Promise<ActionResult> {
    const tab = await this.#active();
    const page = tab.page;
    const { markdown, truncated, title } = await extractMarkdown(page, links, MAX_EXTRACT_CHARS);
    const total = markdown.length;
    const header = [`URL: ${page.url()}`, `Title: ${titleText(title)}`];
    if (total === 0) return { text: [...header, "", "The page has no text content."].join("\n") };
    if (start >= total) {
      throw new AgentdError("out_of_range", `start_from_char ${start} is past the end of the page content (${total} characters)`);
    }
    const size = this.opts.contentPageSize;
    const end = Math.min(total, start + size);
    const chunk = markdown.slice(start, end);
    const lines = [...header, `Content (markdown), characters ${start}–${end} of ${total}${truncated ? ` (the page text was cut at ${MAX_EXTRACT_CHARS} characters)` : ""}:`, "", chunk, ""];
    lines.push(
      end < total
        ? `[${total - end} more characters. Call browser_get_content with start_from_char=${end} to read the next ${Math.min(size, total - end)}.]`
        : "[End of page content.]",
    );
    return { text: lines.join("\n") };
  }

  async #scroll(direction: "up" | "down"): Promise<ActionResult> {
    const tab = await this.#active();
    const r = await scrollPage(tab.page, direction);
    const where = `y=${r.y} of ${r.height} px (viewport ${r.viewport} px${r.inner ? ", inner scroll area" : ""})`;
    if (!r.moved) return { text: `Already at the ${direction === "down" ? "bottom" : "top"} of the page: ${where}.` };
    const atEnd = direction === "down" ? r.y + r.viewport >= r.height - 1 : r.y <= 0;
    return { text: `Scrolled ${direction}: now at ${where}${atEnd ? `; this is the ${direction === "down" ? "bottom" : "top"} of the page` : ""}.` };
  }

  async #goBack(deadline: number): Promise<ActionResult> {
    const tab = await this.#active();
    const before = tab.page.url();
    let response;
    try {
      response = await tab.page.goBack({ waitUntil: "domcontentloaded", timeout: remaining(deadline) });
    } catch (err) {
      if (isPlaywrightTimeout(err)) {
        throw new AgentdError("deadline_exceeded", `going back timed out after ${this.opts.actionTimeoutMs} ms: the previous page did not finish loading`);
      }
      throw err;
    }
    if (response === null && tab.page.url() === before) {
      throw new AgentdError("failed_precondition", `cannot go back: tab ${tab.id} has no earlier page in its history`);
    }
    await this.#enforceLanding(tab.page, deadline);
    return { text: `Went back to ${tab.page.url()}\nTitle: ${await safeTitle(tab.page)}` };
  }

  async #listTabs(): Promise<string> {
    if (this.#tabs.size === 0) return "No tabs are open. browser_navigate opens one.";
    const lines = [`Open tabs (${this.#tabs.size}):`];
    for (const t of this.#tabs.values()) {
      lines.push(`- ${t.id}${t.id === this.#activeId ? " (active)" : ""}: ${await safeTitle(t.page) || "(no title)"} — ${t.page.url()}`);
    }
    return lines.join("\n");
  }

  #tab(tabId: string): Tab {
    const tab = this.#tabs.get(tabId.trim());
    if (tab) return tab;
    const open = [...this.#tabs.keys()];
    throw new AgentdError("not_found", `no tab with id '${clip(tabId, 40)}'; open tabs: ${open.length ? open.join(", ") : "none"}`);
  }

  async #switchTab(tabId: string): Promise<ActionResult> {
    const tab = this.#tab(tabId);
    this.#activeId = tab.id;
    await tab.page.bringToFront();
    return { text: `Switched to tab ${tab.id}: ${tab.page.url()}\nTitle: ${await safeTitle(tab.page)}` };
  }

  async #closeTab(tabId: string): Promise<ActionResult> {
    const tab = this.#tab(tabId);
    // The page's "close" handler removes the tab and picks the new active one; do it here too so
    // the state is right even before that event is delivered.
    this.#tabs.delete(tab.id);
    if (this.#activeId === tab.id) this.#activeId = [...this.#tabs.keys()].at(-1);
    await tab.page.close();
    const active = this.#activeId !== undefined ? this.#tabs.get(this.#activeId) : undefined;
    if (!active) return { text: `Closed tab ${tab.id}. No tabs are open now; browser_navigate opens one.` };
    await active.page.bringToFront().catch(() => undefined);
    return { text: `Closed tab ${tab.id}. The active tab is now ${active.id}: ${active.page.url()}` };
  }
}

const NOT_TYPABLE = new Set(["checkbox", "radio", "button", "submit", "reset", "image", "file", "color", "range", "hidden"]);

function describeElement(e: ElementInfo): string {
  const attrs = Object.entries(e.attrs)
    .map(([k, v]) => `${k}="${v.replace(/"/g, "'")}"`)
    .join(" ");
  return `${e.inView ? "" : "*"}[${e.index}] <${e.tag}${attrs ? ` ${attrs}` : ""}>${e.text ? ` ${e.text}` : ""}`;
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - Date.now());
}

/** The page's title for an observation; "" when it cannot be read (page gone, navigating). */
async function safeTitle(page: Page): Promise<string> {
  try {
    return titleText(await pageTitle(page));
  } catch {
    return "";
  }
}

/** A title value from a page script, clipped; "" when the page made it a non-string. */
function titleText(value: unknown): string {
  return typeof value === "string" ? clip(value, 300) : "";
}

export function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** A download's suggested name reduced to a safe single path component. */
export function safeFileName(name: string): string {
  const cleaned = path.basename(name.replace(/\\/g, "/")).replace(/[\u0000-\u001f<>:"|?*]/g, "_").trim();
  const limited = cleaned.length > 150 ? cleaned.slice(-150) : cleaned;
  return limited === "" || limited === "." || limited === ".." ? "download" : limited;
}
