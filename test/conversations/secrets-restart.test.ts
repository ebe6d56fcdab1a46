// Secrets (masked everywhere, encrypted at rest) and restart recovery through the engine.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { create, toJsonString } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { ConversationSchema, SecretSourceSchema } from "../../gen/agentd/v1/conversation_pb.js";
import { EventSchema } from "../../gen/agentd/v1/event_pb.js";
import { SecretCipher } from "../../src/domain/agent/secrets.js";
import { ExecutionStatus, startHarness, userMessage, type Harness } from "./harness.js";

const SECRET = "s3cr3t-Value-93f1c7";
const API_KEY = "sk-test-key"; // harness agent's key

async function dataBytes(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const ent of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) await walk(p);
      else parts.push(await readFile(p));
    }
  };
  await walk(dir);
  return Buffer.concat(parts);
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function staticSecret(value: string) {
  return create(SecretSourceSchema, { source: { case: "staticSecret", value: { value } } });
}

describe("secrets", () => {
  it("are exported to the terminal, masked in events and responses, and encrypted at rest", async () => {
    const cipher = await SecretCipher.fromSecretKey("test-oh-secret-key");
    h = await startHarness({ cipher });
    const harness = h;
    harness.llm.enqueue(
      { toolCalls: [{ name: "terminal", arguments: { command: "echo value=$MY_SECRET; echo len=${#MY_SECRET}" } }] },
      (req) => {
        const body = JSON.stringify(req.body);
        expect(body).not.toContain(SECRET);
        expect(body).toContain("value=<secret-hidden>");
        expect(body).toContain(`len=${SECRET.length}`);
        return { text: `The secret is ${SECRET}` };
      },
    );
    const id = await harness.create({ secrets: { MY_SECRET: staticSecret(SECRET) }, title: "PLAINTEXT-CONTROL-MARKER", initialMessage: userMessage(`remember ${SECRET}`) });
    await harness.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    harness.llm.assertDone();

    const events = await harness.events(id);
    const all = events.map((e) => toJsonString(EventSchema, e)).join("\n");
    expect(all).not.toContain(SECRET);
    expect(all).toContain("<secret-hidden>");
    const conv = await harness.manager.get(id);
    const convJson = toJsonString(ConversationSchema, conv);
    expect(convJson).not.toContain(SECRET);
    expect(convJson).not.toContain(API_KEY);
    expect(conv.secretNames).toEqual(["MY_SECRET"]);
    expect(await harness.manager.agentFinalResponse(id)).toBe("The secret is <secret-hidden>");

    await harness.restart({ cipher });
    const bytes = await dataBytes(harness.dataDir);
    expect(bytes.includes(Buffer.from("PLAINTEXT-CONTROL-MARKER"))).toBe(true); // the scan sees plaintext
    expect(bytes.includes(Buffer.from(SECRET))).toBe(false);
    expect(bytes.includes(Buffer.from(API_KEY))).toBe(false);

    // The same key opens them again after the restart: the terminal still has the secret.
    harness.llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "echo len=${#MY_SECRET}" } }] }, (req) => {
      expect(JSON.stringify(req.body.messages.at(-1))).toContain(`len=${SECRET.length}`);
      expect(req.headers.authorization).toBe(`Bearer ${API_KEY}`);
      return { text: "ok" };
    });
    await harness.manager.sendMessage(id, { ...userMessage("again"), run: true });
    await harness.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    harness.llm.assertDone();
  });

  it("without OH_SECRET_KEY are kept in memory only", async () => {
    h = await startHarness();
    const id = await h.create({ secrets: { MY_SECRET: staticSecret(SECRET) } });
    await h.restart();
    const bytes = await dataBytes(h.dataDir);
    expect(bytes.includes(Buffer.from(SECRET))).toBe(false);
    expect(bytes.includes(Buffer.from(API_KEY))).toBe(false);
    const conv = await h.manager.get(id);
    expect(conv.secretNames).toEqual(["MY_SECRET"]);
    expect(conv.agent?.llm?.apiKey).toBeUndefined();
  });

  it("rejects bad secret names", async () => {
    h = await startHarness();
    await expect(h.create({ secrets: { "BAD-NAME": staticSecret("x") } })).rejects.toThrow(/invalid secret name/);
  });
});

describe("restart", () => {
  it("a run cut off by a restart becomes error with a restart event; a new message runs again", async () => {
    h = await startHarness();
    const harness = h;
    harness.llm.enqueue({ toolCalls: [{ name: "terminal", arguments: { command: "echo before" } }] }, { delayMs: Infinity, then: { text: "never" } });
    const id = await harness.create({ initialMessage: userMessage("go") });
    await harness.llm.waitForRequests(2);
    const before = await harness.events(id);
    // close() aborts the run without recording anything, as a crash would.
    await harness.restart();
    expect(harness.manager.status(id)).toBe(ExecutionStatus.ERROR);
    const after = await harness.events(id);
    expect(after.slice(0, before.length).map((e) => e.id)).toEqual(before.map((e) => e.id));
    const err = after.find((e) => e.payload.case === "conversationErrorEvent");
    expect(err?.payload.value).toMatchObject({ code: "ServerRestarted" });

    harness.llm.enqueue({ text: "back again" });
    await harness.manager.sendMessage(id, { ...userMessage("continue"), run: true });
    await harness.waitForStatus(id, ExecutionStatus.FINISHED, ExecutionStatus.ERROR);
    expect(await harness.manager.agentFinalResponse(id)).toBe("back again");
  });

  it("idle conversations are unloaded and reloaded transparently", async () => {
    h = await startHarness({ idleTtlMs: 100 });
    const harness = h;
    harness.llm.enqueue({ text: "hello" });
    const id = await harness.create({ initialMessage: userMessage("hi") });
    await harness.waitForStatus(id, ExecutionStatus.FINISHED);
    await (await harness.manager.live(id)).settled();
    for (let i = 0; i < 100 && harness.manager.loadedCount > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(harness.manager.loadedCount).toBe(0);
    expect((await harness.manager.get(id)).executionStatus).toBe(ExecutionStatus.FINISHED);
    expect(await harness.manager.agentFinalResponse(id)).toBe("hello");
    expect(harness.manager.loadedCount).toBe(1);
  });
});
