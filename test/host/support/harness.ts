/**
 * The bash-only suite's harness: host/touchdeploy.sh against real git repositories and a
 * stand-in server (standin.py, python3) instead of Docker and uWSGI. Needs bash, git, python3,
 * curl and flock (util-linux) — what a stock Debian/Ubuntu host has — and nothing else, so it
 * runs on any Linux laptop and in CI.
 *
 * `TOUCHDEPLOY_SCRIPT=/path/to/old/touchdeploy.sh` runs the suite against another version of
 * the script (to check that a test fails before its fix); `TOUCHDEPLOY_OLD_NAMES=1` then maps
 * the subcommands to their old names (setup → init, fetch → prepare, release → activate).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { TestRepo } from "../../harness/git";
import { findExecutable } from "../../harness/prerequisites";
import { hostScriptCommand, HOST_SCRIPT_PATH } from "../../harness/hostScript";
import {
  makeScratchDir,
  removeTree,
  sleep,
  start,
  waitFor,
  type RunOptions,
  type RunResult,
  type Started,
} from "../../harness/process";

export { describeRun, encodePayload, errorLines, EXIT } from "../../harness/hostScript";
export type { PayloadRecord } from "../../harness/hostScript";
export { APP_SUBDIR } from "../../harness/git";

/** The script under test. */
export const SCRIPT_PATH = process.env.TOUCHDEPLOY_SCRIPT ?? HOST_SCRIPT_PATH;
const OLD_NAMES: Record<string, string> = { setup: "init", fetch: "prepare", release: "activate" };

/** What the suite needs: the host script's own requirements, and python3 for the stand-in. */
const NEEDS = ["bash", "git", "python3", "curl", "flock", "timeout", "tar", "realpath"] as const;

/**
 * Options for `describe`: `{}` when every tool is here, else `{ skip: reason }` — or a thrown
 * error in CI (`TOUCHDEPLOY_E2E=required` or `TOUCHDEPLOY_HOST_TESTS=required`), where the
 * suite must run.
 */
export function hostGate(): { skip?: string } {
  const missing = NEEDS.filter((tool) => !findExecutable(tool));
  if (missing.length === 0) return {};
  const reason = `missing: ${missing.join(", ")} (a stock Debian/Ubuntu host has them; python3 runs the stand-in server)`;
  if (
    process.env.TOUCHDEPLOY_E2E === "required" ||
    process.env.TOUCHDEPLOY_HOST_TESTS === "required"
  ) {
    throw new Error(`the host script's tests must run here but cannot: ${reason}`);
  }
  return { skip: reason };
}

function words(args: readonly string[]): string[] {
  if (process.env.TOUCHDEPLOY_OLD_NAMES === "1" && args.length > 0 && OLD_NAMES[args[0]]) {
    return [OLD_NAMES[args[0]], ...args.slice(1)];
  }
  return [...args];
}

export function scriptText(): string {
  return fs.readFileSync(SCRIPT_PATH, "utf8");
}

export interface ScriptOptions extends Omit<RunOptions, "input" | "check"> {
  /** Extra environment (merged into the test process's). */
  extraEnv?: NodeJS.ProcessEnv;
  /** Bytes after the script on stdin (`--payload stdin`; see encodePayload). */
  payload?: Buffer;
}

/** The script's stdin: its text, then the payload if any (as the program sends them). */
function stdinOf(opts: ScriptOptions): Buffer {
  const script = Buffer.from(scriptText(), "utf8");
  return opts.payload ? Buffer.concat([script, opts.payload]) : script;
}

function envOf(opts: ScriptOptions): NodeJS.ProcessEnv {
  return { ...(opts.env ?? process.env), ...(opts.extraEnv ?? {}) };
}

/**
 * Runs the script exactly as the program does: `/bin/sh -c "bash -s -- ARGS"`, the script on
 * stdin. Never throws on a non-zero exit.
 */
export function runScript(args: readonly string[], opts: ScriptOptions = {}): Promise<RunResult> {
  return start("/bin/sh", ["-c", hostScriptCommand(words(args))], {
    timeoutMs: 60_000,
    ...opts,
    env: envOf(opts),
    input: stdinOf(opts),
  }).result;
}

