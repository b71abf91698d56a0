/** What every section parser receives: the checked values and a way to report a problem. */
import type { ConfigKey, ConfigValues } from "./schema";

export interface SectionInput {
  values: ConfigValues;
  /** Keys whose own check failed (they read as their default): skip rules that need them. */
  failed: ReadonlySet<ConfigKey>;
  /** Reports a problem at `touchdeploy:<path>` (a key, with `[i]` / `.field` inside it). */
  problem: (path: string, message: string) => void;
  /** Warns without failing (deprecations). */
  warn: (message: string) => void;
  /** Whether the stack holds the key encrypted (any value in it, for an object). */
  encrypted: (key: ConfigKey) => boolean;
}

/** A value as the user should see it in a message. */
export const show = (value: unknown) => JSON.stringify(value);
