// Pulumi.yaml declares exactly the schema the program reads; the committed stacks are valid.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { CONFIG_SCHEMA, parseConfig, RawConfig } from "../../components/config";
import { renderPulumiYaml } from "../../scripts/gen-pulumi-yaml";

const ROOT = path.join(__dirname, "..", "..");
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");

/** A stack file's touchdeploy:* values as raw config (what `pulumi.runtime.allConfig()` gives). */
function rawConfigOf(file: string): RawConfig {
  const config = (parse(read(file)) as { config: Record<string, unknown> }).config;
  return Object.fromEntries(
    Object.entries(config)
      .filter(([k]) => k.startsWith("touchdeploy:"))
      .map(([k, v]) => [k.slice("touchdeploy:".length), Array.isArray(v) ? JSON.stringify(v) : v]),
  );
}

describe("Pulumi.yaml", () => {
  it("is exactly what `npm run gen:pulumi-yaml` renders from components/config.ts", () => {
    assert.equal(read("Pulumi.yaml"), renderPulumiYaml());
  });
  it("declares every key with a type and a description (project name touchdeploy, nodejs)", () => {
    const project = parse(read("Pulumi.yaml")) as {
      name: string;
      runtime: { name: string };
      config: Record<string, { type: string; description: string }>;
    };
    assert.equal(project.name, "touchdeploy");
    assert.equal(project.runtime.name, "nodejs");
    for (const [key, decl] of Object.entries(project.config)) {
      assert.ok(["string", "integer", "boolean", "array"].includes(decl.type), key);
      assert.ok(decl.description.length > 20, key);
    }
  });
});

describe("the committed stacks", () => {
  it("dev: one local host serving this repository's examples/hello-wsgi on localhost:8000", () => {
    const config = parseConfig(rawConfigOf("Pulumi.dev.yaml"), { projectDir: ROOT });
    assert.deepEqual(config.source, { kind: "local", path: ROOT });
    assert.equal(config.appDir, "examples/hello-wsgi");
    assert.deepEqual(config.hosts, [
      {
        name: "local",
        target: { kind: "local" },
        root: "/var/tmp/touchdeploy/hello-wsgi",
        port: 8000,
        bindAddress: "127.0.0.1",
      },
    ]);
    assert.equal(config.image.kind, "build");
    assert.ok(fs.existsSync(path.join(ROOT, config.appDir, "uwsgi.ini")));
  });
  it("prod: two ssh hosts from GitHub, rolling one at a time, and no secret committed", () => {
    const text = read("Pulumi.prod.yaml");
    assert.doesNotMatch(text, /secure:|PRIVATE KEY|ghp_/);
    // Valid once the operator has set the private key secret.
    const config = parseConfig(
      { ...rawConfigOf("Pulumi.prod.yaml"), sshPrivateKey: true },
      { projectDir: ROOT },
    );
    assert.deepEqual(
      config.hosts.map((h) => [h.name, h.target.kind, h.hostKey !== undefined]),
      [
        ["web1", "ssh", true],
        ["web2", "ssh", true],
      ],
    );
    assert.deepEqual(config.rollout, { strategy: "rolling", batchSize: 1 });
    assert.deepEqual(config.source, { kind: "github", owner: "acme", repository: "shop" });
  });
});

describe("README", () => {
  it("documents every config key in its reference table", () => {
    const readme = read("README.md");
    const missing = Object.keys(CONFIG_SCHEMA).filter(
      (key) => !new RegExp(`^\\| \`${key}\` +\\|`, "m").test(readme),
    );
    assert.deepEqual(missing, []);
  });
});
