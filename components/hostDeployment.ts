/**
 * One host of an app: its app root, runtime image, long-lived container, and the two commands
 * keyed on the commit that fetch it and make it live. A new commit replaces only the commands;
 * the container's inputs never mention the commit.
 */
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { UNMANAGED_FINGERPRINT } from "./fingerprint";
import { HostTarget } from "./hostSpec";
import {
  fetchKeyPaths,
  hostScriptCommand,
  HostScriptOptions,
  HostScriptSubcommand,
  installFetchKeyCommand,
} from "./hostScript";

/** Where the app root is mounted in the container (the runtime image's TOUCHDEPLOY_ROOT). */
export const CONTAINER_APP_ROOT = "/srv/app";
/** The port uWSGI listens on in the container (the runtime image's TOUCHDEPLOY_PORT). */
export const CONTAINER_PORT = 8000;

/** The runtime image of a host: pulled by name, or built from a context directory. */
export type RuntimeImageSource =
  | { kind: "pull"; name: pulumi.Input<string> }
  | {
      kind: "build";
      /** Image name and tag to build, e.g. `touchdeploy/shop-runtime:0123abcd`. */
      name: pulumi.Input<string>;
      /** Build context, relative to the project directory (the state stays portable). */
      context: string;
      buildArgs: pulumi.Input<Record<string, pulumi.Input<string>>>;
    };

export interface HostDeploymentArgs {
  /** The app's name; the container is named `<appName>-<host name>`. */
  appName: string;
  /** How to reach the host: the local machine, or SSH. */
  target: HostTarget;
  /** `TYPE BASE64` host key of an ssh target; every connection verifies it. Required for ssh. */
  hostKey?: string;
  /** Private key for ssh targets (a secret). Required for ssh. */
  sshPrivateKey?: pulumi.Input<string>;
  /** Absolute app root on the host: releases/, current, the reload trigger. */
  root: string;
  /** Port published on the host. */
  port: number;
  /** Address the port is published on, e.g. `0.0.0.0`. */
  bindAddress: string;
  /** The app's directory inside the repository ("" for the root): holds uwsgi.ini. */
  appDir: string;
  /** Name of the touch-reload trigger file in the root. */
  reloadFile: string;
  /** URL the host fetches from. */
  repoUrl: string;
  /** The commit to deploy, 40 hex. */
  commit: pulumi.Input<string>;
  /** The runtime image. */
  image: RuntimeImageSource;
  /**
   * Dependency fingerprint the image is built for, or `unmanaged`. A container input: when it
   * changes, the container is replaced (a container deploy).
   */
  fingerprint: pulumi.Input<string>;
  /** Dependency files the host script fingerprints to guard against hot-loading new dependencies. */
  dependencyFiles: readonly string[];
  /** Health check path; the release waits for 200 with X-Revision equal to the commit. */
  healthPath: string;
  /** Seconds to wait for the new commit to be healthy before rolling back. */
  healthTimeoutSeconds: number;
  /** Release directories to keep on the host (live and previous are always kept). */
  keepReleases: number;
  /** Text of host/touchdeploy.sh, sent on stdin. */
  hostScript: string;
  /**
   * The key the host fetches with (a GitHub deploy key) and the git server's known_hosts
   * lines. Default: none (a public repository, or one the host can already read).
   */
  fetchKey?: FetchKey;
  /**
   * Resources this host waits for before its container or release changes: the previous
   * rollout batch's releases. Default: none.
   */
  after?: pulumi.Input<pulumi.Resource>[];
}

/** A private key for fetching (a secret) and the host keys of the git server. */
export interface FetchKey {
  privateKey: pulumi.Input<string>;
  knownHosts: readonly string[];
}

/** Options every command resource gets: a local or a remote command with the same shape. */
interface CommandSpec {
  create: pulumi.Input<string>;
  stdin: pulumi.Input<string>;
  triggers?: pulumi.Input<unknown>[];
  /** `none` for commands that may see secrets. */
  logging?: "stdoutAndStderr" | "none";
}

/** The URL where a host serves the app, as seen from outside. */
export function publicUrl(target: HostTarget, bindAddress: string, port: number): string {
  const address =
    bindAddress !== "0.0.0.0"
      ? bindAddress === "127.0.0.1"
        ? "localhost"
        : bindAddress
      : target.kind === "local"
        ? "localhost"
        : target.address;
  return `http://${address}:${port}/`;
}

/** The health URL as seen from the host itself (the host script polls it there). */
export function hostHealthUrl(bindAddress: string, port: number, healthPath: string): string {
  const address = bindAddress === "0.0.0.0" ? "127.0.0.1" : bindAddress;
  return `http://${address}:${port}${healthPath}`;
}

