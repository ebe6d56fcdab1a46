// The conversation's secrets as the tools see them: exported into the agent's shell as environment
// variables, and replaced by `<secret-hidden>` wherever a value shows up in tool output. The
// conversation owns one masker and calls `update` when its secrets change; the terminal notices
// the new `version` and re-exports before its next command.

/** What every occurrence of a secret value is replaced with. */
export const SECRET_PLACEHOLDER = "<secret-hidden>";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class SecretMasker {
  #secrets = new Map<string, string>();
  /** Values sorted longest first, so a secret containing another is masked whole. */
  #values: string[] = [];
  #version = 0;
  readonly #listeners = new Set<() => void>();

  constructor(secrets: Record<string, string> = {}) {
    this.update(secrets);
  }

  /** Increases on every `update`; consumers compare it to know they must re-sync. */
  get version(): number {
    return this.#version;
  }

  /** Replaces the whole secret set. Empty values are ignored (they would mask everything). */
  update(secrets: Record<string, string>): void {
    this.#secrets = new Map(Object.entries(secrets).filter(([, v]) => typeof v === "string" && v !== ""));
    this.#values = [...new Set(this.#secrets.values())].sort((a, b) => b.length - a.length);
    this.#version++;
    for (const listener of this.#listeners) listener();
  }

  /** Names of the current secrets (never their values). */
  names(): string[] {
    return [...this.#secrets.keys()];
  }

  /**
   * The secrets as environment variables. Only names that are valid shell identifiers are
   * exported; every value is still masked.
   */
  env(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of this.#secrets) if (ENV_NAME.test(name)) out[name] = value;
    return out;
  }

  /** `text` with every occurrence of every secret value replaced by `<secret-hidden>`. */
  mask(text: string): string {
    let out = text;
    for (const value of this.#values) if (out.includes(value)) out = out.split(value).join(SECRET_PLACEHOLDER);
    return out;
  }

  /** Calls `listener` after every update; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
