// The host script's own validation, run as `touchdeploy.sh check SUBCOMMAND ...`: it accepts
// exactly what the real subcommand accepts and touches nothing.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, parseConfig, RawConfig, TouchdeployConfig } from "../../components/config";
import { envValueText } from "../../components/config/schema";
import {
  encodePayload,
  fetchOptions,
  HOST_SCRIPT_PATH,
  payloadRecords,
  phaseCommand,
  releaseOptions,
  setupOptions,
} from "../../components/hostScript";
import { CONFIG_KEYS, KeySpec } from "../../components/config/schema";
import { scriptOptions } from "../support/hostTables";

const SHA = "0123456789abcdef0123456789abcdef01234567";

function check(...args: string[]) {
  return checkWithStdin("", ...args);
}

/** `touchdeploy.sh check ARGS` with this stdin (the payload, for `--payload stdin`). */
function checkWithStdin(stdin: string, ...args: string[]) {
  const r = spawnSync("bash", [HOST_SCRIPT_PATH, "check", ...args], {
    encoding: "utf8",
    input: stdin,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The options the host script knows: the names in its OPTIONS table. */
const SCRIPT_OPTIONS = new Set(
  scriptOptions(fs.readFileSync(HOST_SCRIPT_PATH, "utf8")).map((o) => o.name),
);

/** The options (`SUBCOMMAND --name value...`, always in pairs) the script does not know. */
function unknownOptions(args: string[]): string[] {
  const names: string[] = [];
  for (let i = 1; i < args.length; i += 2) names.push(args[i].replace(/^--/, ""));
  return names.filter((name) => !SCRIPT_OPTIONS.has(name));
}

describe("touchdeploy.sh check", () => {
  it("accepts valid options and creates nothing", () => {
    const root = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "td-check-")), "root");
    const r = check("release", "--root", root, "--commit", SHA, "--reload-file", ".reload");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "touchdeploy: check    release: every option is valid\n");
    assert.equal(fs.existsSync(root), false);
  });

  it("refuses what the subcommand refuses, with the same message and exit 2", () => {
    const r = check("release", "--root", "/srv/x", "--commit", SHA, "--reload-file", "current");
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr,
      "touchdeploy: error: --reload-file current: is one of touchdeploy's own names in --root\n",
    );
  });

  it("does not require files to exist (they are on the host, not here)", () => {
    const r = check(
      "fetch",
      "--root",
      "/srv/x",
      "--repo",
      "/r",
      "--commit",
      SHA,
      "--ssh-key",
      "/nope",
    );
    assert.equal(r.status, 0, r.stderr);
  });

  it("refuses an unknown subcommand", () => {
    const r = check("frobnicate", "--root", "/srv/x");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /check: unknown subcommand frobnicate/);
  });
});

/**
 * Issue 8 item 9: whatever the program accepts at preview, the host script accepts on the host.
 * For every value of a generated corpus (spaces, unicode, a leading `-`, reserved names, long
 * values, `.`/`..`, shell metacharacters, control characters...), the config is parsed as
 * `pulumi preview` does; when it is accepted, the command lines the program builds from it for
 * each phase (the same builders HostDeployment uses) are run through `touchdeploy.sh check`,
 * which must accept them. What the config refuses is not run (it never reaches a host).
 */