/** The Docker endpoint of a target: the local daemon, or the daemon over SSH. */
export function dockerProviderArgs(target: HostTarget, hostKey?: string): docker.ProviderArgs {
  if (target.kind === "local") {
    return {};
  }
  // The docker CLI's ssh helper runs the local `ssh` binary. Pin the same host key the commands
  // verify (KnownHostsCommand prints it as a known_hosts line) and never prompt.
  const knownHost = target.port === 22 ? target.address : `[${target.address}]:${target.port}`;
  return {
    host: `ssh://${target.user}@${target.address}:${target.port}`,
    sshOpts: [
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      `KnownHostsCommand=/bin/echo ${knownHost} ${hostKey ?? ""}`,
    ],
  };
}

export class HostDeployment extends pulumi.ComponentResource {
  /** The Docker provider for this host's daemon. */
  readonly dockerProvider: docker.Provider;
  /** Creates the app root once (idempotent). */
  readonly appRoot: pulumi.CustomResource;
  /** The runtime image on this host's daemon. */
  readonly image: docker.RemoteImage;
  /** Installs the fetch key from stdin, when there is one (updated when the key rotates). */
  readonly fetchKey?: pulumi.CustomResource;
  /** Fetches the commit into releases/<sha> (replaced per commit). */
  readonly fetch: pulumi.CustomResource;
  /** The long-lived container; its inputs do not depend on the commit. */
  readonly container: docker.Container;
  /** Switches current, reloads once, waits for health (replaced per commit and per container). */
  readonly release: pulumi.CustomResource;
  /** The container's name. */
  readonly containerName: string;
  /** The commit this host serves once the release succeeded. */
  readonly commit: pulumi.Output<string>;
  /** Where the app is served. */
  readonly url: string;

