/**
 * `npm run bench -- <name...>`: runs the named benchmarks (all when none is named). Each prints a
 * table: our figure, the raw-limit figure measured in the same run, and the ratio.
 */
import { execFileSync } from "node:child_process";

const ALL = ["server", "gateway", "events", "bash", "files", "agent", "browser"] as const;

// Benchmarks run agentd as `npm start` does, from dist/agentd.mjs: rebuild it from this tree first.
execFileSync(process.execPath, ["scripts/bundle.mjs"], { stdio: "inherit" });

const names = process.argv.slice(2).filter((a) => a !== "--");
const chosen = names.length > 0 ? names : [...ALL];
for (const name of chosen) {
  if (!(ALL as readonly string[]).includes(name)) {
    console.error(`unknown benchmark ${name}; choose from ${ALL.join(", ")}`);
    process.exit(2);
  }
  let mod: { run(): Promise<void> };
  try {
    mod = (await import(`./${name}.ts`)) as { run(): Promise<void> };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND" && String(err).includes(`${name}.ts`)) {
      console.error(`benchmark ${name} is not written yet`);
      continue;
    }
    throw err;
  }
  console.log(`\n### ${name}`);
  await mod.run();
}
process.exit(0);
