/**
 * playwright-core, loaded on first use: importing it costs about a second and 80 MiB, which the
 * server must not pay at start-up when no conversation browses (cold start target: ≤ 400 ms).
 */
import type * as PlaywrightModule from "playwright-core";

type Playwright = typeof PlaywrightModule;

let loading: Promise<Playwright> | undefined;

export function loadPlaywright(): Promise<Playwright> {
  loading ??= import("playwright-core");
  return loading;
}

/** Playwright's timeout error (checked by name so the module need not be loaded to test it). */
export function isPlaywrightTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === "TimeoutError";
}
