// The app's env, secrets, state dirs, processes and release command (issue 11), as the program
// declares them under mocks: what goes to which command, what stays out of the container, what
// is secret on the wire, and which release waits for which. Expected values are written out
// here (payload bytes by hand, paths literally), not computed by components/.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";
import {
  CONTAINER,
  dependsOn,
  isSecret,
  LOCAL_CMD,
  plain,
  plaintextOccurrences,
  PROJECT_DIR,
  ProgramRun,
  Registration,
  runProgram,
  StackConfig,
} from "../support/pulumiProgram";
import { readHostScript } from "../../components/hostScript";

const SHA = "0123456789abcdef0123456789abcdef01234567";
const SCRIPT = readHostScript();
const SECRET_KEY = "dj-s3cret-$(touch /tmp/td-pwned)-é";

/** index.ts, loaded afresh (as runProgram does by default). */
function loadIndex(): Record<string, unknown> {
  const entry = require.resolve(path.join(PROJECT_DIR, "index.ts"));
  delete require.cache[entry];
  return require(entry) as Record<string, unknown>;
}

/** A stack of `n` local hosts (web1..webN), each with its own root and port. */
function stack(n: number, extra: StackConfig = {}): StackConfig {
  return {
    appName: "shop",
    repoUrl: "https://example.test/shop.git",
    commit: SHA,
    hosts: Array.from(
      { length: n },
      (_, i) => `web${i + 1} local port=${8001 + i} root=/srv/shop${i + 1}`,
    ),
    ...extra,
  };
}

const inputs = (r: Registration) => plain<Record<string, unknown>>(r.inputs);
const release = (run: ProgramRun, host: string) => run.get(LOCAL_CMD, `${host}-release`);
const releaseLine = (run: ProgramRun, host: string) => String(inputs(release(run, host)).create);

/** The words of a command line as /bin/sh splits them (after `bash -s --`). */
function words(line: string): string[] {
  const r = spawnSync("/bin/sh", ["-c", line.replace(/^bash -s -- /, "printf '%s\\0' ")], {
    encoding: "utf8",
  });
  return r.stdout.split("\0").slice(0, -1);
}

/** The value of `--name` in a command line, or undefined. */
function option(line: string, name: string): string | undefined {
  const w = words(line);
  const i = w.indexOf(`--${name}`);
  return i < 0 ? undefined : w[i + 1];
}

