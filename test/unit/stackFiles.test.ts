// Pulumi.yaml and the README's configuration table are what the schema renders; Pulumi.yaml
// passes the Pulumi CLI's own rules for project config; the committed stacks are valid.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { CONFIG_KEYS, parseConfig, RawConfig } from "../../components/config";
import { renderPulumiYaml, renderReadme } from "../../scripts/gen-pulumi-yaml";

const ROOT = path.join(__dirname, "..", "..");
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");

type Declaration = Record<string, unknown>;
interface Project {
  name: string;
  runtime: { name: string };
  config: Record<string, Declaration>;
}

/**
 * Whether a value has a declared type, as the CLI decides it (pulumi/pulumi v3.248.0
 * sdk/go/common/workspace/project.go `ValidateConfigValue`; integers may be whole floats or
 * numeric strings, booleans "true"/"false").
 */
function hasType(type: string, items: { type: string } | undefined, value: unknown): boolean {
  switch (type) {
    case "string":
      return typeof value === "string";
    case "integer":
      return (
        (typeof value === "number" && Number.isInteger(value)) ||
        (typeof value === "string" && /^[+-]?\d+$/.test(value))
      );
    case "boolean":
      return typeof value === "boolean" || value === "true" || value === "false";
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    case "array":
      return (
        Array.isArray(value) &&
        items !== undefined &&
        value.every((v) => hasType(items.type, undefined, v))
      );
    default:
      return false;
  }
}

/**
 * The problems the Pulumi CLI (v3.248.0) would report loading this project (every command) and
 * then a stack with this config (`pulumi preview`/`up`), encoded from its source:
 * - sdk/go/common/workspace/project.json (`configTypeDeclaration`: only type, items,
 *   description, secret, default, value; `simpleConfigType`: string, integer, boolean, array,
 *   object; an array needs `items`);
 * - project.go `Project.Validate`: a key outside the project's namespace may carry neither a
 *   type nor a default and must carry a value; a typed default must have its type;
 * - config.go `mergeConfig`: a declared default is copied into the stack's config (plain); a
 *   declared key without default or value is "missing" in a stack that lacks it;
 *   `validateStackConfigValue`: a key declared `secret` must be encrypted in the stack (so a
 *   secret with a default always fails), and a typed key's value must have its type.
 * No npm package ships project.json, so these rules are encoded here rather than validated
 * against the schema file itself.
 */
function cliProblems(project: Project, stack?: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const fields = new Set(["type", "items", "description", "secret", "default", "value"]);
  for (const [key, decl] of Object.entries(project.config)) {
    const type = decl.type as string | undefined;
    const items = decl.items as { type: string } | undefined;
    for (const field of Object.keys(decl)) {
      if (!fields.has(field)) problems.push(`${key}: unknown field ${field} (project.json)`);
    }
    if (type !== undefined && !["string", "integer", "boolean", "array", "object"].includes(type)) {
      problems.push(`${key}: type ${type} is not a config type (project.json)`);
    }
    if (!key.startsWith(`${project.name}:`)) {
      if (type !== undefined) {
        problems.push(
          `Configuration key '${key}' is not namespaced by the project and should not define a type`,
        );
      } else if ("default" in decl) {
        problems.push(
          `Configuration key '${key}' is not namespaced by the project and should not define a default value.`,
        );
      } else if (!("value" in decl)) {
        problems.push(
          `Configuration key '${key}' is namespaced and must provide an attribute 'value'`,
        );
      }
      continue;
    }
    if (type === "array" && items === undefined) {
      problems.push(
        `The configuration key '${key}' declares an array but does not specify the underlying type via the 'items' attribute`,
      );
    }
    if (type !== undefined && "default" in decl && !hasType(type, items, decl.default)) {
      problems.push(
        `The default value specified for configuration key '${key}' is not of the expected type`,
      );
    }
    if (stack === undefined) continue;
    const inStack = key in stack;
    if (!inStack && !("default" in decl) && !("value" in decl)) {
      problems.push(`Stack is missing configuration value '${key}'`);
      continue;
    }
    // A value from the project is plain text in the stack: a secret can never have one.
    if (decl.secret === true && !(inStack && (stack[key] as { secure?: string })?.secure)) {
      problems.push(`Stack with configuration key '${key}' must be encrypted as it's secret`);
    }
    const value = inStack ? stack[key] : decl.default;
    if (type !== undefined && !hasType(type, items, value)) {
      problems.push(`Stack with configuration key '${key}' must be of type '${type}'`);
    }
  }
  return problems;
}

