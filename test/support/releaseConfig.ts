/**
 * A ReleaseConfig for tests that build components directly: what the config section parses from
 * the given stack keys (every other key at its default), with fields overridden. Built by the
 * parser, so a new release key needs no edit of the tests' fixtures.
 */
import { parseConfig } from "../../components/config";
import type { RawConfig } from "../../components/config/schema";
import type { ReleaseConfig } from "../../components/config/release";
import { PROJECT_DIR } from "./pulumiProgram";

export function releaseConfig(
  overrides: Partial<ReleaseConfig> = {},
  keys: RawConfig = {},
): ReleaseConfig {
  const config = parseConfig(
    {
      repoUrl: "https://example.test/app.git",
      commit: "0123456789abcdef0123456789abcdef01234567",
      ...keys,
    },
    { projectDir: PROJECT_DIR },
  );
  return { ...config.release, ...overrides };
}
