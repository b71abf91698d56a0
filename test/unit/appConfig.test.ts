// The app's keys (issue 11): releaseCommand, releaseCommandOn, env, secretEnv, stateDirs,
// processes, processStopTimeout. parseConfig only (no mocks): values as the stack gives them,
// and every error with its exact key path — a secret's value never in a message.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseConfig, RawConfig } from "../../components/config";

const CONTEXT = { projectDir: "/work/project" };

/** The problems parseConfig reports, as "path: message" lines. */
function problemsOf(raw: RawConfig, encrypted = true): string[] {
  try {
    parseConfig({ repoPath: ".", ...raw }, { ...CONTEXT, encrypted: () => encrypted });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail("expected the config to be rejected");
}

/** Stack config gives objects and lists as JSON text (`pulumi.runtime.allConfig()`). */
const json = (v: unknown) => JSON.stringify(v);

describe("the app's keys: values as the stack gives them", () => {
  it("GIVEN none of them THEN no release command, empty env, no secrets, state dirs or processes, a 10 s stop timeout", () => {
    const { release } = parseConfig({ repoPath: "." }, CONTEXT);
    assert.deepEqual(
      {
        releaseCommand: release.releaseCommand,
        env: release.env,
        secretEnvNames: release.secretEnvNames,
        stateDirs: release.stateDirs,
        processes: release.processes,
        hostOptions: release.hostOptions,
      },
      {
        releaseCommand: undefined,
        env: {},
        secretEnvNames: [],
        stateDirs: [],
        processes: [],
        hostOptions: {
          "health-timeout": 60,
          keep: 5,
          "release-command-timeout": 600,
          "process-stop-timeout": 10,
        },
      },
    );
  });

  it("GIVEN every key as the Django stack sets it THEN exactly these values (env sorted by name, secrets only as names)", () => {
    const { release } = parseConfig(
      {
        repoPath: ".",
        releaseCommand: "python3 manage.py migrate --noinput",
        env: json({ DJANGO_LOG_LEVEL: "INFO", DJANGO_ALLOWED_HOSTS: "localhost,127.0.0.1" }),
        secretEnv: json({ DJANGO_SECRET_KEY: "s3cr3t-value", API_TOKEN: "t0ken" }),
        stateDirs: json(["data", "static", "media"]),
        processes: json(["worker python3 manage.py worker", { name: "beat", command: " run  " }]),
        processStopTimeout: "30",
      },
      CONTEXT,
    );
    assert.deepEqual(release.releaseCommand, {
      command: "python3 manage.py migrate --noinput",
      on: "first-host",
    });
    assert.deepEqual(Object.entries(release.env), [
      ["DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1"],
      ["DJANGO_LOG_LEVEL", "INFO"],
    ]);
    assert.deepEqual(release.secretEnvNames, ["API_TOKEN", "DJANGO_SECRET_KEY"]);
    assert.doesNotMatch(JSON.stringify(release), /s3cr3t-value|t0ken/);
    assert.deepEqual(release.stateDirs, ["data", "static", "media"]);
    assert.deepEqual(release.processes, [
      { name: "worker", command: "python3 manage.py worker" },
      { name: "beat", command: "run" },
    ]);
    assert.equal(release.hostOptions["process-stop-timeout"], 30);
  });

  it("GIVEN releaseCommandOn every-host THEN it is kept; an empty releaseCommand means none, whatever releaseCommandOn says", () => {
    const every = parseConfig(
      { repoPath: ".", releaseCommand: "make release", releaseCommandOn: "every-host" },
      CONTEXT,
    );
    assert.deepEqual(every.release.releaseCommand, { command: "make release", on: "every-host" });
    const none = parseConfig({ repoPath: ".", releaseCommandOn: "every-host" }, CONTEXT);
    assert.equal(none.release.releaseCommand, undefined);
  });

  it("GIVEN booleans and integers (what `pulumi config set --path` stores for true, false and 4) THEN their text; strings stay verbatim", () => {
    // pulumi v3.248.0 sdk/go/common/resource/config/object.go `coerce`: with --path, "true",
    // "false" and base-10 integers not starting with 0 become typed values.
    const { release } = parseConfig(
      {
        repoPath: ".",
        env: json({
          DEBUG: false,
          ON: true,
          WORKERS: 4,
          NEG: -12,
          ZIP: "007",
          TEXT: "  spaced  ",
          EMPTY: "",
          MULTI: "a\nb=c",
        }),
      },
      CONTEXT,
    );
    assert.deepEqual(release.env, {
      DEBUG: "false",
      EMPTY: "",
      MULTI: "a\nb=c",
      NEG: "-12",
      ON: "true",
      TEXT: "  spaced  ",
      WORKERS: "4",
      ZIP: "007",
    });
  });
});

describe("the app's keys: every error names the exact key path", () => {
  const cases: [string, RawConfig, string[]][] = [
    [
      "env not an object",
      { env: "DEBUG=1" },
      [
        "touchdeploy:env: must be an object of NAME: value (set with `pulumi config set --path 'touchdeploy:env.NAME' VALUE`), got \"DEBUG=1\"",
      ],
    ],
    [
      "env as a list",
      { env: json(["A=1"]) },
      [
        'touchdeploy:env: must be an object of NAME: value (set with `pulumi config set --path \'touchdeploy:env.NAME\' VALUE`), got "[\\"A=1\\"]"',
      ],
    ],
    [
      "env names: a digit first, a dash, a space, reserved prefixes, 256 characters",
      {
        env: json({
          "1X": "a",
          "A-B": "b",
          "A B": "c",
          TOUCHDEPLOY_ROOT: "/x",
          UWSGI_PROCESSES: "8",
          ["N".repeat(256)]: "x",
          ["N".repeat(255)]: "fits",
        }),
      },
      [
        'touchdeploy:env["1X"]: "1X" is not an environment variable name (letters, digits and _, not starting with a digit, at most 255)',
        'touchdeploy:env["A B"]: "A B" is not an environment variable name (letters, digits and _, not starting with a digit, at most 255)',
        'touchdeploy:env["A-B"]: "A-B" is not an environment variable name (letters, digits and _, not starting with a digit, at most 255)',
        `touchdeploy:env.${"N".repeat(256)}: "${"N".repeat(256)}" is not an environment variable name (letters, digits and _, not starting with a digit, at most 255)`,
        'touchdeploy:env.TOUCHDEPLOY_ROOT: "TOUCHDEPLOY_ROOT" starts with TOUCHDEPLOY_: those names are touchdeploy\'s own',
        'touchdeploy:env.UWSGI_PROCESSES: "UWSGI_PROCESSES" starts with UWSGI_: uWSGI reads those as its own options (set them in the app\'s uwsgi.ini)',
      ],
    ],
    [
      "env values: an object, a list, null, a fraction, a huge integer, a NUL",
      {
        env: json({
          A: { x: 1 },
          B: [1],
          C: null,
          D: 1.5,
          E: 12345678901234567890,
          F: "a\u0000b",
        }),
      },
      [
        'touchdeploy:env.A: {"x":1} must be a string, got an object',
        "touchdeploy:env.B: [1] must be a string, got a list",
        "touchdeploy:env.C: null must be a string, got null",
        "touchdeploy:env.D: 1.5 is a number whose text the program cannot know exactly: quote it in the stack file, or set it with `pulumi config set --type string --path ...`",
        "touchdeploy:env.E: 12345678901234567000 is a number whose text the program cannot know exactly: quote it in the stack file, or set it with `pulumi config set --type string --path ...`",
        'touchdeploy:env.F: "a\\u0000b" contains a NUL character',
      ],
    ],
    [
      "one variable over execve(2)'s limit (NAME=value 131072 bytes; é is 2 bytes)",
      { env: json({ BIG: "é".repeat(65534), FITS: "x".repeat(131071 - 5) }) },
      [
        "touchdeploy:env.BIG: the value makes NAME=value 131072 bytes: the kernel passes at most 131071 per variable",
      ],
    ],
    [
      "env and secrets over 1 MiB together (8 × (2 + 120000 + 2) + (1 + 100000 + 2) bytes)",
      {
        env: json(
          Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`E${i}`, "x".repeat(120000)])),
        ),
        secretEnv: json({ S: "y".repeat(100000) }),
      },
      [
        "touchdeploy:env: with touchdeploy:secretEnv takes 1060035 bytes, at most 1048576 (every process of the app gets them)",
      ],
    ],
    [
      "more than 1000 records",
      {
        env: json(Object.fromEntries(Array.from({ length: 999 }, (_, i) => [`E${i}`, "x"]))),
        processes: json(["a run", "b run"]),
      },
      [
        "touchdeploy:env: with touchdeploy:secretEnv and touchdeploy:processes makes 1001 records, at most 1000",
      ],
    ],
    [
      "a release command over 32 KiB, a process command over execve(2)'s limit",
      {
        releaseCommand: `echo ${"x".repeat(32764)}`,
        processes: json([{ name: "w", command: `run ${"x".repeat(131068)}` }]),
      },
      [
        "touchdeploy:releaseCommand: is 32769 bytes, at most 32768 (the release's command line reaches the shell as one argument): put a script in the repository and run that",
        "touchdeploy:processes[0].command: the command is 131072 bytes, at most 131071 (one argument of execve(2)): put a script in the repository and run that",
      ],
    ],
    [
      "a name in both env and secretEnv",
      { env: json({ DJANGO_SECRET_KEY: "plain" }), secretEnv: json({ DJANGO_SECRET_KEY: "x" }) },
      [
        "touchdeploy:secretEnv.DJANGO_SECRET_KEY: DJANGO_SECRET_KEY is also set in touchdeploy:env: keep it in one of them (secretEnv for a secret)",
      ],
    ],
    [
      "state dirs: upper case, a slash, a dot, too long, twice",
      { stateDirs: json(["Media", "a/b", "..", "x".repeat(32), "data", "data"]) },
      [
        "touchdeploy:stateDirs[0]: \"Media\" must be 1-31 lowercase letters, digits, '_' or '-', starting with a letter",
        "touchdeploy:stateDirs[1]: \"a/b\" must be 1-31 lowercase letters, digits, '_' or '-', starting with a letter",
        "touchdeploy:stateDirs[2]: \"..\" must be 1-31 lowercase letters, digits, '_' or '-', starting with a letter",
        `touchdeploy:stateDirs[3]: "${"x".repeat(32)}" must be 1-31 lowercase letters, digits, '_' or '-', starting with a letter`,
        'touchdeploy:stateDirs[5]: state dir "data" is listed twice',
      ],
    ],
    [
      "state dirs not a list",
      { stateDirs: "data static" },
      ['touchdeploy:stateDirs: must be a list of strings, got "data static"'],
    ],
    [
      "processes: a name only, a bad name, uwsgi, a twice-used name, an unknown field, an empty command, a newline",
      {
        processes: json([
          "worker",
          "Worker run",
          "uwsgi run",
          { name: "w", command: "a" },
          { name: "w", command: "b" },
          { name: "x", command: "c", user: "root" },
          { name: "y", command: " " },
          { name: "z", command: "a\nb" },
          { name: 1, command: "c" },
          42,
        ]),
      },
      [
        'touchdeploy:processes[0]: "worker" must be "NAME COMMAND", e.g. "worker python3 manage.py worker"',
        "touchdeploy:processes[1]: process name \"Worker\" must be 1-31 lowercase letters, digits or '-', starting with a letter",
        'touchdeploy:processes[2]: process name "uwsgi" is the container\'s own (uWSGI)',
        'touchdeploy:processes[5]: unknown field "user" (a process is {name, command})',
        "touchdeploy:processes[6].command: the command is empty",
        'touchdeploy:processes[7].command: the command "a\\nb" contains control characters',
        "touchdeploy:processes[8].name: must be a string, got 1",
        'touchdeploy:processes[9]: must be "NAME COMMAND" or {name, command}, got 42',
      ],
    ],
    [
      "processes: a name used twice (the entries themselves valid)",
      { processes: json(["w run a", { name: "w", command: "run b" }]) },
      ['touchdeploy:processes[1]: process name "w" is listed twice'],
    ],
    [
      "a release command on two lines",
      { releaseCommand: "python3 manage.py migrate\npython3 manage.py collectstatic" },
      [
        'touchdeploy:releaseCommand: "python3 manage.py migrate\\npython3 manage.py collectstatic" contains control characters (one line: join commands with &&)',
      ],
    ],
    [
      "an unknown releaseCommandOn",
      { releaseCommand: "x", releaseCommandOn: "first-batch" },
      [
        'touchdeploy:releaseCommandOn: unknown value "first-batch" (use "first-host" or "every-host")',
      ],
    ],
    [
      "a process stop timeout of 0",
      { processStopTimeout: 0 },
      ["touchdeploy:processStopTimeout: must be an integer from 1 to 3600, got 0"],
    ],
  ];
  for (const [what, raw, expected] of cases) {
    it(`GIVEN ${what} THEN exactly: ${expected.join(" | ").slice(0, 160)}`, () => {
      assert.deepEqual(problemsOf(raw), expected);
    });
  }
});

