/**
 * The app's env, secrets and processes (`--payload stdin`, issue 11): hostile values reach the
 * app byte for byte, bad payloads are refused before anything changes, secrets never reach a
 * command line, an output, a trace or a file others can read, and the env is versioned with
 * the release: a change of env alone is one reload (and the health check waits for it), a bad
 * one is switched back, rollback brings the previous env back.
 *
 * The app's container is the fake docker (support/fakedocker.py): `docker exec ... touchdeploy-run`
 * runs the runtime image's own tool (runtime/touchdeploy_tool.py) on this host, so the release
 * command really gets its env from the config version the way the image applies it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  allCommandLines,
  APP,
  describeRun,
  encodePayload,
  errorLine,
  EXIT,
  hostGate,
  rootState,
  runScript,
  setupFixture,
  short,
  startScript,
  type Fixture,
  type PayloadRecord,
  type RunResult,
} from "./support/harness";

const RUNTIME = path.resolve(__dirname, "..", "..", "runtime");

/** A release command that writes its cwd and whole environment (hex) as JSON to $1. */
const DUMP = [
  "import json, os, sys",
  "env = {k.decode(): v.hex() for k, v in os.environb.items()}",
  "json.dump({'cwd': os.getcwd(), 'env': env}, open(sys.argv[1], 'w'))",
].join("\n");

interface Dump {
  cwd: string;
  env: Record<string, string>;
}

const hex = (v: string | Buffer): string => Buffer.from(v).toString("hex");

