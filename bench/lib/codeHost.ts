/**
 * Code deploys: "hosts" on this machine, each an app root (initialised by the host script) and
 * a long-lived runtime container serving it, and the host script's `deploy` run against one.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CONTAINER_UID } from "../../components/contract";
import { RELOAD_LOG_LINE, UWSGI_RELOAD_LOG_LINE } from "../../test/harness/app";
import { dependencyFingerprintOfDir } from "../../test/harness/fingerprint";
import { APP_SUBDIR, type TestRepo } from "../../test/harness/git";
import {
  describeRun,
  hostScriptCommand,
  hostScriptText,
  runHostScript,
} from "../../test/harness/hostScript";
import { start, type RunResult } from "../../test/harness/process";
import { startBenchContainer, type BenchContainer } from "./containers";

/** What the Pulumi program passes (components/config.ts defaults). */
export const DEPENDENCY_FILES = ["requirements.txt", "Aptfile"];
export const RELOAD_FILE = ".reload";
export const HEALTH_TIMEOUT_S = 60;
export const KEEP_RELEASES = 5;

export interface CodeHost {
  label: string;
  root: string;
  container: BenchContainer;
  fingerprint: string;
}

/** The step durations the host script prints (seconds), where it printed them. */
export interface ScriptSteps {
  fetch?: number;
  extract?: number;
  switch?: number;
  /** From the touch to the health check seeing the new commit. */
  healthyAfterReload?: number;
  prune?: number;
  /** The script's own total ("deployed ... in X"). */
  deployed?: number;
}

/** uWSGI's side of one reload, from the container log's timestamps (ms). */
export interface ReloadPhases {
  /** Touch -> the master notices it (DETECT_LINES: touch-reload's check or fs-reload's event). */
  detectMs?: number;
  /** Noticed -> all workers reaped: the master re-execs (RELOAD_LOG_LINE). */
  reapMs?: number;
  /** Re-exec -> the new workers spawned (config, Python, app import, fork). */
  restartMs?: number;
  /** Workers spawned -> the health check saw the new commit (script output). */
  healthSeenMs?: number;
  /** Graceful reloads (master re-execs, RELOAD_LOG_LINE) for this deploy: must be 1. */
  reloads: number;
  /** Lines saying the trigger was noticed (DETECT_LINES) for this deploy: 1 expected. */
  detections: number;
}

export interface CodeDeployResult {
  sha: string;
  host: string;
  result: RunResult;
  /** The script's exit code (0 unless `allowFailure`). */
  code: number;
  /** CPU seconds of the script and every process it ran (with `measureCpu`). */
  scriptCpuSeconds?: number;
  /** From spawning the script to its exit (it exits once the new commit is served). */
  totalMs: number;
  /** Epoch ms of spawning the script and of its exit. */
  startedAt: number;
  endedAt: number;
  /**
   * Epoch ms of the touch of the reload trigger: the trigger's ctime (the kernel's clock at the
   * utimensat), read when the script has exited and reported the touch.
   */
  touchedAt?: number;
  steps: ScriptSteps;
}

/** Creates `count` hosts: app root + runtime container (not yet serving: no release). */
export async function createCodeHosts(opts: {
  count: number;
  label: string;
  dir: string;
  repo: TestRepo;
  image: string;
  /** More container environment (a design's, lib/designs.ts). */
  env?: string[];
  sysctls?: Record<string, string>;
}): Promise<CodeHost[]> {
  const fingerprint = dependencyFingerprintOfDir(
    path.join(opts.repo.work, APP_SUBDIR),
    DEPENDENCY_FILES,
  );
  const hosts: CodeHost[] = [];
  for (let i = 0; i < opts.count; i++) {
    const label = opts.count === 1 ? opts.label : `${opts.label}${i + 1}`;
    const root = path.join(opts.dir, label, "root");
    fs.mkdirSync(path.dirname(root), { recursive: true, mode: 0o755 });
    const init = await runHostScript(["init", "--root", root, "--reload-file", RELOAD_FILE]);
    if (init.code !== 0) throw new Error(`init of ${root} failed: ${describeRun(init)}`);
    const container = await startBenchContainer({
      name: label,
      image: opts.image,
      env: [
        `TOUCHDEPLOY_APP_SUBDIR=${APP_SUBDIR}`,
        `TOUCHDEPLOY_FINGERPRINT=${fingerprint}`,
        `TOUCHDEPLOY_RELOAD_FILE=${RELOAD_FILE}`,
        ...(opts.env ?? []),
      ],
      binds: [`${root}:/srv/app:ro`],
      sysctls: opts.sysctls,
      // As the program declares it (the user setup reports: 10001 for a root deploy user).
      user: `${CONTAINER_UID}:${CONTAINER_UID}`,
      hardened: true,
    });
    hosts.push({ label, root, container, fingerprint });
  }
  return hosts;
}