  constructor(name: string, args: HostDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("touchdeploy:index:HostDeployment", name, {}, opts);
    if (args.target.kind === "ssh" && (!args.hostKey || !args.sshPrivateKey)) {
      throw new pulumi.ResourceError(
        `host ${JSON.stringify(name)}: an ssh target needs \`hostKey\` and \`sshPrivateKey\``,
        this,
      );
    }
    const after = args.after ?? [];
    const script = args.hostScript;
    const scriptCommand = (
      subcommand: HostScriptSubcommand,
      options: Record<string, pulumi.Input<string | number | undefined>>,
    ): pulumi.Output<string> =>
      pulumi.output(options).apply((o) => hostScriptCommand(subcommand, o as HostScriptOptions));

    const runOnHost = (
      role: string,
      spec: CommandSpec,
      dependsOn: pulumi.Input<pulumi.Resource>[],
    ): pulumi.CustomResource => {
      const resourceOpts: pulumi.CustomResourceOptions = { parent: this, dependsOn };
      if (args.target.kind === "local") {
        return new command.local.Command(
          `${name}-${role}`,
          { ...spec, addPreviousOutputInEnv: false },
          resourceOpts,
        );
      }
      return new command.remote.Command(
        `${name}-${role}`,
        {
          ...spec,
          addPreviousOutputInEnv: false,
          connection: {
            host: args.target.address,
            port: args.target.port,
            user: args.target.user,
            privateKey: args.sshPrivateKey,
            hostKey: args.hostKey,
          },
        },
        resourceOpts,
      );
    };

    this.containerName = `${args.appName}-${name}`;
    this.url = publicUrl(args.target, args.bindAddress, args.port);

    this.dockerProvider = new docker.Provider(
      `${name}-docker`,
      dockerProviderArgs(args.target, args.hostKey),
      { parent: this },
    );

    // The app root: created once; the container needs it before it starts.
    this.appRoot = runOnHost(
      "app-root",
      {
        create: hostScriptCommand("init", { root: args.root, "reload-file": args.reloadFile }),
        stdin: script,
      },
      [],
    );

    this.image =
      args.image.kind === "pull"
        ? new docker.RemoteImage(
            `${name}-image`,
            { name: args.image.name, keepLocally: true },
            { parent: this, provider: this.dockerProvider },
          )
        : new docker.RemoteImage(
            `${name}-image`,
            {
              name: args.image.name,
              keepLocally: true,
              build: {
                context: args.image.context,
                dockerfile: "Dockerfile",
                buildArgs: args.image.buildArgs,
              },
            },
            { parent: this, provider: this.dockerProvider },
          );

    // The fetch key: its own command, so rotating the key rewrites the file and nothing else
    // (fetch and release name only its path). Secret on stdin, and no logs at all.
    const keyFiles = fetchKeyPaths(args.root);
    if (args.fetchKey) {
      this.fetchKey = runOnHost(
        "fetch-key",
        {
          create: installFetchKeyCommand(args.root, args.fetchKey.knownHosts),
          stdin: pulumi.secret(args.fetchKey.privateKey),
          logging: "none",
        },
        [this.appRoot],
      );
    }

    // Fetch + extract: replaced for each commit. Runs before the container so that a container
    // deploy (new dependencies) finds the release ready when the new container starts.
    this.fetch = runOnHost(
      "fetch",
      {
        create: scriptCommand("prepare", {
          root: args.root,
          repo: args.repoUrl,
          commit: args.commit,
          "ssh-key": args.fetchKey ? keyFiles.key : undefined,
          "known-hosts": args.fetchKey ? keyFiles.knownHosts : undefined,
        }),
        stdin: script,
        triggers: [args.commit],
      },
      this.fetchKey ? [this.appRoot, this.fetchKey] : [this.appRoot],
    );

    const envs = pulumi
      .output(args.fingerprint)
      .apply((fingerprint) =>
        [
          `TOUCHDEPLOY_APP_SUBDIR=${args.appDir}`,
          `TOUCHDEPLOY_FINGERPRINT=${fingerprint}`,
          `TOUCHDEPLOY_RELOAD_FILE=${args.reloadFile}`,
        ].sort(),
      );
    this.container = new docker.Container(
      `${name}-container`,
      {
        name: this.containerName,
        // The image id, not its name: the state holds the id (pulumi-docker#325).
        image: this.image.imageId,
        envs,
        // The code mount: the whole app root, read-only. Never a release directory.
        volumes: [{ hostPath: args.root, containerPath: CONTAINER_APP_ROOT, readOnly: true }],
        ports: [
          { internal: CONTAINER_PORT, external: args.port, ip: args.bindAddress, protocol: "tcp" },
        ],
        restart: "unless-stopped",
        healthcheck: {
          tests: [
            "CMD",
            "python3",
            "-c",
            "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)",
            `http://127.0.0.1:${CONTAINER_PORT}${args.healthPath}`,
          ],
          interval: "10s",
          timeout: "5s",
          startPeriod: "30s",
          retries: 3,
        },
        labels: [
          { label: "touchdeploy.app", value: args.appName },
          { label: "touchdeploy.host", value: name },
          { label: "touchdeploy.root", value: args.root },
        ],
        // Set explicitly: left to the daemon they show up as perpetual diffs.
        networkMode: "bridge",
        logDriver: "json-file",
        logOpts: { "max-size": "10m", "max-file": "3" },
        mustRun: true,
        // Do not wait for "healthy": the first release comes after the container.
        wait: false,
        destroyGraceSeconds: 30,
      },
      {
        parent: this,
        provider: this.dockerProvider,
        // A fixed name and host port cannot exist twice: stop the old one first.
        deleteBeforeReplace: true,
        dependsOn: [this.appRoot, this.fetch, ...after],
      },
    );

    // The container's fingerprint as the container itself declares it (also right under
    // `pulumi up --target` of the release alone). With an unmanaged image there is nothing to
    // guard, so the host script is not asked to (it would warn on every deploy).
    const containerFingerprint = this.container.envs.apply((list) => {
      const fingerprint = (list ?? [])
        .find((e) => e.startsWith("TOUCHDEPLOY_FINGERPRINT="))
        ?.slice("TOUCHDEPLOY_FINGERPRINT=".length);
      return fingerprint === UNMANAGED_FINGERPRINT ? undefined : fingerprint;
    });
    const guardedFiles = containerFingerprint.apply((fp) =>
      fp === undefined ? undefined : args.dependencyFiles.join(" "),
    );
    this.release = runOnHost(
      "release",
      {
        create: scriptCommand("activate", {
          root: args.root,
          commit: args.commit,
          subdir: args.appDir,
          "reload-file": args.reloadFile,
          "health-url": hostHealthUrl(args.bindAddress, args.port, args.healthPath),
          "health-timeout": args.healthTimeoutSeconds,
          keep: args.keepReleases,
          "dependency-files": guardedFiles,
          "container-fingerprint": containerFingerprint,
        }),
        stdin: script,
        // A new commit, or a new container, makes a new release.
        triggers: [args.commit, this.container.id],
      },
      [this.fetch, this.container, ...after],
    );

    this.commit = pulumi.all([args.commit, this.release.urn]).apply(([commit]) => commit);
    this.registerOutputs({
      commit: this.commit,
      url: this.url,
      containerName: this.containerName,
    });
  }
}
