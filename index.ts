// touchdeploy: code-only deploys of a uWSGI app to long-lived Docker containers.
// Thin on purpose: load and validate the stack config, resolve the commit, declare the app.
import * as github from "@pulumi/github";
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import {
  AppDeployment,
  directoryHash,
  GitHubDeployKey,
  loadConfig,
  readHostScript,
  resolveSource,
} from "./components";

const { config, sshPrivateKey, githubToken, deployPrivateKey } = loadConfig(__dirname);

const githubProvider =
  config.source.kind === "github"
    ? new github.Provider("github", { owner: config.source.owner, token: githubToken })
    : undefined;
const source = resolveSource(config, githubProvider);

// A private GitHub repository: hosts fetch with a read-only deploy key managed here.
const deployKey =
  config.source.kind === "github" && config.deployKey.kind !== "none"
    ? new GitHubDeployKey(
        `${config.appName}-github`,
        {
          repository: config.source.repository,
          title: `touchdeploy ${pulumi.getStack()} ${config.appName}`,
          privateKey: deployPrivateKey,
        },
        { providers: githubProvider ? [githubProvider] : [] },
      )
    : undefined;

const app = new AppDeployment(config.appName, {
  hosts: config.hosts,
  sshPrivateKey,
  repoUrl: config.repoUrl,
  commit: source.commit,
  dependencies: source.dependencyFiles,
  dependencyFiles: config.dependencyFiles,
  image:
    config.image.kind === "pull"
      ? config.image
      : {
          kind: "build",
          context: "runtime",
          contextHash: directoryHash(path.join(__dirname, "runtime")),
          baseImage: config.image.baseImage,
        },
  appDir: config.appDir,
  reloadFile: config.reloadFile,
  healthPath: config.healthPath,
  healthTimeoutSeconds: config.healthTimeoutSeconds,
  keepReleases: config.keepReleases,
  rollout: config.rollout,
  hostScript: readHostScript(),
  fetchKey:
    deployKey && config.deployKey.kind !== "none"
      ? { privateKey: deployKey.privateKey, knownHosts: config.deployKey.knownHosts }
      : undefined,
});

/** The commit this stack deploys. */
export const commit = source.commit;
/** The dependency fingerprint of that commit (`unmanaged` when not tracked). */
export const dependencyFingerprint = app.fingerprint;
/** Per host: the commit it serves, its URL and its container. */
export const hosts = app.summary;
