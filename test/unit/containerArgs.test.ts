// The container's arguments: a pure function, tested without mocks.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { CONFIG_KEYS } from "../../components/config/schema";
import { containerArgs, containerHealthcheck } from "../../components/containerArgs";
import type { ContainerLimits, ReleaseConfig } from "../../components/config/release";
import { releaseConfig } from "../support/releaseConfig";

const ROOT = path.join(__dirname, "..", "..");

const sha256sum = (s: string) => execFileSync("sha256sum", { input: s }).toString().split(" ")[0];

const spec = {
  appName: "shop",
  hostName: "web1",
  host: { root: "/srv/touchdeploy/shop", port: 8080, bindAddress: "0.0.0.0" },
  release: {
    appDir: "app",
    reloadFile: ".reload",
    health: { path: "/healthz" },
    stateDirs: [] as string[],
    limits: { memoryMb: 1024, cpus: "1.0" } as ContainerLimits,
  },
  image: "sha256:abc",
  fingerprint: "f".repeat(64),
  user: "1500:1500",
};

describe("containerArgs", () => {
  it("GIVEN plain values THEN exactly these arguments: no commit, no log options", () => {
    const healthcheck = {
      tests: [
        "CMD",
        "python3",
        "-c",
        "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)",
        "http://127.0.0.1:8000/healthz",
      ],
      interval: "10s",
      timeout: "5s",
      startPeriod: "30s",
      retries: 3,
    };
    const HARDENING = {
      readOnly: true,
      tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=64m" },
      capabilities: { drops: ["ALL"] },
      securityOpts: ["no-new-privileges"],
      ulimits: [{ name: "nproc", soft: 1024, hard: 1024 }],
      memory: 1024,
      memorySwap: 1024,
      cpus: "1.0",
    };
    assert.deepEqual(containerArgs(spec), {
      name: "shop-web1",
      image: "sha256:abc",
      user: "1500:1500",
      envs: [
        "TOUCHDEPLOY_APP_SUBDIR=app",
        `TOUCHDEPLOY_FINGERPRINT=${"f".repeat(64)}`,
        "TOUCHDEPLOY_HEALTH_PATH=/healthz",
        "TOUCHDEPLOY_RELOAD_FILE=.reload",
      ],
      volumes: [{ hostPath: "/srv/touchdeploy/shop", containerPath: "/srv/app", readOnly: true }],
      ports: [{ internal: 8000, external: 8080, ip: "0.0.0.0", protocol: "tcp" }],
      restart: "unless-stopped",
      healthcheck,
      // Hardened (issue 14), with the default limits: 1g, 1 CPU.
      readOnly: true,
      tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=64m" },
      capabilities: { drops: ["ALL"] },
      securityOpts: ["no-new-privileges"],
      ulimits: [{ name: "nproc", soft: 1024, hard: 1024 }],
      memory: 1024,
      memorySwap: 1024,
      cpus: "1.0",
      labels: [
        { label: "touchdeploy.app", value: "shop" },
        {
          label: "touchdeploy.hardening",
          value: sha256sum(JSON.stringify(HARDENING)).slice(0, 16),
        },
        {
          label: "touchdeploy.healthcheck",
          value: sha256sum(JSON.stringify(healthcheck)).slice(0, 16),
        },
        { label: "touchdeploy.host", value: "web1" },
        { label: "touchdeploy.root", value: "/srv/touchdeploy/shop" },
      ],
      networkMode: "bridge",
      logDriver: "local",
      mustRun: true,
      wait: false,
      destroyGraceSeconds: 30,
    });
  });

  it("GIVEN a new health path THEN a ForceNew input (the label) changes with the healthcheck: the change reaches the container (issue 8 item 7)", () => {
    const a = containerArgs(spec);
    const b = containerArgs({
      ...spec,
      release: { ...spec.release, health: { path: "/up" } },
    });
    assert.deepEqual(b.healthcheck, containerHealthcheck("/up"));
    const label = (args: typeof a) =>
      (args.labels as { label: string; value: string }[]).find(
        (l) => l.label === "touchdeploy.healthcheck",
      )?.value;
    assert.notEqual(label(b), label(a));
  });

  it("GIVEN a health path THEN the runtime gets exactly that path as TOUCHDEPLOY_HEALTH_PATH: its generations manager checks a new generation where the host script's health check polls (issue 12)", () => {
    const envs = (path: string) =>
      containerArgs({ ...spec, release: { ...spec.release, health: { path } } }).envs as string[];
    assert.deepEqual(
      envs("/up?probe=1").filter((e) => e.startsWith("TOUCHDEPLOY_HEALTH_PATH=")),
      ["TOUCHDEPLOY_HEALTH_PATH=/up?probe=1"],
    );
    // The image's default is the config's default (a container made without the variable).
    assert.match(
      fs.readFileSync(path.join(ROOT, "runtime", "Dockerfile"), "utf8"),
      new RegExp(
        `^\\s+TOUCHDEPLOY_HEALTH_PATH=${String(CONFIG_KEYS.healthPath.default)} \\\\$`,
        "m",
      ),
    );
    // And the manager reads that variable for the path it probes.
    assert.match(
      fs.readFileSync(path.join(ROOT, "runtime", "touchdeploy_generations.py"), "utf8"),
      /^HEALTH_PATH = os\.environ\.get\("TOUCHDEPLOY_HEALTH_PATH", ""\) or "\/healthz"$/m,
    );
  });

  it("GIVEN other host options (health timeout, keep, stop timeout) THEN nothing of the container changes", () => {
    const release = (hostOptions: ReleaseConfig["hostOptions"]): ReleaseConfig => ({
      ...releaseConfig({ appDir: "app" }),
      hostOptions,
    });
    const a = containerArgs({ ...spec, release: release({ keep: 5 }) });
    const b = containerArgs({
      ...spec,
      release: release({ keep: 1, "health-timeout": 5, "process-stop-timeout": 30 }),
    });
    assert.deepEqual(b, a);
    assert.deepEqual(a, containerArgs(spec));
  });

  it("GIVEN state dirs THEN each <root>/state/<name> is mounted read-write at /srv/state/<name>, the app root stays read-only (issue 11)", () => {
    const args = containerArgs({
      ...spec,
      host: { ...spec.host, root: "/srv/touchdeploy/shop/" },
      release: { ...spec.release, stateDirs: ["data", "static", "media"] },
    });
    assert.deepEqual(args.volumes, [
      { hostPath: "/srv/touchdeploy/shop/", containerPath: "/srv/app", readOnly: true },
      {
        hostPath: "/srv/touchdeploy/shop/state/data",
        containerPath: "/srv/state/data",
        readOnly: false,
      },
      {
        hostPath: "/srv/touchdeploy/shop/state/static",
        containerPath: "/srv/state/static",
        readOnly: false,
      },
      {
        hostPath: "/srv/touchdeploy/shop/state/media",
        containerPath: "/srv/state/media",
        readOnly: false,
      },
    ]);
  });
});
