import type { Browser, CDPSession } from "playwright-core";
import { ConversationBrowser, CONTENT_PAGE_SIZE } from "./conversation-browser.js";
import type { ActionResult } from "./conversation-browser.js";
import { AgentdError } from "../../../errors.js";
import { CHROMIUM_LAUNCH_ARGS, explainMissingChromium, findChromium, firstLine } from "./find-chromium.js";
import type { FindChromiumOptions } from "./find-chromium.js";
import type { BrowserAction, BrowserObservation, ToolContext } from "./types.js";
import { loadPlaywright } from "./playwright.js";

/** Default per-action timeout. */
export const DEFAULT_ACTION_TIMEOUT_MS = 15_000;
/** Default viewport of every conversation's pages (screenshots have this size). */
export const DEFAULT_VIEWPORT = { width: 1280, height: 720 } as const;
/**
 * Extra time past the action timeout before the manager stops waiting for the action itself.
 * Playwright's own timeouts fire first; this only catches work that has no timeout of its own
 * (a script evaluation in a page whose renderer is stuck in a loop).
 */
const DEADLINE_GRACE_MS = 2_000;

/** Prefixed to the first observation after the browser process died and was relaunched. */
export const RESTART_NOTE =
  "Note: the browser had stopped (crashed or was killed) and was restarted; this conversation's tabs, cookies and page state were lost.";

export interface BrowserManagerOptions extends FindChromiumOptions {
  /** Directories under which file:// URLs may be opened, in addition to each conversation's workingDir. */
  workspaceRoots?: readonly string[];
  /** Per-action timeout in ms (navigation, click, type, screenshot…); default 15 000. */
  actionTimeoutMs?: number;
  /** Browser launch timeout in ms; default 30 000. */
  launchTimeoutMs?: number;
  /** Viewport of each conversation's pages; default 1280×720. */
  viewport?: { width: number; height: number };
  /** Characters per browser_get_content page; default CONTENT_PAGE_SIZE (10 000). */
  contentPageSize?: number;
}

interface Running {
  browser: Browser;
  /**
   * Browser-level CDP session (popup counting, pid lookup), opened in the background so the first
   * action does not wait for it. Resolves to undefined when it cannot be opened; never rejects.
   */
  cdp: Promise<CDPSession | undefined>;
  /** The browser process's pid, looked up in the background; undefined when unknown. Never rejects. */
  pidLookup: Promise<number | undefined>;
  /** What pidLookup resolved to; undefined until then. */
  pid: number | undefined;
}

/**
 * Owns the server's single Chromium and one isolated BrowserContext per conversation.
 *
 * - The browser is launched lazily by the first action and shared by all conversations; each
 *   conversation gets its own context (cookies, storage, tabs never shared) on first use.
 * - Actions of one conversation run one at a time, in call order; conversations run in parallel.
 * - If the browser process dies, the next action relaunches it transparently and its observation
 *   starts with RESTART_NOTE; an action that was running when it died is retried once on the new
 *   browser.
 * - closeConversation() closes that conversation's context; close() closes everything and waits
 *   for the browser process to exit.
 *
 * Playwright's SIGINT/SIGTERM/SIGHUP handlers are disabled: the server owns shutdown and must call
 * close().
 */
export class BrowserManager {
  readonly #opts: BrowserManagerOptions;
  readonly #actionTimeoutMs: number;
  #running: Running | undefined;
  #launching: Promise<Running> | undefined;
  readonly #sessions = new Map<string, ConversationBrowser>();
  /** Conversations whose context was lost with a dead browser and not yet told about it. */
  readonly #lost = new Set<string>();
  readonly #queues = new Map<string, Promise<void>>();
  #closed = false;

  constructor(opts: BrowserManagerOptions = {}) {
    this.#opts = opts;
    this.#actionTimeoutMs = opts.actionTimeoutMs ?? DEFAULT_ACTION_TIMEOUT_MS;
  }

  /**
   * PID of the running Chromium (its process group leader); undefined when none is running. The
   * pid is looked up alongside the first action after a launch and is known once that action's
   * execute() has settled.
   */
  get browserPid(): number | undefined {
    return this.#running?.pid;
  }

  /** Whether a browser process is currently connected. */
  get isBrowserRunning(): boolean {
    return this.#running?.browser.isConnected() ?? false;
  }

