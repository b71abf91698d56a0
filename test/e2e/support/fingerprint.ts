/**
 * The dependency fingerprint, computed independently of host/touchdeploy.sh so the e2e tests
 * can check that both agree (the Pulumi program computes the same from git objects):
 * for each path P in order, the line `P` then the line `sha256hex(content)` or `absent`, each
 * ending in "\n"; the fingerprint is sha256hex of that text.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

const sha256 = (data: string | Buffer): string =>
  crypto.createHash("sha256").update(data).digest("hex");

/** `files`: [path relative to the app dir, its content or undefined when absent], in order. */
export function dependencyFingerprint(
  files: ReadonlyArray<readonly [string, string | Buffer | undefined]>,
): string {
  const text = files
    .map(([p, content]) => `${p}\n${content === undefined ? "absent" : sha256(content)}\n`)
    .join("");
  return sha256(text);
}

/** The fingerprint of `paths` as they are in directory `appDir` (e.g. a work tree). */
export function dependencyFingerprintOfDir(appDir: string, paths: readonly string[]): string {
  return dependencyFingerprint(
    paths.map((p) => {
      const file = path.join(appDir, p);
      return [p, fs.existsSync(file) ? fs.readFileSync(file) : undefined] as const;
    }),
  );
}
