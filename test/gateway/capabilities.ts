/**
 * Which capabilities of the real agentd have landed: an RPC counts as implemented unless it
 * answers Unimplemented. Tests of capabilities that belong to later issues call
 * `ctx.skip(!(await has(...)), "pending #N ...")`, so they are reported as skipped with the issue
 * named while the capability is missing, and run for real the moment it lands.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";

export type Capability = "conversations" | "events" | "event-stream" | "bash" | "bash-stream" | "files";

/** The issue that delivers each capability (named in skip notes). */
export const ISSUE: Readonly<Record<Capability, string>> = {
  conversations: "#7 conversations",
  events: "#4 events",
  "event-stream": "#4 events",
  bash: "#5 bash",
  "bash-stream": "#5 bash",
  files: "#6 files",
};

export async function has(url: string, capability: Capability, key?: string): Promise<boolean> {
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    interceptors: key === undefined ? [] : [(next) => (req) => (req.header.set("x-session-api-key", key), next(req))],
  });
  const unknown = randomUUID();
  const abort = new AbortController();
  try {
    switch (capability) {
      case "conversations":
        await createClient(ConversationService, transport).countConversations({});
        break;
      case "events":
        await createClient(EventService, transport).countEvents({ conversationId: unknown });
        break;
      case "event-stream":
        for await (const _ of createClient(EventService, transport).watchEvents({ conversationId: unknown }, { signal: abort.signal })) break;
        break;
      case "bash":
        await createClient(BashService, transport).searchBashEvents({ pageSize: 1 });
        break;
      case "bash-stream":
        for await (const _ of createClient(BashService, transport).watchBashEvents({}, { signal: abort.signal })) break;
        break;
      case "files":
        await createClient(FileService, transport).statFile({ path: "." });
        break;
    }
    return true;
  } catch (err) {
    return ConnectError.from(err).code !== Code.Unimplemented;
  } finally {
    abort.abort();
  }
}
