// One contract (components/contract.ts): the runtime image and the host script hold exactly
// its values. Read from the files themselves, so a change on either side fails here.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  CONTAINER_APP_ROOT,
  CONTAINER_PORT,
  CONTAINER_UID,
  DEFAULT_PROCESS_STOP_TIMEOUT,
  DEFAULT_RELOAD_FILE,
  ENV,
  EXIT,
  HEADERS,
  isReservedRootName,
  PAYLOAD_RECORDS,
  RESERVED_ROOT_NAMES,
  RULES,
  RUNTIME_INTERNAL_ENV,
  SUBCOMMANDS,
  UNMANAGED_FINGERPRINT,
} from "../../components/contract";
import { CONFIG_KEYS, KeySpec } from "../../components/config/schema";
import { scriptOptions, scriptSubcommands } from "../support/hostTables";

const ROOT = path.join(__dirname, "..", "..");
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");
const script = read("host/touchdeploy.sh");
const options = scriptOptions(script);
const subcommands = scriptSubcommands(script);
/** Whether the script's OPTIONS table has this option. */
const scriptHasOption = (name: string) => options.some((o) => o.name === name);
const runtimeFiles = fs.readdirSync(path.join(ROOT, "runtime")).map((f) => read(`runtime/${f}`));

describe("the runtime image holds the contract's values", () => {
  const dockerfile = read("runtime/Dockerfile");
  const env = Object.fromEntries(
    [
      ...(/^ENV ([\s\S]*?)(?:\n\n|\nUSER)/m.exec(dockerfile)?.[1] ?? "").matchAll(
        /(\w+)=("[^"]*"|\S+)/g,
      ),
    ].map((m) => [m[1], m[2].replace(/^"(.*)"$/, "$1")]),
  );

  it("ENV: the root mount, the port, the default reload file and fingerprint", () => {
    assert.equal(env[ENV.root], CONTAINER_APP_ROOT);
    assert.equal(env[ENV.port], String(CONTAINER_PORT));
    assert.equal(env[ENV.reloadFile], DEFAULT_RELOAD_FILE);
    assert.equal(env[ENV.fingerprint], UNMANAGED_FINGERPRINT);
    assert.equal(env[ENV.appSubdir], "");
    assert.match(dockerfile, new RegExp(`^EXPOSE ${CONTAINER_PORT}$`, "m"));
  });

  it("exactly the contract's TOUCHDEPLOY_* names, in every file of runtime/", () => {
    const used = new Set(runtimeFiles.flatMap((text) => text.match(/TOUCHDEPLOY_[A-Z_]+/g) ?? []));
    assert.deepEqual([...used].sort(), [...Object.values(ENV), ...RUNTIME_INTERNAL_ENV].sort());
  });

  it("uWSGI sends the live config version the health check waits for", () => {
    assert.match(
      read("runtime/uwsgi.ini"),
      new RegExp(`^add-header = ${HEADERS.config}: @\\(`, "m"),
    );
    assert.ok(script.toLowerCase().includes(`${HEADERS.config.toLowerCase()}:`));
  });

  it("the container's user is the contract's uid and gid", () => {
    assert.match(dockerfile, new RegExp(`groupadd --system --gid ${CONTAINER_UID} app`));
    assert.match(dockerfile, new RegExp(`useradd --system --uid ${CONTAINER_UID} --gid app`));
  });

  it("uWSGI sends the contract's headers and the manager listens on the contract's port", () => {
    const ini = read("runtime/uwsgi.ini");
    // Each generation's own release (the one the manager resolved `current` to), not `current`.
    assert.match(
      ini,
      new RegExp(
        `^add-header = ${HEADERS.revision}: @\\(\\$\\(TOUCHDEPLOY_RELEASE\\)/REVISION\\)$`,
        "m",
      ),
    );
    assert.match(
      ini,
      new RegExp(`^add-header = ${HEADERS.fingerprint}: \\$\\(${ENV.fingerprint}\\)$`, "m"),
    );
    const manager = read("runtime/touchdeploy_generations.py");
    assert.match(
      manager,
      new RegExp(`^PORT = int\\(os\\.environ\\.get\\("${ENV.port}", "8000"\\)\\)$`, "m"),
    );
    assert.match(manager, /^ROOT = os\.environ\.get\("TOUCHDEPLOY_ROOT", "\/srv\/app"\)$/m);
    // Every generation accepts on the socket the manager holds.
    assert.match(manager, /argv \+= \["--http-socket", f"fd:\/\/\{listener\.fileno\(\)\}"\]/);
  });
});