/** Starts bash itself (its pid is the script's, to signal it), the script on stdin. */
export function startScript(args: readonly string[], opts: ScriptOptions = {}): Started {
  return start("bash", ["-s", "--", ...words(args)], {
    timeoutMs: 60_000,
    ...opts,
    env: envOf(opts),
    input: stdinOf(opts),
    detached: true,
  });
}

/** A run stopped at a step boundary by TOUCHDEPLOY_TEST_PAUSE_AT (see `boundary` in the script). */
export interface PausedRun {
  run: Started;
  /** Resolves with the script's pid once it waits at the boundary (rejects if it ended first). */
  paused: Promise<number>;
  /** Lets it go on. */
  resume(): void;
  /** Sends a signal to the script (bash) itself. */
  signal(sig: NodeJS.Signals): void;
}

export function startPaused(
  dir: string,
  point: string,
  args: readonly string[],
  opts: ScriptOptions = {},
): PausedRun {
  const pauseFile = path.join(dir, `pause-${process.hrtime.bigint()}`);
  const run = startScript(args, {
    ...opts,
    extraEnv: {
      ...(opts.extraEnv ?? {}),
      TOUCHDEPLOY_TEST_PAUSE_AT: point,
      TOUCHDEPLOY_TEST_PAUSE_FILE: pauseFile,
    },
  });
  let ended = false;
  void run.result.then(() => (ended = true));
  const paused = waitFor(
    `the script to pause at ${point}`,
    () => {
      if (fs.existsSync(pauseFile)) {
        const [at, pid] = fs.readFileSync(pauseFile, "utf8").trim().split(" ");
        if (at === point) return Number(pid);
      }
      if (ended) throw new Error(`the script ended before reaching ${point}`);
      return undefined;
    },
    { timeoutMs: 30_000, intervalMs: 10 },
  );
  return {
    run,
    paused,
    resume: () => fs.rmSync(pauseFile, { force: true }),
    signal: (sig) => process.kill(run.pid, sig),
  };
}

/** The state of an app root that a test asserts on. */
export interface RootState {
  current: string | null;
  previous: string | null;
  /** The live config version (the `config` link), and the previous one. */
  config: string | null;
  previousConfig: string | null;
  /** Config versions under configs/, sorted. */
  configs: string[];
  /** Names under releases/, sorted. */
  releases: string[];
  /** Entries of the root that are touchdeploy's temporaries or journal (should be none). */
  leftovers: string[];
}

const readLink = (p: string): string | null => {
  try {
    return fs.readlinkSync(p);
  } catch {
    return null;
  }
};

