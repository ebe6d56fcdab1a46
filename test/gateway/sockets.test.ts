/**
 * The OpenHands WebSockets on the gateway bench (fixtures.ts): auth (query, header, first frame,
 * timeout), replay modes (after_seq, resend_mode=all|since, live only), live delivery, client
 * frames, error frames, close codes, keepalive pings.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectWs } from "../helpers/ws.js";
import { OVERLOADED_ID, startGatewayHarness, type Harness } from "./fixtures.js";

const KEY = "socket-key";
let h: Harness;
let ws: string;

beforeAll(async () => {
  h = await startGatewayHarness({ keys: [KEY], authTimeoutMs: 300, pingIntervalMs: 200 });
  ws = h.url.replace("http:", "ws:");
});
afterAll(async () => {
  await h.close();
});

function conversationWith(messages: string[]): string {
  const id = h.state.createConversation().id;
  for (const text of messages) {
    h.state.append(id, { source: 2, payload: { case: "messageEvent", value: { llmMessage: { role: 1, content: [{ content: { case: "text", value: { text } } }] } } } });
  }
  return id;
}

const textOf = (f: Record<string, unknown>) => ((f.llm_message as { content: { text: string }[] }).content[0]!.text);

describe("auth", () => {
  it("refuses a wrong key in the query before the upgrade with 401", async () => {
    const id = conversationWith([]);
    const c = connectWs(`${ws}/sockets/events/${id}?session_api_key=wrong`);
    const opened = await c.opened;
    expect(opened).toEqual({ ok: false, status: 401, body: JSON.stringify({ detail: "Unauthorized" }) });
    await c.close();
  });

  it("refuses a wrong key in the header with 401", async () => {
    const c = connectWs(`${ws}/sockets/bash-events`, { headers: { "X-Session-API-Key": "nope" } });
    expect(await c.opened).toMatchObject({ ok: false, status: 401 });
    await c.close();
  });

  it("accepts the key in a header", async () => {
    const id = conversationWith(["hi"]);
    const c = connectWs(`${ws}/sockets/events/${id}`, { headers: { "X-Session-API-Key": KEY } });
    const snapshot = await c.next();
    expect(snapshot).toMatchObject({ kind: "ConversationStateUpdateEvent", key: "full_state" });
    await c.close();
  });

  it("authenticates with a first frame, then ignores later auth frames", async () => {
    const id = conversationWith(["a"]);
    const c = connectWs(`${ws}/sockets/events/${id}?resend_mode=all`);
    expect(await c.opened).toEqual({ ok: true });
    c.send({ type: "auth", session_api_key: KEY });
    expect(await c.next()).toMatchObject({ key: "full_state" });
    expect(textOf(await c.next())).toBe("a");
    c.send({ type: "auth", session_api_key: "anything" }); // ignored, no error frame
    c.send({ role: "user", content: [{ type: "text", text: "b" }] });
    const live = await c.next();
    expect(textOf(live)).toBe("b");
    await c.close();
  });

  it("closes with 4001 on a wrong first frame, a non-auth first frame, and silence", async () => {
    const id = conversationWith([]);
    for (const first of [{ type: "auth", session_api_key: "bad" }, { role: "user", content: [] }, undefined]) {
      const c = connectWs(`${ws}/sockets/events/${id}`);
      await c.opened;
      if (first !== undefined) c.send(first);
      expect(await c.closed).toEqual({ code: 4001, reason: "Authentication failed" });
    }
  });
});

describe("events socket", () => {
  const q = `session_api_key=${KEY}`;

  it("sends the snapshot then live events only, by default", async () => {
    const id = conversationWith(["old"]);
    const c = connectWs(`${ws}/sockets/events/${id}?${q}`);
    const snapshot = await c.next();
    expect(snapshot).toMatchObject({ key: "full_state" });
    expect(snapshot).not.toHaveProperty("seq"); // plain OpenHands frames unless the client opts in
    h.state.append(id, { source: 3, payload: { case: "pauseEvent", value: {} } });
    const live = await c.next();
    expect(live).toMatchObject({ kind: "PauseEvent", source: "environment" });
    expect(live).not.toHaveProperty("parent_id"); // exclude_none
    await c.close();
  });

  it("replays everything with resend_mode=all and resend_all=true, and from a cursor with after_seq", async () => {
    const id = conversationWith(["1", "2", "3"]);
    for (const [query, expected] of [
      ["resend_mode=all", ["1", "2", "3"]],
      ["resend_all=true", ["1", "2", "3"]],
      ["after_seq=1", ["2", "3"]],
      ["after_seq=1&resend_mode=all", ["2", "3"]],
    ] as const) {
      const c = connectWs(`${ws}/sockets/events/${id}?${q}&${query}&agentd_extensions=true`);
      const frames = await c.until((f) => f.seq === 3);
      expect(frames.filter((f) => f.kind === "MessageEvent").map(textOf), query).toEqual(expected);
      await c.close();
    }
    // Without the opt-in (and without after_seq) frames are plain OpenHands events: no `seq`.
    const plain = connectWs(`${ws}/sockets/events/${id}?${q}&resend_mode=all`);
    const frames = await plain.until((f) => f.kind === "MessageEvent" && textOf(f) === "3");
    expect(frames.every((f) => !("seq" in f))).toBe(true);
    await plain.close();
  });

  it("replays from a timestamp with resend_mode=since", async () => {
    const id = conversationWith(["before"]);
    const cut = new Date(h.state.lastTimestampMs + 1).toISOString();
    h.state.lastTimestampMs += 5; // the next event is strictly later than the cut
    h.state.append(id, { source: 2, payload: { case: "messageEvent", value: { llmMessage: { role: 1, content: [{ content: { case: "text", value: { text: "after" } } }] } } } });
    const c = connectWs(`${ws}/sockets/events/${id}?${q}&resend_mode=since&after_timestamp=${encodeURIComponent(cut)}`);
    const frames = await c.until((f) => f.kind === "MessageEvent");
    expect(frames.filter((f) => f.kind === "MessageEvent").map(textOf)).toEqual(["after"]);
    await c.close();
  });

  it("turns client frames into SendMessage(run) and answers bad frames with ServerErrorEvent, staying open", async () => {
    const id = conversationWith([]);
    const c = connectWs(`${ws}/sockets/events/${id}?${q}`);
    await c.next(); // snapshot
    c.send({ not: "a message" });
    const err = await c.next();
    expect(err).toMatchObject({ kind: "ServerErrorEvent", source: "environment", code: "ValidationError" });
    expect(err.detail).toMatch(/content/);
    c.ws.send("{not json");
    expect(await c.next()).toMatchObject({ kind: "ServerErrorEvent", code: "ValidationError", detail: "frame: invalid JSON" });
    c.send({ role: "user", content: [{ type: "text", text: "still here" }] });
    expect(textOf(await c.next())).toBe("still here");
    await c.close();
  });

  it("closes with 4004 for an unknown conversation, 1008 for a malformed id, 1013 when the stream is overloaded", async () => {
    const unknown = connectWs(`${ws}/sockets/events/00000000-0000-4000-8000-0000000000ff?${q}`);
    expect(await unknown.closed).toEqual({ code: 4004, reason: "Conversation not found" });
    const malformed = connectWs(`${ws}/sockets/events/not-a-uuid?${q}`);
    expect((await malformed.closed).code).toBe(1008);
    const overloaded = connectWs(`${ws}/sockets/events/${OVERLOADED_ID}?${q}`);
    const closed = await overloaded.closed;
    expect(closed.code).toBe(1013);
    expect(closed.reason).toMatch(/resume from seq 1/);
  });

  it("answers 426 to a plain GET on a socket path", async () => {
    const res = await fetch(`${h.url}/sockets/events/${conversationWith([])}`);
    expect(res.status).toBe(426);
    await res.arrayBuffer();
  });
});

describe("bash socket", () => {
  it("replays with resend_mode=all, starts commands from frames, and answers bad frames with BashError", async () => {
    await fetch(`${h.url}/api/bash/start_bash_command`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-session-api-key": KEY },
      body: JSON.stringify({ command: "first" }),
    });
    const c = connectWs(`${ws}/sockets/bash-events?session_api_key=${KEY}&resend_mode=all`);
    const replayed = await c.until((f) => f.kind === "BashOutput");
    expect(replayed[0]).toMatchObject({ kind: "BashCommand", command: "first" });
    expect(replayed[1]).toMatchObject({ kind: "BashOutput", stderr: null }); // nulls kept, as model_dump
    c.send({ command: "second", timeout: 3 });
    const started = await c.until((f) => f.kind === "BashCommand");
    expect(started[started.length - 1]).toMatchObject({ command: "second", timeout: 3 });
    c.send({ command: "" });
    const err = await c.until((f) => f.kind === "BashError");
    expect(err[err.length - 1]).toMatchObject({ kind: "BashError", code: "ValidationError", detail: "command: must not be empty" });
    c.send({ command: "third" });
    expect(await c.until((f) => f.kind === "BashCommand" && f.command === "third")).not.toHaveLength(0);
    await c.close();
  });
});

describe("keepalive", () => {
  it("pings, and terminates a client that stops answering pings", async () => {
    const id = conversationWith([]);
    const polite = connectWs(`${ws}/sockets/events/${id}?session_api_key=${KEY}`);
    await polite.next();
    const pinged = new Promise<void>((resolve) => polite.ws.once("ping", () => resolve()));
    await pinged;
    const silent = connectWs(`${ws}/sockets/events/${id}?session_api_key=${KEY}`, { autoPong: false });
    await silent.next();
    const closed = await silent.closed;
    expect(closed.code).toBe(1006); // terminated, no close frame
    expect(polite.ws.readyState).toBe(polite.ws.OPEN);
    await polite.close();
  });
});
