// Errors the components raise inside Outputs, once the value is known (found by mutation
// testing, reports/mutation/). Such an error fails a Pulumi program through the process: the
// language host (@pulumi/pulumi cmd/run/run.js) listens for `uncaughtException` and
// `unhandledRejection`, reports the error and fails the deployment. This file does the same: it
// takes both events over for its whole run (node:test's own listeners are set aside, and put
// back at the end), and each test awaits the error its program raises. A mocked run that failed
// this way never completes, which is why these tests live in a file of their own.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { AppDeployment, GitHubDeployKey, HostDeployment } from "../../components";
import { encodeDependencyFile } from "../../components/fingerprint";
import type { HostDeploymentArgs } from "../../components/hostDeployment";
import { resolveSource } from "../../components/source";
import { runProgram } from "../support/pulumiProgram";
import { releaseConfig } from "../support/releaseConfig";

const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";
const SHA = "0123456789abcdef0123456789abcdef01234567";
const RELEASE = releaseConfig({ appDir: "", dependencyFiles: ["Aptfile"] });

/** node:test's own listeners, set aside while this file runs. */
let uncaught: NodeJS.UncaughtExceptionListener[] = [];
let unhandled: NodeJS.UnhandledRejectionListener[] = [];
/** Messages of every error the programs raised, in order, and who waits for the next one. */
const raised: string[] = [];
let onRaised: (() => void) | undefined;
let scratch: string;

before(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "td-errors-"));
  const record = (err: unknown) => {
    raised.push(err instanceof Error ? err.message : String(err));
    onRaised?.();
  };
  uncaught = process.listeners("uncaughtException");
  unhandled = process.listeners("unhandledRejection");
  process.removeAllListeners("uncaughtException");
  process.removeAllListeners("unhandledRejection");
  process.on("uncaughtException", record);
  process.on("unhandledRejection", record);
});
after(() => {
  process.removeAllListeners("uncaughtException");
  process.removeAllListeners("unhandledRejection");
  for (const listener of uncaught) process.on("uncaughtException", listener);
  for (const listener of unhandled) process.on("unhandledRejection", listener);
  fs.rmSync(scratch, { recursive: true, force: true });
});

/**
 * Declares the resources as a program and waits for the first error it raises that mentions
 * `about` (an error the program does not raise fails the test by its timeout).
 */
async function failureOf(
  about: string,
  declare: () => void,
  options: Omit<Parameters<typeof runProgram>[0], "config" | "program"> = {},
): Promise<string> {
  const from = raised.length;
  const found = () => raised.slice(from).find((m) => m.includes(about));
  const message = new Promise<string>((resolve) => {
    onRaised = () => {
      const m = found();
      if (m !== undefined) resolve(m);
    };
  });
  void runProgram({
    config: {},
    ...options,
    program: () => {
      declare();
      return {};
    },
  });
  return found() ?? (await message);
}

/** One ssh host; `extra` replaces whole fields. */
function sshHost(extra: Partial<HostDeploymentArgs> = {}): HostDeploymentArgs {
  return {
    appName: "shop",
    host: {
      target: { kind: "ssh", user: "deploy", address: "10.0.0.11", port: 22 },
      hostKey: `ssh-ed25519 ${KEY}`,
      root: "/srv/shop",
      port: 8000,
      bindAddress: "0.0.0.0",
    },
    sshPrivateKey: pulumi.secret("key"),
    source: { repoUrl: "https://example.com/shop.git", commit: SHA },
    release: RELEASE,
    image: { kind: "pull", name: "rt:1" },
    fingerprint: "unmanaged",
    hostScript: 'main "$@"\n',
    operatorSshDir: path.join(scratch, "ssh"),
    ...extra,
  };
}

