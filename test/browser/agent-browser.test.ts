// Acceptance of issue 8 at the agent level: a conversation created over gRPC with the
// `browser_tool_set` tool, driven by the scripted LLM, browses pages this test serves on loopback
// (a form that POSTs back, a page of links, a link that opens a new tab) in the server's real
// Chromium. Each scripted step is a function of the LLM request it answers, so element indexes and
// tab ids are read from the previous tool result exactly as a model would read them. The events
// are then checked over EventService.SearchEvents.
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { ExecutionStatus } from "../../gen/agentd/v1/conversation_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import type { Event, ObservationEvent } from "../../gen/agentd/v1/event_pb.js";
import { MessageRole } from "../../gen/agentd/v1/message_pb.js";
import { client } from "../helpers/clients.js";
import { startScriptedLlm, type ScriptedCompletion, type ScriptedLlm, type ScriptedRequest } from "../helpers/scripted-llm.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

// ---- the pages ---------------------------------------------------------------------------------

interface Pages {
  base: string;
  /** Resolves with the fields of the first POST /submit. */
  submitted: Promise<Record<string, string>>;
  close(): Promise<void>;
}

const html = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

const PAGES: Record<string, string> = {
  "/form": html(
    "Sign-up form",
    `<h1>Sign up</h1>
     <form method="post" action="/submit">
       <label>Full name <input type="text" name="full_name"></label>
       <label>Email <input type="email" name="email"></label>
       <button type="submit">Send the form</button>
     </form>`,
  ),
  "/links": html(
    "Link list",
    `<h1>Links</h1>
     <ul>
       <li><a href="/page-a">Go to page A</a></li>
       <li><a href="/report" target="_blank">Open the report</a></li>
     </ul>`,
  ),
  "/page-a": html("Page A", "<p>This is page A.</p>"),
  "/report": html("Quarterly report", "<h1>Quarterly report</h1><p>Revenue went up.</p>"),
};

async function startPages(): Promise<Pages> {
  let resolveSubmitted!: (v: Record<string, string>) => void;
  const submitted = new Promise<Record<string, string>>((r) => (resolveSubmitted = r));
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] as string;
    const send = (status: number, body: string): void => {
      res.writeHead(status, { "content-type": "text/html; charset=utf-8", "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method === "POST" && path === "/submit") {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const fields = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString("utf8")));
        resolveSubmitted(fields);
        const name = (fields.full_name ?? "").replace(/[<>&]/g, "");
        send(200, html("Thank you", `<p>Thanks, ${name}! We received your form.</p><p><a href="/links">Continue to the links</a></p>`));
      });
      return;
    }
    const page = req.method === "GET" ? PAGES[path] : undefined;
    if (page === undefined) send(404, html("Not found", "<p>not found</p>"));
    else send(200, page);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    submitted,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

// ---- the server ----------------------------------------------------------------------------------

let server: TestServer;
let pages: Pages;
beforeAll(async () => {
  [server, pages] = await Promise.all([startTestServer(), startPages()]);
});
afterAll(async () => {
  // server.close() fails when a connection is left open; the app closes Chromium on stop.
  const before = chromiumDescendants();
  await server?.close();
  await pages?.close();
  expect(before.length).toBeGreaterThan(0); // the check below can see Chromium at all
  expect(chromiumDescendants()).toEqual([]);
});

/** Live (not zombie) Chromium processes below this test process, from /proc. */
function chromiumDescendants(): string[] {
  const procs: { pid: number; ppid: number; comm: string; state: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    const close = stat.lastIndexOf(")");
    const [state, ppid] = stat.slice(close + 2).split(" ");
    procs.push({ pid: Number(name), ppid: Number(ppid), comm: stat.slice(stat.indexOf("(") + 1, close), state: state ?? "" });
  }
  const below = new Set([process.pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) {
      if (below.has(p.pid) || !below.has(p.ppid)) continue;
      below.add(p.pid);
      grew = true;
    }
  }
  return procs.filter((p) => p.pid !== process.pid && below.has(p.pid) && p.state !== "Z" && /chrom/i.test(p.comm)).map((p) => `${p.pid} ${p.comm}`);
}

