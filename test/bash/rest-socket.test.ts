/**
 * The OpenHands surface of the bash service through the gateway of a real agentd: REST execute /
 * start / search (the SDK's polling pattern with order__gt) and the /sockets/bash-events
 * WebSocket (resend_mode=all replay, a client frame that starts a command, BashError frames).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectWs } from "../helpers/ws.js";
import { startBashServer, type BashHarness } from "./harness.js";

let h: BashHarness;

beforeAll(async () => {
  h = await startBashServer();
});
afterAll(async () => {
  await h.close();
});

async function rest(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${h.server.url}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("REST", () => {
  it("executes a command and returns the last BashOutput as OpenHands does", async () => {
    const r = await rest("POST", "/api/bash/execute_bash_command", { command: "echo Hello World", cwd: h.server.workspace, timeout: 30 });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ kind: "BashOutput", order: 0, exit_code: 0, stdout: "Hello World\n", stderr: null });
    expect(r.json.command_id).toMatch(/^[0-9a-f]{32}$/);
  });

  it("starts a command and serves the SDK's polling pattern (kind, command id, order__gt)", async () => {
    const started = await rest("POST", "/api/bash/start_bash_command", { command: "echo one; read x; echo two", timeout: 60 });
    expect(started.json).toMatchObject({ kind: "BashCommand", command: "echo one; read x; echo two", timeout: 60 });
    const id = started.json.id as string;
    const poll = (after: number) =>
      rest("GET", `/api/bash/bash_events/search?command_id__eq=${id}&kind__eq=BashOutput&sort_order=TIMESTAMP&limit=100&order__gt=${after}`);
    await fetch(`${h.server.url}/api/bash/commands/${id}/input`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "\n" }),
    });
    // Wait for the end through the command stream, then poll as the SDK does.
    for await (const _ of h.grpc.watchBashCommand({ commandId: id })) {
      // drain
    }
    const all = await poll(-1);
    const items = all.json.items as { order: number; exit_code: number | null; stdout: string | null }[];
    expect(items.at(-1)).toMatchObject({ exit_code: 0 });
    expect(items.map((i) => i.stdout ?? "").join("")).toBe("one\n\ntwo\n");
    // The last page has no next page (the gateway renders the empty token as "", OpenHands as null).
    expect(all.json.next_page_id).toBeNull();
    const later = await poll(items.at(-1)!.order);
    expect(later.json.items).toEqual([]);
    const bad = await rest("GET", "/api/bash/bash_events/search?limit=500");
    expect(bad.status).toBe(422);
  });
});

describe("/sockets/bash-events", () => {
  it("replays with resend_mode=all, starts commands from client frames, and answers bad frames with BashError", async () => {
    const first = await rest("POST", "/api/bash/execute_bash_command", { command: "echo first" });
    const ws = h.server.url.replace("http:", "ws:");
    const c = connectWs(`${ws}/sockets/bash-events?resend_mode=all`);
    expect(await c.opened).toEqual({ ok: true });
    const replayed = await c.until((f) => f.id === first.json.id);
    expect(replayed.at(-2)).toMatchObject({ kind: "BashCommand", id: first.json.command_id, command: "echo first" });
    // model_dump(mode="json"): None fields included.
    expect(replayed.at(-1)).toEqual({
      kind: "BashOutput",
      id: first.json.id,
      timestamp: first.json.timestamp,
      command_id: first.json.command_id,
      order: 0,
      exit_code: 0,
      stdout: "first\n",
      stderr: null,
    });

    c.send({ command: "echo from-socket", timeout: 30 });
    const cmd = (await c.until((f) => f.kind === "BashCommand" && f.command === "echo from-socket")).at(-1)!;
    expect(cmd.timeout).toBe(30);
    const out = (await c.until((f) => f.kind === "BashOutput" && f.command_id === cmd.id)).at(-1)!;
    expect(out).toMatchObject({ order: 0, exit_code: 0, stdout: "from-socket\n" });

    c.send({ command: "" });
    const err = (await c.until((f) => f.kind === "BashError")).at(-1)!;
    expect(err).toMatchObject({ kind: "BashError", code: "ValidationError" });
    expect(err.detail).toContain("command is empty");
    c.send({ command: "true", cwd: "/nowhere/at/all" });
    expect((await c.until((f) => f.kind === "BashError")).at(-1)!.detail).toContain("/nowhere/at/all");
    await c.close();
  });
});
