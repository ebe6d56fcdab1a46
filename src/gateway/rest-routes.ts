/**
 * The REST route table (aesthetics.md §5 rule 6: the only one), generated at start-up from the
 * `google.api.http` annotations of the registered services — nothing here names a path. Each route
 * is precomputed once: its template, which request fields the path variables, the query string and
 * the body fill, and how the response is rendered.
 *
 * Matching: literal segments beat variables (`events/search` before `events/{event_id}`), a
 * trailing slash is ignored (`/api/tools/` = `/api/tools`), segments are percent-decoded.
 *
 * Query parameters (for fields not bound by the path or the body):
 * - a scalar, enum, Timestamp, Duration or wrapper field is one parameter named by its rest name,
 *   its proto name or its protobuf JSON name; a repeated one is given repeatedly (`ids=a&ids=b`);
 * - a singular message field is addressed with dotted names (`filter.kind`), and when it has no
 *   `rest_name` its fields are also flattened into the query namespace (`kind`, `timestamp__gte`
 *   fill `filter`), unless a field of the enclosing message already claims the name;
 * - maps and repeated messages cannot be set from the query; unknown parameters are ignored.
 *
 * Body: `body: "*"` binds the whole JSON body (path fields win over body keys); `body: "<field>"`
 * binds it to that field. A `GET` route whose request has exactly one repeated scalar field left
 * unbound also accepts that list as a JSON array body (OpenHands' batch endpoints take
 * `event_ids` as a GET body).
 */
import { getOption, hasOption, ScalarType, type DescField, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { http as httpRule } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { created_field as createdFieldOpt, rest_exclude_none as restExcludeNoneOpt } from "../../gen/agentd/v1/options_pb.js";
import { planOf, restNameOf, wktKindOf } from "../codec/plan.js";

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export type Segment = { type: "literal"; value: string } | { type: "var"; name: string; fields: DescField[]; rest: boolean };

export interface QueryBinding {
  /** The canonical parameter name (documented in OpenAPI). */
  name: string;
  /** The field chain from the request message to the leaf. */
  fields: DescField[];
  leaf: DescField;
}

export interface RestRoute {
  /** "agentd.v1.EventService.SearchEvents". */
  id: string;
  service: DescService;
  method: DescMethod;
  httpMethod: HttpMethod;
  /** The annotation's template, normalised (no trailing slash), e.g. "/api/conversations/{conversation_id}". */
  template: string;
  segments: Segment[];
  /** `body: "*"`. */
  bodyAll: boolean;
  /** `body: "<field>"`. */
  bodyField: DescField | undefined;
  /** `response_body: "<field>"`. */
  responseField: DescField | undefined;
  /** Accepted query names (canonical names and aliases). */
  query: Map<string, QueryBinding>;
  /** Canonical query parameters, for the OpenAPI document. */
  queryDoc: QueryBinding[];
  /** The bool response field that turns 200 into 201 (`created_field`). */
  createdField: DescField | undefined;
  /** The JSON answer leaves out null fields (`rest_exclude_none`). */
  excludeNone: boolean;
  /** For GET batch routes: the repeated field a JSON array body fills. */
  getBodyArrayField: DescField | undefined;
  /** Server-streaming RPC whose response_body is a bytes field: a raw download. */
  download: boolean;
  /** The body is a single bytes field (raw bytes or multipart upload). */
  rawBody: boolean;
}

interface TrieNode {
  literals: Map<string, TrieNode>;
  variable: TrieNode | undefined;
  rest: Map<HttpMethod, RestRoute> | undefined;
  routes: Map<HttpMethod, RestRoute>;
}

export type MatchResult =
  | { type: "match"; route: RestRoute; vars: string[] }
  | { type: "method_not_allowed"; allowed: HttpMethod[] }
  | { type: "not_found" }
  | { type: "bad_path" };

function node(): TrieNode {
  return { literals: new Map(), variable: undefined, rest: undefined, routes: new Map() };
}

/** Splits a request path into decoded segments; undefined when percent-decoding fails. */
export function splitPath(path: string): string[] | undefined {
  let p = path;
  while (p.length > 1 && p.endsWith("/")) p = p.slice(0, -1);
  if (p === "/" || p === "") return [];
  const raw = p.slice(1).split("/");
  const out: string[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const s = raw[i]!;
    if (s.indexOf("%") < 0) {
      out[i] = s;
      continue;
    }
    try {
      out[i] = decodeURIComponent(s);
    } catch {
      return undefined;
    }
  }
  return out;
}

export class RestRouteTable {
  readonly routes: RestRoute[] = [];
  readonly #root = node();

  constructor(services: readonly DescService[]) {
    for (const service of services) {
      for (const method of service.methods) {
        if (!hasOption(method, httpRule)) continue;
        const rule = getOption(method, httpRule);
        for (const r of [rule, ...rule.additionalBindings]) this.#add(buildRoute(service, method, r));
      }
    }
  }

  #add(route: RestRoute): void {
    let n = this.#root;
    for (const seg of route.segments) {
      if (seg.type === "literal") {
        let next = n.literals.get(seg.value);
        if (next === undefined) n.literals.set(seg.value, (next = node()));
        n = next;
      } else if (seg.rest) {
        n.rest ??= new Map();
        if (n.rest.has(route.httpMethod)) throw new Error(`duplicate REST route ${route.httpMethod} ${route.template}`);
        n.rest.set(route.httpMethod, route);
        this.routes.push(route);
        return;
      } else {
        n.variable ??= node();
        n = n.variable;
      }
    }
    if (n.routes.has(route.httpMethod)) throw new Error(`duplicate REST route ${route.httpMethod} ${route.template} (${route.id})`);
    n.routes.set(route.httpMethod, route);
    this.routes.push(route);
  }

  /** Finds the route for a method and path (query string excluded). */
  match(httpMethod: string, path: string): MatchResult {
    const segments = splitPath(path);
    if (segments === undefined) return { type: "bad_path" };
    const vars: string[] = [];
    const found = this.#walk(this.#root, segments, 0, vars);
    if (found === undefined) return { type: "not_found" };
    const route = found.get(httpMethod as HttpMethod);
    if (route === undefined) return { type: "method_not_allowed", allowed: [...found.keys()] };
    return { type: "match", route, vars };
  }

  #walk(n: TrieNode, segs: string[], i: number, vars: string[]): Map<HttpMethod, RestRoute> | undefined {
    if (i === segs.length) return n.routes.size > 0 ? n.routes : undefined;
    const seg = segs[i]!;
    const lit = n.literals.get(seg);
    if (lit !== undefined) {
      const r = this.#walk(lit, segs, i + 1, vars);
      if (r !== undefined) return r;
    }
    if (n.variable !== undefined && seg !== "") {
      vars.push(seg);
      const r = this.#walk(n.variable, segs, i + 1, vars);
      if (r !== undefined) return r;
      vars.pop();
    }
    if (n.rest !== undefined) {
      vars.push(segs.slice(i).join("/"));
      return n.rest;
    }
    return undefined;
  }
}

