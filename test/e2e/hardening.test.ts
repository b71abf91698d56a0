/**
 * The hardened container (issue 14) on the real engine: the e2e tests' containers are created
 * with the hardening the program declares (test/harness/hardening.ts from
 * components/containerArgs.ts `containerHardening`, the config's default limits). Checked from
 * inside: no capabilities and no-new-privileges for every process of the app (supervisord, the
 * generations manager, uWSGI masters and workers, a `docker exec`), a read-only root, the
 * process limit; from outside: the memory and CPU limits, and that Docker stored each setting in
 * the form the provider model (test/support/providerModels.ts `containerOutputs`) reads back as
 * declared. And a code deploy and a rollback still work, writing only to /tmp.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { containerHardening } from "../../components/containerArgs";
import { getServed } from "../harness/app";
import { describeRun, EXIT, runHostScript } from "../harness/hostScript";
import { setupFixture, type Fixture } from "../harness/fixture";
import { defaultLimits } from "../harness/hardening";
import { e2eGate } from "../harness/prerequisites";
import { containerOutputs, type ContainerInspect } from "../support/providerModels";

/** Runs `sh -c SCRIPT` in the container as its user; stdout, and the exit code. */
async function execIn(fx: Fixture, script: string): Promise<{ code: number; out: string }> {
  const exec = await fx.container().container.exec({
    Cmd: ["sh", "-c", script],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  await new Promise((resolve) => stream.on("end", resolve));
  const info = await exec.inspect();
  // Strip Docker's 8-byte multiplexing headers.
  const raw = Buffer.concat(chunks);
  const parts: Buffer[] = [];
  for (let i = 0; i + 8 <= raw.length;) {
    const size = raw.readUInt32BE(i + 4);
    parts.push(raw.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return { code: info.ExitCode ?? -1, out: Buffer.concat(parts).toString("utf8") };
}

describe(
  "the hardened container",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock"]),
  () => {
    let fx: Fixture;
    before(async () => {
      fx = await setupFixture("hardening");
      const sha = await fx.repo.head();
      const r = await fx.deploy(sha);
      assert.equal(r.code, EXIT.ok, describeRun(r));
    });
    after(async () => {
      await fx?.cleanup();
    });

    it("every process: CapEff 0, NoNewPrivs 1, nproc limited; the root is read-only, /tmp is the tmpfs", async () => {
      const { code, out } = await execIn(
        fx,
        [
          'for p in /proc/[0-9]*; do [ -r "$p/status" ] || continue;',
          'printf "%s %s %s %s\\n" "$(cat $p/comm)"',
          '"$(sed -n "s/^CapEff:\\t//p" $p/status)"',
          '"$(sed -n "s/^NoNewPrivs:\\t//p" $p/status)"',
          '"$(sed -n "s/^Max processes *\\([0-9]*\\) *\\([0-9]*\\).*/\\1:\\2/p" $p/limits)"; done',
        ].join(" "),
      );
      assert.equal(code, 0, out);
      const rows = out
        .trim()
        .split("\n")
        .map((l) => l.split(" "));
      const names = rows.map((r) => r[0]);
      // supervisord, the manager (python3), uWSGI's master and its 2 workers, this shell.
      assert.ok(names.includes("supervisord"), out);
      assert.ok(names.filter((n) => n === "uwsgi").length >= 3, out);
      for (const [name, capEff, noNewPrivs, nproc] of rows) {
        if (name === "sed" || name === "cat") continue;
        assert.deepEqual(
          [name, capEff, noNewPrivs, nproc],
          [name, "0000000000000000", "1", "1024:1024"],
        );
      }
      const write = await execIn(fx, "touch /x 2>&1; echo $?; touch /tmp/x && echo tmp-ok");
      assert.deepEqual(write.out.trim().split("\n"), [
        "touch: cannot touch '/x': Read-only file system",
        "1",
        "tmp-ok",
      ]);
      const tmp = await execIn(fx, "grep ' /tmp ' /proc/mounts");
      assert.match(tmp.out, /^tmpfs \/tmp tmpfs rw,nosuid,nodev,noexec,relatime,size=65536k/);
    });

    it("Docker holds the limits the config says, stored so that the provider reads back what was declared", async () => {
      const inspect = (await fx.container().container.inspect()) as unknown as ContainerInspect;
      const limits = defaultLimits();
      assert.deepEqual(limits, { memoryMb: 1024, cpus: "1.0" });
      assert.equal(inspect.HostConfig.Memory, 1024 * 1024 * 1024);
      assert.equal(inspect.HostConfig.NanoCpus, 1e9);
      const declared = containerHardening(limits);
      const read = containerOutputs(declared, inspect);
      assert.deepEqual(
        {
          readOnly: read.readOnly,
          tmpfs: read.tmpfs,
          capabilities: read.capabilities,
          securityOpts: read.securityOpts,
          ulimits: read.ulimits,
          memory: read.memory,
          memorySwap: read.memorySwap,
          cpus: read.cpus,
        },
        { ...declared, capabilities: { adds: [], drops: ["ALL"] } },
      );
    });

    it("a code deploy and a rollback work hardened, on the same container", async () => {
      const before = await fx.container().identity();
      const first = await fx.repo.head();
      const next = await fx.repo.commitGreeting("Hello hardened");
      const r = await fx.deploy(next);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.equal((await getServed(`${fx.container().baseUrl}/`)).revision, next);
      const back = await runHostScript([
        ...fx.args("rollback", "--health-url", fx.container().healthUrl),
      ]);
      assert.equal(back.code, EXIT.ok, describeRun(back));
      assert.equal((await getServed(`${fx.container().baseUrl}/`)).revision, first);
      assert.deepEqual(await fx.container().identity(), before);
    });
  },
);
