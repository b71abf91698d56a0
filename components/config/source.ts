/** The source section: where the code comes from, which commit, how hosts authenticate. */
import * as path from "path";
import { repoProblem } from "../contract";
import { parseKnownHostsLine } from "../hostSpec";
import { SectionInput, show } from "./section";

/** How hosts authenticate when fetching: not at all, or with a GitHub deploy key. */
export type DeployKeyConfig =
  | { kind: "none" }
  | { kind: "generate"; knownHosts: string[] }
  | { kind: "provided"; knownHosts: string[] };

/** Where the code comes from, the commit (a pin) or branch, and what hosts fetch from. */
export type SourceConfig = (
  | { kind: "github"; owner: string; repository: string }
  | { kind: "local"; path: string }
  | { kind: "url" }
) & {
  /** The URL (or absolute path) hosts fetch from. */
  repoUrl: string;
  branch: string;
  /** The pinned commit, if any. */
  commit?: string;
  deployKey: DeployKeyConfig;
};

const GITHUB_REPO_PATTERN = /^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))\/([A-Za-z0-9._-]{1,100})$/;
const SSH_URL = /^(ssh:\/\/|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)/;
const CREDENTIALS = /^https?:\/\/[^/]*@|^[a-z]+:\/\/[^/@]*:[^/@]*@/i;

export function parseSource(
  { values: v, problem }: SectionInput,
  context: { projectDir: string },
): SourceConfig {
  const { github, repoPath, branch, commit, deployKey: mode } = v;
  let repoUrl = v.repoUrl;
  const withDeployKey = mode === "generate" || mode === "provided";
  let where:
    | { kind: "github"; owner: string; repository: string }
    | { kind: "local"; path: string }
    | { kind: "url" } = { kind: "url" };
  if (github && repoPath) {
    problem("repoPath", "set either touchdeploy:github or touchdeploy:repoPath, not both");
  }
  if (github) {
    const m = GITHUB_REPO_PATTERN.exec(github);
    if (!m) {
      problem("github", `${show(github)} must be OWNER/NAME, e.g. "acme/shop"`);
    } else {
      where = { kind: "github", owner: m[1], repository: m[2] };
      repoUrl ||= withDeployKey
        ? `git@github.com:${m[1]}/${m[2]}.git`
        : `https://github.com/${m[1]}/${m[2]}.git`;
    }
  } else if (repoPath) {
    const absolute = path.resolve(context.projectDir, repoPath);
    where = { kind: "local", path: absolute };
    repoUrl ||= absolute;
  } else if (!repoUrl || !commit) {
    problem(
      "github",
      "no source: set touchdeploy:github (OWNER/NAME) or touchdeploy:repoPath, or both touchdeploy:repoUrl and touchdeploy:commit",
    );
  }
  if (repoUrl) {
    const why = repoProblem(repoUrl);
    if (why) {
      problem(
        v.repoUrl ? "repoUrl" : where.kind === "local" ? "repoPath" : "repoUrl",
        `${show(repoUrl)} ${why}`,
      );
    } else if (CREDENTIALS.test(repoUrl)) {
      problem(
        "repoUrl",
        "must not contain credentials (they would end up in command lines, logs and state); use a deploy key",
      );
    }
  }
  if (withDeployKey) {
    if (where.kind !== "github") {
      problem("deployKey", `${show(mode)} needs touchdeploy:github (deploy keys are GitHub's)`);
    } else if (repoUrl && !SSH_URL.test(repoUrl)) {
      problem("repoUrl", `${show(repoUrl)} is not an SSH URL, so the deploy key would not be used`);
    }
    if (mode === "provided" && !v.deployPrivateKey) {
      problem(
        "deployPrivateKey",
        'required for deployKey "provided": pulumi config set --secret touchdeploy:deployPrivateKey < deploy_key',
      );
    }
  }

  const knownHosts: string[] = [];
  v.gitKnownHosts.forEach((line, i) => {
    const parsed = parseKnownHostsLine(line);
    if (parsed.ok) {
      knownHosts.push(parsed.value);
    } else {
      parsed.problems.forEach((p) => problem(`gitKnownHosts[${i}]`, p.message));
    }
  });
  if (withDeployKey && knownHosts.length === 0) {
    problem("gitKnownHosts", "must list the git server's host keys: fetching verifies them");
  }
  const deployKey: DeployKeyConfig = withDeployKey ? { kind: mode, knownHosts } : { kind: "none" };
  return { ...where, repoUrl, branch, commit: commit || undefined, deployKey };
}
