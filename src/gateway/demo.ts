/**
 * /_demo: a tiny page proving the browser path (Connect-web unary and streaming, REST, WebSocket)
 * on the one port. The script is bundled from ./demo/browser-demo.ts with esbuild (present through
 * tsx) on the first request and kept in memory; nothing is written to disk. When esbuild or
 * @connectrpc/connect-web (a devDependency) is missing, /_demo/app.js answers 503.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { AnyResponse } from "../server/http-common.js";
import { sendJson } from "./rest-handler.js";

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>agentd browser demo</title></head>
<body>
<h1>agentd browser demo</h1>
<p>GetServerInfo over Connect-web: <span id="server-info">…</span></p>
<p>Call <code>window.agentdDemo</code> from the console: unary(), watchEvents(id, n), watchBash(n), rest(path), socket(path, opts).</p>
<script type="module" src="/_demo/app.js"></script>
</body>
</html>
`;

let bundle: Promise<string> | undefined;

async function build(): Promise<string> {
  // Beside this module (sources, or tsc's dist/src), or beside the bundle dist/agentd.mjs.
  const candidates = ["./demo/browser-demo.ts", "./demo/browser-demo.js", "./src/gateway/demo/browser-demo.js"];
  const entry = candidates.map((c) => fileURLToPath(new URL(c, import.meta.url))).find((f) => existsSync(f));
  if (entry === undefined) throw new Error("the demo script is missing");
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    logLevel: "silent",
  });
  const out = result.outputFiles[0];
  if (out === undefined) throw new Error("esbuild produced no output");
  return out.text;
}

/** Serves /_demo and /_demo/app.js; false for other paths. */
export function serveDemo(pathname: string, res: AnyResponse): boolean {
  if (pathname === "/_demo" || pathname === "/_demo/") {
    const body = PAGE;
    (res as { writeHead(s: number, h: Record<string, string>): unknown }).writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "content-length": String(Buffer.byteLength(body)),
    });
    res.end(body);
    return true;
  }
  if (pathname !== "/_demo/app.js") return false;
  bundle ??= build();
  bundle.then(
    (js) => {
      (res as { writeHead(s: number, h: Record<string, string>): unknown }).writeHead(200, {
        "content-type": "text/javascript; charset=utf-8",
        "content-length": String(Buffer.byteLength(js)),
      });
      res.end(js);
    },
    (err: unknown) => {
      bundle = undefined;
      sendJson(res, 503, { detail: `demo bundle unavailable: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}` });
    },
  );
  return true;
}
