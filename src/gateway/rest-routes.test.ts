import { hasOption } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { BashService } from "../../gen/agentd/v1/bash_service_pb.js";
import { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import { FileService } from "../../gen/agentd/v1/file_service_pb.js";
import { ServerService } from "../../gen/agentd/v1/server_service_pb.js";
import { http } from "../../gen/google/api/annotations_pb.js";
import { RestRouteTable, splitPath } from "./rest-routes.js";

const SERVICES = [ServerService, ConversationService, EventService, BashService, FileService];
const table = new RestRouteTable(SERVICES);
const ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

function routeId(method: string, path: string): string {
  const m = table.match(method, path);
  return m.type === "match" ? m.route.id : m.type;
}

describe("RestRouteTable", () => {
  it("has one route per annotated RPC and nothing else", () => {
    const annotated = SERVICES.flatMap((s) => s.methods.filter((m) => hasOption(m, http)).map((m) => `${s.typeName}.${m.name}`));
    expect(table.routes.map((r) => r.id).sort()).toEqual(annotated.sort());
    expect(annotated.length).toBeGreaterThan(40);
  });

  it("prefers literal segments over variables", () => {
    expect(routeId("GET", `/api/conversations/${ID}/events/search`)).toBe("agentd.v1.EventService.SearchEvents");
    expect(routeId("GET", `/api/conversations/${ID}/events/count`)).toBe("agentd.v1.EventService.CountEvents");
    expect(routeId("GET", `/api/conversations/${ID}/events/abc`)).toBe("agentd.v1.EventService.GetEvent");
    expect(routeId("GET", "/api/conversations/search")).toBe("agentd.v1.ConversationService.SearchConversations");
    expect(routeId("GET", `/api/conversations/${ID}`)).toBe("agentd.v1.ConversationService.GetConversation");
  });

  it("tolerates a trailing slash either way", () => {
    expect(routeId("GET", "/api/tools/")).toBe("agentd.v1.ServerService.ListTools");
    expect(routeId("GET", "/api/tools")).toBe("agentd.v1.ServerService.ListTools");
    expect(routeId("GET", "/api/bash/bash_events/")).toBe("agentd.v1.BashService.BatchGetBashEvents");
    expect(routeId("DELETE", "/api/bash/bash_events")).toBe("agentd.v1.BashService.ClearBashEvents");
  });

  it("answers method_not_allowed, not_found and bad_path", () => {
    const m = table.match("PUT", `/api/conversations/${ID}/run`);
    expect(m.type).toBe("method_not_allowed");
    expect(m.type === "method_not_allowed" && m.allowed).toEqual(["POST"]);
    expect(routeId("GET", "/api/nope")).toBe("not_found");
    expect(routeId("GET", "/api/conversations/%E0%A4%A")).toBe("bad_path");
  });

  it("captures decoded path variables", () => {
    const m = table.match("GET", "/api/conversations/a%20b/events/e%2F1");
    expect(m.type === "match" && m.vars).toEqual(["a b", "e/1"]);
    expect(splitPath("/a//b/")).toEqual(["a", "", "b"]);
  });

  it("maps query names by rest_name, proto name, json name, and flattens message fields without rest_name", () => {
    const search = table.routes.find((r) => r.id === "agentd.v1.EventService.SearchEvents")!;
    const leafOf = (name: string) => search.query.get(name)?.fields.map((f) => f.name).join(".");
    expect(leafOf("limit")).toBe("page_size");
    expect(leafOf("page_size")).toBe("page_size");
    expect(leafOf("pageSize")).toBe("page_size");
    expect(leafOf("page_id")).toBe("page_token");
    expect(leafOf("kind")).toBe("filter.kind");
    expect(leafOf("filter.kind")).toBe("filter.kind");
    expect(leafOf("timestamp__gte")).toBe("filter.timestamp_gte");
    expect(leafOf("filter.timestamp__gte")).toBe("filter.timestamp_gte");
    expect(search.query.has("conversation_id")).toBe(false); // bound by the path
    expect(search.queryDoc.map((q) => q.name).sort()).toEqual(["body", "kind", "limit", "page_id", "sort_order", "source", "timestamp__gte", "timestamp__lt"]);
  });

  it("detects bodies, downloads, uploads, created fields and GET array bodies", () => {
    const byId = (id: string) => table.routes.find((r) => r.id === `agentd.v1.${id}`)!;
    expect(byId("ConversationService.CreateConversation").bodyAll).toBe(true);
    expect(byId("ConversationService.CreateConversation").createdField?.name).toBe("created");
    expect(byId("BashService.StartBashCommand").bodyField?.name).toBe("spec");
    expect(byId("FileService.DownloadFile").download).toBe(true);
    expect(byId("FileService.UploadFile").rawBody).toBe(true);
    expect(byId("FileService.WriteUpload").rawBody).toBe(true);
    expect(byId("EventService.BatchGetEvents").getBodyArrayField?.name).toBe("event_ids");
    expect(byId("BashService.BatchGetBashEvents").getBodyArrayField?.name).toBe("event_ids");
    expect(byId("ConversationService.CountConversations").responseField?.name).toBe("count");
  });
});
