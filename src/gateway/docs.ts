/**
 * Swagger UI at /docs, served from the local `swagger-ui-dist` package (no CDN: the server may
 * have no internet, and the page must work offline). /redoc redirects to /docs. Only the listed
 * asset files are served, so no path from the request ever reaches the file system.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import type { AnyResponse } from "../server/http-common.js";
import { sendJson } from "./rest-handler.js";

const ASSETS: Readonly<Record<string, string>> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
  "favicon-16x16.png": "image/png",
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>agentd API</title>
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

const INIT = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
});
`;

let assetDir: string | null | undefined;

function swaggerDir(): string | null {
  if (assetDir === undefined) {
    try {
      assetDir = path.dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
    } catch {
      assetDir = null;
    }
  }
  return assetDir;
}

function sendText(res: AnyResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  (res as { writeHead(s: number, h: Record<string, string>): unknown }).writeHead(status, {
    "content-type": type,
    "content-length": String(Buffer.byteLength(body)),
    ...headers,
  });
  res.end(body);
}

/** Serves /docs, /docs/* and /redoc; false for other paths. */
export function serveDocs(pathname: string, res: AnyResponse): boolean {
  if (pathname === "/redoc" || pathname === "/redoc/") {
    sendText(res, 302, "text/plain; charset=utf-8", "see /docs", { location: "/docs" });
    return true;
  }
  if (pathname === "/docs" || pathname === "/docs/") {
    sendText(res, 200, "text/html; charset=utf-8", PAGE);
    return true;
  }
  if (!pathname.startsWith("/docs/")) return false;
  const name = pathname.slice("/docs/".length);
  if (name === "init.js") {
    sendText(res, 200, "text/javascript; charset=utf-8", INIT);
    return true;
  }
  const type = ASSETS[name];
  const dir = swaggerDir();
  if (type === undefined || dir === null) {
    sendJson(res, 404, { detail: "Not Found" });
    return true;
  }
  const file = path.join(dir, name);
  stat(file).then(
    (s) => {
      (res as { writeHead(s: number, h: Record<string, string>): unknown }).writeHead(200, {
        "content-type": type,
        "content-length": String(s.size),
        "cache-control": "public, max-age=86400",
      });
      const stream = createReadStream(file);
      stream.on("error", () => res.destroy());
      stream.pipe(res as NodeJS.WritableStream);
    },
    () => sendJson(res, 404, { detail: "Not Found" }),
  );
  return true;
}