describe("the host script holds the contract's values", () => {
  it("exit codes: exactly the contract's names and numbers", () => {
    const declared =
      /^readonly (E_[A-Z_]+=\d+(?: E_[A-Z_]+=\d+)*)\n(?:readonly )?((?:E_[A-Z_]+=\d+ ?)*)/m.exec(
        script,
      );
    assert.ok(declared, "readonly E_...=N lines");
    const codes = Object.fromEntries(
      [...`${declared[1]} ${declared[2]}`.matchAll(/E_([A-Z_]+)=(\d+)/g)].map((m) => [
        m[1],
        Number(m[2]),
      ]),
    );
    const named = {
      UNEXPECTED: EXIT.unexpected,
      USAGE: EXIT.usage,
      NOTHING: EXIT.nothingLive,
      MISSING: EXIT.missing,
      DEPENDENCIES: EXIT.dependencies,
      ROLLED_BACK: EXIT.rolledBack,
      URGENT: EXIT.urgent,
      LOCK: EXIT.lockTimeout,
    };
    for (const [name, code] of Object.entries(named)) assert.equal(codes[name], code, name);
    // Every code the script has is the contract's, and (once the script has it) the other way.
    const contract = Object.values(EXIT).filter((c) => c !== EXIT.ok);
    for (const [name, code] of Object.entries(codes)) {
      assert.ok((contract as number[]).includes(code), `E_${name}=${code} is not in EXIT`);
    }
    assert.deepEqual(
      contract.filter((c) => !Object.values(codes).includes(c) && c !== EXIT.releaseCommand),
      [],
    );
  });

  it("exit code 9 (the release command failed) is the script's too", () => {
    assert.ok(scriptHasOption("release-command"));
    assert.match(script, new RegExp(`\\bE_[A-Z_]+=${EXIT.releaseCommand}\\b`));
  });

  it("the payload's names and the state dirs: the same patterns as the script's validators", () => {
    {
      assert.ok(scriptHasOption("payload") && scriptHasOption("state-dirs"));
      for (const rule of [RULES.envName, RULES.processName, RULES.stateDirName]) {
        assert.ok(script.includes(rule.source), rule.source);
      }
      for (const prefix of RULES.reservedEnvPrefixes) {
        assert.ok(script.includes(`[[ $key != ${prefix}* ]]`), prefix);
      }
      assert.match(script, new RegExp(`\\bMAX_ARG=${RULES.maxArg}\\b`));
      assert.match(script, new RegExp(`\\bMAX_ENV_TOTAL=${RULES.maxEnvTotal}\\b`));
      assert.match(script, new RegExp(`\\bMAX_PAYLOAD_RECORDS=${RULES.maxPayloadRecords}\\b`));
    }
  });

  it("the container's paths and user, the payload's record kinds and the processes' stop timeout", () => {
    assert.match(
      script,
      new RegExp(
        `^readonly CONTAINER_ROOT=${CONTAINER_APP_ROOT} DEFAULT_CONTAINER_USER=${CONTAINER_UID}:${CONTAINER_UID}$`,
        "m",
      ),
    );
    // The payload parser's cases are exactly the contract's kinds (and its error names them).
    const kinds = Object.values(PAYLOAD_RECORDS);
    assert.match(script, new RegExp(`^ +${kinds.slice(0, 2).join(" \\| ")}\\)$`, "m"));
    assert.match(script, new RegExp(`^ +${kinds[2]}\\)$`, "m"));
    assert.ok(script.includes(`unknown kind $(show "$kind") (env, secret or process)`));
    assert.deepEqual(kinds, ["env", "secret", "process"]);
    assert.deepEqual(
      options.find((o) => o.name === "process-stop-timeout"),
      {
        name: "process-stop-timeout",
        value: "SECONDS",
        default: String(DEFAULT_PROCESS_STOP_TIMEOUT),
      },
    );
  });

  it("every config key passed to the host unchanged (hostOption) is an option of release with the schema's default", () => {
    const releaseOptions = subcommands.find((c) => c.name === "release")?.options ?? [];
    const passed = (Object.entries(CONFIG_KEYS) as [string, KeySpec][]).filter(
      ([, spec]) => spec.hostOption !== undefined,
    );
    assert.ok(passed.length >= 3, passed.map(([key]) => key).join(" "));
    for (const [key, spec] of passed) {
      const option = spec.hostOption ?? "";
      assert.ok(releaseOptions.includes(option), `${key}: release has no --${option}`);
      const row = options.find((o) => o.name === option);
      assert.equal(
        row?.default,
        String(spec.default),
        `${key}: the script's default for --${option}`,
      );
    }
  });

  it("host/README.md's options table has every option of the script's OPTIONS table, with its default", () => {
    assert.ok(options.length >= 20, String(options.length));
    const readme = read("host/README.md");
    const documented = new Map<string, string>();
    for (const line of readme.split("\n").filter((l) => l.startsWith("| `--"))) {
      const [names, defaults] = line.split("|").slice(1, 3);
      for (const m of names.matchAll(/`--([a-z-]+)`/g)) documented.set(m[1], defaults.trim());
    }
    for (const row of options) {
      const cell = documented.get(row.name);
      assert.ok(cell !== undefined, `host/README.md documents no --${row.name}`);
      if (row.default) {
        assert.match(
          cell,
          new RegExp(`(^|[\\s\`])${row.default.replace(".", "\\.")}([\\s\`]|$)`),
          row.name,
        );
      }
    }
    assert.deepEqual(
      [...documented.keys()].filter((name) => !options.some((r) => r.name === name)),
      [],
    );
  });

  it("reserved root names: exactly the contract's (the script's RESERVED table)", () => {
    const array = /^RESERVED=\(([\s\S]*?)\)$/m.exec(script)?.[1] ?? "";
    const names = array
      .split(/\s+/)
      .filter(Boolean)
      .map((n) => n.replace(/^'(.*)'$/, "$1"));
    assert.deepEqual([...names].sort(), [...RESERVED_ROOT_NAMES].sort());
    for (const name of names) assert.ok(isReservedRootName(name.replace(/\*$/, "x")), name);
  });

  /** A JS regex's source as the script writes it in a bash bracket expression (`]` first, unescaped). */
  const bash = (re: RegExp) => re.source.replace("[\\]", "[]");

  it("character rules: the same patterns as the script's validators", () => {
    assert.ok(script.includes(`=~ ${RULES.sha.source} ]]`), "sha");
    assert.ok(script.includes(`=~ ${RULES.relativePathChars.source} ]]`), "relative path");
    assert.ok(script.includes(`=~ ${RULES.fingerprint.source} ]]`), "fingerprint");
    assert.ok(script.includes(`'${bash(RULES.repoChars)}'`), "repo URL characters");
    assert.ok(script.includes(`local scp='${RULES.repoScp.source}'`), "scp-like repo");
    assert.ok(script.includes("^[1-9][0-9]{0,5}$") && RULES.maxPositiveInt === 999_999, "ints");
    assert.ok(script.includes(`'${bash(RULES.localRepoChars)}'`), "local repo path characters");
  });

  it("the default reload file, the headers it reads and the unmanaged fingerprint", () => {
    assert.match(
      script,
      new RegExp(`'reload-file +\\| NAME +\\| ${DEFAULT_RELOAD_FILE.replace(".", "\\.")} +\\|`),
      "default reload file",
    );
    assert.ok(script.includes(`${HEADERS.revision.toLowerCase()}:*)`));
    assert.ok(script.includes(`${HEADERS.fingerprint.toLowerCase()}:*)`));
    assert.ok(script.includes(`== ${UNMANAGED_FINGERPRINT} ]]`));
  });

  it("every phase's subcommand is one the script knows, by the phase words (COORD.md vocabulary)", () => {
    const known = subcommands.flatMap((c) => [c.name, c.alias]).filter(Boolean);
    assert.deepEqual(
      Object.values(SUBCOMMANDS).filter((s) => !known.includes(s)),
      [],
    );
    for (const phase of ["setup", "fetch", "release", "destroy"])
      assert.ok(known.includes(phase), phase);
  });
});