export function rootState(root: string): RootState {
  let releases: string[] = [];
  try {
    releases = fs.readdirSync(path.join(root, "releases")).sort();
  } catch {
    // none yet
  }
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(root);
  } catch {
    // no root
  }
  let configs: string[] = [];
  try {
    configs = fs.readdirSync(path.join(root, "configs"));
  } catch {
    // no config yet
  }
  const leftovers = [
    ...entries.filter((e) =>
      /^\.(switch|current\.|previous\.|config\.|previous-config\.|tmp-)/.test(e),
    ),
    ...releases.filter((r) => r.startsWith(".")).map((r) => `releases/${r}`),
    ...configs.filter((c) => c.startsWith(".")).map((c) => `configs/${c}`),
  ].sort();
  const sha = (link: string | null): string | null =>
    link === null ? null : link.replace(/^releases\//, "");
  const version = (link: string | null): string | null =>
    link === null ? null : link.replace(/^configs\//, "");
  return {
    current: sha(readLink(path.join(root, "current"))),
    previous: sha(readLink(path.join(root, "previous"))),
    config: version(readLink(path.join(root, "config"))),
    previousConfig: version(readLink(path.join(root, "previous-config"))),
    releases: releases.filter((r) => !r.startsWith(".")),
    configs: configs.filter((c) => !c.startsWith(".")).sort(),
    leftovers,
  };
}

/** One HTTP answer of the stand-in: status 0 = no answer. */
export interface Answer {
  status: number;
  revision: string | undefined;
}

/** An answer with the X-Touchdeploy-Config header too. */
export interface ConfigAnswer extends Answer {
  config: string | undefined;
}

/**
 * How the stand-in serves a touch: `fs` and `touch` reload in place (the previous contract's
 * uWSGI: requests wait, a broken release answers 500); `generations` starts the new release
 * beside the old one, as runtime/touchdeploy_generations.py does (a broken one never serves).
 */
export type StandinMode = "fs" | "touch" | "generations";

/** The stand-in server (standin.py); see its docstring. */
export class Standin {
  readonly state: string;
  readonly port: number;
  private constructor(
    private readonly child: ChildProcess,
    state: string,
    port: number,
  ) {
    this.state = state;
    this.port = port;
  }

  static async start(opts: {
    dir: string;
    root: string;
    subdir?: string;
    mode?: StandinMode;
    fingerprint?: string;
    reloadFile?: string;
    down?: boolean;
    /** --mode generations: the runtime's run dir, where it records its starts (the fake docker's). */
    runDir?: string;
  }): Promise<Standin> {
    const state = fs.mkdtempSync(path.join(opts.dir, "standin-"));
    const args = [
      path.join(__dirname, "standin.py"),
      "--root",
      opts.root,
      "--state",
      state,
      "--subdir",
      opts.subdir ?? "",
      "--mode",
      opts.mode ?? "fs",
      "--reload-file",
      opts.reloadFile ?? ".reload",
      "--fingerprint",
      opts.fingerprint ?? "",
      ...(opts.down ? ["--down"] : []),
      ...(opts.runDir ? ["--run-dir", opts.runDir] : []),
    ];
    const child = spawn("python3", args, { stdio: ["ignore", "ignore", "inherit"] });
    const port = await waitFor(
      "the stand-in to pick its port",
      () => {
        const f = path.join(state, "port");
        return fs.existsSync(f) && fs.readFileSync(f, "utf8") !== ""
          ? Number(fs.readFileSync(f, "utf8"))
          : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 10 },
    );
    return new Standin(child, state, port);
  }

  get healthUrl(): string {
    return `http://127.0.0.1:${this.port}/healthz`;
  }

  /** Applies a control change and waits until the stand-in has applied it. */
  async control(change: Record<string, unknown>): Promise<void> {
    const before = this.events().length;
    const file = path.join(this.state, "control.json");
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(change));
    fs.renameSync(`${file}.tmp`, file);
    await waitFor(
      "the stand-in to apply a control change",
      () =>
        this.events()
          .slice(before)
          .some((e) => e.event === "control")
          ? true
          : undefined,
      { timeoutMs: 5000, intervalMs: 5 },
    );
  }

  events(): { ns: bigint; event: string; detail: string }[] {
    let text = "";
    try {
      text = fs.readFileSync(path.join(this.state, "events.log"), "utf8");
    } catch {
      return [];
    }
    return text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => {
        const [ns, event, ...rest] = l.split(" ");
        return { ns: BigInt(ns), event, detail: rest.join(" ") };
      });
  }

  /** Events of one kind ("start", "reload", "VIOLATION", ...). */
  eventsOf(event: string): { ns: bigint; detail: string }[] {
    return this.events().filter((e) => e.event === event);
  }

  /** (Re)starts and reloads so far: how many times it loaded a release. */
  loads(): number {
    return this.eventsOf("start").length + this.eventsOf("reload").length;
  }

  /** Waits until the stand-in has loaded `n` times in all. */
  async waitForLoads(n: number, timeoutMs = 5000): Promise<void> {
    await waitFor(`the stand-in to have loaded ${n} times`, () => this.loads() >= n || undefined, {
      timeoutMs,
      intervalMs: 5,
      describeLast: () => `${this.loads()} loads`,
    });
  }

  /** One request, with the config version it serves (status 0: no answer). */
  async answer(timeoutMs = 2000): Promise<ConfigAnswer> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const res = await fetch(this.healthUrl, { signal: ctl.signal });
      await res.arrayBuffer();
      return {
        status: res.status,
        revision: res.headers.get("x-revision") ?? undefined,
        config: res.headers.get("x-touchdeploy-config") ?? undefined,
      };
    } catch {
      return { status: 0, revision: undefined, config: undefined };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The env keys it loaded at each start or reload, in order ("" for none). */
  envLoads(): string[] {
    return this.eventsOf("env").map((e) => e.detail);
  }

  /** One request (status 0: no answer). */
  async get(timeoutMs = 2000): Promise<Answer> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const res = await fetch(this.healthUrl, { signal: ctl.signal });
      await res.arrayBuffer();
      return { status: res.status, revision: res.headers.get("x-revision") ?? undefined };
    } catch {
      return { status: 0, revision: undefined };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits until it serves `revision` with 200. */
  async waitServing(revision: string, timeoutMs = 5000): Promise<void> {
    let last: Answer | undefined;
    await waitFor(
      `the stand-in to serve ${revision.slice(0, 12)}`,
      async () => {
        last = await this.get();
        return last.status === 200 && last.revision === revision ? true : undefined;
      },
      { timeoutMs, intervalMs: 10, describeLast: () => JSON.stringify(last) },
    );
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGKILL");
    await Promise.race([exited, sleep(5000)]);
  }
}