describe(
  "errors in the arguments fail the program before anything is declared",
  { timeout: 30_000 },
  () => {
    it("GIVEN an ssh target without its host key, private key or SSH directory THEN it names the three", async () => {
      const missing: Partial<HostDeploymentArgs>[] = [
        { host: { ...sshHost().host, hostKey: undefined } },
        { sshPrivateKey: undefined },
        { operatorSshDir: undefined },
      ];
      for (const extra of missing) {
        assert.equal(
          await failureOf("ssh target", () => new HostDeployment("web1", sshHost(extra))),
          'host "web1": an ssh target needs `host.hostKey`, `sshPrivateKey` and `operatorSshDir`',
          Object.keys(extra).join(),
        );
      }
    });

    it("GIVEN an app without hosts THEN it says it needs one", async () => {
      const message = await failureOf("hosts", () => {
        new AppDeployment("shop", {
          hosts: [],
          source: { repoUrl: "https://example.com/shop.git", commit: SHA },
          image: { kind: "pull", name: "rt:1" },
          release: RELEASE,
          rollout: { strategy: "parallel" },
          hostScript: 'main "$@"\n',
        });
      });
      assert.equal(message, "`hosts` must list at least one host");
    });
  },
);

describe(
  "errors raised inside Outputs fail the program, naming what is wrong",
  { timeout: 30_000 },
  () => {
    it("GIVEN a host key Output with two problems THEN both, on the host", async () => {
      const message = await failureOf('host "web1": hostKey', () => {
        new HostDeployment(
          "web1",
          sshHost({ host: { ...sshHost().host, hostKey: pulumi.output("ssh-dss !") } }),
        );
      });
      assert.ok(
        message.endsWith(
          'host "web1": hostKey key type "ssh-dss" is not one of ssh-ed25519, ecdsa-sha2-nistp256, ' +
            'ecdsa-sha2-nistp384, ecdsa-sha2-nistp521; the key is not base64 (got "!")',
        ),
        message,
      );
    });

    it("GIVEN an Aptfile with something that is not a package name THEN the build fails naming it", async () => {
      const message = await failureOf("Aptfile", () => {
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
          source: {
            repoUrl: "https://example.com/shop.git",
            commit: SHA,
            dependencies: [
              encodeDependencyFile({ path: "Aptfile", content: Buffer.from("libpq5 $(reboot)\n") }),
            ],
          },
          image: {
            kind: "build",
            context: "runtime",
            contextHash: "0".repeat(64),
            baseImage: "debian:bookworm-slim",
          },
          release: RELEASE,
          rollout: { strategy: "parallel" },
          hostScript: 'main "$@"\n',
        });
      });
      assert.ok(
        message.endsWith('Aptfile: "$(reboot)" is not a Debian package name (NAME or NAME/SUITE)'),
        message,
      );
    });

    it("GIVEN a provided key that is neither OpenSSH nor PEM THEN what is expected, never the key", async () => {
      const message = await failureOf("deployPrivateKey", () => {
        new GitHubDeployKey("shop-key", { repository: "shop", title: "t", privateKey: "hunter2" });
      });
      assert.ok(
        message.endsWith(
          "touchdeploy:deployPrivateKey is not an OpenSSH or PEM private key " +
            "(expected -----BEGIN OPENSSH PRIVATE KEY----- ...; generate one with ssh-keygen -t ed25519)",
        ),
        message,
      );
      assert.ok(!message.includes("hunter2"));
    });

    it("GIVEN a GitHub branch head that is not a full SHA THEN it names the call and the value", async () => {
      const message = await failureOf(
        "github.getBranch",
        () => {
          resolveSource(
            {
              kind: "github",
              owner: "acme",
              repository: "shop",
              repoUrl: "https://github.com/acme/shop.git",
              branch: "main",
              deployKey: { kind: "none" },
            },
            { appDir: "", dependencyFiles: [] },
          );
        },
        { invoke: () => ({ sha: "abc123" }) },
      );
      assert.equal(
        message,
        'github.getBranch(acme/shop, main) returned "abc123", which is not a full commit SHA',
      );
    });
  },
);
