/**
 * The dependency fingerprint of files in a directory (e.g. a work tree), computed by the Pulumi
 * program's own function (components/fingerprint.ts), so the e2e tests can check that the host
 * script, which computes it in bash from a release directory, agrees with the program.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { dependencyFingerprint } from "../../components/fingerprint";

/** The fingerprint of `paths` (relative to `appDir`, in order) as they are in `appDir`. */
export function dependencyFingerprintOfDir(appDir: string, paths: readonly string[]): string {
  return dependencyFingerprint(
    paths.map((p) => {
      const file = path.join(appDir, p);
      // Bytes, as the program and the host script hash them (a file need not be UTF-8).
      return { path: p, content: fs.existsSync(file) ? fs.readFileSync(file) : null };
    }),
  );
}