/** A test repository whose app (APP_SUBDIR) the stand-in can serve; see git.ts. */
export class HostRepo {
  private constructor(readonly repo: TestRepo) {}

  static async create(dir: string): Promise<HostRepo> {
    return new HostRepo(await TestRepo.create(dir));
  }

  get origin(): string {
    return this.repo.origin;
  }

  head(): Promise<string> {
    return this.repo.head();
  }

  /** A code change (a new greeting). */
  commit(label: string): Promise<string> {
    return this.repo.commitGreeting(`Hello ${label}`);
  }

  /** A commit whose app fails (the stand-in answers 500 for it, as uWSGI for an ImportError). */
  async commitBroken(): Promise<string> {
    this.repo.writeAppFile("BROKEN", "import error on purpose\n");
    const sha = await this.repo.commit("Break the app");
    fs.rmSync(path.join(this.repo.work, "examples/hello-wsgi/BROKEN"));
    return sha;
  }

  /** Writes raw bytes to an app file and commits. */
  async commitBytes(relativePath: string, bytes: Buffer, message: string): Promise<string> {
    this.repo.writeAppFile(relativePath, bytes);
    return this.repo.commit(message);
  }

  git(...args: string[]): Promise<string> {
    return this.repo.git(this.repo.work, ...args);
  }
}

/** A scratch directory, a repository, an app root (set up) and optionally a stand-in. */
export interface Fixture {
  dir: string;
  root: string;
  repo: HostRepo;
  standin: Standin | undefined;
  server(): Standin;
  /** The fake docker and its container, with `docker: true` (deploys then pass --container). */
  docker: FakeDocker | undefined;
  /** The fake docker (throws without one). */
  container(): FakeDocker;
  /** `deploy` arguments (--repo, --commit, --subdir, --health-url of the stand-in if any). */
  deployArgs(sha: string, ...extra: string[]): string[];
  deploy(sha: string, extra?: string[], opts?: ScriptOptions): Promise<RunResult>;
  /** Runs the script with these arguments (and the fake docker on PATH, if any). */
  run(args: readonly string[], opts?: ScriptOptions): Promise<RunResult>;
  /** `[subcommand, --root root, ...extra]`. */
  args(subcommand: string, ...extra: string[]): string[];
  /** --subdir and --health-url, for release and rollback. */
  releaseArgs(): string[];
  state(): RootState;
  cleanup(): Promise<void>;
}

export interface FixtureOptions {
  /** Start a stand-in (default true). */
  standin?: boolean;
  mode?: StandinMode;
  fingerprint?: string;
  /** Health timeout passed to every deploy (default 3 s: the suite must be fast). */
  healthTimeout?: number;
  /** A fake docker (fakedocker.py) on PATH for every run, and --container on every deploy. */
  docker?: boolean;
}

export const APP = "examples/hello-wsgi";

