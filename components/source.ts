/**
 * Which commit to deploy, and the dependency files at exactly that commit, as raw bytes (the
 * host script hashes raw bytes too). Read from GitHub with one REST request per file, or from a
 * local repository with isomorphic-git (plain file reads: nothing is executed, in preview or
 * otherwise).
 */
import * as github from "@pulumi/github";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as git from "isomorphic-git";
import * as path from "path";
import { RULES } from "./contract";
import type { ReleaseConfig, SourceConfig } from "./config";
import { EncodedDependencyFile, encodeDependencyFile } from "./fingerprint";

/** The commit to deploy and what the program knows of its dependencies. */
export interface ResolvedSource {
  /** Full 40-hex SHA. */
  commit: pulumi.Output<string>;
  /**
   * The configured dependency files at that commit (raw bytes, base64), or undefined when they
   * cannot be read (a plain git URL with a pinned commit): the deploy is then not
   * dependency-aware.
   */
  dependencyFiles?: pulumi.Output<EncodedDependencyFile[]>;
}

/** A failure the operator must fix, reported by `pulumi preview` without a stack trace. */
export class SourceError extends pulumi.RunError {}

function checkSha(sha: string, where: string): string {
  if (!RULES.sha.test(sha)) {
    throw new SourceError(
      `${where} returned ${JSON.stringify(sha)}, which is not a full commit SHA`,
    );
  }
  return sha;
}

async function findRoot(repoPath: string): Promise<string> {
  return git.findRoot({ fs, filepath: repoPath }).catch(() => {
    throw new SourceError(
      `touchdeploy:repoPath ${JSON.stringify(repoPath)} is not a git repository`,
    );
  });
}

/** The SHA a local branch points to. */
export async function localBranchHead(repoPath: string, branch: string): Promise<string> {
  const dir = await findRoot(repoPath);
  try {
    return checkSha(
      await git.resolveRef({ fs, dir, ref: `refs/heads/${branch}` }),
      `branch ${branch}`,
    );
  } catch (err) {
    const branches = await git.listBranches({ fs, dir }).catch(() => []);
    throw new SourceError(
      `touchdeploy:branch ${JSON.stringify(branch)} does not exist in ${dir}` +
        ` (branches: ${branches.join(", ") || "none"}): ${(err as Error).message}`,
    );
  }
}

/**
 * Files at a commit of a local repository, as the bytes git stores; a missing file is `null`.
 * A commit the repository does not have is an error (never "no dependency files").
 */
export async function localFilesAt(
  repoPath: string,
  commit: string,
  files: readonly string[],
): Promise<EncodedDependencyFile[]> {
  const dir = await findRoot(repoPath);
  try {
    await git.readCommit({ fs, dir, oid: commit });
  } catch {
    throw new SourceError(
      `touchdeploy:commit ${commit} is not in the repository ${dir}: ` +
        `fetch it (git fetch origin ${commit}) or pin a commit it has`,
    );
  }
  return Promise.all(
    files.map(async (file) => {
      try {
        const { blob } = await git.readBlob({ fs, dir, oid: commit, filepath: file });
        return encodeDependencyFile({ path: file, content: blob });
      } catch (err) {
        if ((err as { code?: string }).code === "NotFoundError") {
          return { path: file, base64: null };
        }
        throw err;
      }
    }),
  );
}

/** How the program reaches GitHub's REST API (global fetch unless a test gives its own). */
export interface GitHubApi {
  /** e.g. `https://api.github.com` (no trailing slash). */
  baseUrl: string;
  token?: string;
  fetch?: typeof fetch;
}

async function githubGet(api: GitHubApi, route: string, accept: string): Promise<Response> {
  const headers: Record<string, string> = {
    Accept: accept,
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "touchdeploy",
  };
  if (api.token) headers.Authorization = `Bearer ${api.token}`;
  return (api.fetch ?? fetch)(`${api.baseUrl}${route}`, { headers });
}

const encode = (p: string) => p.split("/").map(encodeURIComponent).join("/");

/**
 * The raw bytes of each file at `commit` in OWNER/NAME: one request per file to the contents
 * API with the raw media type, which answers the file's bytes as stored (no text decoding), and
 * 404 for a file that does not exist. `github.getRepositoryFile` instead decodes the content as
 * a string and, for outputs this program ignores, lists every commit that touched the file and
 * fetches each (integrations/terraform-provider-github v6.13.0, the version pulumi-github
 * v6.15.0 pins: github/data_source_github_repository_file.go `dataSourceGithubRepositoryFileRead`
 * → github/util_repo.go `getFileCommit`), which exhausts the unauthenticated rate limit.
 * A pinned commit is checked first (one more request): a 404 for every file would otherwise
 * read as "no dependency files".
 */
