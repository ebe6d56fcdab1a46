import { defineConfig } from "vitest/config";

// Integration tests start real servers, PTYs and Chromium: run files in forked processes,
// two at a time (CI has 2 cores), with generous per-test timeouts for cold starts.
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    teardownTimeout: 10_000,
  },
});