export async function setupFixture(label: string, opts: FixtureOptions = {}): Promise<Fixture> {
  const dir = makeScratchDir(`host-${label}`);
  const root = path.join(dir, "root");
  let standin: Standin | undefined;
  try {
    const repo = await HostRepo.create(path.join(dir, "repo"));
    const setup = await runScript(["setup", "--root", root]);
    if (setup.code !== 0) throw new Error(`setup failed: ${setup.stderr}`);
    const docker = opts.docker ? fakeDocker(dir, root) : undefined;
    if (opts.standin ?? true) {
      standin = await Standin.start({
        dir,
        root,
        subdir: APP,
        mode: opts.mode,
        fingerprint: opts.fingerprint,
        runDir: docker && path.join(docker.state, "run"),
      });
    }
    const server = standin;
    // --subdir, --health-url, --container, and --health-timeout unless `extra` has its own.
    const health = (extra: readonly string[] = []): string[] => [
      "--subdir",
      APP,
      ...(extra.includes("--health-timeout")
        ? []
        : ["--health-timeout", String(opts.healthTimeout ?? 3)]),
      ...(server ? ["--health-url", server.healthUrl] : []),
      ...(docker && !extra.includes("--container") ? ["--container", docker.name] : []),
    ];
    // The fake docker first on PATH, for every run.
    const withDocker = (runOpts: ScriptOptions): ScriptOptions =>
      docker ? { ...runOpts, extraEnv: { ...docker.env, ...(runOpts.extraEnv ?? {}) } } : runOpts;
    const deployArgs = (sha: string, ...extra: string[]): string[] => [
      "deploy",
      "--root",
      root,
      "--repo",
      repo.origin,
      "--commit",
      sha,
      ...health(extra),
      ...extra,
    ];
    return {
      dir,
      root,
      repo,
      standin,
      server: () => {
        if (!server) throw new Error("this fixture has no stand-in");
        return server;
      },
      deployArgs,
      deploy: (sha, extra = [], runOpts = {}) =>
        runScript(deployArgs(sha, ...extra), withDocker(runOpts)),
      run: (args, runOpts = {}) => runScript(args, withDocker(runOpts)),
      docker,
      container: () => {
        if (!docker) throw new Error("this fixture has no fake docker");
        return docker;
      },
      args: (subcommand, ...extra) => [subcommand, "--root", root, ...extra],
      releaseArgs: () => health(),
      state: () => rootState(root),
      cleanup: async () => {
        docker?.stop();
        await server?.stop();
        removeTree(dir);
      },
    };
  } catch (err) {
    await standin?.stop();
    removeTree(dir);
    throw err;
  }
}

/** The first 12 hex digits, as the script prints them. */
export const short = (sha: string): string => sha.slice(0, 12);

/** The exact `touchdeploy: error:` lines of a run. */
export function errorLine(r: RunResult): string {
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("touchdeploy: error:"));
  if (lines.length !== 1) {
    throw new Error(`expected exactly one error line, got ${lines.length}:\n${r.stderr}`);
  }
  return lines[0];
}

export { sleep, waitFor, makeScratchDir, removeTree };
export type { RunResult, Started };

/**
 * A directory of stand-in tools that fail, as a tool denied permission would, when one of their
 * arguments matches a shell pattern, and run the real tool otherwise. Returns the environment
 * that puts them first on PATH: `fakeTools(dir, { touch: "*\/.reload" })`.
 */
export function fakeTools(dir: string, rules: Record<string, string>): NodeJS.ProcessEnv {
  const bin = fs.mkdtempSync(path.join(dir, "fakebin-"));
  for (const [tool, pattern] of Object.entries(rules)) {
    const real = findExecutable(tool);
    if (!real) throw new Error(`no ${tool} to wrap`);
    fs.writeFileSync(
      path.join(bin, tool),
      [
        "#!/bin/sh",
        'for a in "$@"; do',
        `  case $a in ${pattern}) echo "${tool}: cannot do it to '$a': Permission denied" >&2; exit 1 ;; esac`,
        "done",
        `exec ${real} "$@"`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
  }
  return { PATH: `${bin}:${process.env.PATH ?? ""}` };
}

/** Every process's command line right now (to look for secrets in argv). */
export function allCommandLines(): string[] {
  const lines: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      lines.push(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " "));
    } catch {
      // gone meanwhile
    }
  }
  return lines;
}