const project = () => parse(read("Pulumi.yaml")) as Project;
const stackConfig = (file: string) =>
  (parse(read(file)) as { config: Record<string, unknown> }).config;

describe("Pulumi.yaml", () => {
  it("is exactly what `npm run gen:pulumi-yaml` renders from components/config/schema.ts", () => {
    assert.equal(read("Pulumi.yaml"), renderPulumiYaml());
  });

  it("passes the CLI's project rules, and each committed stack passes its stack rules", () => {
    assert.deepEqual(cliProblems(project()), []);
    assert.deepEqual(cliProblems(project(), stackConfig("Pulumi.dev.yaml")), []);
    assert.deepEqual(cliProblems(project(), stackConfig("Pulumi.prod.yaml")), []);
    assert.deepEqual(cliProblems(project(), stackConfig("Pulumi.django.yaml")), []);
  });

  it("GIVEN what Pulumi.yaml declared before (issue 8 items 1-2) THEN the rules report it: they can fail", () => {
    const before: Project = {
      name: "touchdeploy",
      runtime: { name: "nodejs" },
      config: {
        "touchdeploy:sshPrivateKey": {
          type: "string",
          default: "",
          secret: true,
          description: "x",
        },
        "github:token": { type: "string", default: "", secret: true, description: "x" },
      },
    };
    assert.deepEqual(cliProblems(before), [
      "Configuration key 'github:token' is not namespaced by the project and should not define a type",
    ]);
    assert.deepEqual(
      cliProblems(
        {
          ...before,
          config: { "touchdeploy:sshPrivateKey": before.config["touchdeploy:sshPrivateKey"] },
        },
        {},
      ),
      ["Stack with configuration key 'touchdeploy:sshPrivateKey' must be encrypted as it's secret"],
    );
  });

  it("declares no key of another namespace and no secret: those are read in code (requireSecret)", () => {
    const keys = Object.keys(project().config);
    assert.deepEqual(
      keys.filter((k) => !k.startsWith("touchdeploy:")),
      [],
    );
    assert.deepEqual(
      keys.filter((k) => project().config[k].secret === true),
      [],
    );
    assert.ok(
      !keys.includes("touchdeploy:sshPrivateKey") && !keys.includes("touchdeploy:deployPrivateKey"),
    );
  });

  it("declares env and processes without a type and leaves secretEnv undeclared: the Django stack's values pass the CLI (issue 11)", () => {
    const config = project().config;
    assert.equal(config["touchdeploy:env"].type, undefined);
    assert.deepEqual(config["touchdeploy:env"].default, {});
    assert.equal(config["touchdeploy:processes"].type, undefined);
    assert.equal(config["touchdeploy:secretEnv"], undefined);
    assert.deepEqual(config["touchdeploy:stateDirs"], {
      type: "array",
      items: { type: "string" },
      default: [],
      description: CONFIG_KEYS.stateDirs.description,
    });
    // As `pulumi config set --path` writes them: booleans and integers typed, a secret as
    // {secure: ...} inside the object (undeclared keys are not validated, config.go).
    const django = {
      "touchdeploy:env": { DJANGO_DEBUG: false, WEB_CONCURRENCY: 2, DJANGO_LOG_LEVEL: "INFO" },
      "touchdeploy:secretEnv": { DJANGO_SECRET_KEY: { secure: "v1:abc" } },
      "touchdeploy:stateDirs": ["data", "static", "media"],
      "touchdeploy:processes": ["worker python3 manage.py worker", { name: "b", command: "c" }],
      "touchdeploy:processStopTimeout": 10,
      "touchdeploy:releaseCommand": "python3 manage.py migrate --noinput",
      "touchdeploy:releaseCommandOn": "first-host",
    };
    assert.deepEqual(cliProblems(project(), django), []);
  });

  it("declares hosts without a type, so both its object and its string form pass the CLI", () => {
    const hosts = project().config["touchdeploy:hosts"];
    assert.equal(hosts.type, undefined);
    const structured = { "touchdeploy:hosts": [{ name: "web1", ssh: "d@h", port: 8000 }] };
    assert.deepEqual(cliProblems(project(), structured), []);
  });
});

describe("README", () => {
  it("has exactly the configuration table the schema renders", () => {
    assert.equal(read("README.md"), renderReadme(read("README.md")));
    for (const key of Object.keys(CONFIG_KEYS)) {
      assert.match(read("README.md"), new RegExp(`^\\| \`${key}\` +\\|`, "m"));
    }
  });
});