describe("every value the program accepts, the host script's check accepts", () => {
  const LONG = "x".repeat(300);
  const corpus: Record<string, unknown[]> = {
    root: [
      "/srv/a",
      "/srv/a b",
      "/srv/é",
      "/srv/🚀",
      "/srv/-x",
      "-/srv",
      "/srv/./a",
      "/srv/../a",
      "/",
      "//srv",
      "/srv/a/",
      `/srv/${LONG}`,
      "/srv/$(reboot)",
      "/srv/`id`",
      "/srv/a'b",
      '/srv/a"b',
      "/srv/a\tb",
      "/srv/a\nb",
      "srv",
    ],
    reloadFile: [
      ".reload",
      "reload",
      "-r",
      "current",
      "previous",
      "releases",
      "repo.git",
      "shared",
      "state",
      ".ssh",
      ".lock",
      ".lock.holder",
      ".lock.holder.tmp-1",
      ".current.tmp-1",
      ".previous.tmp-1",
      "config",
      "configs",
      "previous-config",
      ".config.new",
      "a b",
      "é",
      "x".repeat(100),
      "x".repeat(101),
      ".",
      "..",
      "a/b",
      "$x",
    ],
    appDir: ["", "app", "a/b", "a/", "a b", "-a", "./a", "a/../b", "a//b", "@x", "a+b", "é", LONG],
    dependencyFiles: [
      ["requirements.txt"],
      ["requirements/base.txt", "Aptfile"],
      ["-r"],
      ["a b"],
      ["../x"],
      ["é"],
      ["a@1+2"],
      [LONG],
    ],
    repoPath: ["/r", "/home/me/My Projects/shop", "/r-é", "/r$x", "/r#x", "/r,x=y", "/r'x"],
    repoUrl: [
      "https://github.com/a/b.git",
      "git@github.com:a/b.git",
      "ssh://git@h:2222/r.git",
      "file:///srv/r",
      "git://h/r",
      "ext::sh -c x",
      "-u",
      "https://-x/r",
      "git@-h:r",
      "http://h/a b",
      "https://h/é",
      "h:r",
      `https://h/${LONG}`,
    ],
    healthPath: ["/healthz", "/a?b=c&d", "/%20", "/a b", "healthz", "/é", `/${LONG}`, "/'"],
    healthTimeout: [1, 3600, 3601, 0, "60"],
    keepReleases: [1, 1000, 1001],
    bindAddress: ["127.0.0.1", "0.0.0.0", "10.1.2.3", "999.1.1.1", "::1", "localhost"],
    port: [1, 65535, 0, "8080"],
    // Issue 11: the payload's records and the options around them.
    env: [
      { DJANGO_DEBUG: false, WORKERS: 4, _x: "", a1: "é 🚀" },
      { A: "line1\nline2", B: "k=v", C: `it's "q"`, D: "$(reboot) `id`", E: "-rf", F: "\t\\" },
      { ["N".repeat(255)]: "x", BIG: "x".repeat(131071 - 4) },
      { ["N".repeat(256)]: "x" },
      { UWSGI_PROCESSES: "8" },
      { TOUCHDEPLOY_ROOT: "/x" },
      { "1A": "x" },
      { BIG: "x".repeat(131071 - 3) },
      { A: "a\u0000b" },
      { A: { b: 1 } },
    ],
    secretEnv: [{ DJANGO_SECRET_KEY: "s3cr3t $(x) 'q' \n é" }, { UWSGI_X: "s" }, { A: 1.5 }],
    stateDirs: [
      ["data", "static", "media"],
      ["a_b-c", "x".repeat(31)],
      ["x".repeat(32)],
      ["Data"],
      ["a/b"],
      ["-a"],
      ["data", "data"],
    ],
    processes: [
      ["worker python3 manage.py worker"],
      [{ name: "a-b", command: "sh -c 'echo $(date)' \"x\" é" }],
      [`w run ${"x".repeat(131071 - 4)}`],
      [`w run ${"x".repeat(131071 - 3)}`],
      ["uwsgi run"],
      ["Worker run"],
      [{ name: "w", command: "   " }],
    ],
    releaseCommand: [
      "python3 manage.py migrate --noinput && python3 manage.py collectstatic --noinput",
      "$(reboot); `id`; 'q' \"q\" é",
      "-x",
      "'".repeat(32768),
      "x".repeat(32769),
      "a\nb",
    ],
    releaseCommandOn: ["every-host", "first-host", "first-batch"],
    processStopTimeout: [1, 3600, 0, 3601],
    releaseCommandTimeout: [1, 86400, 0, 86401, "600"],
  };
  const SHA = "0123456789abcdef0123456789abcdef01234567";
  const FINGERPRINT = "f".repeat(64);

  /** The raw config a stack would have with `key` set to `value`. */
  function rawWith(key: string, value: unknown): RawConfig {
    const raw: RawConfig = { repoPath: "/srv/repo", commit: SHA };
    if (key === "repoUrl") {
      delete raw.repoPath;
    }
    raw[key] = typeof value === "object" && value !== null ? JSON.stringify(value) : value;
    return raw;
  }

  /** The secret environment's values of a raw config, as loadConfig would read them. */
  function secretsOf(raw: RawConfig): Record<string, string> {
    const json = typeof raw.secretEnv === "string" ? raw.secretEnv : "{}";
    const object = JSON.parse(json) as Record<string, unknown>;
    return Object.fromEntries(
      Object.entries(object).map(([k, v]) => {
        const text = envValueText(v);
        return [k, "text" in text ? text.text : ""];
      }),
    );
  }

  /**
   * The argument vectors (after `bash -s --`) of every phase the program runs on the host, each
   * with what follows the script on stdin (the release's payload).
   */
  function phaseRuns(
    config: TouchdeployConfig,
    secrets: Record<string, string> = {},
  ): { args: string[]; stdin: string }[] {
    const payload = encodePayload(payloadRecords(config.release, secrets));
    return phaseArgs(config).map((args) => ({
      args,
      stdin: args[0] === "release" ? payload : "",
    }));
  }

  /** The argument vectors (after `bash -s --`) of every phase the program runs on the host. */
  function phaseArgs(config: TouchdeployConfig): string[][] {
    const host = config.hosts[0];
    const commit = config.source.commit ?? SHA;
    const commands = [
      phaseCommand("setup", setupOptions(host.root, config.release)),
      phaseCommand(
        "fetch",
        fetchOptions(host.root, { repoUrl: config.source.repoUrl, commit }, false),
      ),
      phaseCommand(
        "fetch",
        fetchOptions(host.root, { repoUrl: config.source.repoUrl, commit }, true),
      ),
      phaseCommand(
        "release",
        releaseOptions(host, config.release, commit, FINGERPRINT, {
          container: `${config.appName}-${host.name}`,
          runsReleaseCommand: true,
        }),
      ),
      phaseCommand(
        "release",
        releaseOptions(host, config.release, commit, undefined, {
          container: `${config.appName}-${host.name}`,
          runsReleaseCommand: false,
        }),
      ),
    ];
    // The command line is run by a shell: parse it the way /bin/sh would.
    return commands.map((line) => {
      const r = spawnSync("/bin/sh", ["-c", `${line.replace(/^bash -s -- /, "printf '%s\\0' ")}`], {
        encoding: "utf8",
      });
      return r.stdout.split("\0").slice(0, -1);
    });
  }

  for (const [key, values] of Object.entries(corpus)) {
    for (const value of values) {
      let config: TouchdeployConfig | undefined;
      try {
        config = parseConfig(rawWith(key, value), { projectDir: "/srv" });
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
      }
      if (!config) continue;
      const accepted = config;
      const name = `${key} = ${JSON.stringify(value).slice(0, 60)}: accepted by the config, so by check`;
      const runs = phaseRuns(accepted, secretsOf(rawWith(key, value)));
      it(name, () => {
        // Every option the program passes is one the script's table has (issue 11's too).
        assert.deepEqual([...new Set(runs.flatMap((r) => unknownOptions(r.args)))], []);
        for (const run of runs) {
          const r = checkWithStdin(run.stdin, ...run.args);
          assert.equal(r.status, 0, `check ${run.args.join(" ")}\n${r.stderr}`);
        }
      });
    }
  }

  it("every key passed to the host script unchanged (hostOption) is in the corpus", () => {
    const passed = (Object.entries(CONFIG_KEYS) as [string, KeySpec][])
      .filter(([, spec]) => spec.hostOption !== undefined)
      .map(([key]) => key);
    assert.ok(passed.length >= 4, passed.join(" "));
    assert.deepEqual(
      passed.filter((key) => !(key in corpus)),
      [],
    );
  });

  it("the corpus exercises both sides: the config refuses some of every key's values", () => {
    for (const [key, values] of Object.entries(corpus)) {
      const refused = values.filter((value) => {
        try {
          parseConfig(rawWith(key, value), { projectDir: "/srv" });
          return false;
        } catch {
          return true;
        }
      });
      assert.ok(
        refused.length > 0,
        `${key}: every value accepted, the corpus tests nothing refused`,
      );
    }
  });
});

