/**
 * The dependency fingerprint of a commit: a hash of the files that decide what the runtime image
 * must contain. Pure. The host script computes the very same value from a release directory
 * (`host/touchdeploy.sh`, `dependency_fingerprint`), so both sides agree on what "the running
 * container was built for this commit's dependencies" means.
 */
import { createHash } from "crypto";

/**
 * A dependency file at one commit: its path relative to the app directory and its text (UTF-8),
 * `null` if absent. Text, not bytes: it travels through Pulumi Outputs, which keep plain data.
 */
export interface DependencyFile {
  path: string;
  content: string | null;
}

/** The fingerprint written when the image is not built for the commit's dependencies. */
export const UNMANAGED_FINGERPRINT = "unmanaged";

function sha256Hex(data: string): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * sha256 over, for each file in the given order, the line `PATH` and the line `sha256(content)`
 * (or `absent`). Order matters and is the configured order of `touchdeploy:dependencyFiles`.
 */
export function dependencyFingerprint(files: readonly DependencyFile[]): string {
  const text = files
    .map((f) => `${f.path}\n${f.content === null ? "absent" : sha256Hex(f.content)}\n`)
    .join("");
  return sha256Hex(text);
}
