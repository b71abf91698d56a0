// Shell quoting of the release commands: hostile strings reach the script as data, never code.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { hostScriptCommand, releaseOptions } from "../../components/hostScript";
import { releaseConfig } from "../support/releaseConfig";

const HOSTILE = [
  "$(touch /tmp/touchdeploy-pwned)",
  "`touch /tmp/touchdeploy-pwned`",
  "a; touch /tmp/touchdeploy-pwned",
  "line1\nline2",
  "--upload-pack=touch /tmp/touchdeploy-pwned",
  "-rf",
  "it's",
  'say "hi"',
  "back\\slash",
  "*",
  "~root",
  "${HOME}",
  "a|b&c>d<e",
  "",
];

/** Runs the command line with a stand-in for the script that prints its arguments, one per line, NUL-separated. */
function argsSeenByScript(commandLine: string): string[] {
  const printArgs = 'for a in "$@"; do printf "%s\\0" "$a"; done\n';
  const out = execFileSync("/bin/sh", ["-c", commandLine], { input: printArgs }).toString();
  return out.split("\0").slice(0, -1);
}

describe("hostScriptCommand", () => {
  it("GIVEN options THEN it is `bash -s -- SUBCOMMAND --name value...` in order, empty ones left out", () => {
    assert.equal(
      hostScriptCommand("fetch", {
        root: "/srv/a",
        repo: "/r",
        commit: "c".repeat(40),
        subdir: "",
        keep: 5,
        x: undefined,
      }),
      `bash -s -- fetch --root /srv/a --repo /r --commit ${"c".repeat(40)} --keep 5`,
    );
  });
  for (const value of HOSTILE.filter((v) => v !== "")) {
    it(`GIVEN ${JSON.stringify(value)} THEN the script receives it verbatim as one argument`, () => {
      const line = hostScriptCommand("deploy", { root: value, repo: value });
      assert.deepEqual(argsSeenByScript(line), ["deploy", "--root", value, "--repo", value]);
    });
  }
  it("GIVEN every hostile string THEN nothing was executed", () => {
    for (const value of HOSTILE) {
      argsSeenByScript(hostScriptCommand("release", { commit: value }));
    }
    assert.throws(() => execFileSync("test", ["-e", "/tmp/touchdeploy-pwned"]));
  });
});

describe("releaseOptions", () => {
  const release = releaseConfig(
    { appDir: "app", dependencyFiles: ["requirements.txt", "Aptfile"] },
    { healthTimeout: 30, keepReleases: 3 },
  );
  const run = { container: "shop-web1", runsReleaseCommand: true };
  const sha = "c".repeat(40);
  it("GIVEN a port published on 0.0.0.0 THEN the host polls 127.0.0.1 (0.0.0.0 is no address to connect to)", () => {
    assert.deepEqual(
      releaseOptions(
        { root: "/srv/a", port: 8080, bindAddress: "0.0.0.0" },
        release,
        sha,
        "f".repeat(64),
        run,
      ),
      {
        root: "/srv/a",
        commit: sha,
        subdir: "app",
        "reload-file": ".reload",
        "health-url": "http://127.0.0.1:8080/healthz",
        "health-timeout": 30,
        keep: 3,
        "dependency-files": "requirements.txt Aptfile",
        "container-fingerprint": "f".repeat(64),
        container: "shop-web1",
        "release-command": undefined,
        "release-command-timeout": 600,
        "process-stop-timeout": 10,
        payload: "stdin",
      },
    );
  });
  it("GIVEN a specific bind address THEN the host polls that address", () => {
    const o = releaseOptions(
      { root: "/srv/a", port: 80, bindAddress: "10.0.0.5" },
      release,
      sha,
      undefined,
      run,
    );
    assert.equal(o["health-url"], "http://10.0.0.5:80/healthz");
  });
  it("GIVEN an unmanaged image (no container fingerprint) THEN no dependency-guard options at all", () => {
    const o = releaseOptions(
      { root: "/srv/a", port: 80, bindAddress: "0.0.0.0" },
      release,
      sha,
      undefined,
      run,
    );
    assert.equal(o["dependency-files"], undefined);
    assert.equal(o["container-fingerprint"], undefined);
  });
});
