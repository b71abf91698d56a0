// parseConfig: defaults, and every config error with its exact message (no mocks).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, GITHUB_KNOWN_HOSTS, parseConfig, RawConfig } from "../../components/config";

const CONTEXT = { projectDir: "/work/project" };
const SHA = "0123456789abcdef0123456789abcdef01234567";
const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";

/** The problems parseConfig reports, as "path: message" lines. */
function problemsOf(raw: RawConfig): string[] {
  try {
    parseConfig(raw, CONTEXT);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail("expected the config to be rejected");
}

describe("parseConfig defaults", () => {
  it("GIVEN only a local repo THEN one local host with every default", () => {
    assert.deepEqual(parseConfig({ repoPath: "." }, CONTEXT), {
      appName: "app",
      source: {
        kind: "local",
        path: "/work/project",
        repoUrl: "/work/project",
        branch: "main",
        commit: undefined,
        deployKey: { kind: "none" },
      },
      hosts: [
        {
          name: "local",
          target: { kind: "local" },
          root: "/srv/touchdeploy/app",
          port: 8000,
          bindAddress: "0.0.0.0",
        },
      ],
      image: { kind: "build", baseImage: "debian:bookworm-slim" },
      release: {
        appDir: "",
        reloadFile: ".reload",
        health: { path: "/healthz" },
        hostOptions: {
          "health-timeout": 60,
          keep: 5,
          "release-command-timeout": 600,
          "process-stop-timeout": 10,
        },
        dependencyFiles: ["requirements.txt", "Aptfile"],
        releaseCommand: undefined,
        env: {},
        secretEnvNames: [],
        stateDirs: [],
        processes: [],
        limits: { memoryMb: 1024, cpus: "1.0" },
      },
      rollout: { strategy: "parallel" },
    });
  });

  it("GIVEN a GitHub repo, ssh hosts with keys, rolling THEN values as stack YAML gives them (numbers as strings, lists as JSON)", () => {
    const config = parseConfig(
      {
        appName: "shop",
        github: "acme/shop",
        hosts: JSON.stringify([
          "web1 ssh://deploy@10.0.0.11",
          "web2 ssh://deploy@10.0.0.12:2222 port=9000 root=/srv/x",
        ]),
        hostKeys: JSON.stringify([`web1 ssh-ed25519 ${KEY}`, `web2 ssh-ed25519 ${KEY}`]),
        sshPrivateKey: true,
        rollout: "rolling",
        batchSize: "2",
        commit: SHA,
        port: "8080",
      },
      CONTEXT,
    );
    assert.deepEqual(config.source, {
      kind: "github",
      owner: "acme",
      repository: "shop",
      repoUrl: "https://github.com/acme/shop.git",
      branch: "main",
      commit: SHA,
      deployKey: { kind: "none" },
    });
    assert.deepEqual(config.rollout, { strategy: "rolling", batchSize: 2 });
    assert.deepEqual(config.hosts, [
      {
        name: "web1",
        target: { kind: "ssh", user: "deploy", address: "10.0.0.11", port: 22 },
        hostKey: `ssh-ed25519 ${KEY}`,
        root: "/srv/touchdeploy/shop",
        port: 8080,
        bindAddress: "0.0.0.0",
      },
      {
        name: "web2",
        target: { kind: "ssh", user: "deploy", address: "10.0.0.12", port: 2222 },
        hostKey: `ssh-ed25519 ${KEY}`,
        root: "/srv/x",
        port: 9000,
        bindAddress: "0.0.0.0",
      },
    ]);
  });

  it("GIVEN a legitimate 0-free integer of 1 THEN it is kept (no `||` defaulting)", () => {
    assert.equal(
      parseConfig({ repoPath: ".", keepReleases: 1 }, CONTEXT).release.hostOptions.keep,
      1,
    );
  });
});

describe("parseConfig: deploy keys", () => {
  it("GIVEN deployKey generate THEN hosts fetch over SSH from github.com with its published host keys", () => {
    const config = parseConfig({ github: "acme/shop", deployKey: "generate" }, CONTEXT);
    assert.equal(config.source.repoUrl, "git@github.com:acme/shop.git");
    assert.deepEqual(config.source.deployKey, { kind: "generate", knownHosts: GITHUB_KNOWN_HOSTS });
  });
  it("GIVEN GitHub Enterprise THEN its URL and host keys are used", () => {
    const config = parseConfig(
      {
        github: "acme/shop",
        deployKey: "provided",
        deployPrivateKey: true,
        repoUrl: "ssh://git@ghe.acme.test:2222/acme/shop.git",
        gitKnownHosts: JSON.stringify([`[ghe.acme.test]:2222 ssh-ed25519 ${KEY}`]),
      },
      CONTEXT,
    );
    assert.equal(config.source.repoUrl, "ssh://git@ghe.acme.test:2222/acme/shop.git");
    assert.deepEqual(config.source.deployKey, {
      kind: "provided",
      knownHosts: [`[ghe.acme.test]:2222 ssh-ed25519 ${KEY}`],
    });
  });
});

describe("parseConfig errors: each names the key and the bad value", () => {
  const cases: [string, RawConfig, string[]][] = [
    [
      "bad SHA",
      { repoPath: ".", commit: "abc123" },
      ['touchdeploy:commit: "abc123" is not a full commit SHA (40 lowercase hex characters)'],
    ],
    [
      "upper-case SHA",
      { repoPath: ".", commit: SHA.toUpperCase() },
      [
        `touchdeploy:commit: "${SHA.toUpperCase()}" is not a full commit SHA (40 lowercase hex characters)`,
      ],
    ],
    [
      "empty host list",
      { repoPath: ".", hosts: "[]" },
      ["touchdeploy:hosts: must list at least one host"],
    ],
    [
      "hosts not a list",
      { repoPath: ".", hosts: "web1 local" },
      ['touchdeploy:hosts: must be a list of hosts, got "web1 local"'],
    ],
    [
      "host without target",
      { repoPath: ".", hosts: '["web1"]' },
      ['touchdeploy:hosts[0]: "web1": target "" must be "local" or "ssh://USER@ADDRESS[:PORT]"'],
    ],
    [
      "upper-case host name",
      { repoPath: ".", hosts: '["Web1 local"]' },
      [
        'touchdeploy:hosts[0]: "Web1 local": host name "Web1" must be 1-32 lowercase letters, digits or \'-\' (not at the ends)',
      ],
    ],
    [
      "token in an https URL",
      { repoUrl: "https://ghp_secret@github.com/acme/shop.git", commit: SHA },
      [
        "touchdeploy:repoUrl: must not contain credentials (they would end up in command lines, logs and state); use a deploy key",
      ],
    ],
    [
      "duplicate host names",
      { repoPath: ".", hosts: '["web1 local port=1", "web1 local port=2"]' },
      ['touchdeploy:hosts[1]: host name "web1" is used twice'],
    ],
    [
      "bad port",
      { repoPath: ".", port: 70000 },
      ["touchdeploy:port: must be an integer from 1 to 65535, got 70000"],
    ],
    [
      "bad per-host port",
      { repoPath: ".", hosts: '["web1 local port=http"]' },
      ['touchdeploy:hosts[0]: "web1 local port=http": port="http" is not a TCP port (1-65535)'],
    ],
    [
      "relative host root",
      { repoPath: ".", root: "srv/app" },
      ['touchdeploy:root: "srv/app" must be an absolute path (starting with "/")'],
    ],
    [
      "relative per-host root",
      { repoPath: ".", hosts: '["web1 local root=app"]' },
      [
        'touchdeploy:hosts[0]: "web1 local root=app": root="app" must be an absolute path (starting with "/")',
      ],
    ],
    [
      "unknown rollout",
      { repoPath: ".", rollout: "canary" },
      ['touchdeploy:rollout: unknown strategy "canary" (use "parallel" or "rolling")'],
    ],
    [
      "batch size 0",
      { repoPath: ".", rollout: "rolling", batchSize: 0 },
      ["touchdeploy:batchSize: must be an integer from 1 to 1000, got 0"],
    ],
    [
      "ssh host without host key or private key",
      { repoPath: ".", hosts: '["web1 ssh://deploy@10.0.0.11"]' },
      [
        'touchdeploy:hosts[0]: ssh host "web1" has no host key (set touchdeploy:hosts[0].hostKey to "ssh-ed25519 AAAA..." from `ssh-keyscan -t ed25519 10.0.0.11`)',
        "touchdeploy:sshPrivateKey: required for ssh hosts (web1): pulumi config set --secret touchdeploy:sshPrivateKey < ~/.ssh/deploy_key",
      ],
    ],
    [
      "host key for an unknown host",
      { repoPath: ".", hostKeys: JSON.stringify([`db1 ssh-ed25519 ${KEY}`]) },
      ['touchdeploy:hostKeys: key for "db1", which is not in touchdeploy:hosts'],
    ],
    [
      "two local hosts on one root and port",
      { repoPath: ".", hosts: '["a local", "b local"]' },
      [
        'touchdeploy:hosts[1]: host "b" uses the same root "/srv/touchdeploy/app" as "a" on the same machine',
        'touchdeploy:hosts[1]: host "b" uses the same port "8000" as "a" on the same machine',
      ],
    ],
    [
      "no source",
      {},
      [
        "touchdeploy:github: no source: set touchdeploy:github (OWNER/NAME) or touchdeploy:repoPath, or both touchdeploy:repoUrl and touchdeploy:commit",
      ],
    ],
    [
      "both sources",
      { repoPath: ".", github: "acme/shop" },
      ["touchdeploy:repoPath: set either touchdeploy:github or touchdeploy:repoPath, not both"],
    ],
    [
      "bad GitHub repo",
      { github: "acme" },
      ['touchdeploy:github: "acme" must be OWNER/NAME, e.g. "acme/shop"'],
    ],
    [
      "credentials in the repo URL",
      { repoUrl: "https://user:ghp_secret@github.com/acme/shop.git", commit: SHA },
      [
        "touchdeploy:repoUrl: must not contain credentials (they would end up in command lines, logs and state); use a deploy key",
      ],
    ],
    [
      "ext:: repo URL",
      { repoUrl: "ext::sh -c touch% /tmp/pwned", commit: SHA },
      [
        'touchdeploy:repoUrl: "ext::sh -c touch% /tmp/pwned" contains a character not allowed in a repository URL (percent-encode it)',
      ],
    ],
    [
      "option-like branch",
      { repoPath: ".", branch: "--upload-pack=x" },
      ['touchdeploy:branch: "--upload-pack=x" is not a valid branch name'],
    ],
    [
      "escaping appDir",
      { repoPath: ".", appDir: "../etc" },
      [
        'touchdeploy:appDir: "../etc" must be a relative path inside the repository: it must not contain ".." or empty components',
      ],
    ],
    [
      "reload file with a slash",
      { repoPath: ".", reloadFile: "releases/x" },
      [
        'touchdeploy:reloadFile: "releases/x" must be a plain file name in the app root (letters, digits, . _ -; no /)',
      ],
    ],
    [
      "health path without slash",
      { repoPath: ".", healthPath: "healthz" },
      ['touchdeploy:healthPath: "healthz" must be a URL path starting with "/"'],
    ],
    [
      "dependency file with a space",
      { repoPath: ".", dependencyFiles: '["requirements dev.txt"]' },
      [
        'touchdeploy:dependencyFiles[0]: "requirements dev.txt" must be a path relative to touchdeploy:appDir: it may only contain letters, digits and . _ / @ + -',
      ],
    ],
    [
      "unknown placeholder in image",
      { repoPath: ".", image: "ghcr.io/acme/rt:{commit}" },
      ["touchdeploy:image: unknown placeholder {commit} (only {fingerprint} exists)"],
    ],
    [
      "typo in a key",
      { repoPath: ".", host: "[]" },
      [
        "touchdeploy:host: unknown key (known keys: appName, github, repoPath, repoUrl, branch, commit, appDir, hosts, hostKeys, sshPrivateKey, root, port, bindAddress, image, baseImage, rollout, batchSize, healthPath, healthTimeout, keepReleases, reloadFile, dependencyFiles, deployKey, deployPrivateKey, gitKnownHosts, releaseCommand, releaseCommandOn, releaseCommandTimeout, env, secretEnv, stateDirs, processes, processStopTimeout, memory, cpus)",
      ],
    ],
    [
      "a dependency file listed twice",
      { repoPath: ".", dependencyFiles: '["requirements.txt", "Aptfile", "requirements.txt"]' },
      [
        'touchdeploy:dependencyFiles: lists a file twice: ["requirements.txt","Aptfile","requirements.txt"]',
      ],
    ],
    [
      "a health timeout of 0",
      { repoPath: ".", healthTimeout: "0" },
      ['touchdeploy:healthTimeout: must be an integer from 1 to 3600, got "0"'],
    ],
    [
      "a deploy key with an https repoUrl",
      {
        github: "acme/shop",
        deployKey: "generate",
        repoUrl: "https://github.com/acme/shop.git",
      },
      [
        'touchdeploy:repoUrl: "https://github.com/acme/shop.git" is not an SSH URL, so the deploy key would not be used',
      ],
    ],
    [
      "bad app name",
      { repoPath: ".", appName: "My App" },
      [
        "touchdeploy:appName: \"My App\" must be 1-42 lowercase letters, digits, '.', '_' or '-' (it names containers)",
      ],
    ],
  ];
  for (const [what, raw, expected] of cases) {
    it(`GIVEN ${what} THEN exactly: ${expected.join(" | ")}`, () => {
      assert.deepEqual(problemsOf(raw), expected);
    });
  }

  it("GIVEN several problems THEN one error lists them all, one per line", () => {
    assert.throws(
      () => parseConfig({ repoPath: ".", commit: "nope", port: -1, rollout: "x" }, CONTEXT),
      {
        name: "ConfigError",
        message:
          "invalid stack configuration (3 problems):\n" +
          '  - touchdeploy:commit: "nope" is not a full commit SHA (40 lowercase hex characters)\n' +
          "  - touchdeploy:port: must be an integer from 1 to 65535, got -1\n" +
          '  - touchdeploy:rollout: unknown strategy "x" (use "parallel" or "rolling")',
      },
    );
  });

  it("GIVEN a missing private key THEN the message never contains a key value", () => {
    const lines = problemsOf({
      repoPath: ".",
      hosts: '["web1 ssh://d@h"]',
      hostKeys: JSON.stringify([`web1 ssh-ed25519 ${KEY}`]),
    });
    assert.deepEqual(lines, [
      "touchdeploy:sshPrivateKey: required for ssh hosts (web1): pulumi config set --secret touchdeploy:sshPrivateKey < ~/.ssh/deploy_key",
    ]);
  });
});

describe("structured hosts (issue 8 item 16)", () => {
  const web1 = { name: "web1", ssh: "deploy@10.0.0.11:2222", hostKey: `ssh-ed25519 ${KEY}` };

  it("GIVEN objects as `pulumi config set --path` writes them THEN the same hosts as the shorthand", () => {
    const structured = parseConfig(
      {
        repoPath: ".",
        sshPrivateKey: true,
        hosts: JSON.stringify([
          { ...web1, port: "9000", root: "/srv/x/", bind: "127.0.0.1" },
          { name: "local" },
        ]),
      },
      CONTEXT,
    );
    const shorthand = parseConfig(
      {
        repoPath: ".",
        sshPrivateKey: true,
        hosts: JSON.stringify([
          "web1 ssh://deploy@10.0.0.11:2222 port=9000 root=/srv/x/ bind=127.0.0.1",
          "local local",
        ]),
        hostKeys: JSON.stringify([`web1 ssh-ed25519 ${KEY}`]),
      },
      CONTEXT,
    );
    const expected = [
      {
        name: "web1",
        target: { kind: "ssh", user: "deploy", address: "10.0.0.11", port: 2222 },
        hostKey: `ssh-ed25519 ${KEY}`,
        root: "/srv/x",
        port: 9000,
        bindAddress: "127.0.0.1",
      },
      {
        name: "local",
        target: { kind: "local" },
        root: "/srv/touchdeploy/app",
        port: 8000,
        bindAddress: "0.0.0.0",
      },
    ];
    assert.deepEqual(structured.hosts, expected);
    assert.deepEqual(shorthand.hosts, expected);
  });

  it("GIVEN the deprecated hostKeys list THEN it is accepted with one deprecation warning", () => {
    const warnings: string[] = [];
    parseConfig(
      {
        repoPath: ".",
        sshPrivateKey: true,
        hosts: JSON.stringify(["web1 ssh://deploy@10.0.0.11"]),
        hostKeys: JSON.stringify([`web1 ssh-ed25519 ${KEY}`]),
      },
      { ...CONTEXT, warn: (m) => warnings.push(m) },
    );
    assert.deepEqual(warnings, [
      "touchdeploy:hostKeys is deprecated and will be removed in the next release: move each key into its host as touchdeploy:hosts[i].hostKey",
    ]);
  });

  const cases: [string, unknown[], string[]][] = [
    [
      "an RSA host key",
      [{ ...web1, hostKey: `ssh-rsa ${KEY}` }],
      [
        "touchdeploy:hosts[0].hostKey: RSA host keys cannot be verified by the SSH connections (pulumi-command offers only ssh-rsa/SHA-1, which OpenSSH 8.8+ refuses): use the host's ed25519 or ecdsa key (ssh-keyscan -t ed25519 HOST)",
      ],
    ],
    [
      "a bad field in the second host",
      [web1, { name: "web2", ssh: "deploy@10.0.0.12", hostKey: "ssh-ed25519 !!", prot: 1 }],
      [
        "touchdeploy:hosts[1].prot: unknown field (known: name, ssh, hostKey, port, root, bind)",
        'touchdeploy:hosts[1].hostKey: the key is not base64 (got "!!")',
      ],
    ],
    [
      "an ssh host without hostKey",
      [{ name: "web1", ssh: "deploy@10.0.0.11" }],
      [
        'touchdeploy:hosts[0].hostKey: ssh host "web1" has no host key (set touchdeploy:hosts[0].hostKey to "ssh-ed25519 AAAA..." from `ssh-keyscan -t ed25519 10.0.0.11`)',
      ],
    ],
    [
      "bad name, ssh, port, root and bind at once",
      [{ name: "Web 1", ssh: "10.0.0.11", port: 0, root: "/srv/../x", bind: "::" }],
      [
        "touchdeploy:hosts[0].name: \"Web 1\" must be 1-32 lowercase letters, digits or '-' (not at the ends)",
        'touchdeploy:hosts[0].ssh: "10.0.0.11" must be "USER@ADDRESS[:PORT]"',
        "touchdeploy:hosts[0].port: 0 is not a TCP port (1-65535)",
        'touchdeploy:hosts[0].root: "/srv/../x" must not contain "." or ".." components',
        'touchdeploy:hosts[0].bind: "::" must be an IPv4 address such as 0.0.0.0',
      ],
    ],
    [
      "a host key both inline and in hostKeys",
      [web1],
      ["touchdeploy:hosts[0].hostKey: also given in touchdeploy:hostKeys: keep only this one"],
    ],
    [
      "neither an object nor a string",
      [42],
      [
        "touchdeploy:hosts[0]: must be an object {name, ssh, hostKey, port, root, bind} or a string, got 42",
      ],
    ],
  ];
  for (const [what, hosts, expected] of cases) {
    it(`GIVEN ${what} THEN exactly: ${expected.join(" | ")}`, () => {
      const raw: RawConfig = { repoPath: ".", sshPrivateKey: true, hosts: JSON.stringify(hosts) };
      if (what.includes("both inline")) raw.hostKeys = JSON.stringify([`web1 ssh-ed25519 ${KEY}`]);
      assert.deepEqual(problemsOf(raw), expected);
    });
  }
});

describe("what the host script refuses, the config refuses at preview (issue 8 item 9)", () => {
  const cases: [string, RawConfig, string[]][] = [
    [
      "the reload trigger named like the live release",
      { repoPath: ".", reloadFile: "current" },
      [
        'touchdeploy:reloadFile: "current" is one of touchdeploy\'s own names in the app root (releases, current, previous, repo.git, shared, state, .ssh, .history, .lock*, .switch*, .current.*, .previous.*, .tmp-*, configs, config, previous-config, .config.*, .previous-config.*)',
      ],
    ],
    [
      "the reload trigger named like the lock holder's temporary",
      { repoPath: ".", reloadFile: ".lock.holder.tmp-1" },
      [
        'touchdeploy:reloadFile: ".lock.holder.tmp-1" is one of touchdeploy\'s own names in the app root (releases, current, previous, repo.git, shared, state, .ssh, .history, .lock*, .switch*, .current.*, .previous.*, .tmp-*, configs, config, previous-config, .config.*, .previous-config.*)',
      ],
    ],
    [
      "a root with a . component",
      { repoPath: ".", root: "/srv/./app" },
      ['touchdeploy:root: "/srv/./app" must not contain "." or ".." components'],
    ],
    ["the root /", { repoPath: ".", root: "/" }, ['touchdeploy:root: "/" must not be "/"']],
    [
      "a local repository path with a $",
      { repoPath: "/home/me/a$b" },
      [
        'touchdeploy:repoPath: "/home/me/a$b" contains a character not allowed in a repository path (letters, digits, spaces and ._~:/?#@!%+,=[]- only)',
      ],
    ],
    [
      "a repository URL host starting with -",
      { repoUrl: "ssh://-oProxyCommand=x/r", commit: SHA },
      ['touchdeploy:repoUrl: "ssh://-oProxyCommand=x/r" a host must not start with "-"'],
    ],
  ];
  for (const [what, raw, expected] of cases) {
    it(`GIVEN ${what} THEN exactly: ${expected.join(" | ")}`, () => {
      assert.deepEqual(problemsOf(raw), expected);
    });
  }

  it("GIVEN a local checkout whose path has a space (item 10) THEN it is accepted as it is", () => {
    const config = parseConfig({ repoPath: "/home/me/My Projects/shop" }, CONTEXT);
    assert.equal(config.source.repoUrl, "/home/me/My Projects/shop");
  });
});