/** A stack file's touchdeploy:* values as raw config (what `pulumi.runtime.allConfig()` gives). */
function rawConfigOf(file: string): RawConfig {
  return Object.fromEntries(
    Object.entries(stackConfig(file))
      .filter(([k]) => k.startsWith("touchdeploy:"))
      .map(([k, v]) => [
        k.slice("touchdeploy:".length),
        typeof v === "object" ? JSON.stringify(v) : v,
      ]),
  );
}

describe("the committed stacks", () => {
  it("dev: one local host serving this repository's examples/hello-wsgi on localhost:8000", () => {
    const config = parseConfig(rawConfigOf("Pulumi.dev.yaml"), { projectDir: ROOT });
    assert.equal(config.source.kind, "local");
    assert.equal(config.source.repoUrl, ROOT);
    assert.equal(config.release.appDir, "examples/hello-wsgi");
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
    assert.ok(fs.existsSync(path.join(ROOT, config.release.appDir, "uwsgi.ini")));
  });
  it("prod: two structured ssh hosts from GitHub, rolling one at a time, and no secret committed", () => {
    const text = read("Pulumi.prod.yaml");
    assert.doesNotMatch(text, /secure:|PRIVATE KEY|ghp_/);
    // Valid once the operator has set the private key secret.
    const config = parseConfig(
      { ...rawConfigOf("Pulumi.prod.yaml"), sshPrivateKey: true },
      { projectDir: ROOT, warn: (m) => assert.fail(`unexpected warning: ${m}`) },
    );
    assert.deepEqual(
      config.hosts.map((h) => [h.name, h.target.kind, h.hostKey?.split(" ")[0]]),
      [
        ["web1", "ssh", "ssh-ed25519"],
        ["web2", "ssh", "ssh-ed25519"],
      ],
    );
    assert.deepEqual(config.rollout, { strategy: "rolling", batchSize: 1 });
    assert.equal(config.source.kind, "github");
  });

  it("django: examples/django-app on localhost:8001 with its env, state dirs, worker and release command; no secret committed", () => {
    const text = read("Pulumi.django.yaml");
    assert.doesNotMatch(text, /secure:|encryptionsalt|DJANGO_SECRET_KEY:/);
    // Valid once dev.sh (or the operator) has set the secret key, encrypted.
    const config = parseConfig(
      {
        ...rawConfigOf("Pulumi.django.yaml"),
        secretEnv: JSON.stringify({ DJANGO_SECRET_KEY: "generated" }),
      },
      { projectDir: ROOT, warn: (m) => assert.fail(`unexpected warning: ${m}`) },
    );
    assert.equal(config.appName, "django-app");
    assert.equal(config.source.repoUrl, ROOT);
    assert.equal(config.release.appDir, "examples/django-app");
    assert.deepEqual(
      config.hosts.map((h) => [h.name, h.target.kind, h.port, h.bindAddress, h.root]),
      [["local", "local", 8001, "127.0.0.1", "/var/tmp/touchdeploy/django-app"]],
    );
    assert.deepEqual(config.release.env, {
      DJANGO_ALLOWED_HOSTS: "localhost,127.0.0.1,[::1]",
      DJANGO_DEBUG: "false",
      DJANGO_LOG_LEVEL: "INFO",
    });
    assert.deepEqual(config.release.secretEnvNames, ["DJANGO_SECRET_KEY"]);
    assert.deepEqual(config.release.stateDirs, ["data", "static", "media"]);
    assert.deepEqual(config.release.processes, [
      { name: "worker", command: "python3 manage.py worker" },
    ]);
    // The example's README gives these two.
    const exampleReadme = read("examples/django-app/README.md");
    assert.deepEqual(config.release.releaseCommand, {
      command: "python3 manage.py migrate --noinput && python3 manage.py collectstatic --noinput",
      on: "first-host",
    });
    assert.ok(exampleReadme.includes(config.release.releaseCommand?.command ?? "?"));
    assert.ok(exampleReadme.includes("worker python3 manage.py worker"));
    // Another port and root than dev: both stacks run side by side.
    const dev = parseConfig(rawConfigOf("Pulumi.dev.yaml"), { projectDir: ROOT });
    assert.notEqual(dev.hosts[0].port, config.hosts[0].port);
    assert.notEqual(dev.hosts[0].root, config.hosts[0].root);
    assert.notEqual(dev.appName, config.appName);
  });
});
