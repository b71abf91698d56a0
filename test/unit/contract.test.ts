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
  DEFAULT_RELOAD_FILE,
  ENV,
  EXIT,
  HEADERS,
  RESERVED_ROOT_NAMES,
  RULES,
  SUBCOMMANDS,
  UNMANAGED_FINGERPRINT,
} from "../../components/contract";

const ROOT = path.join(__dirname, "..", "..");
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");
const script = read("host/touchdeploy.sh");
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
    assert.deepEqual([...used].sort(), Object.values(ENV).sort());
  });

  it("the container's user is the contract's uid and gid", () => {
    assert.match(dockerfile, new RegExp(`groupadd --system --gid ${CONTAINER_UID} app`));
    assert.match(dockerfile, new RegExp(`useradd --system --uid ${CONTAINER_UID} --gid app`));
  });

  it("uWSGI sends the contract's headers and listens on the contract's port", () => {
    const ini = read("runtime/uwsgi.ini");
    assert.match(
      ini,
      new RegExp(
        `^add-header = ${HEADERS.revision}: @\\(\\$\\(${ENV.root}\\)/current/REVISION\\)$`,
        "m",
      ),
    );
    assert.match(
      ini,
      new RegExp(`^add-header = ${HEADERS.fingerprint}: \\$\\(${ENV.fingerprint}\\)$`, "m"),
    );
    assert.match(ini, new RegExp(`^http-socket = :\\$\\(${ENV.port}\\)$`, "m"));
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
    assert.deepEqual(codes, {
      UNEXPECTED: EXIT.unexpected,
      USAGE: EXIT.usage,
      NOTHING: EXIT.nothingLive,
      MISSING: EXIT.missing,
      DEPENDENCIES: EXIT.dependencies,
      ROLLED_BACK: EXIT.rolledBack,
      URGENT: EXIT.urgent,
      LOCK: EXIT.lockTimeout,
    });
  });

  it("reserved root names: the script refuses a subset of the contract's (state and .ssh: pending on the host track)", () => {
    const reserved =
      /validate_reload_file\(\)[\s\S]*?case \$v in\n\s*([^)]*)\)/.exec(script)?.[1] ?? "";
    const names = reserved.split("|").map((n) => n.trim());
    assert.ok(names.length >= 6, reserved);
    for (const name of names) {
      assert.ok(
        (RESERVED_ROOT_NAMES as readonly string[]).includes(name),
        `${name} is not in the contract`,
      );
    }
    // Reserved by COORD.md ahead of the script; the lead checks these once the host branch lands.
    const pending = RESERVED_ROOT_NAMES.filter((n) => !names.includes(n));
    assert.deepEqual(
      pending.filter((n) => !["state", ".ssh"].includes(n)),
      [],
      "only state and .ssh may be missing from the script",
    );
  });

  it("character rules: the same patterns as the script's validators", () => {
    const stripAnchors = (re: RegExp) => re.source;
    assert.ok(script.includes(`[[ $2 =~ ${stripAnchors(RULES.sha)} ]]`), "sha");
    assert.ok(
      script.includes(`[[ $v =~ ${stripAnchors(RULES.relativePathChars)} ]]`),
      "relative path",
    );
    assert.ok(script.includes(`[[ $1 =~ ${stripAnchors(RULES.fingerprint)} ]]`), "fingerprint");
    assert.ok(
      script.includes(`local charset='${RULES.repoChars.source.replace("\\]", "]")}'`),
      "repo charset",
    );
    assert.ok(script.includes(`local scp='${RULES.repoScp.source}'`), "scp-like repo");
    assert.ok(
      script.includes(`^[1-9][0-9]{0,5}$`) && RULES.maxPositiveInt === 999_999,
      "positive ints",
    );
  });

  it("the default reload file, the headers it reads and the unmanaged fingerprint", () => {
    assert.ok(script.includes(`RELOAD_FILE=\${OPT[reload-file]-${DEFAULT_RELOAD_FILE}}`));
    assert.ok(script.includes(`${HEADERS.revision.toLowerCase()}:*)`));
    assert.ok(script.includes(`${HEADERS.fingerprint.toLowerCase()}:*)`));
    assert.ok(script.includes(`== ${UNMANAGED_FINGERPRINT} ]]`));
  });

  it("every phase's subcommand is one the script knows (destroy: pending on the host track)", () => {
    const known =
      /^\s*(init \| prepare \| activate[^)]*)\) shift ;;$/m.exec(script)?.[1].split(" | ") ?? [];
    const missing = Object.values(SUBCOMMANDS).filter((s) => !known.includes(s));
    assert.deepEqual(
      missing.filter((s) => s !== "destroy"),
      [],
    );
  });
});