export async function githubFilesAt(
  api: GitHubApi,
  repo: { owner: string; repository: string },
  commit: string,
  files: readonly string[],
  checkCommit: boolean,
): Promise<EncodedDependencyFile[]> {
  const base = `/repos/${encodeURIComponent(repo.owner)}/${encodeURIComponent(repo.repository)}`;
  const name = `${repo.owner}/${repo.repository}`;
  const failed = async (what: string, res: Response) =>
    new SourceError(
      `GitHub answered ${res.status} for ${what} of ${name}` +
        (res.status === 401 || res.status === 403 || res.status === 429
          ? ' (rate limit or token: set github:token, see README "GitHub access")'
          : "") +
        `: ${(await res.text()).slice(0, 200)}`,
    );
  if (checkCommit) {
    const res = await githubGet(api, `${base}/commits/${commit}`, "application/vnd.github.sha");
    if (res.status === 404 || res.status === 422) {
      throw new SourceError(
        `touchdeploy:commit ${commit} is not in ${name} on GitHub` +
          (api.token ? "" : " (or the repository is private and no github:token is set)"),
      );
    }
    if (!res.ok) throw await failed(`commit ${commit}`, res);
  }
  return Promise.all(
    files.map(async (file): Promise<EncodedDependencyFile> => {
      const res = await githubGet(
        api,
        `${base}/contents/${encode(file)}?ref=${commit}`,
        "application/vnd.github.raw",
      );
      if (res.status === 404) return { path: file, base64: null };
      if (!res.ok) throw await failed(`${file} at ${commit}`, res);
      if ((res.headers.get("content-type") ?? "").includes("application/json")) {
        throw new SourceError(`${file} at ${commit} in ${name} is a directory, not a file`);
      }
      return encodeDependencyFile({ path: file, content: new Uint8Array(await res.arrayBuffer()) });
    }),
  );
}

/** Joins the app directory and a dependency file into a repository path. */
function repoPathOf(appDir: string, file: string): string {
  return appDir ? path.posix.join(appDir, file) : file;
}

/** Strips the app directory again: fingerprints use paths relative to the app. */
function relativeTo(appDir: string, files: EncodedDependencyFile[]): EncodedDependencyFile[] {
  const prefix = appDir ? `${appDir}/` : "";
  return files.map((f) => ({ ...f, path: f.path.slice(prefix.length) }));
}

/** What {@link resolveSource} needs for a GitHub source. */
export interface GitHubAccess {
  provider: github.Provider;
  /** `github:token` (secret) or GITHUB_TOKEN; undefined: unauthenticated. */
  token: pulumi.Input<string | undefined>;
  /** Default `https://api.github.com`. */
  baseUrl?: string;
  /** For tests: the HTTP client. */
  fetch?: typeof fetch;
}

/**
 * Resolves the commit (a pin wins over the branch head) and reads the dependency files at it.
 * `githubAccess` is required for a GitHub source.
 */
export function resolveSource(
  source: SourceConfig,
  release: Pick<ReleaseConfig, "appDir" | "dependencyFiles">,
  githubAccess?: GitHubAccess,
): ResolvedSource {
  const { branch } = source;
  const { appDir } = release;
  const repoFiles = release.dependencyFiles.map((f) => repoPathOf(appDir, f));
  switch (source.kind) {
    case "github": {
      const { owner, repository } = source;
      const commit = source.commit
        ? pulumi.output(source.commit)
        : github
            .getBranchOutput({ repository, branch }, { provider: githubAccess?.provider })
            .sha.apply((sha) =>
              checkSha(sha, `github.getBranch(${owner}/${repository}, ${branch})`),
            );
      const pinned = source.commit !== undefined;
      const files = pulumi.all([commit, pulumi.output(githubAccess?.token)]).apply(([sha, token]) =>
        githubFilesAt(
          {
            baseUrl: (githubAccess?.baseUrl ?? "https://api.github.com").replace(/\/+$/, ""),
            token: token ?? undefined,
            fetch: githubAccess?.fetch,
          },
          { owner, repository },
          sha,
          repoFiles,
          pinned,
        ),
      );
      // The token made the result secret; the files themselves are not.
      return {
        commit,
        dependencyFiles: pulumi.unsecret(files).apply((fs) => relativeTo(appDir, fs)),
      };
    }
    case "local": {
      const commit = source.commit
        ? pulumi.output(source.commit)
        : pulumi.output(localBranchHead(source.path, branch));
      const files = commit.apply((sha) => localFilesAt(source.path, sha, repoFiles));
      return { commit, dependencyFiles: files.apply((fs) => relativeTo(appDir, fs)) };
    }
    case "url":
      // parseConfig guarantees a pinned commit here.
      return { commit: pulumi.output(source.commit ?? "") };
  }
}