/** One call the fake docker saw (test/host/support/fakedocker.py logs them). */
export interface DockerEvent {
  t: number;
  event: "inspect" | "exec" | "start" | "stop" | "died";
  name?: string;
  pid?: number;
  workdir?: string | null;
  argv?: string[];
  revision?: string;
  config?: string;
  how?: string;
  status?: number;
}

/** The fake `docker` on PATH and the container it emulates (see fakedocker.py). */
export interface FakeDocker {
  /** The container's name (--container). */
  name: string;
  /** Its state directory ($FAKE_DOCKER_STATE; `run` in it is the container's /tmp/touchdeploy). */
  state: string;
  /** Environment that puts the fake first on PATH. */
  env: NodeJS.ProcessEnv;
  /** The container's user as it reports it (the deploy user's uid:gid, 10001 for root). */
  user: string;
  /** Changes the emulated container (running, user, env). */
  set(change: Partial<FakeContainer>): void;
  events(): DockerEvent[];
  /** The processes it runs now: name -> pid, revision and config version they started on. */
  running(): Record<string, { pid: number; revision: string; config: string }>;
  /** Output of one process so far. */
  processLog(name: string): string;
  /** Kills every process it started. */
  stop(): void;
}

export interface FakeContainer {
  name: string;
  root: string;
  subdir: string;
  user: string;
  running: boolean;
  env: Record<string, string>;
  /** False: removed (`docker ps -a` no longer lists it). */
  exists?: boolean;
  /** "down": every docker command fails as with a stopped daemon. */
  daemon?: "up" | "down";
}

export function fakeDocker(
  dir: string,
  root: string,
  opts: { name?: string; startsecs?: number; env?: Record<string, string> } = {},
): FakeDocker {
  const state = fs.mkdtempSync(path.join(dir, "fakedocker-"));
  const bin = path.join(state, "bin");
  fs.mkdirSync(bin);
  // Copies in the test's own directory: a test that runs the script as another user makes
  // that directory readable to it, while the checkout may not be (a 0700 parent).
  fs.copyFileSync(path.join(__dirname, "fakedocker.py"), path.join(state, "fakedocker.py"));
  fs.cpSync(path.join(__dirname, "..", "..", "..", "runtime"), path.join(state, "runtime"), {
    recursive: true,
  });
  fs.writeFileSync(
    path.join(bin, "docker"),
    `#!/bin/sh\nexec python3 ${JSON.stringify(path.join(state, "fakedocker.py"))} "$@"\n`,
    { mode: 0o755 },
  );
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const user = uid === 0 ? "10001:10001" : `${uid}:${gid}`;
  let container: FakeContainer = {
    name: opts.name ?? "app-web1",
    root,
    subdir: APP,
    user,
    running: true,
    env: { CONTAINER_ONLY: "from the container", SHARED: "container value", ...(opts.env ?? {}) },
  };
  const write = (): void =>
    fs.writeFileSync(path.join(state, "container.json"), JSON.stringify(container));
  write();
  const running = (): Record<string, { pid: number; revision: string; config: string }> => {
    try {
      return JSON.parse(fs.readFileSync(path.join(state, "procs.json"), "utf8")) as Record<
        string,
        { pid: number; revision: string; config: string }
      >;
    } catch {
      return {};
    }
  };
  return {
    name: container.name,
    state,
    user,
    env: {
      PATH: `${bin}:${process.env.PATH ?? ""}`,
      FAKE_DOCKER_STATE: state,
      FAKE_DOCKER_RUNTIME: path.join(state, "runtime"),
      FAKE_STARTSECS: String(opts.startsecs ?? 0.5),
    },
    set: (change) => {
      container = { ...container, ...change };
      write();
    },
    events: () => {
      try {
        return fs
          .readFileSync(path.join(state, "events.log"), "utf8")
          .split("\n")
          .filter((l) => l !== "")
          .map((l) => JSON.parse(l) as DockerEvent);
      } catch {
        return [];
      }
    },
    running,
    processLog: (name) => {
      try {
        return fs.readFileSync(path.join(state, `process-${name}.log`), "utf8");
      } catch {
        return "";
      }
    },
    stop: () => {
      for (const { pid } of Object.values(running())) {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    },
  };
}
