/**
 * One app across its hosts: the dependency fingerprint and runtime image the commit needs, one
 * {@link HostDeployment} per host, and the rollout order between them.
 */
import * as pulumi from "@pulumi/pulumi";
import { HostConfig, RolloutConfig } from "./config";
import { dependencyFingerprint, DependencyFile, UNMANAGED_FINGERPRINT } from "./fingerprint";
import { FetchKey, HostDeployment, RuntimeImageSource } from "./hostDeployment";
import { rolloutBatches } from "./rollout";
import { runtimeBuildArgs, runtimeImageName } from "./runtimeImage";

/** How the runtime image is obtained. */
export type AppImage =
  /** Pull `name`; `{fingerprint}` in it is replaced by the commit's dependency fingerprint. */
  | { kind: "pull"; name: string }
  /** Build `context` (relative to the project) on `baseImage` with the commit's dependencies. */
  | { kind: "build"; context: string; contextHash: string; baseImage: string };

export interface AppDeploymentArgs {
  /** The hosts, in rollout order. */
  hosts: readonly HostConfig[];
  /** Private key for ssh hosts (a secret). */
  sshPrivateKey?: pulumi.Input<string>;
  /** URL every host fetches from. */
  repoUrl: string;
  /** The commit to deploy, 40 hex. */
  commit: pulumi.Input<string>;
  /**
   * The configured dependency files at that commit, or undefined when unknown: then images are
   * not dependency-aware and the fingerprint is `unmanaged`.
   */
  dependencies?: pulumi.Input<DependencyFile[]>;
  /** The names of the dependency files (relative to appDir), in fingerprint order. */
  dependencyFiles: readonly string[];
  /** The runtime image. */
  image: AppImage;
  /** Directory of the app in the repository ("" for the root). */
  appDir: string;
  /** Name of the touch-reload trigger file in each root. */
  reloadFile: string;
  /** Health check path. */
  healthPath: string;
  /** Seconds a host waits for health before rolling back. */
  healthTimeoutSeconds: number;
  /** Releases kept per host. */
  keepReleases: number;
  /** `parallel`, or `rolling` in batches. */
  rollout: RolloutConfig;
  /** Text of host/touchdeploy.sh. */
  hostScript: string;
  /** The key every host fetches with, if the repository needs one. */
  fetchKey?: FetchKey;
}

/** What each host serves, as a stack output. */
export interface HostSummary {
  commit: string;
  url: string;
  container: string;
}

export class AppDeployment extends pulumi.ComponentResource {
  /** The per-host components, in rollout order. */
  readonly hosts: HostDeployment[];
  /** The dependency fingerprint of the commit (or `unmanaged`). */
  readonly fingerprint: pulumi.Output<string>;
  /** Per host: the commit it serves, its URL and its container. */
  readonly summary: pulumi.Output<Record<string, HostSummary>>;

  constructor(name: string, args: AppDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("touchdeploy:index:AppDeployment", name, {}, opts);
    if (args.hosts.length === 0) {
      throw new pulumi.ResourceError("`hosts` must list at least one host", this);
    }

    const dependencies = args.dependencies ? pulumi.output(args.dependencies) : undefined;
    const managed =
      dependencies !== undefined &&
      (args.image.kind === "build" || args.image.name.includes("{fingerprint}"));
    this.fingerprint =
      managed && dependencies
        ? dependencies.apply(dependencyFingerprint)
        : pulumi.output(UNMANAGED_FINGERPRINT);

    const image = this.runtimeImage(name, args, dependencies);

    this.hosts = [];
    let previousBatch: HostDeployment[] = [];
    for (const batch of rolloutBatches(args.hosts, args.rollout)) {
      const after = previousBatch.map((h) => h.release);
      previousBatch = batch.map(
        (host) =>
          new HostDeployment(
            host.name,
            {
              appName: name,
              target: host.target,
              hostKey: host.hostKey,
              sshPrivateKey: args.sshPrivateKey,
              root: host.root,
              port: host.port,
              bindAddress: host.bindAddress,
              appDir: args.appDir,
              reloadFile: args.reloadFile,
              repoUrl: args.repoUrl,
              commit: args.commit,
              image,
              fingerprint: this.fingerprint,
              dependencyFiles: args.dependencyFiles,
              healthPath: args.healthPath,
              healthTimeoutSeconds: args.healthTimeoutSeconds,
              keepReleases: args.keepReleases,
              hostScript: args.hostScript,
              fetchKey: args.fetchKey,
              after,
            },
            { parent: this },
          ),
      );
      this.hosts.push(...previousBatch);
    }

    const hosts = this.hosts;
    this.summary = pulumi
      .all(hosts.map((h) => h.commit))
      .apply((commits) =>
        Object.fromEntries(
          args.hosts.map((host, i): [string, HostSummary] => [
            host.name,
            { commit: commits[i], url: hosts[i].url, container: hosts[i].containerName },
          ]),
        ),
      );
    this.registerOutputs({ fingerprint: this.fingerprint, summary: this.summary });
  }

  private runtimeImage(
    name: string,
    args: AppDeploymentArgs,
    dependencies: pulumi.Output<DependencyFile[]> | undefined,
  ): RuntimeImageSource {
    if (args.image.kind === "pull") {
      const template = args.image.name;
      return {
        kind: "pull",
        name: this.fingerprint.apply((fp) => template.replace(/\{fingerprint\}/g, fp)),
      };
    }
    const { context, contextHash, baseImage } = args.image;
    const buildArgs = (dependencies ?? pulumi.output([] as DependencyFile[])).apply((files) => {
      try {
        return runtimeBuildArgs(baseImage, files);
      } catch (err) {
        throw new pulumi.ResourceError((err as Error).message, this);
      }
    });
    return {
      kind: "build",
      name: buildArgs.apply((ba) => runtimeImageName(name, contextHash, ba)),
      context,
      buildArgs: buildArgs.apply((ba) => ({ ...ba })),
    };
  }
}
