/**
 * Wires the domain (storage, event log, bash, files, conversations) to the RPC handlers and the
 * REST/WebSocket gateway. The single place where parts are constructed and closed.
 */
import type { Duplex } from "node:stream";
import type http from "node:http";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";
import { ServerService } from "../../gen/agentd/v1/server_service_pb.js";
import { createServerService } from "../rpc/server-service.js";
import { registered, type AgentdApp, type RegisteredService } from "./app.js";
import type { AnyRequest, AnyResponse } from "./http-common.js";

export interface Modules {
  services: RegisteredService[];
  /** Receives the router definition and interceptors (the gateway builds its in-process client). */
  attachRoutes?(routes: (router: ConnectRouter) => void, interceptors: Interceptor[]): void;
  /** Serves a non-RPC HTTP request; returns false when the path is not its own. */
  handleHttp?(req: AnyRequest, res: AnyResponse): boolean;
  /** Takes a WebSocket upgrade; returns false when the path is not its own. */
  onUpgrade?(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  close(): Promise<void>;
}

export async function buildModules(app: AgentdApp): Promise<Modules> {
  const config = app.config;
  const services: RegisteredService[] = [
    registered(
      ServerService,
      createServerService({
        startTimeMs: Date.now(),
        lastActivityMs: () => app.lastActivityMs,
        usableTools: () => [],
        capabilities: ["grpc", "connect", "grpc-web", "rest", "websocket", "seq-cursor"],
        workspaceBase: config.workspaceBase,
        runtimeIdleTimeoutSeconds: config.runtimeIdleTimeoutSeconds,
        buildGitSha: config.buildGitSha,
        buildGitRef: config.buildGitRef,
      }),
    ),
    // Registered with no methods until their issues land: every RPC answers Unimplemented.
    registered(ConversationService, {}),
    registered(EventService, {}),
    registered(BashService, {}),
    registered(FileService, {}),
  ];
  return {
    services,
    close: async () => {},
  };
}
