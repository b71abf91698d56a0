/** The release section: what a release does on each host, and how releases roll across hosts. */
import { relativePathProblem, reloadFileProblem } from "../contract";
import { SectionInput, show } from "./section";

/** What each host's release does (passed through whole, from the config to the host script). */
export interface ReleaseConfig {
  /** The app's directory in the repository ("" for the root): holds uwsgi.ini. */
  appDir: string;
  /** Name of the reload trigger in each app root. */
  reloadFile: string;
  /** The health check after the reload: 200 with X-Revision equal to the commit. */
  health: { path: string; timeoutSeconds: number };
  /** Release directories kept per host (live and previous always kept). */
  keepReleases: number;
  /** Dependency files (relative to appDir), in fingerprint order: the host script's guard. */
  dependencyFiles: string[];
}

/** Rollout order across hosts. */
export type RolloutConfig = { strategy: "parallel" } | { strategy: "rolling"; batchSize: number };

export function parseRelease({ values: v, problem }: SectionInput): ReleaseConfig {
  const appDir = v.appDir.replace(/\/+$/, "");
  if (appDir) {
    const why = relativePathProblem(appDir);
    if (why)
      problem("appDir", `${show(appDir)} must be a relative path inside the repository: it ${why}`);
  }
  const whyReload = reloadFileProblem(v.reloadFile);
  if (whyReload) problem("reloadFile", `${show(v.reloadFile)} ${whyReload}`);
  v.dependencyFiles.forEach((file, i) => {
    const why = relativePathProblem(file);
    if (why) {
      problem(
        `dependencyFiles[${i}]`,
        `${show(file)} must be a path relative to touchdeploy:appDir: it ${why}`,
      );
    }
  });
  if (new Set(v.dependencyFiles).size !== v.dependencyFiles.length) {
    problem("dependencyFiles", `lists a file twice: ${show(v.dependencyFiles)}`);
  }
  return {
    appDir,
    reloadFile: v.reloadFile,
    health: { path: v.healthPath, timeoutSeconds: v.healthTimeout },
    keepReleases: v.keepReleases,
    dependencyFiles: v.dependencyFiles,
  };
}

export function parseRollout({ values: v }: SectionInput): RolloutConfig {
  return v.rollout === "rolling"
    ? { strategy: "rolling", batchSize: v.batchSize }
    : { strategy: "parallel" };
}