function patternOf(rule: HttpRule): { httpMethod: HttpMethod; path: string } {
  switch (rule.pattern.case) {
    case "get":
      return { httpMethod: "GET", path: rule.pattern.value };
    case "post":
      return { httpMethod: "POST", path: rule.pattern.value };
    case "put":
      return { httpMethod: "PUT", path: rule.pattern.value };
    case "patch":
      return { httpMethod: "PATCH", path: rule.pattern.value };
    case "delete":
      return { httpMethod: "DELETE", path: rule.pattern.value };
    case "custom":
      return { httpMethod: rule.pattern.value.kind.toUpperCase() as HttpMethod, path: rule.pattern.value.path };
    default:
      throw new Error("google.api.http rule without a pattern");
  }
}

/** Resolves "a.b.c" to the chain of fields from `desc`. */
function fieldPath(desc: DescMessage, dotted: string, where: string): DescField[] {
  const chain: DescField[] = [];
  let cur: DescMessage | undefined = desc;
  for (const name of dotted.split(".")) {
    const f: DescField | undefined = cur?.fields.find((x) => x.name === name);
    if (f === undefined) throw new Error(`${where}: no field ${dotted} in ${desc.typeName}`);
    chain.push(f);
    cur = f.fieldKind === "message" ? f.message : undefined;
  }
  return chain;
}