  /**
   * Runs one browser action for a conversation and returns its observation. Tool-level failures
   * (invalid URL, refused scheme, index out of range, timeout, no browser installed) come back as
   * observations with `is_error: true`.
   *
   * @throws AgentdError "canceled" when ctx.signal aborts; "unavailable" after close().
   */
  execute(action: BrowserAction, ctx: ToolContext): Promise<BrowserObservation> {
    if (this.#closed) return Promise.reject(new AgentdError("unavailable", "the browser manager is closed"));
    const id = ctx.conversationId;
    const prev = this.#queues.get(id) ?? Promise.resolve();
    const result = prev.then(() => this.#executeNow(action, ctx));
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(id, tail);
    void tail.then(() => {
      if (this.#queues.get(id) === tail) this.#queues.delete(id);
    });
    return result;
  }

  async #executeNow(action: BrowserAction, ctx: ToolContext): Promise<BrowserObservation> {
    const obs = await this.#act(action, ctx);
    // A launch looks the pid up in parallel with the action; it is done by now (or about to be).
    // Waiting here keeps browserPid defined once an action has returned.
    await this.#running?.pidLookup;
    return obs;
  }

  async #act(action: BrowserAction, ctx: ToolContext): Promise<BrowserObservation> {
    if (ctx.signal.aborted) throw new AgentdError("canceled", `${toolNameOf(action)} was canceled`);
    if (this.#closed) throw new AgentdError("unavailable", "the browser manager is closed");
    const notes: string[] = [];
    let session: ConversationBrowser;
    try {
      session = await this.#session(ctx, notes);
    } catch (err) {
      return observation(notes, errorText(err), true);
    }
    let outcome: ActionResult;
    try {
      outcome = await this.#withDeadline(action, ctx.signal, (deadline) => session.run(action, deadline));
    } catch (err) {
      if (err instanceof AgentdError && err.code === "canceled") throw err;
      if (session.browser.isConnected() || this.#closed) {
        return observation([...notes, ...session.takeNotes()], errorText(err), true);
      }
      // The browser died under this action: relaunch and run the action once more.
      try {
        session = await this.#session(ctx, notes);
        outcome = await this.#withDeadline(action, ctx.signal, (deadline) => session.run(action, deadline));
      } catch (retryErr) {
        if (retryErr instanceof AgentdError && retryErr.code === "canceled") throw retryErr;
        return observation(notes, errorText(retryErr), true);
      }
    }
    await session.settleDownloads(Date.now() + this.#actionTimeoutMs);
    return observation([...notes, ...session.takeNotes()], outcome.text, false, outcome.screenshot);
  }

  /** Runs `work` with a deadline of now + action timeout, racing it against the grace timer and ctx.signal. */
  async #withDeadline<T>(action: BrowserAction, signal: AbortSignal, work: (deadline: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#actionTimeoutMs;
    const running = work(deadline);
    // If we stop waiting (grace timeout, abort), the work may still settle later: not unhandled.
    running.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const guard = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new AgentdError("deadline_exceeded", `${toolNameOf(action)} did not finish within ${this.#actionTimeoutMs} ms; the page may be unresponsive (try another tab or navigate elsewhere)`)),
        this.#actionTimeoutMs + DEADLINE_GRACE_MS,
      );
      onAbort = () => reject(new AgentdError("canceled", `${toolNameOf(action)} was canceled`));
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([running, guard]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  /** The conversation's session on a live browser, creating (or re-creating after a crash) as needed. */
  async #session(ctx: ToolContext, notes: string[]): Promise<ConversationBrowser> {
    const id = ctx.conversationId;
    const running = await this.#ensureBrowser();
    let session = this.#sessions.get(id);
    if (session && session.browser !== running.browser) {
      this.#sessions.delete(id);
      this.#lost.add(id);
      session = undefined;
    }
    if (this.#lost.delete(id)) notes.push(RESTART_NOTE);
    if (!session) {
      const roots = [...(this.#opts.workspaceRoots ?? []), ctx.workingDir];
      session = await ConversationBrowser.create(running.browser, running.cdp, {
        workingDir: ctx.workingDir,
        fileRoots: roots,
        contentPageSize: this.#opts.contentPageSize ?? CONTENT_PAGE_SIZE,
        actionTimeoutMs: this.#actionTimeoutMs,
        viewport: this.#opts.viewport ?? DEFAULT_VIEWPORT,
      });
      if (this.#closed) {
        await session.close();
        throw new AgentdError("unavailable", "the browser manager is closed");
      }
      this.#sessions.set(id, session);
    }
    return session;
  }

  /** The running browser, launching it (once, even under concurrent callers) when needed. */
  async #ensureBrowser(): Promise<Running> {
    const current = this.#running;
    if (current && current.browser.isConnected()) return current;
    this.#launching ??= this.#launch().finally(() => {
      this.#launching = undefined;
    });
    return this.#launching;
  }

  async #launch(): Promise<Running> {
    const found = await findChromium(this.#opts);
    if (!found) {
      throw new AgentdError("failed_precondition", `browser tools are unavailable: ${await explainMissingChromium(this.#opts)}`);
    }
    let browser: Browser;
    try {
      const { chromium } = await loadPlaywright();
      browser = await chromium.launch({
        executablePath: found.path,
        args: [...CHROMIUM_LAUNCH_ARGS],
        headless: true,
        timeout: this.#opts.launchTimeoutMs ?? 30_000,
        handleSIGINT: false,
        handleSIGTERM: false,
        handleSIGHUP: false,
      });
    } catch (err) {
      throw new AgentdError("unavailable", `could not start Chromium (${found.path}): ${firstLine(err)}`);
    }
    // Not awaited: the CDP session and the pid (7–13 ms) are only needed by popup counting, the
    // browserPid getter and the crash handler, so they are fetched while the context is created.
    // Without CDP we lose popup counting and the pid; browsing still works.
    const cdp: Promise<CDPSession | undefined> = browser.newBrowserCDPSession().catch(() => undefined);
    const running: Running = { browser, cdp, pidLookup: Promise.resolve(undefined), pid: undefined };
    running.pidLookup = lookupBrowserPid(cdp).then((pid) => (running.pid = pid));
    browser.on("disconnected", () => this.#onDisconnected(running));
    if (this.#closed) {
      await closeBrowser(running);
      throw new AgentdError("unavailable", "the browser manager is closed");
    }
    this.#running = running;
    return running;
  }

  #onDisconnected(running: Running): void {
    if (this.#running === running) this.#running = undefined;
    // Contexts die with their browser; their conversations get RESTART_NOTE on their next call.
    for (const [id, session] of this.#sessions) {
      if (session.browser !== running.browser) continue;
      this.#sessions.delete(id);
      if (!this.#closed) this.#lost.add(id);
    }
    // Chromium starts helpers (zygote, renderers, GPU) in its own process group, led by the
    // browser process; after an unexpected exit make sure none of them lingers. A lookup still in
    // flight when the browser went away fails and resolves to undefined: nothing to kill then.
    void running.pidLookup.then((pid) => {
      if (pid === undefined) return;
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // ESRCH: the group is already gone.
      }
    });
  }

  /** Closes the conversation's context (tabs, cookies); the next action for it starts afresh. */
  async closeConversation(conversationId: string): Promise<void> {
    this.#lost.delete(conversationId);
    const session = this.#sessions.get(conversationId);
    if (!session) return;
    this.#sessions.delete(conversationId);
    await session.close();
  }

  /** Closes every context and the browser; waits for the browser process to exit. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    this.#lost.clear();
    await Promise.all(sessions.map((s) => s.close()));
    const running = this.#running ?? (await this.#launching?.catch(() => undefined));
    this.#running = undefined;
    if (running) await closeBrowser(running);
  }
}

/**
 * Closes a launched browser. The pid lookup is let finish first so the "disconnected" handler
 * knows the process group to sweep (it is normally done long before; at most a few ms otherwise).
 */
async function closeBrowser(running: Running): Promise<void> {
  await running.pidLookup;
  await running.browser.close().catch(() => undefined);
}

/** The browser process's pid via CDP; undefined when there is no session or the call fails. Never rejects. */
async function lookupBrowserPid(cdp: Promise<CDPSession | undefined>): Promise<number | undefined> {
  try {
    const session = await cdp;
    if (!session) return undefined;
    const info = (await session.send("SystemInfo.getProcessInfo")) as { processInfo: { type: string; id: number }[] };
    return info.processInfo.find((p) => p.type === "browser")?.id;
  } catch {
    return undefined;
  }
}

function observation(notes: string[], text: string, isError: boolean, screenshot?: string): BrowserObservation {
  const before = notes.filter((n) => n === RESTART_NOTE);
  const after = notes.filter((n) => n !== RESTART_NOTE);
  let body = [...before, text].join("\n\n");
  if (after.length > 0) body += `\n\nAlso:\n${after.map((n) => `- ${n}`).join("\n")}`;
  const obs: BrowserObservation = { kind: "BrowserObservation", content: [{ type: "text", text: body }], is_error: isError };
  if (screenshot !== undefined) obs.screenshot_data = screenshot;
  return obs;
}

function errorText(err: unknown): string {
  if (err instanceof AgentdError) return err.message;
  const line = firstLine(err);
  if (/Target page, context or browser has been closed|Target closed/i.test(line)) {
    return "the tab or browser was closed while the action ran; call browser_list_tabs to see what is open";
  }
  return line;
}

const TOOL_NAMES: Record<BrowserAction["kind"], string> = {
  BrowserNavigateAction: "browser_navigate",
  BrowserClickAction: "browser_click",
  BrowserTypeAction: "browser_type",
  BrowserGetStateAction: "browser_get_state",
  BrowserGetContentAction: "browser_get_content",
  BrowserScrollAction: "browser_scroll",
  BrowserGoBackAction: "browser_go_back",
  BrowserListTabsAction: "browser_list_tabs",
  BrowserSwitchTabAction: "browser_switch_tab",
  BrowserCloseTabAction: "browser_close_tab",
};

function toolNameOf(action: BrowserAction): string {
  return TOOL_NAMES[action.kind];
}