describe("the app's env and secrets (--payload stdin)", hostGate(), () => {
  let fx: Fixture;
  let dump: string;
  let base: string;
  before(async () => {
    fx = await setupFixture("payload", { docker: true });
    dump = path.join(fx.dir, "dump.py");
    fs.writeFileSync(dump, DUMP);
    base = await fx.repo.head();
    const r = await fx.deploy(base);
    assert.equal(r.code, EXIT.ok, describeRun(r));
  });
  after(async () => {
    await fx?.cleanup();
  });

  /** Deploys with a payload and a release command that dumps what it ran with. */
  async function deployDumping(
    sha: string,
    records: PayloadRecord[],
    extra: string[] = [],
  ): Promise<{ r: RunResult; dumped: Dump | undefined }> {
    const out = path.join(fx.dir, `dump-${Date.now()}-${Math.random()}.json`);
    const r = await fx.deploy(
      sha,
      ["--payload", "stdin", "--release-command", `python3 ${dump} ${out}`, ...extra],
      { payload: encodePayload(records) },
    );
    const dumped = fs.existsSync(out)
      ? (JSON.parse(fs.readFileSync(out, "utf8")) as Dump)
      : undefined;
    return { r, dumped };
  }

  it("hostile values reach the release command byte for byte, and nothing in them is run", async () => {
    const marker = path.join(fx.dir, "pwned");
    const values: Record<string, string | Buffer> = {
      NEWLINES: "line one\nline two\r\n\nlast",
      EQUALS: "a=b==c=",
      QUOTES: `it's "quoted" \`back\` \\ end`,
      SUBSHELL: `$(touch ${marker}) and \`touch ${marker}\` and \${HOME}`,
      UNICODE: "héllo wörld ✓ 日本語 🎉",
      EMPTY: "",
      LATIN1: Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x01, 0x7f]),
      BIG: "x".repeat(100 * 1024),
      SHARED: "the payload wins over the container's value",
    };
    const secret = `s3cr3t\n$(touch ${marker})'"`;
    const sha = await fx.repo.commit("hostile env");
    const { r, dumped } = await deployDumping(sha, [
      ...Object.entries(values).map(([env, value]) => ({ env, value })),
      { secret: "API_TOKEN", value: secret },
    ]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.ok(dumped, "the release command ran");
    for (const [key, value] of Object.entries(values)) {
      assert.equal(dumped.env[key], hex(value), key);
    }
    assert.equal(dumped.env.API_TOKEN, hex(secret));
    // The container's own variables are there too, under the payload's.
    assert.equal(dumped.env.CONTAINER_ONLY, hex("from the container"));
    assert.equal(fs.existsSync(marker), false, "a value was run by a shell");
    // In the new release's app directory, before the switch.
    assert.equal(dumped.cwd, path.join(fx.root, "releases", sha, APP));
    assert.equal(fx.state().current, sha);
    assert.doesNotMatch(r.stdout + r.stderr, /s3cr3t/);
  });

  it("stores each version 0700 with files 0600, owned by the container's user", () => {
    const state = fx.state();
    assert.ok(state.config, "a config is live");
    const [uid, gid] = fx.container().user.split(":").map(Number);
    const configs = path.join(fx.root, "configs");
    const dirs = [configs, ...state.configs.map((c) => path.join(configs, c))];
    for (const d of dirs) {
      const st = fs.statSync(d);
      assert.equal(st.mode & 0o777, 0o700, d);
      assert.deepEqual([st.uid, st.gid], [uid, gid], d);
    }
    for (const c of state.configs) {
      const files = fs.readdirSync(path.join(configs, c)).sort();
      assert.deepEqual(files, ["VERSION", "env", "processes", "secrets"]);
      for (const f of files) {
        const st = fs.statSync(path.join(configs, c, f));
        assert.equal(st.mode & 0o777, 0o600, `${c}/${f}`);
        assert.deepEqual([st.uid, st.gid], [uid, gid], `${c}/${f}`);
      }
      assert.equal(fs.readFileSync(path.join(configs, c, "VERSION"), "utf8"), c);
    }
  });

  it("refuses a bad payload (exit 2) before anything changes, naming the record, never a value", async () => {
    const sha = await fx.repo.commit("refused payloads");
    const before = fx.state();
    const loads = fx.server().loads();
    const field = (s: string): Buffer => Buffer.from(`${s}\0`);
    const big = "v".repeat(131071);
    const cases: [string, Buffer, string, string[]?][] = [
      [
        "a key with a dash",
        encodePayload([{ env: "MY-KEY", value: "secret-value" }]),
        "record 1: env key MY-KEY must match [A-Za-z_][A-Za-z0-9_]* (at most 255)",
      ],
      [
        "a key starting with a digit",
        encodePayload([
          { env: "OK", value: "1" },
          { secret: "1KEY", value: "secret-value" },
        ]),
        "record 2: secret key 1KEY must match [A-Za-z_][A-Za-z0-9_]* (at most 255)",
      ],
      [
        "a key with a newline",
        encodePayload([{ env: "A\nB", value: "secret-value" }]),
        "record 1: env key $'A\\nB' must match [A-Za-z_][A-Za-z0-9_]* (at most 255)",
      ],
      [
        "TOUCHDEPLOY_*",
        encodePayload([{ env: "TOUCHDEPLOY_ROOT", value: "/elsewhere" }]),
        "record 1: env key TOUCHDEPLOY_ROOT: TOUCHDEPLOY_* are the runtime's own variables",
      ],
      [
        "UWSGI_*",
        encodePayload([{ secret: "UWSGI_PROCESSES", value: "64" }]),
        "record 1: secret key UWSGI_PROCESSES: uWSGI reads UWSGI_* variables as its own options (set them in the app's uwsgi.ini)",
      ],
      [
        "a key twice",
        encodePayload([
          { env: "DUP", value: "secret-value" },
          { secret: "DUP", value: "secret-value" },
        ]),
        "record 2: DUP is given twice (as env or secret)",
      ],
      [
        "a bad process name",
        encodePayload([{ process: "Worker", command: "true" }]),
        "record 1: process name Worker must be lowercase letters, digits and - (at most 31, starting with a letter), and not uwsgi",
      ],
      [
        "a process named uwsgi",
        encodePayload([{ process: "uwsgi", command: "true" }]),
        "record 1: process name uwsgi must be lowercase letters, digits and - (at most 31, starting with a letter), and not uwsgi",
      ],
      [
        "a process twice",
        encodePayload([
          { process: "worker", command: "a" },
          { process: "worker", command: "b" },
        ]),
        "record 2: process worker is given twice",
      ],
      [
        "a process without a command",
        encodePayload([{ process: "worker", command: " \n" }]),
        "record 1: process worker has no command",
      ],
      [
        "an unknown kind",
        Buffer.concat([field("file"), field("NAME"), field("secret-value")]),
        "record 1: unknown kind file (env, secret or process)",
      ],
      [
        "a last field without its NUL",
        Buffer.concat([field("env"), field("KEY"), Buffer.from("secret-value")]),
        "it ends with 12 bytes that are not NUL-terminated (each field ends with a NUL byte)",
      ],
      [
        "fields that are not whole records",
        Buffer.concat([field("env"), field("KEY")]),
        "2 fields are not whole records (each record is three: kind, key or name, value or command)",
      ],
      [
        "a variable over the kernel's limit",
        encodePayload([{ env: "BIG", value: big }]),
        "record 1 (env BIG): BIG=VALUE is 131075 bytes, the kernel passes at most 131071 per variable",
      ],
      [
        "more than 1 MiB of env",
        encodePayload(
          Array.from({ length: 9 }, (_, i) => ({ env: `K${i}`, value: "v".repeat(120_000) })),
        ),
        "the env and secrets take 1080036 bytes, at most 1048576 (every process of the app gets them from execve(2))",
      ],
    ];
    for (const [what, payload, message] of cases) {
      const r = await fx.deploy(sha, ["--payload", "stdin"], { payload });
      assert.equal(r.code, EXIT.badInput, `${what}: ${describeRun(r)}`);
      assert.equal(
        errorLine(r),
        `touchdeploy: error: --payload: ${message}; nothing was changed`,
        what,
      );
      assert.doesNotMatch(r.stdout + r.stderr, /secret-value/, what);
    }
    // Processes need the container.
    const noContainer = fx
      .deployArgs(sha, "--payload", "stdin")
      .filter((a, i, all) => a !== "--container" && all[i - 1] !== "--container");
    const r = await fx.run(noContainer, {
      payload: encodePayload([{ process: "worker", command: "sleep 60" }]),
    });
    assert.equal(r.code, EXIT.badInput, describeRun(r));
    assert.equal(
      errorLine(r),
      "touchdeploy: error: --payload has processes (worker): they need --container NAME (they run in the app's container)",
    );
    assert.deepEqual(fx.state(), before);
    assert.equal(fx.server().loads(), loads);
  });

  it("check --payload stdin validates the payload and changes nothing", async () => {
    const args = ["check", "release", "--root", fx.root, "--commit", base, "--payload", "stdin"];
    const good = await runScript([...args, "--container", "app"], {
      payload: encodePayload([
        { env: "A", value: "1" },
        { secret: "B", value: "2" },
        { process: "worker", command: "sleep 1" },
      ]),
    });
    assert.equal(good.code, EXIT.ok, describeRun(good));
    assert.equal(
      good.stdout,
      "touchdeploy: check    release: every option is valid, and the payload (1 env, 1 secret, 1 process)\n",
    );
    const bad = await runScript(args, { payload: encodePayload([{ env: "9", value: "x" }]) });
    assert.equal(bad.code, EXIT.badInput);
    assert.match(errorLine(bad), /record 1: env key 9 must match/);
    const value = await runScript([...args.slice(0, -2), "--payload", "file"]);
    assert.equal(
      errorLine(value),
      "touchdeploy: error: --payload file: must be 'stdin' (the records follow the script on stdin)",
    );
  });

  it("a secret is in no command line while it deploys, in no output even traced, in no file others can read", async () => {
    const secret = `tr4ce-${Date.now()}-SECRET`;
    const sha = await fx.repo.commit("watched secret");
    const seen = new Set<string>();
    // The release command runs a while, so that the processes around it are seen.
    const run = startScript(
      fx.deployArgs(
        sha,
        "--payload",
        "stdin",
        "--release-command",
        'sleep 0.3; test "$API_TOKEN" = "$EXPECTED_TOKEN"',
      ),
      {
        payload: encodePayload([
          { secret: "API_TOKEN", value: secret },
          { secret: "EXPECTED_TOKEN", value: secret },
          { process: "worker", command: "exec sleep 600" },
        ]),
        extraEnv: { ...fx.container().env, TOUCHDEPLOY_TRACE: "1" },
      },
    );
    let done = false;
    const result = run.result.then((r) => {
      done = true;
      return r;
    });
    while (!done) {
      for (const line of allCommandLines()) seen.add(line);
      await new Promise((res) => setTimeout(res, 5));
    }
    const r = await result;
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.match(r.stderr, /^\+ touchdeploy:\d+: /m, "traced");
    assert.ok(
      [...seen].some((l) => l.includes("touchdeploy-run") && l.includes("--config")),
      "the release command was seen running",
    );
    assert.deepEqual(
      [...seen].filter((l) => l.includes(secret)),
      [],
    );
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(secret));
    // Every file holding it: 0600 in a 0700 directory.
    const holding = spawnSync(
      "grep",
      ["-rlF", secret, fx.root, fx.container().env.FAKE_DOCKER_STATE!],
      {
        encoding: "utf8",
      },
    )
      .stdout.split("\n")
      .filter(Boolean);
    assert.ok(holding.length > 0, "stored somewhere");
    for (const file of holding) {
      assert.equal(fs.statSync(file).mode & 0o077, 0, `${file} is readable by others`);
      assert.equal(fs.statSync(path.dirname(file)).mode & 0o077, 0, `${file}'s directory`);
    }
  });

  it("an env change alone is one reload, checked by its version, and keeps the release", async () => {
    const sha = fx.state().current!;
    const v1 = await fx.deploy(sha, ["--payload", "stdin"], {
      payload: encodePayload([
        { env: "GREETING", value: "one" },
        { env: "DROPPED", value: "soon gone" },
      ]),
    });
    assert.equal(v1.code, EXIT.ok, describeRun(v1));
    const first = fx.state();
    const loads = fx.server().loads();
    const r = await fx.deploy(sha, ["--payload", "stdin"], {
      payload: encodePayload([{ env: "GREETING", value: "two" }]),
    });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    const second = fx.state();
    assert.notEqual(second.config, first.config);
    assert.deepEqual(
      [second.current, second.previous, second.previousConfig],
      [sha, sha, first.config],
    );
    await fx.server().waitForLoads(loads + 1);
    assert.equal(fx.server().loads(), loads + 1, "exactly one reload");
    assert.deepEqual(await fx.server().answer(), {
      status: 200,
      revision: sha,
      config: second.config,
    });
    assert.equal(fx.server().envLoads().at(-1), "GREETING");
    assert.match(
      r.stdout,
      new RegExp(
        `touchdeploy: switch   current stays releases/${short(sha)}, config -> configs/${second.config} \\(was ${first.config}\\) \\.\\.\\. done`,
      ),
    );
    assert.match(
      r.stdout,
      new RegExp(`health   waiting for ${short(sha)} with env ${second.config} on `),
    );
    // The same payload again: already live, no reload, no new version.
    const again = await fx.deploy(sha, ["--payload", "stdin"], {
      payload: encodePayload([{ env: "GREETING", value: "two" }]),
    });
    assert.equal(again.code, EXIT.ok, describeRun(again));
    assert.match(again.stdout, new RegExp(`already live: ${short(sha)}`));
    assert.deepEqual(fx.state(), second);
    assert.equal(fx.server().loads(), loads + 1);
    // Without --payload (a hand run), the live env stays.
    const next = await fx.repo.commit("hand run keeps the env");
    const hand = await fx.deploy(next);
    assert.equal(hand.code, EXIT.ok, describeRun(hand));
    assert.equal(fx.state().config, second.config);
    assert.equal((await fx.server().answer()).config, second.config);
  });

  it("a bad env fails its health check: the previous release and env serve again (exit 6)", async () => {
    const live = fx.state();
    const sha = await fx.repo.commit("with a bad env");
    const r = await fx.deploy(sha, ["--payload", "stdin", "--health-timeout", "20"], {
      payload: encodePayload([{ env: "STANDIN_STATUS", value: "500" }]),
    });
    assert.equal(r.code, EXIT.rolledBack, describeRun(r));
    assert.match(
      errorLine(r),
      new RegExp(
        `^touchdeploy: error: could not deploy ${short(sha)}: it failed its health check \\(it answered HTTP 500 for 3s\\); switched back: commit ${short(live.current!)} is serving again; `,
      ),
    );
    const after = fx.state();
    assert.deepEqual(
      { current: after.current, config: after.config, leftovers: after.leftovers },
      { current: live.current, config: live.config, leftovers: [] },
    );
    // The failed version is gone: it held the new env and nothing points to it.
    assert.deepEqual(after.configs, live.configs);
    assert.deepEqual(await fx.server().answer(), {
      status: 200,
      revision: live.current!,
      config: live.config!,
    });
  });

  it("rollback brings back the previous release with its env; --to keeps the live env", async () => {
    const before = fx.state();
    const sha = await fx.repo.commit("rollback of env");
    const r = await fx.deploy(sha, ["--payload", "stdin"], {
      payload: encodePayload([{ env: "GREETING", value: "rolled" }]),
    });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    const deployed = fx.state();
    const back = await fx.run(fx.args("rollback", ...fx.releaseArgs()));
    assert.equal(back.code, EXIT.ok, describeRun(back));
    const rolled = fx.state();
    assert.deepEqual(
      [rolled.current, rolled.config, rolled.previous, rolled.previousConfig],
      [before.current, before.config, sha, deployed.config],
    );
    assert.deepEqual(await fx.server().answer(), {
      status: 200,
      revision: before.current!,
      config: before.config!,
    });
    // And forward again: the same pair.
    const forward = await fx.run(fx.args("rollback", ...fx.releaseArgs()));
    assert.equal(forward.code, EXIT.ok, describeRun(forward));
    assert.deepEqual([fx.state().current, fx.state().config], [sha, deployed.config]);
    // --to SHA: that release with the live env.
    const to = await fx.run(fx.args("rollback", "--to", before.current!, ...fx.releaseArgs()));
    assert.equal(to.code, EXIT.ok, describeRun(to));
    assert.deepEqual([fx.state().current, fx.state().config], [before.current, deployed.config]);
  });

  it("a rotated secret leaves the host once nothing links to it: two rotations later the first value is in no file under the root", async () => {
    const sha = fx.state().current!;
    const values = [1, 2, 3].map((i) => `r0tated-${i}-${Date.now()}`);
    for (const value of values) {
      const r = await fx.deploy(sha, ["--payload", "stdin"], {
        payload: encodePayload([{ secret: "API_TOKEN", value }]),
      });
      assert.equal(r.code, EXIT.ok, describeRun(r));
    }
    const state = fx.state();
    assert.deepEqual([...state.configs].sort(), [state.config, state.previousConfig].sort());
    const holding = (value: string) =>
      spawnSync("grep", ["-rlF", value, fx.root], { encoding: "utf8" })
        .stdout.split("\n")
        .filter(Boolean)
        .map((file) => path.relative(fx.root, file));
    assert.deepEqual(values.map(holding), [
      [],
      [`configs/${state.previousConfig}/secrets`],
      [`configs/${state.config}/secrets`],
    ]);
  });

  it("the image's env loader replaces the previous load: a dropped key is gone, an overridden container variable comes back", () => {
    // What uWSGI's master does across a reload: it keeps its environment when it re-execs,
    // then imports touchdeploy_env again, which applies the live version.
    const root = path.join(fx.dir, "loader");
    for (const [v, env] of [
      ["v1", "A=1\0SHARED=from v1\0"],
      ["v2", "B=2\0"],
    ]) {
      fs.mkdirSync(path.join(root, "configs", v), { recursive: true });
      fs.writeFileSync(path.join(root, "configs", v, "env"), env);
      fs.writeFileSync(path.join(root, "configs", v, "secrets"), v === "v1" ? "S=one\0" : "");
      fs.writeFileSync(path.join(root, "configs", v, "VERSION"), v);
    }
    const load = (version: string, environ: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
      fs.rmSync(path.join(root, "config"), { force: true });
      fs.symlinkSync(`configs/${version}`, path.join(root, "config"));
      const r = spawnSync(
        "python3",
        [
          "-c",
          `import sys, json, os; sys.path.insert(0, ${JSON.stringify(RUNTIME)}); import touchdeploy_env; touchdeploy_env.apply(); print(json.dumps(dict(os.environ)))`,
        ],
        {
          env: { ...environ, TOUCHDEPLOY_ROOT: root, PYTHONDONTWRITEBYTECODE: "1" },
          encoding: "utf8",
        },
      );
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as NodeJS.ProcessEnv;
    };
    const start = { PATH: process.env.PATH, SHARED: "container value", KEEP: "kept" };
    const first = load("v1", start);
    assert.deepEqual(
      [first.A, first.S, first.SHARED, first.KEEP, first.TOUCHDEPLOY_CONFIG_VERSION],
      ["1", "one", "from v1", "kept", "v1"],
    );
    const second = load("v2", first);
    assert.deepEqual(
      [second.A, second.S, second.B, second.SHARED, second.KEEP, second.TOUCHDEPLOY_CONFIG_VERSION],
      [undefined, undefined, "2", "container value", "kept", "v2"],
    );
    const none = path.join(root, "config");
    fs.rmSync(none);
    const r = spawnSync(
      "python3",
      [
        "-c",
        `import sys, json, os; sys.path.insert(0, ${JSON.stringify(RUNTIME)}); import touchdeploy_env; touchdeploy_env.apply(); print(json.dumps(dict(os.environ)))`,
      ],
      {
        env: { ...second, TOUCHDEPLOY_ROOT: root, PYTHONDONTWRITEBYTECODE: "1" },
        encoding: "utf8",
      },
    );
    const third = JSON.parse(r.stdout) as NodeJS.ProcessEnv;
    assert.deepEqual(
      [third.B, third.SHARED, third.TOUCHDEPLOY_CONFIG_VERSION],
      [undefined, "container value", ""],
    );
    assert.equal(rootState(root).config, null);
  });
});
