// The components used directly, as another Pulumi program would (issue 8 item 17): what
// HostDeployment, AppDeployment and GitHubDeployKey declare beyond what index.ts exercises
// (program.test.ts), the outputs they register, and the errors they raise. Found by mutation
// testing (reports/mutation/). Under mocks.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import * as github from "@pulumi/github";
import { AppDeployment, GitHubDeployKey, HostDeployment } from "../../components";
import { privateKeyFormat } from "../../components/githubDeployKey";
import type { ReleaseConfig } from "../../components/config";
import { encodeDependencyFile } from "../../components/fingerprint";
import { HostDeploymentArgs, publicUrl } from "../../components/hostDeployment";
import { knownHostsLine } from "../../components/operatorSsh";
import { resolveSource } from "../../components/source";
import {
  CONTAINER,
  IMAGE,
  LOCAL_CMD,
  plain,
  plaintextOccurrences,
  ProgramRun,
  REMOTE_CMD,
  runProgram,
} from "../support/pulumiProgram";
import { releaseConfig } from "../support/releaseConfig";

const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";
const SHA = "0123456789abcdef0123456789abcdef01234567";
const PRIVATE =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nmaterial\n-----END OPENSSH PRIVATE KEY-----\n";
const RELEASE: ReleaseConfig = releaseConfig({
  appDir: "app",
  dependencyFiles: ["requirements.txt"],
});
const HOST_TYPE = "touchdeploy:index:HostDeployment";
/** The provider reference of host web1's Docker daemon (`URN::ID`). */
const DAEMON =
  "urn:pulumi:test::touchdeploy::touchdeploy:index:HostDeployment$pulumi:providers:docker::web1-docker::web1-docker-id";

let scratch: string;
before(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "td-components-"));
});
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** One ssh host of app `shop`, with a pulled image; `extra` replaces whole fields. */
function sshHost(extra: Partial<HostDeploymentArgs> = {}): HostDeploymentArgs {
  return {
    appName: "shop",
    host: {
      target: { kind: "ssh", user: "deploy", address: "10.0.0.11", port: 2222 },
      // As another program may pass it: spaces around, a comment after.
      hostKey: `  ssh-ed25519   ${KEY}  web1@example  `,
      root: "/srv/shop",
      port: 8000,
      bindAddress: "0.0.0.0",
    },
    sshPrivateKey: pulumi.secret(PRIVATE),
    source: { repoUrl: "https://example.com/shop.git", commit: SHA },
    release: RELEASE,
    image: { kind: "pull", name: "ghcr.io/acme/rt:1" },
    fingerprint: "fp1",
    hostScript: '#!/bin/bash\nmain "$@"\n',
    operatorSshDir: path.join(scratch, "ssh-web1"),
    ...extra,
  };
}

/** Outputs each component registered (`registerOutputs`), by resource name. */
type Registered = Record<string, Record<string, unknown>>;

/**
 * Runs `declare` as a Pulumi program under mocks; also records the outputs components register
 * and the provider each invoke goes to.
 */
async function declare(
  declareResources: () => void,
  options: Omit<Parameters<typeof runProgram>[0], "config" | "program"> = {},
): Promise<ProgramRun & { registered: Registered; invokedVia: Record<string, string> }> {
  const registered: Registered = {};
  const invokedVia: Record<string, string> = {};
  const run = await runProgram({
    config: {},
    ...options,
    program: () => {
      const monitor = pulumi.runtime.getMonitor() as unknown as {
        registerResourceOutputs(req: OutputsRequest, cb: (err: unknown) => void): void;
        invoke(req: InvokeRequest, cb: (err: unknown, res: unknown) => void): void;
      };
      const registerOutputs = monitor.registerResourceOutputs.bind(monitor);
      monitor.registerResourceOutputs = (req, cb) => {
        const name = req.getUrn().split("::").pop() ?? "";
        registered[name] = plain(pulumi.runtime.deserializeProperties(req.getOutputs()));
        registerOutputs(req, cb);
      };
      const invoke = monitor.invoke.bind(monitor);
      monitor.invoke = (req, cb) => {
        invokedVia[req.getTok()] = req.getProvider();
        invoke(req, cb);
      };
      declareResources();
      return {};
    },
  });
  await (
    require("@pulumi/pulumi/runtime/settings") as { waitForRPCs(): Promise<void> }
  ).waitForRPCs();
  return { ...run, registered, invokedVia };
}
interface OutputsRequest {
  getUrn(): string;
  getOutputs(): Parameters<typeof pulumi.runtime.deserializeProperties>[0];
}
interface InvokeRequest {
  getTok(): string;
  getProvider(): string;
}

