// The config's rules at their boundaries, found by mutation testing (reports/mutation/): each case
// names the key and gives the exact problems, or the exact value accepted. No mocks except
// loadConfig's, which reads the running stack's config.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import {
  ConfigError,
  loadConfig,
  normalizePrivateKey,
  parseConfig,
  RawConfig,
} from "../../components/config";

const CONTEXT = { projectDir: "/work/project" };
const SHA = "0123456789abcdef0123456789abcdef01234567";
const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";
const CREDENTIALS =
  "touchdeploy:repoUrl: must not contain credentials (they would end up in command lines, logs and state); use a deploy key";

/** The problems parseConfig reports, as "path: message" lines (none: []). */
function problemsOf(raw: RawConfig): string[] {
  try {
    parseConfig(raw, CONTEXT);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
}

/** Table-driven: each case is [what, raw config, exact problems]. */
function cases(title: string, table: [string, RawConfig, string[]][]) {
  describe(title, () => {
    for (const [what, raw, expected] of table) {
      it(`GIVEN ${what} THEN ${expected.length ? expected.join(" | ") : "no problem"}`, () => {
        assert.deepEqual(problemsOf(raw), expected);
      });
    }
  });
}

const local = { repoPath: "." };

cases("single keys: types, integers, patterns", [
  [
    "an app name that is a number",
    { ...local, appName: 5 },
    ["touchdeploy:appName: must be a string, got 5"],
  ],
  ["a one-character app name", { ...local, appName: "a" }, []],
  [
    "an app name with a character after a valid one",
    { ...local, appName: "shop!" },
    [
      "touchdeploy:appName: \"shop!\" must be 1-42 lowercase letters, digits, '.', '_' or '-' (it names containers)",
    ],
  ],
  [
    "a port in exponent or hex notation",
    { ...local, port: "1e3", batchSize: "0x10" },
    [
      'touchdeploy:port: must be an integer from 1 to 65535, got "1e3"',
      'touchdeploy:batchSize: must be an integer from 1 to 1000, got "0x10"',
    ],
  ],
  [
    "a port that is not a number at all",
    { ...local, port: "abc" },
    ['touchdeploy:port: must be an integer from 1 to 65535, got "abc"'],
  ],
  [
    "a fractional port as a YAML number",
    { ...local, port: 80.5 },
    ["touchdeploy:port: must be an integer from 1 to 65535, got 80.5"],
  ],
  ["the highest port, written with spaces around it", { ...local, port: " 65535 " }, []],
  [
    "a list of host keys holding a number",
    { ...local, hostKeys: [5] },
    ["touchdeploy:hostKeys[0]: must be a string, got 5"],
  ],
  [
    "a list of host keys that is not a list",
    { ...local, hostKeys: "web1 ssh-ed25519" },
    ['touchdeploy:hostKeys: must be a list of strings, got "web1 ssh-ed25519"'],
  ],
  [
    "a repoPath with a control character (it then reads as unset)",
    { github: "acme/shop", repoPath: "a\tb" },
    ['touchdeploy:repoPath: "a\\tb" contains control characters'],
  ],
  [
    "a bind address that is a name",
    { ...local, bindAddress: "localhost" },
    ['touchdeploy:bindAddress: "localhost" must be an IPv4 address such as 0.0.0.0'],
  ],
  [
    "a health path that does not start with /",
    { ...local, healthPath: "health/z" },
    ['touchdeploy:healthPath: "health/z" must be a URL path starting with "/"'],
  ],
  [
    "an unknown deploy key mode",
    { ...local, deployKey: "ssh" },
    ['touchdeploy:deployKey: unknown mode "ssh" (use "none", "generate" or "provided")'],
  ],
]);

describe("branch names (git check-ref-format's rules)", () => {
  it("GIVEN names with dots, slashes and .lock inside THEN accepted", () => {
    for (const branch of ["feature/x", "fix.lockfile", "release-1.2", "a"]) {
      assert.deepEqual(problemsOf({ ...local, branch }), [], branch);
    }
  });
  it("GIVEN '..', '//', a final '/' or '.lock', or another character THEN refused", () => {
    for (const branch of ["feature..x", "a..", "feature//x", "feature/", "main.lock", "feat~1"]) {
      assert.deepEqual(
        problemsOf({ ...local, branch }),
        [`touchdeploy:branch: ${JSON.stringify(branch)} is not a valid branch name`],
        branch,
      );
    }
  });
});

cases("the source", [
  [
    "a repoUrl without a commit",
    { repoUrl: "https://example.com/shop.git" },
    [
      "touchdeploy:github: no source: set touchdeploy:github (OWNER/NAME) or touchdeploy:repoPath, or both touchdeploy:repoUrl and touchdeploy:commit",
    ],
  ],
  [
    "a GitHub name with a third part",
    { github: "acme/shop/x" },
    ['touchdeploy:github: "acme/shop/x" must be OWNER/NAME, e.g. "acme/shop"'],
  ],
  [
    "a GitHub name with a character after the name",
    { github: "acme/shop!" },
    ['touchdeploy:github: "acme/shop!" must be OWNER/NAME, e.g. "acme/shop"'],
  ],
  [
    "credentials in an http URL",
    { repoUrl: "http://t0ken@example.com/x.git", commit: SHA },
    [CREDENTIALS],
  ],
  [
    "a user and password in an ssh URL",
    { repoUrl: "ssh://git:secret@example.com/x.git", commit: SHA },
    [CREDENTIALS],
  ],
  [
    "a URL that only mentions credentials in its path",
    {
      repoUrl: "ssh://git@example.com/mirror/https://a@b/git://u:p@c.git",
      commit: SHA,
    },
    [],
  ],
  [
    "a deploy key without touchdeploy:github",
    { repoPath: ".", deployKey: "generate" },
    ['touchdeploy:deployKey: "generate" needs touchdeploy:github (deploy keys are GitHub\'s)'],
  ],
  [
    "a deploy key and an https URL with user@host: in its path",
    {
      github: "acme/shop",
      deployKey: "generate",
      repoUrl: "https://github.com/acme/a@b:c.git",
    },
    [
      'touchdeploy:repoUrl: "https://github.com/acme/a@b:c.git" is not an SSH URL, so the deploy key would not be used',
    ],
  ],
  [
    "a provided deploy key that is not set",
    { github: "acme/shop", deployKey: "provided" },
    [
      'touchdeploy:deployPrivateKey: required for deployKey "provided": pulumi config set --secret touchdeploy:deployPrivateKey < deploy_key',
    ],
  ],
  [
    "a bad known_hosts line",
    { ...local, gitKnownHosts: ["github.com", `git(hub) ssh-ed25519 ${KEY}`] },
    [
      'touchdeploy:gitKnownHosts[0]: "github.com": key type "" is not one of ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-rsa',
      'touchdeploy:gitKnownHosts[0]: "github.com": the key is not base64 (got "")',
      `touchdeploy:gitKnownHosts[1]: "git(hub) ssh-ed25519 ${KEY}": "git(hub)" is not a known_hosts host pattern`,
    ],
  ],
  [
    "a deploy key and no known_hosts lines",
    { github: "acme/shop", deployKey: "generate", gitKnownHosts: [] },
    ["touchdeploy:gitKnownHosts: must list the git server's host keys: fetching verifies them"],
  ],
]);

describe("the source as parsed", () => {
  it("GIVEN a plain URL and a commit THEN a `url` source", () => {
    assert.deepEqual(
      parseConfig({ repoUrl: "https://example.com/shop.git", commit: SHA }, CONTEXT).source,
      {
        kind: "url",
        repoUrl: "https://example.com/shop.git",
        branch: "main",
        commit: SHA,
        deployKey: { kind: "none" },
      },
    );
  });
});

cases("the image", [
  [
    "an image with a space",
    { ...local, image: "rt:1 x" },
    ['touchdeploy:image: "rt:1 x" is not an image reference'],
  ],
  [
    "an image starting with -",
    { ...local, image: "-rt:1" },
    ['touchdeploy:image: "-rt:1" is not an image reference'],
  ],
  [
    "a base image with a placeholder",
    { ...local, baseImage: "debian:{fingerprint}" },
    ['touchdeploy:baseImage: "debian:{fingerprint}" is not an image reference'],
  ],
  [
    "a base image with a space",
    { ...local, baseImage: "debian bookworm" },
    ['touchdeploy:baseImage: "debian bookworm" is not an image reference'],
  ],
]);

cases("hosts", [
  [
    "two ssh hosts and no private key",
    {
      ...local,
      hosts: [
        { name: "web1", ssh: "d@10.0.0.1", hostKey: `ssh-ed25519 ${KEY}` },
        { name: "web2", ssh: "d@10.0.0.2", hostKey: `ssh-ed25519 ${KEY}` },
      ],
    },
    [
      "touchdeploy:sshPrivateKey: required for ssh hosts (web1, web2): pulumi config set --secret touchdeploy:sshPrivateKey < ~/.ssh/deploy_key",
    ],
  ],
  [
    "a bad entry in the deprecated hostKeys",
    { ...local, hostKeys: ["web1 ssh-dss AAAA"] },
    [
      'touchdeploy:hostKeys[0]: "web1 ssh-dss AAAA": key type "ssh-dss" is not one of ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521',
      'touchdeploy:hostKeys[0]: "web1 ssh-dss AAAA": the key is not base64 (got "AAAA")',
    ],
  ],
  [
    "two deprecated keys for one host",
    {
      ...local,
      hosts: ["web1 ssh://d@10.0.0.1"],
      hostKeys: [`web1 ssh-ed25519 ${KEY}`, `web1 ssh-ed25519 ${KEY}`],
      sshPrivateKey: true,
    },
    ['touchdeploy:hostKeys[1]: a second key for host "web1"'],
  ],
]);

describe("values normalized", () => {
  it("GIVEN a default root, an app dir and host roots with trailing slashes THEN without them", () => {
    const config = parseConfig(
      { ...local, root: "/srv/shop//", appDir: "examples/app//", hosts: ["web1 local"] },
      CONTEXT,
    );
    assert.equal(config.hosts[0].root, "/srv/shop");
    assert.equal(config.release.appDir, "examples/app");
  });
  it("GIVEN an app name with spaces around it THEN trimmed", () => {
    assert.equal(parseConfig({ ...local, appName: " shop " }, CONTEXT).appName, "shop");
  });
});

describe("normalizePrivateKey", () => {
  it("GIVEN CRLF line ends and several final newlines THEN LF and exactly one", () => {
    assert.equal(
      normalizePrivateKey("-----BEGIN\r\nbody\r\n-----END\r\n\r\n\n"),
      "-----BEGIN\nbody\n-----END\n",
    );
  });
});

describe("loadConfig: the running stack's config", () => {
  const NS = "touchdeploy";
  function stack(config: Record<string, string>, secrets: string[] = []) {
    pulumi.runtime.setAllConfig(
      Object.fromEntries(Object.entries(config).map(([k, v]) => [`${NS}:${k}`, v])),
      secrets.map((k) => `${NS}:${k}`),
    );
  }
  afterEach(() => pulumi.runtime.setAllConfig({}, []));

  it("GIVEN a relative repoPath THEN it is resolved against the given project directory", () => {
    stack({ repoPath: "app" });
    const { config } = loadConfig("/work/project");
    assert.deepEqual(
      { kind: config.source.kind, path: config.source.kind === "local" && config.source.path },
      { kind: "local", path: "/work/project/app" },
    );
  });

  it("GIVEN an ssh host and an empty private key THEN the key counts as not set", () => {
    stack(
      {
        repoPath: ".",
        hosts: JSON.stringify([`web1 ssh://d@10.0.0.1`]),
        hostKeys: JSON.stringify([`web1 ssh-ed25519 ${KEY}`]),
        sshPrivateKey: "",
      },
      ["sshPrivateKey"],
    );
    assert.throws(() => loadConfig("/work/project"), {
      message:
        "invalid stack configuration (1 problem):\n" +
        "  - touchdeploy:sshPrivateKey: required for ssh hosts (web1): pulumi config set --secret touchdeploy:sshPrivateKey < ~/.ssh/deploy_key",
    });
  });

  it("GIVEN a local and an ssh host THEN the private key is read (for the ssh one)", () => {
    stack(
      {
        repoPath: ".",
        hosts: JSON.stringify([
          "one local",
          { name: "two", ssh: "d@10.0.0.1", hostKey: `ssh-ed25519 ${KEY}` },
        ]),
        sshPrivateKey: "key",
      },
      ["sshPrivateKey"],
    );
    assert.notEqual(loadConfig("/work/project").sshPrivateKey, undefined);
  });

  it("GIVEN the deprecated hostKeys THEN the deprecation goes to Pulumi's log as a warning", () => {
    stack(
      {
        repoPath: ".",
        hosts: JSON.stringify(["web1 ssh://d@10.0.0.1"]),
        hostKeys: JSON.stringify([`web1 ssh-ed25519 ${KEY}`]),
        sshPrivateKey: "key",
      },
      ["sshPrivateKey"],
    );
    // Without an engine, pulumi.log.warn writes to console.warn (@pulumi/pulumi log/index.js `warn`).
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (message: string) => void warnings.push(message);
    try {
      loadConfig("/work/project");
    } finally {
      console.warn = warn;
    }
    assert.deepEqual(warnings, [
      "warning: [runtime] touchdeploy:hostKeys is deprecated and will be removed in the next release: move each key into its host as touchdeploy:hosts[i].hostKey",
    ]);
  });
});