function buildRoute(service: DescService, method: DescMethod, rule: HttpRule): RestRoute {
  const id = `${service.typeName}.${method.name}`;
  const { httpMethod, path } = patternOf(rule);
  let template = path;
  while (template.length > 1 && template.endsWith("/")) template = template.slice(0, -1);
  const input = method.input;
  const segments: Segment[] = [];
  const bound = new Set<DescField>();
  const parts = template === "/" ? [] : template.slice(1).split("/");
  for (const part of parts) {
    const m = /^\{([A-Za-z0-9_.]+)(?:=([^}]*))?\}$/.exec(part);
    if (m === null) {
      if (part.includes("{")) throw new Error(`${id}: unsupported path template segment ${part}`);
      segments.push({ type: "literal", value: part });
      continue;
    }
    const name = m[1]!;
    const pattern = m[2];
    if (pattern !== undefined && pattern !== "*" && pattern !== "**") throw new Error(`${id}: unsupported variable pattern ${part}`);
    const fields = fieldPath(input, name, id);
    const leaf = fields[fields.length - 1]!;
    if (leaf.fieldKind !== "scalar" && leaf.fieldKind !== "enum") throw new Error(`${id}: path variable ${name} must be a scalar field`);
    bound.add(leaf);
    segments.push({ type: "var", name, fields, rest: pattern === "**" });
  }
  template = parts.length === 0 ? "/" : "/" + segments.map((s) => (s.type === "literal" ? s.value : `{${s.name}}`)).join("/");

  const bodyAll = rule.body === "*";
  let bodyField: DescField | undefined;
  if (rule.body !== "" && !bodyAll) {
    const chain = fieldPath(input, rule.body, id);
    if (chain.length !== 1) throw new Error(`${id}: nested body fields are not supported (${rule.body})`);
    bodyField = chain[0]!;
  }
  const responseField = rule.responseBody === "" ? undefined : fieldPath(method.output, rule.responseBody, id)[0];
  const query = new Map<string, QueryBinding>();
  const queryDoc: QueryBinding[] = [];
  if (!bodyAll) {
    const skip = new Set(bound);
    if (bodyField !== undefined) skip.add(bodyField);
    addQueryFields(input, [], "", skip, query, queryDoc, true);
  }
  const createdName = getOption(method, createdFieldOpt);
  const createdField = createdName === "" ? undefined : method.output.fields.find((f) => f.name === createdName);
  if (createdName !== "" && createdField === undefined) throw new Error(`${id}: created_field ${createdName} not in ${method.output.typeName}`);

  let getBodyArrayField: DescField | undefined;
  if (httpMethod === "GET") {
    const lists = input.fields.filter((f) => !bound.has(f) && f.fieldKind === "list" && f.listKind !== "message");
    if (lists.length === 1) getBodyArrayField = lists[0];
  }
  const download = method.methodKind === "server_streaming" && responseField !== undefined && responseField.fieldKind === "scalar" && responseField.scalar === ScalarType.BYTES;
  const rawBody = bodyField !== undefined && bodyField.fieldKind === "scalar" && bodyField.scalar === ScalarType.BYTES;
  return {
    id,
    service,
    method,
    httpMethod,
    template,
    segments,
    bodyAll,
    bodyField,
    responseField,
    query,
    queryDoc,
    createdField,
    excludeNone: getOption(method, restExcludeNoneOpt),
    getBodyArrayField,
    download,
    rawBody,
  };
}

/** True for fields a single query value can set. */
function isQueryLeaf(f: DescField): boolean {
  if (f.fieldKind === "scalar" || f.fieldKind === "enum") return true;
  if (f.fieldKind === "list") return f.listKind !== "message";
  if (f.fieldKind === "message") {
    const wkt = wktKindOf(f.message);
    return wkt === "timestamp" || wkt === "duration" || wkt === "wrapper";
  }
  return false;
}

function addQueryFields(
  desc: DescMessage,
  prefix: DescField[],
  dotted: string,
  skip: Set<DescField>,
  query: Map<string, QueryBinding>,
  doc: QueryBinding[],
  canonicalLevel: boolean,
): void {
  const nested: DescField[] = [];
  const plan = planOf(desc);
  for (const f of desc.fields) {
    if (skip.has(f)) continue;
    if (plan.inlineStruct?.field === f) continue;
    const chain = [...prefix, f];
    if (isQueryLeaf(f)) {
      const rest = restNameOf(f);
      const binding: QueryBinding = { name: dotted + rest, fields: chain, leaf: f };
      if (!query.has(binding.name)) {
        query.set(binding.name, binding);
        if (canonicalLevel) doc.push(binding);
      }
      for (const alias of [dotted + f.name, dotted + f.jsonName]) if (!query.has(alias)) query.set(alias, binding);
    } else if (f.fieldKind === "message" && wktKindOf(f.message) === undefined) {
      nested.push(f);
    }
  }
  // Nested messages after the enclosing fields, so an enclosing field wins a flattened name.
  for (const f of nested) {
    const chain = [...prefix, f];
    addQueryFields(f.message!, chain, `${dotted}${f.name}.`, skip, query, doc, false);
    if (getOptionRestName(f) === undefined) addQueryFields(f.message!, chain, dotted, skip, query, doc, canonicalLevel);
  }
}

function getOptionRestName(f: DescField): string | undefined {
  const r = restNameOf(f);
  return r === f.name ? undefined : r;
}