/** The value of an Output (its rejection, when it fails). */
function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return (output as unknown as { promise(): Promise<T> }).promise();
}

describe("HostDeployment over ssh", () => {
  let run: Awaited<ReturnType<typeof declare>>;
  before(async () => {
    run = await declare(() => new HostDeployment("web1", sshHost()));
  });

  it("its commands log in as the user at address:port, with the private key as a secret and the host key as `TYPE BASE64`", () => {
    for (const name of ["web1-setup", "web1-fetch", "web1-release"]) {
      const inputs = plain<Record<string, unknown>>(run.get(REMOTE_CMD, name).inputs);
      assert.deepEqual(
        inputs.connection,
        {
          host: "10.0.0.11",
          port: 2222,
          user: "deploy",
          privateKey: PRIVATE,
          hostKey: `ssh-ed25519 ${KEY}`,
          // @pulumi/command's defaults (types/input.js `remote.connectionArgsProvideDefaults`).
          dialErrorLimit: 10,
          perDialTimeout: 15,
        },
        name,
      );
      assert.equal(inputs.addPreviousOutputInEnv, false, name);
    }
    assert.deepEqual(plaintextOccurrences(run, "material"), []);
  });

  it("every child is the host's; the image and the container go to the host's own Docker daemon", () => {
    const host = run.get(HOST_TYPE, "web1");
    const children = [
      run.get("pulumi:providers:docker", "web1-docker"),
      run.get(REMOTE_CMD, "web1-setup"),
      run.get(IMAGE, "web1-image"),
      run.get(REMOTE_CMD, "web1-fetch"),
      run.get(CONTAINER, "web1-container"),
      run.get(REMOTE_CMD, "web1-release"),
    ];
    for (const child of children) assert.equal(child.parentUrn, host.urn, child.name);
    assert.equal(run.get(IMAGE, "web1-image").provider, DAEMON);
    assert.equal(run.get(CONTAINER, "web1-container").provider, DAEMON);
  });

  it("registers its commit, URL and container name as its outputs", () => {
    assert.deepEqual(run.registered.web1, {
      commit: SHA,
      url: "http://10.0.0.11:8000/",
      containerName: "shop-web1",
    });
  });

  it("GIVEN a runtime image to build THEN it too is the host's child, built by the host's daemon", async () => {
    const built = await declare(
      () =>
        new HostDeployment(
          "web1",
          sshHost({
            image: {
              kind: "build",
              name: "touchdeploy/shop-runtime:0123abcd",
              context: "runtime",
              buildArgs: { BASE_IMAGE: "debian:bookworm-slim" },
            },
          }),
        ),
    );
    const image = built.get(IMAGE, "web1-image");
    assert.equal(image.parentUrn, built.get(HOST_TYPE, "web1").urn);
    assert.equal(image.provider, DAEMON);
  });
});

describe("HostDeployment over ssh to an IPv6 address", () => {
  it("GIVEN 2001:db8::1 port 2222 THEN commands dial the bare address; URLs and known_hosts bracket it", async () => {
    const dir = path.join(scratch, "ssh-v6");
    const run = await declare(
      () =>
        new HostDeployment(
          "web1",
          sshHost({
            host: {
              ...sshHost().host,
              target: { kind: "ssh", user: "deploy", address: "2001:db8::1", port: 2222 },
            },
            operatorSshDir: dir,
          }),
        ),
    );
    // pulumi-command joins host and port itself (provider/pkg/provider/remote/connection.go
    // `net.JoinHostPort` at v1.2.1): a bracketed host would become [[...]]:2222.
    const connection = plain<{ connection: { host: string } }>(
      run.get(REMOTE_CMD, "web1-setup").inputs,
    ).connection;
    assert.equal(connection.host, "2001:db8::1");
    assert.equal(
      plain<{ host: string }>(run.get("pulumi:providers:docker", "web1-docker").inputs).host,
      "ssh://deploy@[2001:db8::1]:2222",
    );
    assert.equal(
      fs.readFileSync(path.join(dir, "known_hosts"), "utf8"),
      `[2001:db8::1]:2222 ssh-ed25519 ${KEY}\n`,
    );
    assert.equal(run.registered.web1.url, "http://[2001:db8::1]:8000/");
  });
});