/**
 * The arguments the Pulumi program's fetch + release pass, as one `deploy` (with --container:
 * the script asks the runtime about the generation it starts, see host/README.md).
 */
export function deployArgs(
  host: CodeHost,
  repo: TestRepo,
  sha: string,
  healthTimeout = HEALTH_TIMEOUT_S,
): string[] {
  return [
    "deploy",
    "--root",
    host.root,
    "--repo",
    repo.origin,
    "--commit",
    sha,
    "--subdir",
    APP_SUBDIR,
    "--reload-file",
    RELOAD_FILE,
    "--health-url",
    host.container.healthUrl,
    "--health-timeout",
    String(healthTimeout),
    "--keep",
    String(KEEP_RELEASES),
    "--dependency-files",
    DEPENDENCY_FILES.join(" "),
    "--container-fingerprint",
    host.fingerprint,
    "--container",
    host.container.name,
  ];
}

export interface CodeDeployOptions {
  /** Replaces the script's text (experiments). */
  scriptText?: string;
  /** --health-timeout (default HEALTH_TIMEOUT_S, what the program passes). */
  healthTimeout?: number;
  /** Return whatever the script exits with, instead of throwing when it is not 0. */
  allowFailure?: boolean;
  /**
   * Also measure the CPU seconds of the script and its children: `/bin/sh -c` runs the same
   * command and then the shell's `times`, whose second line is its children's user + system.
   */
  measureCpu?: boolean;
}

/** "0m0.123s 0m0.045s" (dash's `times`): seconds. */
function parseTimes(line: string): number {
  const parts = [...line.matchAll(/(\d+)m([\d.]+)s/g)];
  return parts.reduce((a, m) => a + Number(m[1]) * 60 + Number(m[2]), 0);
}

/**
 * Runs the host script's `deploy` as the program does (`/bin/sh -c "bash -s -- ..."` with the
 * script on stdin); throws when it fails (unless `opts.allowFailure`).
 */
export async function codeDeploy(
  host: CodeHost,
  repo: TestRepo,
  sha: string,
  opts: CodeDeployOptions = {},
): Promise<CodeDeployResult> {
  const startedAt = Date.now();
  const command = hostScriptCommand(deployArgs(host, repo, sha, opts.healthTimeout));
  const started = start(
    "/bin/sh",
    ["-c", opts.measureCpu ? `${command}; rc=$?; times >&2; exit $rc` : command],
    { input: opts.scriptText ?? hostScriptText(), timeoutMs: 180_000 },
  );
  const result = await started.result;
  const endedAt = startedAt + result.durationMs;
  let scriptCpuSeconds: number | undefined;
  if (opts.measureCpu) {
    const lines = result.stderr.trimEnd().split("\n");
    scriptCpuSeconds = parseTimes(lines[lines.length - 1] ?? "");
  }
  if (result.code !== 0 && !opts.allowFailure) {
    throw new Error(
      `deploy of ${sha.slice(0, 12)} to ${host.label} failed: ${describeRun(result)}`,
    );
  }
  // The script touches the trigger once per deploy (a second touch only on a rollback: then the
  // ctime is the rollback's); nothing else touches it until the next deploy.
  const touchedAt = /^touchdeploy: reload /m.test(result.stdout)
    ? fs.statSync(path.join(host.root, RELOAD_FILE)).ctimeMs
    : undefined;
  return {
    sha,
    host: host.label,
    result,
    code: result.code ?? -1,
    ...(scriptCpuSeconds !== undefined ? { scriptCpuSeconds } : {}),
    totalMs: result.durationMs,
    startedAt,
    endedAt,
    touchedAt,
    steps: parseSteps(result.stdout),
  };
}

