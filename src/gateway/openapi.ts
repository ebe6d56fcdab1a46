/**
 * The OpenAPI 3.1 document of the REST/WebSocket surface, generated at start-up from the same
 * route table and codec rules that serve it (so it cannot drift): every annotated RPC with its
 * path and query parameters, request and response schemas in the OpenHands JSON shapes (kinds,
 * discriminators, nulls), the session-key security schemes, `{detail}` error responses, plus the
 * probes (/alive, /health, /ready), `/` and the two WebSockets (documented as GET + 101, marked
 * `x-websocket`; a plain GET on them answers 426).
 */
import type { DescField, JsonObject, JsonValue } from "@bufbuild/protobuf";
import { JsonSchemaBuilder } from "../codec/json-schema.js";
import { isOpenHttpPath } from "../server/auth.js";
import { AGENTD_VERSION, OPENHANDS_COMPAT_VERSION } from "../version.js";
import type { RestRoute, RestRouteTable } from "./rest-routes.js";
import { SOCKET_PATHS } from "./sockets.js";

const ERROR_REF = { $ref: "#/components/schemas/ErrorResponse" };

function errorResponse(description: string): JsonObject {
  return { description, content: { "application/json": { schema: ERROR_REF } } };
}

export interface OpenApiOptions {
  /** Path served with the same operation as another (OpenHands serves server info at "/"). */
  aliases?: Readonly<Record<string, string>>;
}

export function buildOpenApi(table: RestRouteTable, options: OpenApiOptions = {}): JsonObject {
  const schemas = new JsonSchemaBuilder();
  const paths: Record<string, JsonObject> = {};
  const opIds = new Set<string>();
  const byPath = new Map<string, RestRoute[]>();
  for (const route of table.routes) {
    const list = byPath.get(route.template) ?? [];
    list.push(route);
    byPath.set(route.template, list);
  }
  for (const [template, routes] of byPath) {
    const item: JsonObject = {};
    for (const route of routes) item[route.httpMethod.toLowerCase()] = operation(route, schemas, opIds, template);
    paths[template] = item;
  }
  for (const [alias, target] of Object.entries(options.aliases ?? {})) {
    const item = paths[target];
    if (item === undefined) continue;
    const copy: JsonObject = {};
    for (const [m, op] of Object.entries(item)) copy[m] = { ...(op as JsonObject), operationId: `${(op as JsonObject).operationId as string}_alias` };
    paths[alias] = copy;
  }
  const status = (value: string): JsonObject => ({
    type: "object",
    properties: { status: { type: "string", const: value } },
    required: ["status"],
  });
  paths["/alive"] = { get: probe("Liveness", "alive", status("ok")) };
  paths["/health"] = { get: probe("Liveness (same as /alive)", "health", status("ok")) };
  paths["/ready"] = {
    get: {
      ...probe("Readiness", "ready", status("ready")),
      responses: {
        "200": { description: "Ready", content: { "application/json": { schema: status("ready") } } },
        "503": { description: "Still initializing", content: { "application/json": { schema: { type: "object", properties: { status: { type: "string" }, message: { type: "string" } } } } } },
      },
    },
  };
  for (const p of SOCKET_PATHS) paths[p] = { get: socketOperation(p) };

  return {
    openapi: "3.1.0",
    info: {
      title: "agentd",
      version: AGENTD_VERSION,
      description:
        `REST and WebSocket surface of agentd, compatible with the OpenHands agent server API ${OPENHANDS_COMPAT_VERSION}. ` +
        "Every operation is a gRPC/Connect RPC of the agentd.v1 package served on the same port; this document is generated from the proto annotations.",
    },
    jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
    paths,
    components: {
      schemas: {
        ...schemas.components,
        ErrorResponse: {
          type: "object",
          properties: { detail: { type: "string" }, error_id: { type: "string" } },
          required: ["detail"],
        },
      },
      securitySchemes: {
        SessionApiKey: { type: "apiKey", in: "header", name: "X-Session-API-Key" },
        BearerAuth: { type: "http", scheme: "bearer" },
        SessionApiKeyQuery: { type: "apiKey", in: "query", name: "session_api_key", description: "Deprecated in OpenHands; still accepted." },
      },
    },
    security: [{ SessionApiKey: [] }, { BearerAuth: [] }, { SessionApiKeyQuery: [] }],
    tags: [...new Set(table.routes.map((r) => r.service.name))].map((name) => ({ name })),
  };
}

function probe(summary: string, id: string, schema: JsonObject): JsonObject {
  return {
    summary,
    operationId: `probe_${id}`,
    tags: ["Probes"],
    security: [],
    responses: { "200": { description: summary, content: { "application/json": { schema } } } },
  };
}