describe("HostDeployment: the release reads the fingerprint the container declares", () => {
  const release = (run: ProgramRun) =>
    String(plain<{ create: string }>(run.get(REMOTE_CMD, "web1-release").inputs).create);
  const unguarded =
    `bash -s -- release --root /srv/shop --commit ${SHA} --subdir app --reload-file .reload` +
    " --health-url http\\://127.0.0.1\\:8000/healthz --health-timeout 60 --keep 5" +
    " --release-command-timeout 600 --process-stop-timeout 10";
  /** What every release command line ends with: the container and the payload on stdin. */
  const tail = " --container shop-web1 --payload stdin";

  it("GIVEN the container declares one THEN the dependency guard gets it", async () => {
    const run = await declare(() => new HostDeployment("web1", sshHost()));
    assert.equal(
      release(run),
      `${unguarded} --dependency-files requirements.txt --container-fingerprint fp1${tail}`,
    );
  });

  it("GIVEN a container whose state has no fingerprint variable, or no variables at all (made before them) THEN no guard", async () => {
    for (const envs of [["TOUCHDEPLOY_APP_SUBDIR=app"], null]) {
      const run = await declare(() => new HostDeployment("web1", sshHost()), {
        computed: (type) => (type === CONTAINER ? { envs } : {}),
      });
      assert.equal(release(run), `${unguarded}${tail}`, JSON.stringify(envs));
    }
  });
});

describe("HostDeployment on the local machine, given a host key anyway", () => {
  it("THEN the local Docker daemon and local commands: the key is for ssh targets only", async () => {
    const run = await declare(
      () =>
        new HostDeployment(
          "one",
          sshHost({ host: { ...sshHost().host, target: { kind: "local" } } }),
        ),
    );
    assert.deepEqual(plain(run.get("pulumi:providers:docker", "one-docker").inputs), {});
    assert.deepEqual(run.ofType(REMOTE_CMD), []);
    assert.deepEqual(
      run
        .ofType(LOCAL_CMD)
        .map((r) => r.name)
        .sort(),
      ["one-fetch", "one-release", "one-setup", "one-user"],
    );
  });
});

describe("publicUrl", () => {
  before(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource: (a) => ({ id: a.name, state: a.inputs as Record<string, unknown> }),
        call: () => ({}),
      },
      "touchdeploy",
      "test",
    );
  });
  const ssh = { kind: "ssh" as const, user: "d", address: "10.0.0.11", port: 22 };
  const table: [string, Parameters<typeof publicUrl>[0], string, string][] = [
    ["a local host on every address", { kind: "local" }, "0.0.0.0", "http://localhost:8000/"],
    ["an ssh host on every address", ssh, "0.0.0.0", "http://10.0.0.11:8000/"],
    ["an ssh host on its loopback", ssh, "127.0.0.1", "http://localhost:8000/"],
    ["an ssh host on one of its addresses", ssh, "10.0.0.5", "http://10.0.0.5:8000/"],
    [
      "a local host on one of its addresses",
      { kind: "local" },
      "192.168.1.10",
      "http://192.168.1.10:8000/",
    ],
  ];
  for (const [what, target, bind, url] of table) {
    it(`GIVEN ${what} (${bind}) THEN ${url}`, async () => {
      assert.equal(await valueOf(publicUrl(target, bind, 8000)), url);
    });
  }
});