export function parseSteps(stdout: string): ScriptSteps {
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(stdout);
    return m ? Number(m[1]) : undefined;
  };
  return {
    fetch: num(/^touchdeploy: fetch .* in (\d+\.\d+)s$/m),
    extract: num(/^touchdeploy: extract .* in (\d+\.\d+)s$/m),
    switch: num(/^touchdeploy: switch .* in (\d+\.\d+)s$/m),
    healthyAfterReload: num(/healthy (\d+\.\d+)s after the reload/),
    prune: num(/^touchdeploy: prune .* in (\d+\.\d+)s$/m),
    deployed: num(/^touchdeploy: deployed \S+ in (\d+\.\d+)s$/m),
  };
}

/** What uWSGI logs when it notices the trigger: touch-reload's 1 s check, fs-reload's inotify. */
export const DETECT_LINES = ["has been touched... grace them all", "[uwsgi-fsmon] detected event"];
/**
 * What the master logs once per graceful reload, when all the old workers are reaped and it
 * re-execs itself ("binary reloading uWSGI"), whatever noticed the trigger (the contracts that
 * reload in place: fs-reload + wake and its experiments; the shipped generations manager logs
 * RELOAD_LOG_LINE instead, and has none of these phases).
 */
const REEXEC = UWSGI_RELOAD_LOG_LINE;
const SPAWNED = /spawned uWSGI worker (\d+)/;

/**
 * Where one deploy's reload spent its time, read from the container log (see ReloadPhases).
 * Reloads are counted up to `untilMs` (call it a while after the deploy, before the next one, so
 * that a second, late reload would be seen), as lines containing `reloadLine` (a design's, see
 * lib/designs.ts; the shipped contract's by default).
 */
export async function reloadPhases(
  host: CodeHost,
  deploy: CodeDeployResult,
  untilMs: number = Date.now(),
  reloadLine: string = RELOAD_LOG_LINE,
): Promise<ReloadPhases> {
  const lines = await host.container.logLines(deploy.startedAt - 20);
  const upTo = lines.filter((l) => l.atMs <= untilMs);
  const reloads = upTo.filter((l) => l.text.includes(reloadLine)).length;
  const detected = upTo.filter((l) => DETECT_LINES.some((d) => l.text.includes(d)));
  const detect = detected[0];
  const reexec = upTo.find((l) => l.text.includes(REEXEC));
  const spawned = upTo.filter((l) => SPAWNED.test(l.text) && l.atMs >= (reexec?.atMs ?? Infinity));
  const ready = spawned.length ? spawned[spawned.length - 1] : undefined;
  const touch = deploy.touchedAt;
  const sub = (a: number | undefined, b: number | undefined): number | undefined =>
    a !== undefined && b !== undefined ? a - b : undefined;
  return {
    detectMs: sub(detect?.atMs, touch),
    reapMs: sub(reexec?.atMs, detect?.atMs),
    restartMs: sub(ready?.atMs, reexec?.atMs),
    healthSeenMs:
      touch !== undefined && deploy.steps.healthyAfterReload !== undefined && ready
        ? touch + deploy.steps.healthyAfterReload * 1000 - ready.atMs
        : undefined,
    reloads,
    detections: detected.length,
  };
}

/**
 * True when the master is stuck in a graceful reload: it logged "...gracefully killing
 * workers..." and has not re-exec'd since, at least `forMs` ago. Seen when the trigger is
 * touched while the workers are still starting (a few ms after uWSGI spawns them, longer on a
 * busy machine): they never act on the master's SIGHUP, and the master waits for them until
 * worker-reload-mercy (30 s) and ignores every touch meanwhile. A first deploy to a container
 * that starts uWSGI between the switch and the touch can do that (bench/FINDINGS.md).
 */
export async function reloadStalled(host: CodeHost, forMs = 1000): Promise<boolean> {
  const lines = await host.container.logLines(0);
  let lastGrace: number | undefined;
  let lastReexec = -Infinity;
  for (const l of lines) {
    if (l.text.includes("...gracefully killing workers...")) lastGrace = l.atMs;
    if (l.text.includes(REEXEC)) lastReexec = l.atMs;
  }
  return lastGrace !== undefined && lastGrace > lastReexec && Date.now() - lastGrace >= forMs;
}
