/**
 * Which commit to deploy, and the dependency files at exactly that commit. Read from GitHub with
 * the provider's invokes, or from a local repository with isomorphic-git (plain file reads:
 * nothing is executed, in preview or otherwise).
 */
import * as github from "@pulumi/github";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as git from "isomorphic-git";
import * as path from "path";
import { SHA_PATTERN, TouchdeployConfig } from "./config";
import { DependencyFile } from "./fingerprint";

/** The commit to deploy and what the program knows of its dependencies. */
export interface ResolvedSource {
  /** Full 40-hex SHA. */
  commit: pulumi.Output<string>;
  /**
   * The configured dependency files at that commit, or undefined when they cannot be read
   * (a plain git URL with a pinned commit): the deploy is then not dependency-aware.
   */
  dependencyFiles?: pulumi.Output<DependencyFile[]>;
}

function checkSha(sha: string, where: string): string {
  if (!SHA_PATTERN.test(sha)) {
    throw new Error(`${where} returned ${JSON.stringify(sha)}, which is not a full commit SHA`);
  }
  return sha;
}

/** The SHA a local branch points to. */
export async function localBranchHead(repoPath: string, branch: string): Promise<string> {
  const dir = await git.findRoot({ fs, filepath: repoPath }).catch(() => {
    throw new Error(`touchdeploy:repoPath ${JSON.stringify(repoPath)} is not a git repository`);
  });
  try {
    return checkSha(
      await git.resolveRef({ fs, dir, ref: `refs/heads/${branch}` }),
      `branch ${branch}`,
    );
  } catch (err) {
    const branches = await git.listBranches({ fs, dir }).catch(() => []);
    throw new Error(
      `touchdeploy:branch ${JSON.stringify(branch)} does not exist in ${dir}` +
        ` (branches: ${branches.join(", ") || "none"}): ${(err as Error).message}`,
    );
  }
}

/** Files at a commit of a local repository; a missing file is `null`. */
export async function localFilesAt(
  repoPath: string,
  commit: string,
  files: readonly string[],
): Promise<DependencyFile[]> {
  const dir = await git.findRoot({ fs, filepath: repoPath });
  return Promise.all(
    files.map(async (file) => {
      try {
        const { blob } = await git.readBlob({ fs, dir, oid: commit, filepath: file });
        return { path: file, content: Buffer.from(blob).toString("utf8") };
      } catch (err) {
        if ((err as { code?: string }).code === "NotFoundError") {
          return { path: file, content: null };
        }
        throw err;
      }
    }),
  );
}

/** Joins the app directory and a dependency file into a repository path. */
function repoPathOf(appDir: string, file: string): string {
  return appDir ? path.posix.join(appDir, file) : file;
}

/** Strips the app directory again: fingerprints use paths relative to the app. */
function relativeTo(appDir: string, files: DependencyFile[]): DependencyFile[] {
  const prefix = appDir ? `${appDir}/` : "";
  return files.map((f) => ({ ...f, path: f.path.slice(prefix.length) }));
}

/**
 * Resolves the commit (a pin wins over the branch head) and reads the dependency files at it.
 * `githubProvider` is required for a GitHub source.
 */
export function resolveSource(
  config: TouchdeployConfig,
  githubProvider?: github.Provider,
): ResolvedSource {
  const { source, branch, appDir, dependencyFiles } = config;
  const repoFiles = dependencyFiles.map((f) => repoPathOf(appDir, f));
  switch (source.kind) {
    case "github": {
      const repository = source.repository;
      const invokeOpts = { provider: githubProvider };
      const commit = config.commit
        ? pulumi.output(config.commit)
        : github
            .getBranchOutput({ repository, branch }, invokeOpts)
            .sha.apply((sha) =>
              checkSha(sha, `github.getBranch(${source.owner}/${repository}, ${branch})`),
            );
      const files = commit.apply((sha) =>
        pulumi.all(
          repoFiles.map((file) =>
            github
              .getRepositoryFileOutput({ repository, file, branch: sha }, invokeOpts)
              .apply((f): DependencyFile => ({
                path: file,
                // The provider answers an empty result (no sha) for a file that does not exist.
                content: f.sha ? f.content : null,
              })),
          ),
        ),
      );
      return { commit, dependencyFiles: files.apply((fs) => relativeTo(appDir, fs)) };
    }
    case "local": {
      const commit = config.commit
        ? pulumi.output(config.commit)
        : pulumi.output(localBranchHead(source.path, branch));
      const files = commit.apply((sha) => localFilesAt(source.path, sha, repoFiles));
      return { commit, dependencyFiles: files.apply((fs) => relativeTo(appDir, fs)) };
    }
    case "url":
      // parseConfig guarantees a pinned commit here.
      return { commit: pulumi.output(config.commit ?? "") };
  }
}
