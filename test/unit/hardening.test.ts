// The hardened container (issue 14): the config keys touchdeploy:memory and touchdeploy:cpus,
// the provider's spelling of cpus, and what the Docker provider makes of the hardening inputs,
// through the provider model (test/support/providerModels.ts). No Docker, no mocks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseConfig, RawConfig } from "../../components/config";
import type { ContainerLimits } from "../../components/config/release";
import {
  CONTAINER_TMPFS,
  containerArgs,
  containerHardening,
  HARDENING_LABEL,
  shortHash,
} from "../../components/containerArgs";
import { cpusNano, dockerCpusText } from "../../components/containerLimits";
import { hardeningHostConfig } from "../harness/hardening";
import {
  ContainerInspect,
  containerDiff,
  containerOutputs,
  ModelState,
} from "../support/providerModels";
import { plain } from "../support/pulumiProgram";

const CONTEXT = { projectDir: "/work/project" };

function limitsOf(raw: RawConfig): ContainerLimits {
  return parseConfig({ repoPath: ".", ...raw }, CONTEXT).release.limits;
}

function problemsOf(raw: RawConfig): string[] {
  try {
    parseConfig({ repoPath: ".", ...raw }, CONTEXT);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail("expected the config to be rejected");
}

describe("touchdeploy:memory and touchdeploy:cpus", () => {
  it("GIVEN nothing THEN 1g and 1 CPU (spelled as the provider reads it back)", () => {
    assert.deepEqual(limitsOf({}), { memoryMb: 1024, cpus: "1.0" });
  });

  it("GIVEN sizes and amounts THEN megabytes and the provider's spelling; off turns a limit off", () => {
    const table: [RawConfig, ContainerLimits][] = [
      [
        { memory: "512m", cpus: "0.5" },
        { memoryMb: 512, cpus: "0.5" },
      ],
      [
        { memory: "2G", cpus: "2" },
        { memoryMb: 2048, cpus: "2.0" },
      ],
      [
        { memory: " 6m ", cpus: 1.5 },
        { memoryMb: 6, cpus: "1.5" },
      ],
      [
        { memory: "off", cpus: "off" },
        { memoryMb: undefined, cpus: undefined },
      ],
      [{ cpus: "10" }, { memoryMb: 1024, cpus: "10." }],
      [{ cpus: "0.25" }, { memoryMb: 1024, cpus: "0.25" }],
    ];
    for (const [raw, limits] of table) assert.deepEqual(limitsOf(raw), limits, String(raw.cpus));
  });

  it("GIVEN bad values THEN errors name the key and the value", () => {
    assert.deepEqual(problemsOf({ memory: "512", cpus: "two" }), [
      'touchdeploy:memory: "512" must be a size in whole megabytes like "512m" or "2g" (at least 6m, at most 1048576m), or "off"',
      'touchdeploy:cpus: "two" must be a number of CPUs from 0.01 to 1024 like "0.5" or "2", or "off"',
    ]);
    assert.deepEqual(problemsOf({ memory: "5m", cpus: "0" }), [
      'touchdeploy:memory: "5m" must be a size in whole megabytes like "512m" or "2g" (at least 6m, at most 1048576m), or "off"',
      'touchdeploy:cpus: "0" must be a number of CPUs from 0.01 to 1024 like "0.5" or "2", or "off"',
    ]);
    assert.deepEqual(problemsOf({ memory: "1.5g", cpus: "0.05" }), [
      'touchdeploy:memory: "1.5g" must be a size in whole megabytes like "512m" or "2g" (at least 6m, at most 1048576m), or "off"',
      'touchdeploy:cpus: "0.05" cannot be declared so that the Docker provider reads it back the same (it would read "0.1", which replaces the container on every deploy): use a value with fewer decimals',
    ]);
  });

  // terraform-provider-docker v4.5.0 internal/provider/helpers.go `nanoInt64ToDecimalString`
  // (resourceDockerContainerRead: d.Set("cpus", ...) when HostConfig.NanoCPUs > 0): nine decimal
  // places; exactly nine "0" characters → rounded to one place; else trailing zeros trimmed.
  it("the provider's spelling of cpus, and ParseCPUs' reading of it", () => {
    const cases: [bigint, string][] = [
      [1_000_000_000n, "1.0"],
      [1_500_000_000n, "1.5"],
      [500_000_000n, "0.5"],
      [250_000_000n, "0.25"],
      [2_000_000_000n, "2.0"],
      [10_000_000_000n, "10."],
      [11_000_000_000n, "11.0"],
      [100_000_000_000n, "100."],
      [50_000_000n, "0.1"],
      [10_000_000n, "0.0"],
      [1_050_000_000n, "1.05"],
    ];
    assert.deepEqual(
      cases.map(([nano]) => dockerCpusText(nano)),
      cases.map(([, text]) => text),
    );
    assert.deepEqual(
      ["1", "1.0", "10.", "0.5", "1.050", "x", "", ".5", "1e3", "0.0000000001"].map(cpusNano),
      [
        1_000_000_000n,
        1_000_000_000n,
        10_000_000_000n,
        500_000_000n,
        1_050_000_000n,
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
      ],
    );
  });
});

describe("the hardening, as the Docker provider creates and reads it (terraform-provider-docker v4.5.0)", () => {
  const spec = {
    appName: "shop",
    hostName: "web1",
    host: { root: "/srv/touchdeploy/shop", port: 8080, bindAddress: "127.0.0.1" },
    release: {
      appDir: "app",
      reloadFile: ".reload",
      health: { path: "/healthz" },
      stateDirs: ["data"],
      limits: { memoryMb: 1024, cpus: "1.0" } as ContainerLimits,
    },
    image: "sha256:abc",
    fingerprint: "f".repeat(64),
    user: "1500:1500",
  };
  const declaredOf = (limits: ContainerLimits = spec.release.limits, tmpfs?: object) => {
    const args = plain<Record<string, unknown>>(
      containerArgs({ ...spec, release: { ...spec.release, limits } }),
    );
    return tmpfs ? { ...args, tmpfs } : args;
  };

  /**
   * `docker inspect` after the provider's Create (resource_docker_container_funcs.go
   * `resourceDockerContainerCreate` → hardeningHostConfig, the realizer's translation) and the
   * daemon: it stores what it was given, except that a memory limit without a swap limit gets
   * swap = twice the memory (moby daemon/daemon_unix.go `adaptContainerSettings`); the e2e test
   * test/e2e/hardening.test.ts checks this model against the real engine.
   */
  const inspectOf = (declared: Record<string, unknown>): ContainerInspect => {
    const hc = hardeningHostConfig(declared);
    const memory = hc.Memory ?? 0;
    return {
      Id: "id1",
      Name: "/shop-web1",
      Image: "sha256:abc",
      State: { Running: true },
      Config: {
        Image: "sha256:abc",
        User: "1500:1500",
        Healthcheck: {
          Test: (declared.healthcheck as { tests: string[] }).tests,
          Interval: 10e9,
          Timeout: 5e9,
          StartPeriod: 30e9,
          Retries: 3,
        },
      },
      HostConfig: {
        RestartPolicy: { Name: "unless-stopped" },
        LogConfig: { Type: "local", Config: {} },
        NetworkMode: "bridge",
        ReadonlyRootfs: hc.ReadonlyRootfs ?? false,
        Tmpfs: hc.Tmpfs ?? null,
        CapAdd: (hc.CapAdd as string[] | undefined) ?? null,
        CapDrop: (hc.CapDrop as string[] | undefined) ?? null,
        SecurityOpt: (hc.SecurityOpt as string[] | undefined) ?? null,
        Ulimits: (hc.Ulimits ?? null) as ContainerInspect["HostConfig"]["Ulimits"],
        Memory: memory,
        MemorySwap: memory > 0 && !hc.MemorySwap ? memory * 2 : (hc.MemorySwap ?? 0),
        NanoCpus: hc.NanoCpus ?? 0,
      },
      NetworkSettings: { Ports: { "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }] } },
    };
  };
  const stateOf = (declared: Record<string, unknown>): ModelState => ({
    type: "docker:index/container:Container",
    name: "web1-container",
    inputs: declared,
    outputs: containerOutputs(declared, inspectOf(declared)),
  });
  const diff = (old: Record<string, unknown>, news: Record<string, unknown>) => {
    const d = containerDiff(stateOf(old), news, []);
    return { changed: d.changedKeys, replace: d.replaceKeys };
  };

  it("GIVEN the declared hardening THEN Read takes back exactly it: the next `up` (a new commit changes no container input) leaves the container the same", () => {
    for (const limits of [
      { memoryMb: 1024, cpus: "1.0" },
      { memoryMb: 512, cpus: "10." },
      { memoryMb: undefined, cpus: undefined },
    ]) {
      const declared = declaredOf(limits);
      const outputs = containerOutputs(declared, inspectOf(declared));
      for (const key of [
        "readOnly",
        "tmpfs",
        "capabilities",
        "securityOpts",
        "ulimits",
        "memory",
        "memorySwap",
        "cpus",
      ]) {
        // An empty set and no set are the same to the provider (Read stores CapAdd null as []).
        const expected =
          key === "capabilities" ? { adds: [], ...(declared[key] as object) } : declared[key];
        assert.deepEqual(outputs[key], expected, `${key} read back as declared`);
      }
      assert.deepEqual(diff(declared, declaredOf(limits)), { changed: [], replace: [] });
    }
  });

  it("GIVEN any change of the hardening THEN the container is replaced: the label carries it, also for tmpfs and memory, which Update would not (fully) apply", () => {
    const label = (d: Record<string, unknown>) =>
      (d.labels as { label: string; value: string }[]).findIndex(
        (l) => l.label === HARDENING_LABEL,
      );
    assert.equal(label(declaredOf()), 1);
    const base = declaredOf();
    // memory: not ForceNew (resource_docker_container.go schema), Update's ContainerUpdate
    // leaves a 0 ("off") unchanged (resource_docker_container_funcs.go
    // `resourceDockerContainerUpdate`): the label makes it a replacement.
    assert.deepEqual(diff(base, declaredOf({ memoryMb: undefined, cpus: "1.0" })), {
      changed: ["labels", "memory", "memorySwap"],
      replace: ["labels"],
    });
    assert.deepEqual(diff(base, declaredOf({ memoryMb: 2048, cpus: "1.0" })), {
      changed: ["labels", "memory", "memorySwap"],
      replace: ["labels"],
    });
    // cpus: ForceNew itself.
    assert.deepEqual(diff(base, declaredOf({ memoryMb: 1024, cpus: "2.0" })), {
      changed: ["cpus", "labels"],
      replace: ["cpus", "labels"],
    });
    // tmpfs: neither ForceNew nor in Update's list; alone it would be an update that never
    // reaches the container.
    const tmpfs = { "/tmp": "rw,noexec,nosuid,nodev,size=128m" };
    assert.deepEqual(diff(base, { ...declaredOf(), tmpfs }), {
      changed: ["tmpfs"],
      replace: [],
    });
    // ...so the tmpfs is part of the hashed hardening: a new CONTAINER_TMPFS is a new label.
    assert.deepEqual(containerHardening(spec.release.limits).tmpfs, CONTAINER_TMPFS);
    assert.equal(
      (base.labels as { label: string; value: string }[])[1].value,
      shortHash(containerHardening(spec.release.limits)),
    );
  });

  it("the traps the declared values avoid: swap left to the daemon, cpus in another spelling, capabilities in another case", () => {
    const base = declaredOf();
    // memory_swap left out: the daemon sets twice the memory, Read puts 2048 in the state, and
    // every `up` shows an update (memory_swap is neither Computed nor ForceNew).
    const noSwap = { ...base };
    delete noSwap.memorySwap;
    assert.deepEqual(diff(noSwap, noSwap), { changed: ["memorySwap"], replace: [] });
    // cpus "1" is created as 1e9 and read back "1.0": ForceNew, a replacement on every `up`.
    const one = { ...base, cpus: "1" };
    assert.deepEqual(diff(one, one), { changed: ["cpus"], replace: ["cpus"] });
    // Capabilities are compared as declared and as the daemon stored them.
    const lower = { ...base, capabilities: { drops: ["all"] } };
    const state = stateOf(base);
    assert.deepEqual(containerDiff(state, lower, []).replaceKeys, ["capabilities"]);
  });
});

describe("the container model's sets", () => {
  it("GIVEN ulimits whose fields come in another order (as the state holds them) THEN no diff", () => {
    const declared = { ulimits: [{ name: "nproc", soft: 1024, hard: 1024 }] };
    const state: ModelState = {
      type: "docker:index/container:Container",
      name: "c",
      inputs: declared,
      outputs: { ulimits: [{ hard: 1024, name: "nproc", soft: 1024 }] },
    };
    assert.deepEqual(containerDiff(state, declared, []).changedKeys, []);
  });
});