describe("knownHostsLine", () => {
  it("GIVEN port 22 and a key with a newline THEN `ADDRESS KEY` and one newline; another port THEN [ADDRESS]:PORT", () => {
    assert.equal(
      knownHostsLine("10.0.0.11", 22, `ssh-ed25519 ${KEY}\n`),
      `10.0.0.11 ssh-ed25519 ${KEY}\n`,
    );
    assert.equal(
      knownHostsLine("10.0.0.11", 2222, ` ssh-ed25519 ${KEY}`),
      `[10.0.0.11]:2222 ssh-ed25519 ${KEY}\n`,
    );
  });
});

describe("AppDeployment", () => {
  it("GIVEN local hosts and no operatorSshDir THEN each host is the app's child, and the app registers its fingerprint and summary", async () => {
    const run = await declare(
      () =>
        new AppDeployment("shop", {
          hosts: [
            {
              name: "one",
              target: { kind: "local" },
              root: "/srv/shop",
              port: 8000,
              bindAddress: "127.0.0.1",
            },
          ],
          source: { repoUrl: "https://example.com/shop.git", commit: SHA },
          image: { kind: "pull", name: "ghcr.io/acme/rt:1" },
          release: RELEASE,
          rollout: { strategy: "parallel" },
          hostScript: '#!/bin/bash\nmain "$@"\n',
        }),
    );
    assert.equal(
      run.get(HOST_TYPE, "one").parentUrn,
      run.get("touchdeploy:index:AppDeployment", "shop").urn,
    );
    assert.deepEqual(run.registered.shop, {
      fingerprint: "unmanaged",
      summary: { one: { commit: SHA, url: "http://localhost:8000/", container: "shop-one" } },
    });
  });
});

describe("GitHubDeployKey", () => {
  const OPENSSH = PRIVATE;
  const PEM = "-----BEGIN EC PRIVATE KEY-----\nmaterial\n-----END EC PRIVATE KEY-----\n";
  const PUBLIC = `ssh-ed25519 ${KEY}`;
  const answer = () => ({ publicKeyOpenssh: `${PUBLIC}\n` });

  it("GIVEN no key THEN a generated key pair and its registration are the component's children; it registers the public key", async () => {
    const run = await declare(
      () => new GitHubDeployKey("shop-key", { repository: "shop", title: "t" }),
      {
        computed: (type) =>
          type === "tls:index/privateKey:PrivateKey"
            ? { privateKeyOpenssh: OPENSSH, publicKeyOpenssh: `${PUBLIC}\n` }
            : {},
      },
    );
    const component = run.get("touchdeploy:index:GitHubDeployKey", "shop-key");
    assert.equal(
      run.get("tls:index/privateKey:PrivateKey", "shop-key-key").parentUrn,
      component.urn,
    );
    assert.equal(
      run.get("github:index/repositoryDeployKey:RepositoryDeployKey", "shop-key-deploy-key")
        .parentUrn,
      component.urn,
    );
    assert.deepEqual(run.registered["shop-key"], { publicKey: `${PUBLIC}\n` });
  });

  for (const [format, key, inputs] of [
    // The other input unset (the invoke carries it as null).
    ["OpenSSH", OPENSSH, { privateKeyOpenssh: OPENSSH, privateKeyPem: null }],
    ["PEM", PEM, { privateKeyOpenssh: null, privateKeyPem: PEM }],
  ] as const) {
    it(`GIVEN a ${format} key THEN its public half is derived from it as ${format} only, through the component's tls provider`, async () => {
      let provider: tls.Provider | undefined;
      const run = await declare(
        () => {
          provider = new tls.Provider("tls");
          new GitHubDeployKey(
            "shop-key",
            { repository: "shop", title: "t", privateKey: key },
            { providers: [provider] },
          );
        },
        { invoke: answer },
      );
      const invoked = run.invokes.filter((i) => i.token === "tls:index/getPublicKey:getPublicKey");
      assert.deepEqual(
        invoked.map((i) => plain(i.inputs)),
        [inputs],
      );
      assert.equal(
        run.invokedVia["tls:index/getPublicKey:getPublicKey"],
        "urn:pulumi:test::touchdeploy::pulumi:pulumi:Stack$pulumi:providers:tls::tls::tls-id",
      );
      assert.ok(provider);
    });
  }
});

