/** ServerService: server facts, usable tools, workspace. Thin: every fact comes from `deps`. */
import { statfs } from "node:fs/promises";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ServerService } from "../../gen/agentd/v1/server_service_pb.js";
import { AGENTD_VERSION, OPENHANDS_COMPAT_VERSION } from "../version.js";

export interface ServerFacts {
  startTimeMs: number;
  /** Time of the last client activity (ms since epoch). */
  lastActivityMs(): number;
  usableTools(): readonly string[];
  capabilities: readonly string[];
  workspaceBase: string;
  runtimeIdleTimeoutSeconds?: number;
  buildGitSha: string;
  buildGitRef: string;
  now?: () => number;
}

export function createServerService(facts: ServerFacts): ServiceImpl<typeof ServerService> {
  const now = facts.now ?? Date.now;
  return {
    getServerInfo() {
      const t = now();
      const idle = facts.runtimeIdleTimeoutSeconds;
      return {
        info: {
          uptime: BigInt(Math.floor((t - facts.startTimeMs) / 1000)),
          idleTime: BigInt(Math.floor((t - facts.lastActivityMs()) / 1000)),
          title: "agentd",
          version: OPENHANDS_COMPAT_VERSION,
          agentdVersion: AGENTD_VERSION,
          sdkVersion: OPENHANDS_COMPAT_VERSION,
          toolsVersion: OPENHANDS_COMPAT_VERSION,
          workspaceVersion: OPENHANDS_COMPAT_VERSION,
          buildGitSha: facts.buildGitSha,
          buildGitRef: facts.buildGitRef,
          nodeVersion: process.version,
          usableTools: [...facts.usableTools()],
          capabilities: [...facts.capabilities],
          runtimeIdleTimeoutSeconds: idle === undefined ? undefined : BigInt(idle),
          maxForegroundTerminalTimeoutSeconds: idle === undefined ? undefined : BigInt(Math.floor(idle * 0.9)),
          docs: "/docs",
          redoc: "/redoc",
          startTime: timestampFromMs(facts.startTimeMs),
        },
      };
    },
    listTools() {
      return { names: [...facts.usableTools()] };
    },
    async getWorkspace() {
      const s = await statfs(facts.workspaceBase);
      return {
        workspace: {
          basePath: facts.workspaceBase,
          freeBytes: BigInt(s.bavail) * BigInt(s.bsize),
          totalBytes: BigInt(s.blocks) * BigInt(s.bsize),
        },
      };
    },
  };
}