/**
 * The release's stdin is the script, then the payload (releaseStdin). bash -s reads the script
 * line by line: if main ever returned instead of exiting, bash would go on reading the payload
 * as more script — and a value such as `x; touch FILE` would run. Whatever path main takes
 * (success, bad options, nothing live, help), the payload must never run.
 */
describe("the payload after the script is never run as script", () => {
  const marker = path.join(os.tmpdir(), `td-payload-ran-${process.pid}`);
  const payload = encodePayload([
    ["env", "A", `x\ntouch ${marker}\n`],
    ["secret", "B", `$(touch ${marker})`],
    ["process", "w", `run; touch ${marker}`],
  ]);
  const root = "/nonexistent/td-root";
  const cases: [string, string[]][] = [
    [
      "check release, valid",
      [
        "check",
        "release",
        "--root",
        root,
        "--commit",
        SHA,
        "--container",
        "c",
        "--payload",
        "stdin",
      ],
    ],
    ["check release, a bad option", ["check", "release", "--root", "rel", "--commit", SHA]],
    [
      "release, nothing fetched",
      ["release", "--root", root, "--commit", SHA, "--container", "c", "--payload", "stdin"],
    ],
    ["status, nothing live", ["status", "--root", root]],
    ["--help", ["--help"]],
    ["an unknown subcommand", ["frobnicate"]],
  ];
  for (const [what, args] of cases) {
    it(`GIVEN ${what} THEN the payload does not run`, () => {
      fs.rmSync(marker, { force: true });
      const script = fs.readFileSync(HOST_SCRIPT_PATH, "utf8");
      // As pulumi-command runs the release locally: /bin/sh -c LINE, the stdin given.
      const r = spawnSync("/bin/sh", ["-c", `bash -s -- ${args.map((a) => `'${a}'`).join(" ")}`], {
        input: script + payload,
        encoding: "utf8",
      });
      assert.notEqual(r.status, null, r.stderr);
      assert.equal(fs.existsSync(marker), false, `the payload ran (exit ${r.status}): ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /command not found/);
    });
  }

  it("GIVEN a stand-in script whose main returns THEN the payload runs: the check above can fail", () => {
    fs.rmSync(marker, { force: true });
    spawnSync("/bin/sh", ["-c", "bash -s -- x"], {
      input: 'main() { :; }\nmain "$@"\n' + payload,
      encoding: "utf8",
    });
    try {
      assert.equal(fs.existsSync(marker), true);
    } finally {
      fs.rmSync(marker, { force: true });
    }
  });
});