describe("env and secretEnv: sent only on the release's stdin", () => {
  const env = { DJANGO_DEBUG: "false", DJANGO_ALLOWED_HOSTS: "localhost" };
  let base: ProgramRun;
  before(async () => {
    base = await runProgram({
      config: stack(1, { env, secretEnv: { DJANGO_SECRET_KEY: SECRET_KEY } }),
      secretKeys: ["secretEnv"],
    });
  });

  it("the release's stdin is the script, then the env and the secret as NUL-terminated records, and it is a secret", () => {
    const stdin = release(base, "web1").inputs.stdin;
    assert.ok(isSecret(stdin), "stdin is a secret on the wire");
    assert.equal(
      plain(stdin),
      SCRIPT +
        "env\0DJANGO_ALLOWED_HOSTS\0localhost\0" +
        "env\0DJANGO_DEBUG\0false\0" +
        `secret\0DJANGO_SECRET_KEY\0${SECRET_KEY}\0`,
    );
    assert.equal(option(releaseLine(base, "web1"), "payload"), "stdin");
  });

  it("the secret is in plaintext nowhere the program declares (inputs, command lines, outputs)", () => {
    assert.deepEqual(plaintextOccurrences(base, "dj-s3cret"), []);
    for (const r of base.resources) {
      assert.ok(!JSON.stringify(plain(r.inputs.create ?? "")).includes("dj-s3cret"), r.name);
    }
    // The plain env is not a secret: it is the operator's to read in `pulumi preview --diff`...
    // but it travels inside the same stdin, which is secret as a whole.
    assert.deepEqual(plaintextOccurrences(base, "DJANGO_ALLOWED_HOSTS"), []);
  });

  it("the container, setup and fetch never see the env or the secret", () => {
    for (const name of ["web1-container", "web1-setup", "web1-fetch"]) {
      const r = base.resources.find((x) => x.name === name);
      assert.ok(r, name);
      const text = JSON.stringify(plain(r.inputs));
      assert.ok(!text.includes("DJANGO"), `${name}: ${text.slice(0, 200)}`);
    }
  });

  for (const [what, change] of [
    ["a new env value", { env: { ...env, DJANGO_DEBUG: "true" } }],
    ["a new env name", { env: { ...env, NEW_VAR: "1" } }],
    ["an env name removed", { env: { DJANGO_DEBUG: "false" } }],
    ["a new secret value", { secretEnv: { DJANGO_SECRET_KEY: "rotated" } }],
    ["a new secret name", { secretEnv: { DJANGO_SECRET_KEY: SECRET_KEY, API_TOKEN: "t" } }],
  ] as const) {
    it(`GIVEN ${what} THEN every declared input is identical but the release's stdin (an update: pulumi-command 1.2.1 replaces only on triggers)`, async () => {
      const next = await runProgram({
        config: stack(1, { ...{ env, secretEnv: { DJANGO_SECRET_KEY: SECRET_KEY } }, ...change }),
        secretKeys: ["secretEnv"],
      });
      assert.deepEqual(
        next.resources.map((r) => `${r.type} ${r.name}`),
        base.resources.map((r) => `${r.type} ${r.name}`),
      );
      const changed: string[] = [];
      for (const r of next.resources) {
        const old = base.get(r.type, r.name);
        for (const key of new Set([...Object.keys(r.inputs), ...Object.keys(old.inputs)])) {
          if (JSON.stringify(plain(r.inputs[key])) !== JSON.stringify(plain(old.inputs[key]))) {
            changed.push(`${r.name}.${key}`);
          }
        }
        assert.deepEqual(r.dependencies, old.dependencies, `${r.name}: same dependencies`);
      }
      assert.deepEqual(changed, ["web1-release.stdin"]);
      // The triggers (the only inputs that replace a command) are the commit and container id.
      assert.deepEqual(inputs(release(next, "web1")).triggers, [SHA, "web1-container-id"]);
      assert.deepEqual(
        inputs(next.get(CONTAINER, "web1-container")),
        inputs(base.get(CONTAINER, "web1-container")),
      );
    });
  }

  it("GIVEN env only (no secret) THEN the stdin is plain: nothing in it is secret", async () => {
    const run = await runProgram({ config: stack(1, { env }) });
    const stdin = release(run, "web1").inputs.stdin;
    assert.ok(!isSecret(stdin));
    assert.equal(
      stdin,
      SCRIPT + "env\0DJANGO_ALLOWED_HOSTS\0localhost\0env\0DJANGO_DEBUG\0false\0",
    );
  });

  it("GIVEN secretEnv set as a top-level secret of booleans and integers THEN the payload has their text", async () => {
    const run = await runProgram({
      config: stack(1, { secretEnv: { FLAG: true, PORT: 5432 } }),
      secretKeys: ["secretEnv"],
    });
    assert.equal(
      plain(release(run, "web1").inputs.stdin),
      SCRIPT + "secret\0FLAG\0true\0secret\0PORT\x005432\0",
    );
  });

  it("GIVEN secretEnv the stack holds in plaintext (not among the secret keys) THEN the program refuses to run, naming the key, never the value", async () => {
    let refused: unknown;
    const run = await runProgram({
      config: stack(1, { secretEnv: { DJANGO_SECRET_KEY: SECRET_KEY } }),
      program: () => {
        try {
          return loadIndex();
        } catch (err) {
          refused = err;
          return {};
        }
      },
    });
    assert.deepEqual(
      run.resources.map((r) => r.type),
      ["pulumi:pulumi:Stack"],
    );
    assert.ok(refused instanceof Error);
    assert.equal(
      refused.message,
      "invalid stack configuration (1 problem):\n" +
        "  - touchdeploy:secretEnv: holds no encrypted value (DJANGO_SECRET_KEY in plaintext in the stack file): set each with `pulumi config set --secret --path 'touchdeploy:secretEnv.NAME' < file`, or move them to touchdeploy:env",
    );
  });
});

