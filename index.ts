// touchdeploy: code-only deploys of a uWSGI app to long-lived Docker containers.
// Thin on purpose: load and validate the stack config, resolve the commit, declare the app.
import * as github from "@pulumi/github";
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { AppDeployment, GitHubDeployKey } from "./components";
import { loadConfig } from "./components/config";
import { readHostScript } from "./components/hostScript";
import { dockerContextProblem, operatorSshDir } from "./components/operatorSsh";
import { runtimeContextHash } from "./components/runtimeImage";
import { resolveSource } from "./components/source";

const contextProblem = dockerContextProblem(process.env);
if (contextProblem) {
  throw new pulumi.RunError(contextProblem);
}
const { config, sshPrivateKey, githubToken, deployPrivateKey, secretEnv } = loadConfig(__dirname);
const { source, release } = config;

// GitHub Enterprise: `github:baseUrl` (https://HOST/api/v3/) for the provider and the file reads.
const githubBaseUrl = new pulumi.Config("github").get("baseUrl");
const githubProvider =
  source.kind === "github"
    ? new github.Provider("github", {
        owner: source.owner,
        token: githubToken,
        baseUrl: githubBaseUrl,
      })
    : undefined;
const resolved = resolveSource(
  source,
  release,
  githubProvider && {
    provider: githubProvider,
    token: githubToken.apply((t) => t ?? process.env.GITHUB_TOKEN),
    baseUrl: githubBaseUrl,
  },
);

// A private GitHub repository: hosts fetch with a read-only deploy key managed here.
const deployKey =
  source.kind === "github" && source.deployKey.kind !== "none"
    ? new GitHubDeployKey(
        `${config.appName}-github`,
        {
          repository: source.repository,
          title: `touchdeploy ${pulumi.getStack()} ${config.appName}`,
          privateKey: deployPrivateKey,
        },
        { providers: githubProvider ? [githubProvider] : [] },
      )
    : undefined;

const app = new AppDeployment(config.appName, {
  hosts: config.hosts,
  sshPrivateKey,
  source: {
    repoUrl: source.repoUrl,
    commit: resolved.commit,
    dependencies: resolved.dependencyFiles,
    fetchKey:
      deployKey && source.deployKey.kind !== "none"
        ? {
            privateKey: deployKey.privateKey,
            knownHosts: source.deployKey.knownHosts,
            // The first fetch (and every rotation) must not race the key's registration.
            registeredBy: [deployKey.deployKey],
          }
        : undefined,
  },
  image:
    config.image.kind === "pull"
      ? config.image
      : {
          kind: "build",
          context: "runtime",
          contextHash: runtimeContextHash(path.join(__dirname, "runtime")),
          baseImage: config.image.baseImage,
        },
  release,
  secretEnv,
  rollout: config.rollout,
  hostScript: readHostScript(),
  operatorSshDir: (host) => operatorSshDir(pulumi.getProject(), pulumi.getStack(), host),
});

/** The commit this stack deploys. */
export const commit = resolved.commit;
/** The dependency fingerprint of that commit (`unmanaged` when not tracked). */
export const dependencyFingerprint = app.fingerprint;
/** Per host: the commit it serves, its URL and its container. */
export const hosts = app.summary;
