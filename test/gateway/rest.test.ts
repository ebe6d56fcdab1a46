/**
 * REST translation end-to-end on the gateway bench (fixtures.ts): request building from path,
 * query and body; response shapes; the OpenHands quirks; downloads with ranges; streamed uploads.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureFile, startGatewayHarness, type Harness } from "./fixtures.js";

let h: Harness;
beforeAll(async () => {
  h = await startGatewayHarness({ maxMessageBytes: 256 * 1024 });
});
afterAll(async () => {
  await h.close();
});

async function call(method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; headers: Headers }> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await fetch(h.url + p, init);
  const text = await res.text();
  return { status: res.status, json: text === "" ? undefined : (JSON.parse(text) as unknown), headers: res.headers };
}

describe("conversations", () => {
  it("answers 201 for a new conversation and 200 for an existing id (created_field)", async () => {
    const id = "5b9c8f0e2f4e4c539a0e2b1f4f6d2c11"; // hex form is accepted and normalised
    const first = await call("POST", "/api/conversations", { agent: { kind: "Agent", llm: { model: "m" } }, conversation_id: id, tags: { team: "infra" } });
    expect(first.status).toBe(201);
    expect(first.json).toMatchObject({ id: "5b9c8f0e-2f4e-4c53-9a0e-2b1f4f6d2c11", execution_status: "idle", tags: { team: "infra" }, title: null });
    const again = await call("POST", "/api/conversations", { conversation_id: id });
    expect(again.status).toBe(200);
  });

  it("returns counts as bare numbers and batch results with nulls in request order", async () => {
    const a = await call("POST", "/api/conversations", {});
    const id = (a.json as { id: string }).id;
    const count = await call("GET", "/api/conversations/count");
    expect(typeof count.json).toBe("number");
    expect(count.json).toBe(h.state.logs.size);
    const missing = "00000000-0000-4000-8000-000000000001";
    const batch = await call("GET", `/api/conversations?ids=${id}&ids=${missing}`);
    expect(batch.status).toBe(200);
    expect(batch.json).toEqual([expect.objectContaining({ id }), null]);
  });

  it("accepts an empty body with a JSON content type (POST /run)", async () => {
    const c = await call("POST", "/api/conversations", {});
    const id = (c.json as { id: string }).id;
    const res = await fetch(`${h.url}/api/conversations/${id}/run`, { method: "POST", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true });
  });

  it("passes limit to the RPC, which validates it (422), and refuses limit=0 itself", async () => {
    expect((await call("GET", "/api/conversations/search?limit=101")).status).toBe(422);
    expect((await call("GET", "/api/conversations/search?limit=0")).status).toBe(422);
    const ok = await call("GET", "/api/conversations/search?limit=1");
    expect(ok.status).toBe(200);
    expect((ok.json as { items: unknown[] }).items).toHaveLength(1);
    expect(ok.json).toHaveProperty("next_page_id");
  });

  it("maps RPC errors to {detail} with the table's status", async () => {
    const res = await call("GET", "/api/conversations/00000000-0000-4000-8000-000000000002");
    expect(res.status).toBe(404);
    expect(res.json).toEqual({ detail: "conversation 00000000-0000-4000-8000-000000000002 not found" });
  });
});

describe("events", () => {
  let id: string;
  beforeAll(async () => {
    id = h.state.createConversation().id;
    for (const text of ["one", "two", "three"]) {
      const r = await call("POST", `/api/conversations/${id}/events`, { role: "user", content: [{ type: "text", text }] });
      expect(r.json).toMatchObject({ success: true });
    }
    h.state.append(id, { source: 3, payload: { case: "pauseEvent", value: {} } });
  });

  it("searches with exclude_none and the OpenHands page fields", async () => {
    const res = await call("GET", `/api/conversations/${id}/events/search?limit=2`);
    expect(res.status).toBe(200);
    const page = res.json as { items: Record<string, unknown>[]; next_page_id: string };
    expect(page.items.map((e) => e.kind)).toEqual(["MessageEvent", "MessageEvent"]);
    expect(page.items[0]).not.toHaveProperty("parent_id"); // null left out
    expect(page.items[0]!.llm_message).toMatchObject({ role: "user", content: [{ type: "text", text: "one", cache_prompt: false }] });
    expect(page.items[0]).not.toHaveProperty("seq"); // an agentd extension: opt-in only
    const next = await call("GET", `/api/conversations/${id}/events/search?limit=2&page_id=${page.next_page_id}`, undefined, { "x-agentd-extensions": "true" });
    expect((next.json as { items: { seq: number }[] }).items.map((e) => e.seq)).toEqual([3, 4]);
    const byQuery = await call("GET", `/api/conversations/${id}/events/search?limit=1&agentd_extensions=true`);
    expect((byQuery.json as { items: { seq: number }[] }).items.map((e) => e.seq)).toEqual([1]);
  });

  it("fills nested filter fields from flattened and dotted query names", async () => {
    const flat = await call("GET", `/api/conversations/${id}/events/search?kind=PauseEvent`);
    expect((flat.json as { items: { kind: string }[] }).items.map((e) => e.kind)).toEqual(["PauseEvent"]);
    const dotted = await call("GET", `/api/conversations/${id}/events/count?filter.kind=openhands.sdk.event.llm_convertible.message.MessageEvent`);
    expect(dotted.json).toBe(3);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await call("GET", `/api/conversations/${id}/events/count?timestamp__gte=${encodeURIComponent(future)}`)).json).toBe(0);
    expect((await call("GET", `/api/conversations/${id}/events/count?timestamp__lt=${encodeURIComponent(future)}`)).json).toBe(4);
  });

  it("gets one event with nulls included, and batches from a JSON array body on GET", async () => {
    const first = h.state.log(id).events[0]!;
    const one = await call("GET", `/api/conversations/${id}/events/${first.id}`);
    expect(one.json).toMatchObject({ kind: "MessageEvent", id: first.id, parent_id: null });
    const body = JSON.stringify([first.id, "nope"]);
    const batch = await new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      // fetch refuses a GET body; OpenHands clients use node:http for this endpoint.
      import("node:http")
        .then(({ request }) => {
          const req = request(`${h.url}/api/conversations/${id}/events`, { method: "GET", headers: { "content-type": "application/json", "content-length": String(body.length) } }, (res) => {
            let text = "";
            res.on("data", (c: Buffer) => (text += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
          });
          req.on("error", reject);
          req.end(body);
        })
        .catch(reject);
    });
    expect(batch.status).toBe(200);
    expect(batch.json).toEqual([expect.objectContaining({ id: first.id }), null]);
    const byQuery = await call("GET", `/api/conversations/${id}/events?event_ids=${first.id}`);
    expect(byQuery.json).toEqual([expect.objectContaining({ id: first.id })]);
  });

  it("refuses a message with bad content with 422 naming the field", async () => {
    const res = await call("POST", `/api/conversations/${id}/events`, { role: "user", content: [{ type: "video" }] });
    expect(res.status).toBe(422);
    expect((res.json as { detail: string }).detail).toMatch(/^content\[0\]\.type: unknown kind/);
  });
});

describe("bash", () => {
  it("starts a command with the spec as the body and answers the BashCommand event", async () => {
    const res = await call("POST", "/api/bash/start_bash_command", { command: "echo hi", cwd: "/tmp", timeout: 5 });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ kind: "BashCommand", command: "echo hi", cwd: "/tmp", timeout: 5 });
    expect((res.json as { id: string }).id).toMatch(/^[0-9a-f]{32}$/);
    const search = await call("GET", "/api/bash/bash_events/search?kind__eq=BashOutput&limit=10");
    expect(search.status).toBe(200);
    expect((search.json as { items: { kind: string; stderr: unknown }[] }).items.some((e) => e.kind === "BashOutput" && e.stderr === null)).toBe(true);
  });
});

describe("downloads", () => {
  const content = randomBytes(200_000);
  let file: string;
  beforeAll(async () => {
    file = await fixtureFile(h, "blob.bin", content);
  });

  it("streams the raw bytes with octet-stream and Content-Disposition", async () => {
    const res = await fetch(`${h.url}/api/file/download?path=${encodeURIComponent(file)}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="blob.bin"');
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true);
  });

  it("serves a byte range with 206 and Content-Range", async () => {
    const res = await fetch(`${h.url}/api/file/download?path=${encodeURIComponent(file)}`, { headers: { range: "bytes=100-199" } });
    expect(res.status).toBe(206);
    expect(res.headers.get("content-range")).toBe(`bytes 100-199/${content.length}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(content.subarray(100, 200))).toBe(true);
    const open = await fetch(`${h.url}/api/file/download?path=${encodeURIComponent(file)}`, { headers: { range: `bytes=${content.length - 10}-` } });
    expect(open.status).toBe(206);
    expect(Buffer.from(await open.arrayBuffer()).equals(content.subarray(content.length - 10))).toBe(true);
    const suffix = await fetch(`${h.url}/api/file/download?path=${encodeURIComponent(file)}`, { headers: { range: "bytes=-5" } });
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get("content-range")).toBe(`bytes ${content.length - 5}-${content.length - 1}/${content.length}`);
    expect(Buffer.from(await suffix.arrayBuffer()).equals(content.subarray(content.length - 5))).toBe(true);
  });

  it("answers 416 for an unsatisfiable range and 404 for a missing file", async () => {
    const res = await fetch(`${h.url}/api/file/download?path=${encodeURIComponent(file)}`, { headers: { range: `bytes=${content.length + 10}-` } });
    expect(res.status).toBe(416);
    expect(await res.json()).toEqual({ detail: "Range Not Satisfiable" });
    const at = await fetch(`${h.url}/api/file/download?path=${encodeURIComponent(file)}`, { headers: { range: `bytes=${content.length}-` } });
    expect(at.status).toBe(416);
    expect(at.headers.get("content-range")).toBe(`bytes */${content.length}`);
    await at.arrayBuffer();
    const missing = await fetch(`${h.url}/api/file/download?path=nope.bin`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("content-type")).toBe("application/json");
    await missing.arrayBuffer();
  });
});

describe("uploads", () => {
  it("streams a multipart upload through upload sessions in bounded chunks", async () => {
    const content = randomBytes(3 * 1024 * 1024 + 123); // well over maxMessageBytes (256 KiB)
    const form = new FormData();
    form.append("file", new Blob([content]), "big.bin");
    const target = path.join(h.root, "up", "big.bin");
    const before = h.state.uploadChunks.length;
    const res = await fetch(`${h.url}/api/file/upload?path=${encodeURIComponent(target)}`, { method: "POST", body: form });
    expect(res.status).toBe(200);
    const json = (await res.json()) as { success: boolean; sha256: string; info: { size: number } };
    expect(json.success).toBe(true);
    expect(json.sha256).toBe(createHash("sha256").update(content).digest("hex"));
    expect(json.info.size).toBe(content.length);
    expect((await readFile(target)).equals(content)).toBe(true);
    const chunks = h.state.uploadChunks.slice(before);
    expect(chunks.length).toBeGreaterThan(10);
    expect(Math.max(...chunks)).toBeLessThanOrEqual(128 * 1024); // half the message limit
    expect(chunks.reduce((a, b) => a + b, 0)).toBe(content.length);
  });

  it("accepts a raw body too, and refuses a multipart body without a file field", async () => {
    const target = path.join(h.root, "raw.txt");
    const raw = await fetch(`${h.url}/api/file/upload?path=${encodeURIComponent(target)}`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: "hello" });
    expect(raw.status).toBe(200);
    expect(await readFile(target, "utf8")).toBe("hello");
    const form = new FormData();
    form.append("other", "x");
    const res = await fetch(`${h.url}/api/file/upload?path=${encodeURIComponent(target)}`, { method: "POST", body: form });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/file/);
  });

  it("aborts the session and answers the error when the upload is refused", async () => {
    const form = new FormData();
    form.append("file", new Blob(["x"]), "x.txt");
    const res = await fetch(`${h.url}/api/file/upload?path=${encodeURIComponent("../../etc/x")}`, { method: "POST", body: form });
    expect(res.status).toBe(403);
  });
});

describe("server info", () => {
  it("serves / as /server_info and the tools list with a trailing slash", async () => {
    const root = await call("GET", "/");
    const info = await call("GET", "/server_info");
    expect(root.status).toBe(200);
    expect((root.json as { title: string }).title).toBe("agentd");
    expect(Object.keys(root.json as object)).toEqual(Object.keys(info.json as object));
    expect((await call("GET", "/api/tools/")).json).toEqual(["terminal"]);
  });
});
