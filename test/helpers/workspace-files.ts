/**
 * A fresh workspace for WorkspaceFiles unit tests (src/domain/files): `<tmp>/agentd-files-*` with a
 * `ws` root inside (so paths next to the root, outside it, can be created too), and the service
 * over it. Close it in afterEach.
 */
import { mkdir, mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentdError } from "../../src/errors.js";
import { WorkspaceFiles, type WorkspaceFilesOptions } from "../../src/domain/files/workspace-files.js";

export interface TestWorkspace {
  /** The temp directory (real path), parent of `ws`. */
  readonly base: string;
  /** The workspace root. */
  readonly ws: string;
  readonly files: WorkspaceFiles;
}

/** `options` override the defaults (root `ws`, 60 s upload idle timeout). */
export async function openTestWorkspace(
  name: string,
  options: (ws: string) => Partial<WorkspaceFilesOptions> = () => ({}),
): Promise<TestWorkspace> {
  const base = await realpath(await mkdtemp(join(tmpdir(), `agentd-files-${name}-`)));
  const ws = join(base, "ws");
  await mkdir(ws);
  const files = new WorkspaceFiles({ roots: [ws], defaultWorkingDir: ws, uploadIdleTimeoutMs: 60_000, ...options(ws) });
  return { base, ws, files };
}

export async function closeTestWorkspace(t: TestWorkspace): Promise<void> {
  await t.files.close();
  await rm(t.base, { recursive: true, force: true });
}

/** The AgentdError `p` rejects with. @throws when it resolves or rejects with something else. */
export async function failure(p: Promise<unknown>): Promise<AgentdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof AgentdError)) throw new Error(`expected an AgentdError, got ${String(err)}`);
  return err;
}