describe("payload bytes for hostile values", () => {
  it("GIVEN newlines, '=', quotes, $(), backslashes, tabs, a leading '-', unicode and empty values THEN each byte as given, NUL-terminated", async () => {
    const hostile = {
      A_NEWLINE: "line1\nline2\n",
      B_EQUALS: "k=v==",
      C_QUOTES: `it's "quoted"`,
      D_SUBST: "$(touch /tmp/td-pwned) `id` ${HOME}",
      E_BACKSLASH: "back\\slash\\n",
      F_TAB: "a\tb",
      G_DASH: "-rf",
      H_UNICODE: "héllo 🚀 日本",
      I_EMPTY: "",
    };
    const run = await runProgram({
      config: stack(1, {
        env: hostile,
        secretEnv: { Z_SECRET: "s\n=\"'$(x)🚀" },
        processes: [
          "worker python3 manage.py worker --queue 'a b' $(x)",
          { name: "beat", command: 'sh -c "echo ü"' },
        ],
      }),
      secretKeys: ["secretEnv"],
    });
    const expected = Buffer.concat([
      Buffer.from(SCRIPT, "utf8"),
      Buffer.from("env\0A_NEWLINE\0line1\nline2\n\0", "utf8"),
      Buffer.from("env\0B_EQUALS\0k=v==\0", "utf8"),
      Buffer.from('env\0C_QUOTES\0it\'s "quoted"\0', "utf8"),
      Buffer.from("env\0D_SUBST\0$(touch /tmp/td-pwned) `id` ${HOME}\0", "utf8"),
      Buffer.from("env\0E_BACKSLASH\0back\\slash\\n\0", "utf8"),
      Buffer.from("env\0F_TAB\0a\tb\0", "utf8"),
      Buffer.from("env\0G_DASH\0-rf\0", "utf8"),
      Buffer.from([
        ...Buffer.from("env\0H_UNICODE\0h", "utf8"),
        0xc3,
        0xa9, // é
        ...Buffer.from("llo ", "utf8"),
        0xf0,
        0x9f,
        0x9a,
        0x80, // 🚀
        0x20,
        0xe6,
        0x97,
        0xa5,
        0xe6,
        0x9c,
        0xac, // 日本
        0x00,
      ]),
      Buffer.from("env\0I_EMPTY\0\0", "utf8"),
      Buffer.from("secret\0Z_SECRET\0s\n=\"'$(x)", "utf8"),
      Buffer.from([0xf0, 0x9f, 0x9a, 0x80, 0x00]),
      Buffer.from("process\0worker\0python3 manage.py worker --queue 'a b' $(x)\0", "utf8"),
      Buffer.from([
        ...Buffer.from('process\0beat\0sh -c "echo ', "utf8"),
        0xc3,
        0xbc, // ü
        ...Buffer.from('"\0', "utf8"),
      ]),
    ]);
    const stdin = plain<string>(release(run, "web1").inputs.stdin);
    assert.ok(Buffer.from(stdin, "utf8").equals(expected), "payload bytes differ");
  });

  it("GIVEN that stdin THEN bash -s runs the script and hands main exactly the payload bytes (a stand-in script that copies its stdin)", () => {
    const payload = "env\0A\0line1\nline2\0secret\0S\0$(touch /tmp/td-pwned)\0process\0w\0run\0";
    const standIn = 'main() { cat > "$1"; exit 0; }\nmain "$@"\n';
    const out = `/tmp/td-payload-${process.pid}`;
    // As pulumi-command runs a local command: /bin/sh -c CREATE, with the stdin.
    const r = spawnSync("/bin/sh", ["-c", `bash -s -- ${out}`], { input: standIn + payload });
    assert.equal(r.status, 0, String(r.stderr));
    try {
      assert.equal(fs.readFileSync(out, "latin1"), payload);
      assert.equal(fs.existsSync("/tmp/td-pwned"), false);
    } finally {
      fs.rmSync(out, { force: true });
    }
  });
});

describe("stateDirs: setup creates them, the container mounts them", () => {
  it("GIVEN [data, static, media] THEN setup --state-dirs 'data static media' and exactly these volumes", async () => {
    const run = await runProgram({ config: stack(1, { stateDirs: ["data", "static", "media"] }) });
    const setup = inputs(run.get(LOCAL_CMD, "web1-setup"));
    assert.equal(
      setup.create,
      "bash -s -- setup --root /srv/shop1 --reload-file .reload --state-dirs 'data static media'",
    );
    assert.deepEqual(inputs(run.get(CONTAINER, "web1-container")).volumes, [
      { hostPath: "/srv/shop1", containerPath: "/srv/app", readOnly: true },
      { hostPath: "/srv/shop1/state/data", containerPath: "/srv/state/data", readOnly: false },
      { hostPath: "/srv/shop1/state/static", containerPath: "/srv/state/static", readOnly: false },
      { hostPath: "/srv/shop1/state/media", containerPath: "/srv/state/media", readOnly: false },
    ]);
    // setup runs (again, as an update) before the container that mounts what it creates.
    assert.ok(dependsOn(run.get(CONTAINER, "web1-container"), LOCAL_CMD, "web1-setup"));
  });

  it("GIVEN no state dirs THEN no --state-dirs and only the read-only app root", async () => {
    const run = await runProgram({ config: stack(1) });
    assert.equal(
      inputs(run.get(LOCAL_CMD, "web1-setup")).create,
      "bash -s -- setup --root /srv/shop1 --reload-file .reload",
    );
    assert.deepEqual(inputs(run.get(CONTAINER, "web1-container")).volumes, [
      { hostPath: "/srv/shop1", containerPath: "/srv/app", readOnly: true },
    ]);
  });
});

