/**
 * Bundles the server into dist/agentd.mjs, the file `npm start` and the Docker image run. One file
 * instead of ~180 of ours and several hundred of our dependencies' takes ~130 ms off the cold
 * start (module resolution and loading dominate it on Node 20, which has no compile cache).
 *
 * Left out of the bundle, loaded from node_modules at run time:
 * - native addons, which locate their binaries relative to their own files (classic-level,
 *   @lydell/node-pty);
 * - what the server loads only on first use, so that start-up never parses it (playwright-core,
 *   openai, esbuild for /_demo);
 * - swagger-ui-dist, whose static files /docs serves from its package directory.
 */
import * as esbuild from "esbuild";

await esbuild.build({
  entryPoints: ["src/cli.ts"],
  outfile: "dist/agentd.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  external: ["classic-level", "@lydell/node-pty", "playwright-core", "openai", "esbuild", "swagger-ui-dist"],
  // CommonJS dependencies inside an ES module bundle still call require() for Node built-ins.
  banner: { js: 'import { createRequire as __agentdCreateRequire } from "node:module"; const require = __agentdCreateRequire(import.meta.url);' },
  logLevel: "warning",
});