describe("secretEnv: checked like env, its values never shown", () => {
  const SECRET = "hunter2-do-not-print";

  it("GIVEN bad secret values THEN each problem names the path and shows no value", () => {
    const problems = problemsOf({
      secretEnv: json({
        A: { nested: SECRET },
        B: [SECRET],
        C: `${SECRET}\u0000`,
        D: 1.5,
        "BAD NAME": SECRET,
        TOUCHDEPLOY_X: SECRET,
        E: SECRET.repeat(10000),
      }),
    });
    assert.deepEqual(problems, [
      "touchdeploy:secretEnv.A: the value (not shown: it is a secret) must be a string, got an object",
      "touchdeploy:secretEnv.B: the value (not shown: it is a secret) must be a string, got a list",
      'touchdeploy:secretEnv["BAD NAME"]: "BAD NAME" is not an environment variable name (letters, digits and _, not starting with a digit, at most 255)',
      "touchdeploy:secretEnv.C: the value (not shown: it is a secret) contains a NUL character",
      "touchdeploy:secretEnv.D: the value (not shown: it is a secret) is a number whose text the program cannot know exactly: quote it in the stack file, or set it with `pulumi config set --type string --path ...`",
      "touchdeploy:secretEnv.E: the value (not shown: it is a secret) makes NAME=value 200002 bytes: the kernel passes at most 131071 per variable",
      'touchdeploy:secretEnv.TOUCHDEPLOY_X: "TOUCHDEPLOY_X" starts with TOUCHDEPLOY_: those names are touchdeploy\'s own',
    ]);
    assert.ok(problems.every((p) => !p.includes("hunter2")));
  });

  it("GIVEN a secret set without --path (one encrypted string, not an object) THEN the kind, not the value", () => {
    // `pulumi config set --secret touchdeploy:secretEnv VALUE`: the program gets the text.
    for (const [raw, kind] of [
      [SECRET, "a string"],
      [json([SECRET]), "a list"],
      [json(SECRET), "a string"],
    ]) {
      assert.deepEqual(problemsOf({ secretEnv: raw }), [
        `touchdeploy:secretEnv: must be an object of NAME: value (set with \`pulumi config set --secret --path 'touchdeploy:secretEnv.NAME' < file\`), got ${kind}`,
      ]);
    }
  });

  it("GIVEN secretEnv values the stack holds in plaintext (no --secret) THEN refused, naming the keys and the fix", () => {
    assert.deepEqual(
      problemsOf({ secretEnv: json({ DJANGO_SECRET_KEY: SECRET, B: "x" }) }, false),
      [
        "touchdeploy:secretEnv: holds no encrypted value (B, DJANGO_SECRET_KEY in plaintext in the stack file): set each with `pulumi config set --secret --path 'touchdeploy:secretEnv.NAME' < file`, or move them to touchdeploy:env",
      ],
    );
    // An empty secretEnv (the default) holds nothing to encrypt.
    assert.doesNotThrow(() =>
      parseConfig({ repoPath: ".", secretEnv: "{}" }, { ...CONTEXT, encrypted: () => false }),
    );
  });

  it("GIVEN several problems with secrets and others THEN one error, and its whole text holds no secret value", () => {
    try {
      parseConfig(
        {
          repoPath: ".",
          secretEnv: json({ K: { v: SECRET }, L: `${SECRET}\u0000` }),
          env: json({ K: "dup" }),
          port: 0,
        },
        CONTEXT,
      );
      assert.fail("expected a ConfigError");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      // secretEnv failed its own check, so it reads as its default: K is not also reported as
      // set twice (the rule between keys needs both keys valid).
      assert.deepEqual(
        err.problems.map((p) => p.path),
        ["touchdeploy:port", "touchdeploy:secretEnv.K", "touchdeploy:secretEnv.L"],
      );
      assert.ok(!err.message.includes("hunter2"), err.message);
      assert.ok(!(err.stack ?? "").includes("hunter2"));
    }
  });
});
