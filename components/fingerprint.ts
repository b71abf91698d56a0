/**
 * The dependency fingerprint of a commit: a hash of the files that decide what the runtime image
 * must contain. Pure. The host script computes the very same value from a release directory
 * (`host/touchdeploy.sh`, `dependency_fingerprint`: `sha256sum` of each file's raw bytes), so
 * both sides agree on what "the running container was built for this commit's dependencies"
 * means, whatever the files' encoding.
 */
import { createHash } from "crypto";
import { UNMANAGED_FINGERPRINT } from "./contract";

export { UNMANAGED_FINGERPRINT };

/**
 * A dependency file at one commit: its path relative to the app directory and its raw bytes,
 * `null` if absent. A string is taken as UTF-8 text (a convenience for tests and callers that
 * hold text); the program always passes the bytes git stores.
 */
export interface DependencyFile {
  path: string;
  content: Uint8Array | string | null;
}

/**
 * A dependency file as it travels through Pulumi Outputs: bytes as base64 (Outputs deep-copy
 * plain data and would turn a Buffer into an object of numbered keys).
 */
export interface EncodedDependencyFile {
  path: string;
  /** The raw bytes, base64; null if absent. */
  base64: string | null;
}

export function encodeDependencyFile(file: {
  path: string;
  content: Uint8Array | null;
}): EncodedDependencyFile {
  return {
    path: file.path,
    base64: file.content === null ? null : Buffer.from(file.content).toString("base64"),
  };
}

export function decodeDependencyFile(file: EncodedDependencyFile): DependencyFile {
  return {
    path: file.path,
    content: file.base64 === null ? null : Buffer.from(file.base64, "base64"),
  };
}

function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * sha256 over, for each file in the given order, the line `PATH` and the line `sha256(bytes)`
 * (or `absent`). Order matters and is the configured order of `touchdeploy:dependencyFiles`.
 */
export function dependencyFingerprint(files: readonly DependencyFile[]): string {
  const text = files
    .map((f) => `${f.path}\n${f.content === null ? "absent" : sha256Hex(f.content)}\n`)
    .join("");
  return sha256Hex(text);
}

/**
 * A dependency file's bytes as text for a build argument: UTF-8 when they are UTF-8, else
 * Latin-1 (every byte a character), so a legacy-encoded requirements.txt still builds. The
 * fingerprint never uses this text, only the bytes.
 */
export function dependencyText(content: Uint8Array | string | null | undefined): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(content);
  } catch {
    return Buffer.from(content).toString("latin1");
  }
}