describe("privateKeyFormat", () => {
  const body =
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAAAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAA\n";
  const openssh = `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}-----END OPENSSH PRIVATE KEY-----\n`;
  const pkcs8 = `-----BEGIN PRIVATE KEY-----\n${body}-----END PRIVATE KEY-----\n`;
  const refused = /^touchdeploy:deployPrivateKey is not an OpenSSH or PEM private key/;

  it("GIVEN keys of several lines, with blank lines around THEN their format", () => {
    assert.equal(privateKeyFormat(openssh), "openssh");
    assert.equal(privateKeyFormat(`\n  \n${openssh}\n\n`), "openssh");
    assert.equal(privateKeyFormat(pkcs8), "pem", "PKCS#8: no RSA or EC in the armour");
    assert.equal(privateKeyFormat(pkcs8.replace(/ PRIVATE/g, " RSA PRIVATE")), "pem");
  });
  it("GIVEN anything before the armour or after it THEN refused", () => {
    for (const key of [`x${openssh}`, `${openssh}trailing\n`, `x${pkcs8}`, `${pkcs8}trailing\n`]) {
      assert.throws(() => privateKeyFormat(key), { message: refused }, JSON.stringify(key));
    }
  });
});

describe("resolveSource", () => {
  let requests: string[];
  let realFetch: typeof fetch;
  before(() => {
    realFetch = globalThis.fetch;
    globalThis.fetch = (input: string | URL | Request) => {
      requests.push(input instanceof Request ? input.url : input.toString());
      return Promise.resolve(new Response("flask\n", { status: 200 }));
    };
  });
  after(() => {
    globalThis.fetch = realFetch;
  });
  async function mocks(branchSha: string) {
    requests = [];
    const invokedVia: string[] = [];
    await pulumi.runtime.setMocks(
      {
        newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs as Record<string, unknown> }),
        call: (a) => {
          invokedVia.push(`${a.token} ${a.provider ?? ""}`);
          return { sha: branchSha };
        },
      },
      "touchdeploy",
      "test",
    );
    return invokedVia;
  }
  const githubSource = {
    kind: "github" as const,
    owner: "acme",
    repository: "shop",
    repoUrl: "https://github.com/acme/shop.git",
    branch: "main",
    deployKey: { kind: "none" as const },
  };
  const release = { appDir: "", dependencyFiles: ["requirements.txt"] };

  it("GIVEN a URL and a pin THEN that commit, and no dependency files to read", async () => {
    await mocks(SHA);
    const resolved = resolveSource(
      {
        kind: "url",
        repoUrl: "https://example.com/x.git",
        branch: "main",
        commit: SHA,
        deployKey: { kind: "none" },
      },
      release,
    );
    assert.equal(await valueOf(resolved.commit), SHA);
    assert.equal(resolved.dependencyFiles, undefined);
  });

  it("GIVEN GitHub and no access settings THEN the default provider, api.github.com and the global fetch", async () => {
    const invokedVia = await mocks(SHA);
    const resolved = resolveSource(githubSource, release);
    assert.equal(await valueOf(resolved.commit), SHA);
    assert.deepEqual(await valueOf(resolved.dependencyFiles!), [
      encodeDependencyFile({ path: "requirements.txt", content: Buffer.from("flask\n") }),
    ]);
    assert.deepEqual(requests, [
      `https://api.github.com/repos/acme/shop/contents/requirements.txt?ref=${SHA}`,
    ]);
    assert.deepEqual(invokedVia, ["github:index/getBranch:getBranch "]);
  });

  it("GIVEN a provider and an API URL with trailing slashes THEN the branch is read through that provider and the files from that API", async () => {
    const invokedVia = await mocks(SHA);
    const provider = new github.Provider("ghe", {});
    const resolved = resolveSource(githubSource, release, {
      provider,
      token: undefined,
      baseUrl: "https://ghe.example.com/api/v3//",
    });
    await valueOf(resolved.dependencyFiles!);
    assert.deepEqual(requests, [
      `https://ghe.example.com/api/v3/repos/acme/shop/contents/requirements.txt?ref=${SHA}`,
    ]);
    assert.deepEqual(invokedVia, [
      "github:index/getBranch:getBranch urn:pulumi:test::touchdeploy::pulumi:providers:github::ghe::ghe-id",
    ]);
  });
});
