import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkBindSafety, ConfigError, loadConfig, parseArgs } from "./config.js";

const tmp = await mkdtemp(path.join(os.tmpdir(), "agentd-config-"));
afterAll(() => rm(tmp, { recursive: true, force: true }));

const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig(parseArgs(argv).flags, env);

describe("loadConfig", () => {
  it("has documented defaults", () => {
    const c = load([]);
    expect(c.host).toBe("127.0.0.1");
    expect(c.port).toBe(8000);
    expect(c.workspaceBase).toBe(path.resolve("./workspace"));
    expect(c.dataDir).toBe(path.join(c.workspaceBase, ".agentd"));
    expect(c.sessionApiKeys).toEqual([]);
  });

  it("takes flags over env over the config file", async () => {
    const file = path.join(tmp, "c.json");
    await writeFile(file, JSON.stringify({ session_api_keys: ["from-file"], allow_cors_origins: ["https://a.example"] }));
    const env = { OPENHANDS_AGENT_SERVER_CONFIG_PATH: file, AGENTD_PORT: "9001" };
    expect(load([], env).sessionApiKeys).toEqual(["from-file"]);
    expect(load([], env).allowCorsOrigins).toEqual(["https://a.example"]);
    expect(load([], { ...env, OH_SESSION_API_KEYS_0: "a", OH_SESSION_API_KEYS_1: "b" }).sessionApiKeys).toEqual(["a", "b"]);
    expect(load([], { ...env, SESSION_API_KEY: "legacy" }).sessionApiKeys).toEqual(["legacy"]);
    expect(load([], env).port).toBe(9001);
    expect(load(["--port", "9002"], env).port).toBe(9002);
    expect(load(["--port=9003"], env).port).toBe(9003);
  });

  it("names the setting in one line when a value is bad", () => {
    expect(() => load(["--port", "99999"])).toThrow(/^invalid --port: /);
    expect(() => load([], { AGENTD_PORT: "x" })).toThrow("invalid AGENTD_PORT: expected an integer");
    expect(() => load(["--nope"])).toThrow("unknown flag --nope");
    expect(() => load(["--tls-cert", "a.pem"])).toThrow(/--tls-cert\/--tls-key/);
    expect(() => load([], { OPENHANDS_AGENT_SERVER_CONFIG_PATH: path.join(tmp, "missing.json") })).toThrow(/cannot read/);
    expect(() => load([], { OH_WEBHOOKS: '[{"base_url": "not a url"}]' })).toThrow(/^invalid OH_WEBHOOKS/);
    for (const bad of [() => load(["--port", "99999"])]) {
      try {
        bad();
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect(String((e as Error).message)).not.toContain("\n");
      }
    }
  });

  it("refuses a non-loopback host without a key unless --insecure-no-auth", () => {
    expect(checkBindSafety(load(["--host", "127.0.0.1"]))).toBe("ok");
    expect(() => checkBindSafety(load(["--host", "0.0.0.0"]))).toThrow(/refusing to listen on 0\.0\.0\.0/);
    expect(checkBindSafety(load(["--host", "0.0.0.0", "--insecure-no-auth"]))).toBe("insecure");
    expect(checkBindSafety(load(["--host", "0.0.0.0"], { OH_SESSION_API_KEYS_0: "k" }))).toBe("ok");
  });
});