describe("processes: payload records, the container and the stop timeout on the command line", () => {
  it("GIVEN a worker and a stop timeout THEN `process` records in config order, --container and --process-stop-timeout", async () => {
    const run = await runProgram({
      config: stack(1, {
        processes: [
          "worker python3 manage.py worker",
          { name: "beat", command: "python3 beat.py" },
        ],
        processStopTimeout: 25,
      }),
    });
    assert.equal(
      release(run, "web1").inputs.stdin,
      SCRIPT + "process\0worker\0python3 manage.py worker\0process\0beat\0python3 beat.py\0",
    );
    const line = releaseLine(run, "web1");
    assert.equal(option(line, "container"), "shop-web1");
    assert.equal(option(line, "process-stop-timeout"), "25");
  });
});

describe("releaseCommand: on the release (before its switch), once per rollout unless every host", () => {
  const COMMAND =
    "python3 manage.py migrate --noinput && python3 manage.py collectstatic --noinput";

  it("GIVEN first-host (the default) and a parallel rollout of 3 THEN web1's release runs it, web2's and web3's wait for web1's release and do not run it", async () => {
    const run = await runProgram({ config: stack(3, { releaseCommand: COMMAND }) });
    assert.equal(option(releaseLine(run, "web1"), "release-command"), COMMAND);
    assert.equal(option(releaseLine(run, "web1"), "container"), "shop-web1");
    for (const host of ["web2", "web3"]) {
      assert.equal(option(releaseLine(run, host), "release-command"), undefined, host);
      // The monitor's dependency list of the release (what the engine orders steps by).
      assert.ok(dependsOn(release(run, host), LOCAL_CMD, "web1-release"), `${host} after web1`);
      // Only the release waits: the container keeps the rollout's order (parallel: none).
      assert.ok(!dependsOn(run.get(CONTAINER, `${host}-container`), LOCAL_CMD, "web1-release"));
    }
    assert.ok(!dependsOn(release(run, "web3"), LOCAL_CMD, "web2-release"), "web2, web3 together");
    assert.ok(!dependsOn(release(run, "web1"), LOCAL_CMD, "web2-release"));
    // Never on fetch or setup: it runs inside the release, before its switch.
    for (const role of ["setup", "fetch"]) {
      assert.equal(
        option(String(inputs(run.get(LOCAL_CMD, `web1-${role}`)).create), "release-command"),
        undefined,
      );
    }
  });

  it("GIVEN every-host THEN each release runs it and none waits for another (parallel)", async () => {
    const run = await runProgram({
      config: stack(3, { releaseCommand: COMMAND, releaseCommandOn: "every-host" }),
    });
    for (const host of ["web1", "web2", "web3"]) {
      assert.equal(option(releaseLine(run, host), "release-command"), COMMAND, host);
      for (const other of ["web1", "web2", "web3"].filter((h) => h !== host)) {
        assert.ok(
          !dependsOn(release(run, host), LOCAL_CMD, `${other}-release`),
          `${host}/${other}`,
        );
      }
    }
  });

  it("GIVEN first-host and a rolling rollout of 4 in batches of 2 THEN web2 waits for web1; web3 and web4 for the first batch (web1 included)", async () => {
    const run = await runProgram({
      config: stack(4, { releaseCommand: COMMAND, rollout: "rolling", batchSize: 2 }),
    });
    const waitsFor = (host: string) =>
      ["web1", "web2", "web3", "web4"].filter((h) =>
        dependsOn(release(run, host), LOCAL_CMD, `${h}-release`),
      );
    assert.deepEqual(waitsFor("web1"), []);
    assert.deepEqual(waitsFor("web2"), ["web1"]);
    assert.deepEqual(waitsFor("web3"), ["web1", "web2"]);
    assert.deepEqual(waitsFor("web4"), ["web1", "web2"]);
    assert.deepEqual(
      ["web1", "web2", "web3", "web4"].map((h) => option(releaseLine(run, h), "release-command")),
      [COMMAND, undefined, undefined, undefined],
    );
  });

  it("GIVEN no releaseCommand THEN no --release-command and no release waits for another (parallel)", async () => {
    const run = await runProgram({ config: stack(2) });
    assert.equal(option(releaseLine(run, "web1"), "release-command"), undefined);
    assert.ok(!dependsOn(release(run, "web2"), LOCAL_CMD, "web1-release"));
  });
});
