/**
 * Bad input on the REST gateway of the real agentd: each case gets its documented 4xx with a
 * `detail`, never a 500, and the server keeps serving. Cases whose answer depends on an RPC that
 * has not landed yet accept 501 (Unimplemented) only while a valid probe of the same route is 501
 * too — so they tighten automatically when the capability lands.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/server.js";

const ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
let server: TestServer;

beforeAll(async () => {
  // The smallest message limit the config allows, so the oversized body stays small.
  server = await startTestServer({ maxMessageBytes: 64 * 1024 });
});
afterAll(async () => {
  await server.close();
});

interface Case {
  name: string;
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  status: number;
  detail?: RegExp;
  /** A valid request to the same route: while it answers 501, this case may too. */
  probe?: { method: string; path: string; body?: string };
}

const json = { "content-type": "application/json" };
const CASES: Case[] = [
  { name: "invalid JSON", method: "POST", path: "/api/conversations", body: "{not json", headers: json, status: 422, detail: /^request body: invalid JSON/ },
  { name: "a JSON array body", method: "POST", path: "/api/conversations", body: "[1,2]", headers: json, status: 422, detail: /^request body: expected an object/ },
  { name: "a wrong type", method: "POST", path: "/api/conversations", body: JSON.stringify({ max_iterations: "lots" }), headers: json, status: 422, detail: /^max_iterations: expected an integer/ },
  { name: "a wrong nested type", method: "POST", path: "/api/conversations", body: JSON.stringify({ agent: { llm: { model: ["x"] } } }), headers: json, status: 422, detail: /^agent\.llm\.model: expected a string/ },
  { name: "an unknown kind", method: "POST", path: `/api/conversations/${ID}/confirmation_policy`, body: JSON.stringify({ policy: { kind: "Sometimes" } }), headers: json, status: 422, detail: /policy\.kind: unknown kind/ },
  { name: "an unknown enum value in the query", method: "GET", path: "/api/conversations/search?status=sleeping", status: 422, detail: /^status: expected one of "idle"/ },
  { name: "an unknown enum value in the body", method: "POST", path: `/api/conversations/${ID}/events`, body: JSON.stringify({ role: "robot", content: [] }), headers: json, status: 422, detail: /^role: expected one of "user"/ },
  { name: "limit=0", method: "GET", path: "/api/conversations/search?limit=0", status: 422, detail: /^limit: must be at least 1/ },
  { name: "limit=-5 on events", method: "GET", path: `/api/conversations/${ID}/events/search?limit=-5`, status: 422, detail: /^limit: must be at least 1/ },
  { name: "limit=abc", method: "GET", path: "/api/bash/bash_events/search?limit=abc", status: 422, detail: /^limit: expected an integer/ },
  { name: "limit=101", method: "GET", path: "/api/conversations/search?limit=101", status: 422, probe: { method: "GET", path: "/api/conversations/search?limit=5" } },
  { name: "limit=101 on events", method: "GET", path: `/api/conversations/${ID}/events/search?limit=101`, status: 422, probe: { method: "GET", path: `/api/conversations/${ID}/events/search?limit=5` } },
  { name: "a bad UUID in the path", method: "GET", path: "/api/conversations/not-a-uuid", status: 422, detail: /^conversation_id: expected a UUID/ },
  { name: "a bad UUID in ids=", method: "GET", path: `/api/conversations?ids=${ID}&ids=xyz`, status: 422, detail: /^ids\[1\]: expected a UUID/ },
  { name: "a bad timestamp filter", method: "GET", path: `/api/conversations/${ID}/events/count?timestamp__gte=yesterday`, status: 422, detail: /^timestamp__gte: expected an ISO 8601 date-time/ },
  { name: "a bad boolean", method: "GET", path: "/api/bash/commands?include_ended=maybe", status: 422, detail: /^include_ended: expected a boolean/ },
  { name: "an oversized body", method: "POST", path: "/api/conversations", body: JSON.stringify({ title: "x".repeat(100_000) }), headers: json, status: 413, detail: /larger than 65536 bytes/ },
  { name: "a malformed path encoding", method: "GET", path: "/api/conversations/%E0%A4%A", status: 400, detail: /malformed path/ },
  { name: "a wrong method", method: "PUT", path: `/api/conversations/${ID}/run`, status: 405, detail: /Method Not Allowed/ },
  { name: "an unknown route", method: "GET", path: "/api/conversations/x/y/z", status: 404, detail: /^Not Found$/ },
  { name: "a multipart body on a JSON route", method: "POST", path: "/api/conversations", body: "--b\r\n\r\n--b--", headers: { "content-type": "multipart/form-data; boundary=b" }, status: 422, detail: /invalid JSON/ },
];

describe("bad input", () => {
  for (const c of CASES) {
    it(`${c.name} → ${c.status}`, async () => {
      const res = await fetch(server.url + c.path, { method: c.method, headers: c.headers, body: c.body });
      const body = (await res.json()) as { detail: unknown };
      expect(res.status).not.toBe(500);
      expect(typeof body.detail).toBe("string");
      let expected = c.status;
      if (c.probe !== undefined) {
        const probe = await fetch(server.url + c.probe.path, { method: c.probe.method, body: c.probe.body });
        await probe.arrayBuffer();
        if (probe.status === 501) expected = 501; // the validating RPC has not landed yet (#4 events, #7 conversations)
      }
      expect(res.status, JSON.stringify(body)).toBe(expected);
      if (c.detail !== undefined) expect(body.detail).toMatch(c.detail);
    });
  }

  it("keeps serving after all of it", async () => {
    const res = await fetch(`${server.url}/server_info`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { title: string }).title).toBe("agentd");
  });
});
