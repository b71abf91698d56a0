/**
 * One app across its hosts: the dependency fingerprint and runtime image the commit needs, one
 * {@link HostDeployment} per host, and the rollout order between them. The argument groups
 * (`source`, `release`, each host) are passed through to the hosts whole.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ReleaseConfig, RolloutConfig } from "./config";
import {
  decodeDependencyFile,
  dependencyFingerprint,
  DependencyFile,
  EncodedDependencyFile,
  UNMANAGED_FINGERPRINT,
} from "./fingerprint";
import { HostArgs, HostDeployment, RuntimeImageSource, SourceArgs } from "./hostDeployment";
import { rolloutBatches } from "./rollout";
import { runtimeBuildArgs, runtimeImageName } from "./runtimeImage";

/** How the runtime image is obtained. */
export type AppImage =
  /** Pull `name`; `{fingerprint}` in it is replaced by the commit's dependency fingerprint. */
  | { kind: "pull"; name: string }
  /** Build `context` (relative to the project) on `baseImage` with the commit's dependencies. */
  | { kind: "build"; context: string; contextHash: pulumi.Input<string>; baseImage: string };

/** One host of the app, named (the name becomes resource and container names). */
export interface NamedHostArgs extends HostArgs {
  name: string;
}

export interface AppDeploymentArgs {
  /** The hosts, in rollout order. */
  hosts: readonly NamedHostArgs[];
  /** Private key for ssh hosts (a secret). */
  sshPrivateKey?: pulumi.Input<string>;
  /** What every host fetches. */
  source: SourceArgs & {
    /**
     * The dependency files at the commit (raw bytes, base64), or undefined when unknown: then
     * images are not dependency-aware and the fingerprint is `unmanaged`.
     */
    dependencies?: pulumi.Input<EncodedDependencyFile[]>;
  };
  /** The runtime image. */
  image: AppImage;
  /**
   * What each host's release does (appDir, reloadFile, health, hostOptions, dependencyFiles,
   * releaseCommand, env, stateDirs, processes).
   */
  release: ReleaseConfig;
  /**
   * The app's secret environment by name (a secret): sent only on each release command's
   * stdin. Default: none.
   */
  secretEnv?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** `parallel`, or `rolling` in batches. */
  rollout: RolloutConfig;
  /** Text of host/touchdeploy.sh. */
  hostScript: string;
  /** Per ssh host, where the Docker provider's SSH files go on this machine (operatorSsh.ts). */
  operatorSshDir?: (hostName: string) => string;
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

    const { dependencies: declared, ...source } = args.source;
    const dependencies = declared
      ? pulumi.output(declared).apply((files) => files.map(decodeDependencyFile))
      : undefined;
    const managed =
      dependencies !== undefined &&
      (args.image.kind === "build" || args.image.name.includes("{fingerprint}"));
    this.fingerprint =
      managed && dependencies
        ? dependencies.apply(dependencyFingerprint)
        : pulumi.output(UNMANAGED_FINGERPRINT);

    const image = this.runtimeImage(name, args, dependencies);

    // The release command runs once per rollout, on its first host, unless every host runs
    // it: then every other host's release waits for the first host's (a migration is applied
    // once, before any host switches to code that needs it).
    const once = args.release.releaseCommand?.on === "first-host";
    this.hosts = [];
    let previousBatch: HostDeployment[] = [];
    for (const batch of rolloutBatches(args.hosts, args.rollout)) {
      const after = previousBatch.map((h) => h.release);
      previousBatch = batch.map(({ name: hostName, ...host }) => {
        const first = this.hosts[0] as HostDeployment | undefined;
        const deployment = new HostDeployment(
          hostName,
          {
            appName: name,
            host,
            sshPrivateKey: args.sshPrivateKey,
            source,
            release: args.release,
            secretEnv: args.secretEnv,
            image,
            fingerprint: this.fingerprint,
            hostScript: args.hostScript,
            operatorSshDir: args.operatorSshDir?.(hostName),
            after,
            runsReleaseCommand: !once || first === undefined,
            releaseAfter: once && first && !after.includes(first.release) ? [first.release] : [],
          },
          { parent: this },
        );
        this.hosts.push(deployment);
        return deployment;
      });
    }

    const hosts = this.hosts;
    this.summary = pulumi
      .all(hosts.map((h) => pulumi.all([h.commit, h.url])))
      .apply((values) =>
        Object.fromEntries(
          args.hosts.map((host, i): [string, HostSummary] => [
            host.name,
            { commit: values[i][0], url: values[i][1], container: hosts[i].containerName },
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
      name: pulumi
        .all([contextHash, buildArgs])
        .apply(([hash, ba]) => runtimeImageName(name, hash, ba)),
      context,
      buildArgs: buildArgs.apply((ba) => ({ ...ba })),
    };
  }
}