function operation(route: RestRoute, schemas: JsonSchemaBuilder, opIds: Set<string>, template: string): JsonObject {
  let opId = `${route.service.name}_${route.method.name}`;
  for (let i = 2; opIds.has(opId); i++) opId = `${route.service.name}_${route.method.name}_${i}`;
  opIds.add(opId);
  const parameters: JsonValue[] = [];
  const pathFields = new Set<DescField>();
  for (const seg of route.segments) {
    if (seg.type !== "var") continue;
    const leaf = seg.fields[seg.fields.length - 1]!;
    pathFields.add(leaf);
    parameters.push({ name: seg.name, in: "path", required: true, schema: schemas.field(leaf) });
  }
  for (const q of route.queryDoc) {
    const p: JsonObject = { name: q.name, in: "query", required: false, schema: schemas.field(q.leaf) };
    if (q.leaf.fieldKind === "list") {
      p.style = "form";
      p.explode = true;
    }
    parameters.push(p);
  }
  const open = isOpenHttpPath(template);
  const op: JsonObject = {
    operationId: opId,
    summary: route.method.name.replace(/([a-z])([A-Z])/g, "$1 $2"),
    description: `gRPC / Connect: \`/${route.service.typeName}/${route.method.name}\`.`,
    tags: [route.service.name],
    parameters,
    responses: responsesOf(route, schemas, open),
  };
  if (open) op.security = [];
  const body = requestBodyOf(route, schemas, pathFields);
  if (body !== undefined) op.requestBody = body;
  return op;
}

function requestBodyOf(route: RestRoute, schemas: JsonSchemaBuilder, pathFields: Set<DescField>): JsonObject | undefined {
  if (route.rawBody) {
    const content: JsonObject = { "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } } };
    if (/^Upload/.test(route.method.name)) {
      content["multipart/form-data"] = {
        schema: { type: "object", properties: { file: { type: "string", contentMediaType: "application/octet-stream" } }, required: ["file"] },
      };
    }
    return { required: true, content };
  }
  if (route.bodyAll) {
    const input = route.method.input;
    const schema = pathFields.size > 0 ? schemas.messageWithout(input, pathFields, `${input.name}Body`) : schemas.message(input);
    return { required: false, description: "An empty body is accepted.", content: { "application/json": { schema } } };
  }
  if (route.bodyField !== undefined) {
    return { required: true, content: { "application/json": { schema: schemas.field(route.bodyField) } } };
  }
  return undefined;
}

function responsesOf(route: RestRoute, schemas: JsonSchemaBuilder, open: boolean): JsonObject {
  const responses: JsonObject = {};
  if (route.download) {
    const binary = { "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } } };
    responses["200"] = { description: "The file's bytes (Content-Disposition names the file).", content: binary };
    responses["206"] = { description: "The requested byte range (HTTP Range).", content: binary };
    responses["416"] = errorResponse("Range Not Satisfiable");
  } else if (route.method.methodKind === "server_streaming") {
    responses["200"] = { description: "One JSON document per line.", content: { "application/x-ndjson": { schema: schemas.message(route.method.output) } } };
  } else {
    const schema = route.responseField !== undefined ? schemas.field(route.responseField, { nullable: route.responseField.fieldKind === "message" }) : schemas.message(route.method.output);
    const content = { "application/json": { schema } };
    if (route.createdField !== undefined) {
      responses["200"] = { description: "Already existed (idempotent create).", content };
      responses["201"] = { description: "Created.", content };
    } else {
      responses["200"] = { description: "OK", content };
    }
  }
  if (!open) responses["401"] = errorResponse("Missing or invalid session key: {\"detail\": \"Unauthorized\"}");
  responses["404"] = errorResponse("Not found");
  if (route.httpMethod !== "GET" || route.getBodyArrayField !== undefined) responses["413"] = errorResponse("Request body too large");
  responses["422"] = errorResponse("Invalid argument (bad JSON, wrong types, unknown enum values, bad UUID, out-of-range limit)");
  responses["default"] = errorResponse("Other errors (status from the agentd error table)");
  return responses;
}

function socketOperation(path: string): JsonObject {
  const events = path.includes("{conversation_id}");
  const q = (name: string, schema: JsonObject, description: string): JsonObject => ({ name, in: "query", required: false, schema, description });
  const parameters: JsonValue[] = [];
  if (events) parameters.push({ name: "conversation_id", in: "path", required: true, schema: { type: "string", format: "uuid" } });
  parameters.push(q("session_api_key", { type: "string" }, "Session key (or X-Session-API-Key header, or a first frame {\"type\":\"auth\",\"session_api_key\":...} within 10 s)."));
  parameters.push(q("resend_mode", { type: "string", enum: events ? ["all", "since"] : ["all"] }, "Replay stored events first."));
  parameters.push(q("resend_all", { type: "boolean" }, "Deprecated: resend_mode=all."));
  if (events) {
    parameters.push(q("after_timestamp", { type: "string", format: "date-time" }, "With resend_mode=since: replay events at or after this time."));
    parameters.push(q("after_seq", { type: "integer", minimum: 0 }, "agentd extension: replay events with seq > after_seq, then live (no gap, no duplicate)."));
  }
  return {
    operationId: events ? "socket_events" : "socket_bash_events",
    summary: events ? "WebSocket: a conversation's events" : "WebSocket: bash events",
    description: events
      ? "Server→client: events as OpenHands JSON (exclude_none), first a full_state ConversationStateUpdateEvent. Client→server: OpenHands Message JSON, sent with run=true. Close codes: 4001 auth, 4004 unknown conversation, 1013 overload / fell behind."
      : "Server→client: BashCommand / BashOutput events. Client→server: {command, cwd?, timeout?} starts a command. Close code 4001 on auth failure.",
    tags: ["WebSockets"],
    "x-websocket": true,
    security: [],
    parameters,
    responses: {
      "101": { description: "Switching Protocols" },
      "401": errorResponse("Wrong session key in the query or header"),
      "426": errorResponse("Upgrade Required (plain HTTP request)"),
    },
  };
}