const conversations = () => client(ConversationService, server.url, "grpc");
const events = () => client(EventService, server.url, "grpc");
const message = (t: string) => ({ role: MessageRole.USER, content: [{ content: { case: "text" as const, value: { text: t } } }] });

const isStatus = (...names: string[]) => (e: Event) =>
  e.payload.case === "conversationStateUpdateEvent" &&
  e.payload.value.key === "execution_status" &&
  e.payload.value.value?.kind.case === "stringValue" &&
  names.includes(e.payload.value.value.kind.value);

/** Follows the conversation over WatchEvents until it stops running; returns the final status name. */
async function runToEnd(conversationId: string): Promise<string> {
  const ac = new AbortController();
  try {
    for await (const item of events().watchEvents({ conversationId, afterSeq: 0n }, { signal: ac.signal })) {
      if (item.item.case !== "event") continue;
      const e = item.item.value;
      if (isStatus("finished", "error", "stuck", "paused")(e) && e.payload.case === "conversationStateUpdateEvent") {
        const v = e.payload.value.value?.kind;
        return v?.case === "stringValue" ? v.value : "?";
      }
    }
    throw new Error("the event stream ended before the conversation stopped");
  } finally {
    ac.abort();
  }
}

/** Every ObservationEvent of the conversation, oldest first, via SearchEvents. */
async function observations(conversationId: string): Promise<ObservationEvent[]> {
  const out: ObservationEvent[] = [];
  let pageToken = "";
  do {
    const res = await events().searchEvents({ conversationId, filter: { kind: "ObservationEvent" }, pageSize: 100, pageToken });
    for (const e of res.items) if (e.payload.case === "observationEvent") out.push(e.payload.value);
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return out;
}

const textOf = (o: ObservationEvent): string =>
  (o.observation?.content ?? []).map((c) => (c.content.case === "text" ? c.content.value.text : "")).join("\n");

// ---- scripting the LLM from what it is sent ------------------------------------------------------

/** A step that sees the text of the latest tool result in the request (what the model would read). */
type Step = (toolText: string, req: ScriptedRequest) => ScriptedCompletion | Promise<ScriptedCompletion>;

const call = (name: string, args: Record<string, unknown>): ScriptedCompletion => ({ toolCalls: [{ name, arguments: args }] });
const finish = (msg: string): ScriptedCompletion => call("finish", { message: msg });

function lastToolText(body: { messages?: { role: string; content: unknown }[] }): string {
  const msg = (body.messages ?? []).findLast((m) => m.role === "tool");
  if (msg === undefined) return "";
  if (typeof msg.content === "string") return msg.content;
  return JSON.stringify(msg.content);
}

/**
 * Enqueues `steps`. A step that throws (a failed expectation) never reaches the agent as an LLM
 * error (which it would retry): the failure is recorded and the agent is told to finish, so the
 * test fails fast with the step's own message.
 */
function script(llm: ScriptedLlm, failures: string[], steps: Step[]): void {
  llm.enqueue(
    ...steps.map((step, i) => async (req: ScriptedRequest): Promise<ScriptedCompletion> => {
      if (failures.length > 0) return finish("giving up");
      try {
        return await step(lastToolText(req.body), req);
      } catch (err) {
        failures.push(`step ${i + 1} (request #${req.n}): ${err instanceof Error ? err.message : String(err)}`);
        return finish("giving up");
      }
    }),
  );
}

/** The index of the element line of a browser_get_state listing that matches `pattern`. */
function elementIndex(state: string, pattern: RegExp): number {
  for (const line of state.split("\n")) {
    const m = /^\*?\[(\d+)\] (.*)$/.exec(line);
    if (m && pattern.test(m[2] as string)) return Number(m[1]);
  }
  throw new Error(`no element matching ${pattern} in the state:\n${state}`);
}

/** Tabs of a browser_list_tabs listing. */
function tabs(listing: string): { id: string; active: boolean; url: string }[] {
  return [...listing.matchAll(/^- (\S+?)( \(active\))?: .* — (\S+)$/gm)].map((m) => ({ id: m[1] as string, active: m[2] !== undefined, url: m[3] as string }));
}

/** Width and height from a PNG's IHDR chunk, after checking the signature. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  expect(png.toString("latin1", 12, 16)).toBe("IHDR");
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

async function startConversation(llm: ScriptedLlm, text: string): Promise<string> {
  const { conversation } = await conversations().createConversation({
    agent: { llm: { model: "openai/scripted", baseUrl: llm.baseUrl, apiKey: "sk-test" }, tools: [{ name: "browser_tool_set" }] },
    initialMessage: message(text),
  });
  return conversation!.id;
}

// ---- the cases -----------------------------------------------------------------------------------

describe("an agent browsing with browser_tool_set", () => {
  it("fills and submits a form, reads, follows a link, switches tabs and takes a screenshot", async () => {
    const llm = await startScriptedLlm();
    const failures: string[] = [];
    const base = pages.base;
    let form = { name: -1, email: -1, submit: -1 };
    let originalTab = "";
    let reportTab = "";
    try {
      script(llm, failures, [
        () => call("browser_navigate", { url: `${base}/form` }),
        (t) => {
          expect(t).toContain(`Navigated to ${base}/form`);
          expect(t).toContain("Title: Sign-up form");
          return call("browser_get_state", {});
        },
        (t) => {
          expect(t).toContain(`URL: ${base}/form`);
          form = {
            name: elementIndex(t, /^<input [^>]*name="full_name"/),
            email: elementIndex(t, /^<input [^>]*name="email"/),
            submit: elementIndex(t, /^<button[^>]*> Send the form$/),
          };
          return call("browser_type", { index: form.name, text: "Ada Lovelace" });
        },
        (t) => {
          expect(t).toContain(`Typed 12 character(s) into element ${form.name}`);
          return call("browser_type", { index: form.email, text: "ada@example.test" });
        },
        (t) => {
          expect(t).toContain(`into element ${form.email}`);
          return call("browser_click", { index: form.submit });
        },
        (t) => {
          expect(t).toContain(`Clicked element ${form.submit} <button>`);
          expect(t).toContain(`The tab navigated to ${base}/submit`);
          return call("browser_get_content", {});
        },
        (t) => {
          expect(t).toContain("Title: Thank you");
          expect(t).toContain("Thanks, Ada Lovelace! We received your form.");
          expect(t).toContain("[End of page content.]");
          return call("browser_get_state", {});
        },
        (t) => call("browser_click", { index: elementIndex(t, /^<a [^>]*href="\/links"[^>]*> Continue to the links$/) }),
        (t) => {
          expect(t).toContain(`The tab navigated to ${base}/links`);
          expect(t).toContain("Title: Link list");
          return call("browser_get_state", {});
        },
        (t) => {
          expect(t).toContain(`[${elementIndex(t, /Go to page A$/)}] <a href="/page-a">`);
          return call("browser_click", { index: elementIndex(t, /^<a [^>]*target="_blank"[^>]*> Open the report$/) });
        },
        (t) => {
          expect(t).toMatch(new RegExp(`The click opened new tab \\S+: ${base}/report \\(title: Quarterly report\\)`));
          return call("browser_list_tabs", {});
        },
        (t) => {
          const open = tabs(t);
          expect(open).toHaveLength(2);
          const report = open.find((x) => x.active);
          const original = open.find((x) => !x.active);
          expect(report?.url).toBe(`${base}/report`);
          expect(original?.url).toBe(`${base}/links`);
          reportTab = report!.id;
          originalTab = original!.id;
          return call("browser_switch_tab", { tab_id: originalTab });
        },
        (t) => {
          expect(t).toContain(`Switched to tab ${originalTab}: ${base}/links`);
          return call("browser_get_state", { include_screenshot: true });
        },
        (t) => {
          expect(t).toContain(`URL: ${base}/links`);
          expect(t).toContain(`Tab: ${originalTab} (2 tabs open)`);
          expect(t).toContain("Viewport: 1280x720");
          return call("browser_close_tab", { tab_id: reportTab });
        },
        (t) => {
          expect(t).toContain(`Closed tab ${reportTab}. The active tab is now ${originalTab}: ${base}/links`);
          return finish("Submitted the form and read the report.");
        },
      ]);

      const id = await startConversation(llm, "Sign Ada up, then look at the report.");
      const status = await runToEnd(id);
      expect(failures).toEqual([]);
      llm.assertDone();
      expect(status).toBe("finished");

      // The page server got exactly what the agent typed.
      expect(await pages.submitted).toEqual({ full_name: "Ada Lovelace", email: "ada@example.test" });

      const obs = await observations(id);
      expect(obs.map((o) => o.toolName)).toEqual([
        "browser_navigate",
        "browser_get_state",
        "browser_type",
        "browser_type",
        "browser_click",
        "browser_get_content",
        "browser_get_state",
        "browser_click",
        "browser_get_state",
        "browser_click",
        "browser_list_tabs",
        "browser_switch_tab",
        "browser_get_state",
        "browser_close_tab",
        "finish",
      ]);
      const browserObs = obs.slice(0, -1);
      for (const o of browserObs) {
        expect(o.observation?.observation.case, o.toolName).toBe("browser");
        expect(o.observation?.isError, `${o.toolName}: ${textOf(o)}`).toBe(false);
      }
      expect(textOf(obs[5]!)).toContain("Thanks, Ada Lovelace!");
      expect(textOf(obs[10]!)).toContain(`${base}/report`);

      // Only the get_state that asked for one carries a screenshot: a PNG of the viewport.
      const shots = browserObs.filter((o) => o.observation?.observation.case === "browser" && o.observation.observation.value.screenshotData !== undefined);
      expect(shots).toHaveLength(1);
      const shot = shots[0]!;
      expect(shot).toBe(obs[12]);
      const data = shot.observation?.observation.case === "browser" ? shot.observation.observation.value.screenshotData : undefined;
      expect(pngSize(Buffer.from(data ?? "", "base64"))).toEqual({ width: 1280, height: 720 });

      expect((await conversations().getAgentFinalResponse({ conversationId: id })).response).toBe("Submitted the form and read the report.");
    } finally {
      await llm.close();
    }
  });

  it("answers file:///etc/passwd, an invalid URL and an out-of-range index with error observations and carries on", async () => {
    const llm = await startScriptedLlm();
    const failures: string[] = [];
    const base = pages.base;
    try {
      script(llm, failures, [
        () => call("browser_navigate", { url: "file:///etc/passwd" }),
        (t) => {
          expect(t).toContain("[An error occurred during execution.]");
          expect(t).toContain("'file:///etc/passwd' is outside the workspace");
          expect(t).not.toContain("root:");
          return call("browser_navigate", { url: "not a url" });
        },
        (t) => {
          expect(t).toContain("[An error occurred during execution.]");
          expect(t).toContain("has no scheme");
          return call("browser_navigate", { url: `${base}/form` });
        },
        (t) => {
          expect(t).toContain(`Navigated to ${base}/form`);
          return call("browser_click", { index: 99 });
        },
        (t) => {
          expect(t).toContain("[An error occurred during execution.]");
          expect(t).toMatch(/element index 99 does not exist on this page \(valid indexes: 0–\d+\); call browser_get_state/);
          return call("browser_get_content", {});
        },
        (t) => {
          expect(t).toContain("Sign up");
          return finish("Recovered from the bad inputs.");
        },
      ]);

      const id = await startConversation(llm, "Try some bad inputs.");
      const status = await runToEnd(id);
      expect(failures).toEqual([]);
      llm.assertDone();
      expect(status).toBe("finished");

      const obs = await observations(id);
      expect(obs.map((o) => [o.toolName, o.observation?.isError])).toEqual([
        ["browser_navigate", true],
        ["browser_navigate", true],
        ["browser_navigate", false],
        ["browser_click", true],
        ["browser_get_content", false],
        ["finish", false],
      ]);
      expect(obs.slice(0, -1).every((o) => o.observation?.observation.case === "browser")).toBe(true);
      expect(textOf(obs[0]!)).toMatch(/^'file:\/\/\/etc\/passwd' is outside the workspace; file:\/\/ URLs are allowed only under /);
      expect(textOf(obs[1]!)).toBe("url 'not a url' has no scheme; use a full URL such as https://not a url");
      expect(textOf(obs[3]!)).toMatch(/^element index 99 does not exist on this page/);
      const got = await conversations().getConversation({ conversationId: id });
      expect(got.conversation?.executionStatus).toBe(ExecutionStatus.FINISHED);
    } finally {
      await llm.close();
    }
  });
});
