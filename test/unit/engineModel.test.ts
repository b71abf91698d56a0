// The engine model the declared-to-real realizer runs on (test/support/engineModel.ts and
// providerModels.ts), fed with synthetic registrations and fake providers: no Docker, no
// processes. Each rule is the engine's or a provider's, cited where the model implements it;
// these tests pin what the model decides, and show that dropping `triggers` from the release,
// flipping the container's `deleteBeforeReplace` or dropping its `dependsOn` on the fetch each
// changes the outcome — so the end-to-end test, which realizes the real program through the
// same model, can fail on them.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  actionsOf,
  DeploymentError,
  destroy,
  emptySnapshot,
  ProviderOps,
  ProviderRegistry,
  schedule,
  Snapshot,
  Step,
  up,
} from "../support/engineModel";
import {
  CONTAINER,
  IMAGE,
  LOCAL_CMD,
  mockUrn,
  RecordedOptions,
  Registration,
  runProgram,
  StackConfig,
} from "../support/pulumiProgram";
import {
  commandDiff,
  containerDiff,
  ContainerInspect,
  containerOutputs,
  goDuration,
  UNKNOWN,
} from "../support/providerModels";
import { APP_SUBDIR, TestRepo } from "../harness/git";

const DOCKER_PROVIDER = "pulumi:providers:docker";

/** Registrations built like the recorder records them: URNs, mock ids, options. */
class Program {
  readonly goals: Registration[] = [];

  urn(name: string): string {
    const g = this.goals.find((r) => r.name === name);
    if (!g) throw new Error(`no ${name} registered yet`);
    return g.urn;
  }

  add(
    name: string,
    type: string,
    o: {
      inputs?: Record<string, unknown>;
      dependsOn?: string[];
      /** Property -> names of the resources its value came from (also dependencies). */
      from?: Record<string, string[]>;
      options?: Partial<RecordedOptions>;
      provider?: string;
      computed?: Record<string, unknown>;
    } = {},
  ): this {
    const inputs = o.inputs ?? {};
    const propertyDependencies = Object.fromEntries(
      Object.entries(o.from ?? {}).map(([k, names]) => [k, names.map((n) => this.urn(n))]),
    );
    const dependencies = [
      ...new Set([
        ...(o.dependsOn ?? []).map((n) => this.urn(n)),
        ...Object.values(propertyDependencies).flat(),
      ]),
    ];
    const options: RecordedOptions = {
      deleteBeforeReplace: undefined,
      protect: undefined,
      retainOnDelete: undefined,
      replaceOnChanges: type === LOCAL_CMD ? ["triggers[*]"] : [],
      ignoreChanges: [],
      aliases: [],
      deletedWith: "",
      replaceWith: [],
      replacementTrigger: undefined,
      hideDiffs: [],
      additionalSecretOutputs: [],
      customTimeouts: { create: "", update: "", delete: "" },
      importId: "",
      ...o.options,
    };
    this.goals.push({
      type,
      name,
      urn: mockUrn("", type, name),
      parentUrn: "",
      custom: true,
      inputs,
      dependencies,
      propertyDependencies,
      deleteBeforeReplace: options.deleteBeforeReplace === true,
      aliases: options.aliases.map((a) =>
        a.urn ? { urn: a.urn } : { name: a.name, type: a.type },
      ),
      options,
      provider: o.provider ? `${this.urn(o.provider)}::${o.provider}-id` : "",
      mock: { id: `${name}-id`, outputs: { ...inputs, ...(o.computed ?? {}) } },
      index: this.goals.length,
    });
    return this;
  }
}

/** One host as touchdeploy declares it, with switches for the three mutations. */
interface HostShape {
  commit: string;
  image: string;
  fingerprint: string;
  repo?: string;
  /** The release's `triggers: [commit, container.id]` (dropped: mutation 1). */
  releaseTriggers?: boolean;
  /** The container's deleteBeforeReplace option (flipped: mutation 2). */
  containerDeleteBeforeReplace?: boolean;
  /** The container's dependsOn on the fetch (dropped: mutation 3). */
  containerAfterFetch?: boolean;
  /** Renamed setup with an alias from the old name. */
  setupName?: string;
  setupAliasFrom?: string;
}

function host(shape: HostShape): Registration[] {
  const p = new Program();
  const setup = shape.setupName ?? "web-setup";
  p.add("web-docker", DOCKER_PROVIDER)
    .add(setup, LOCAL_CMD, {
      inputs: { create: "setup /srv/app", delete: "destroy /srv/app", stdin: "SCRIPT" },
      options: shape.setupAliasFrom ? { aliases: [{ name: shape.setupAliasFrom }] } : {},
    })
    .add("web-fetch", LOCAL_CMD, {
      inputs: {
        create: `fetch ${shape.repo ?? "/repo"} ${shape.commit}`,
        stdin: "SCRIPT",
        triggers: [shape.commit],
      },
      dependsOn: [setup],
    })
    .add("web-image", IMAGE, {
      inputs: { name: shape.image, keepLocally: true },
      provider: "web-docker",
      computed: { imageId: `sha256:mock-${shape.image}` },
    })
    .add("web-container", CONTAINER, {
      inputs: {
        name: "app-web",
        image: `sha256:mock-${shape.image}`,
        envs: [`FINGERPRINT=${shape.fingerprint}`],
        restart: "unless-stopped",
      },
      dependsOn: shape.containerAfterFetch === false ? [setup] : [setup, "web-fetch"],
      from: { image: ["web-image"] },
      provider: "web-docker",
      options: { deleteBeforeReplace: shape.containerDeleteBeforeReplace ?? true },
    })
    .add("web-release", LOCAL_CMD, {
      inputs: {
        create: `release ${shape.commit} ${shape.fingerprint}`,
        stdin: "SCRIPT",
        ...(shape.releaseTriggers === false
          ? {}
          : { triggers: [shape.commit, "web-container-id"] }),
      },
      dependsOn: ["web-fetch"],
      from: { create: ["web-container"], triggers: ["web-container"] },
    });
  return p.goals;
}

/**
 * Fake providers over a tiny world: Docker's rule that a container name exists once, commands
 * that fail when asked to, and a log of what ran.
 */
class World {
  readonly log: string[] = [];
  readonly containers = new Map<string, { id: string; image: string }>();
  private n = 0;
  private containerN = 0;
  failCommand?: (command: string) => boolean;

  registry(): ProviderRegistry {
    const command: ProviderOps = {
      create: ({ name, inputs }) => this.command(name, "create", inputs),
      update: (old, inputs) =>
        this.command(old.name, "update", inputs).then((r) => ({ outputs: r.outputs })),
      delete: (old) => {
        const { delete: del, stdin } = old.inputs as { delete?: string; stdin?: string };
        if (del) this.log.push(`${old.name}: ${del} <${stdin}>`);
        return Promise.resolve();
      },
    };
    const container: ProviderOps = {
      create: ({ inputs }) => {
        const name = String(inputs.name);
        if (this.containers.has(name)) {
          // What the Engine API answers (HTTP 409) for a second container with the same name.
          return Promise.reject(
            new Error(`Conflict. The container name "/${name}" is already in use`),
          );
        }
        const id = `c${++this.containerN}`;
        this.containers.set(name, { id, image: String(inputs.image) });
        this.log.push(`container ${name}: create ${id} from ${String(inputs.image)}`);
        return Promise.resolve({ id, outputs: { ...inputs } });
      },
      update: (old, inputs) => Promise.resolve({ outputs: { ...old.outputs, ...inputs } }),
      delete: (old) => {
        this.containers.delete(String(old.inputs.name));
        this.log.push(`container ${String(old.inputs.name)}: remove ${old.id}`);
        return Promise.resolve();
      },
    };
    const image: ProviderOps = {
      create: ({ inputs }) => {
        this.log.push(`image ${String(inputs.name)}: build`);
        return Promise.resolve({
          id: `img-${String(inputs.name)}`,
          outputs: { ...inputs, imageId: `sha256:real-${String(inputs.name)}` },
        });
      },
      update: (old, inputs) => Promise.resolve({ outputs: { ...old.outputs, ...inputs } }),
      delete: () => Promise.resolve(),
    };
    return (type) =>
      ({ [LOCAL_CMD]: command, [CONTAINER]: container, [IMAGE]: image })[type] ?? undefined;
  }

  private command(name: string, phase: string, inputs: Record<string, unknown>) {
    const cmd = String(phase === "update" ? (inputs.update ?? inputs.create) : inputs.create);
    this.log.push(`${name}: ${cmd}`);
    if (this.failCommand?.(cmd)) return Promise.reject(new Error(`${cmd}: exit 1`));
    return Promise.resolve({ id: `${name}-${++this.n}`, outputs: { ...inputs, stdout: "" } });
  }

  async up(goals: Registration[], snapshot: Snapshot): Promise<string[]> {
    this.log.length = 0;
    return actionsOf(await up(goals, snapshot, { providers: this.registry() }));
  }
}

const V1 = { commit: "c1", image: "rt:aaa", fingerprint: "f1" };

/** A world with V1 (or `first`) deployed. */
async function deployed(first: HostShape = V1): Promise<{ world: World; snapshot: Snapshot }> {
  const world = new World();
  const snapshot = emptySnapshot();
  await world.up(host(first), snapshot);
  return { world, snapshot };
}

describe("engine model: order comes from the declared edges only", () => {
  it("a first deploy creates each resource after everything it depends on", async () => {
    const world = new World();
    const actions = await world.up(host(V1), emptySnapshot());
    assert.deepEqual(actions, [
      "create web-setup",
      "create web-fetch",
      "create web-image",
      "create web-container",
      "create web-release",
    ]);
    // The container got the image's real id, not the id the mocks made up.
    assert.deepEqual(world.containers.get("app-web"), { id: "c1", image: "sha256:real-rt:aaa" });
  });

  it("among resources ready together the last registered goes first, so textual order proves nothing", () => {
    const p = new Program()
      .add("a", LOCAL_CMD)
      .add("b", LOCAL_CMD)
      .add("c", LOCAL_CMD, {
        dependsOn: ["a"],
      });
    assert.deepEqual(
      schedule(p.goals).map((g) => g.name),
      ["b", "a", "c"],
    );
  });

  it("a dependency that was not registered, or a cycle, is refused", () => {
    const p = new Program().add("a", LOCAL_CMD);
    p.goals[0].dependencies = [mockUrn("", LOCAL_CMD, "ghost")];
    assert.throws(
      () => schedule(p.goals),
      /^Error: a depends on urn:pulumi:test::touchdeploy::command:local:Command::ghost, which the program did not register$/,
    );
    const q = new Program().add("a", LOCAL_CMD).add("b", LOCAL_CMD, { dependsOn: ["a"] });
    q.goals[0].dependencies = [q.urn("b")];
    assert.throws(() => schedule(q.goals), /^Error: dependency cycle among a, b$/);
  });

  it("an input holding another resource's made-up output without depending on it is refused", async () => {
    const goals = host(V1);
    const release = goals.find((g) => g.name === "web-release")!;
    release.dependencies = release.dependencies.filter((u) => !u.endsWith("web-container"));
    release.propertyDependencies = {};
    await assert.rejects(
      up(goals, emptySnapshot(), { providers: new World().registry() }),
      /^Error: web-release's inputs hold web-container's id but do not depend on web-container$/,
    );
  });

  it("mutation: without the container's dependsOn on the fetch, a container deploy whose fetch fails replaces the container anyway", async () => {
    // A container deploy (new image, new fingerprint) whose fetch fails. Steps that do not
    // depend on the failed one may already have been running (the engine only stops starting
    // new ones), so the model runs them.
    const v2 = { commit: "c2", image: "rt:bbb", fingerprint: "f2", repo: "/unreachable" };
    for (const containerAfterFetch of [true, false]) {
      const { world, snapshot } = await deployed({ ...V1, containerAfterFetch });
      world.failCommand = (c) => c.startsWith("fetch /unreachable");
      const error = await world
        .up(host({ ...v2, containerAfterFetch }), snapshot)
        .then(() => assert.fail("the deploy succeeded"))
        .catch((e: unknown) => e as DeploymentError);
      assert.equal(
        error.message,
        "create-replacement web-fetch failed: fetch /unreachable c2: exit 1",
      );
      if (containerAfterFetch) {
        assert.deepEqual(actionsOf(error.steps), [
          "same web-setup",
          "create-replacement web-image",
          "replace web-image",
        ]);
        assert.deepEqual(world.containers.get("app-web"), {
          id: "c1",
          image: "sha256:real-rt:aaa",
        });
      } else {
        assert.deepEqual(actionsOf(error.steps), [
          "same web-setup",
          "create-replacement web-image",
          "replace web-image",
          "delete-replaced web-release",
          "delete-replaced web-container",
          "replace web-container",
          "create-replacement web-container",
        ]);
        assert.deepEqual(world.containers.get("app-web"), {
          id: "c2",
          image: "sha256:real-rt:bbb",
        });
      }
    }
  });
});

describe("engine model: replace, update or keep", () => {
  it("a new commit replaces fetch and release create-before-delete; the container is kept", async () => {
    const { world, snapshot } = await deployed();
    const actions = await world.up(host({ ...V1, commit: "c2" }), snapshot);
    assert.deepEqual(actions, [
      "same web-setup",
      "create-replacement web-fetch",
      "replace web-fetch",
      "same web-image",
      "same web-container",
      "create-replacement web-release",
      "replace web-release",
      "delete-replaced web-release",
      "delete-replaced web-fetch",
    ]);
    assert.deepEqual(world.log, ["web-fetch: fetch /repo c2", "web-release: release c2 f1"]);
    assert.equal(world.containers.get("app-web")?.id, "c1");
  });

  it("mutation: without the release's triggers a new commit updates the release in place", async () => {
    const { world, snapshot } = await deployed({ ...V1, releaseTriggers: false });
    const actions = await world.up(host({ ...V1, commit: "c2", releaseTriggers: false }), snapshot);
    assert.deepEqual(actions, [
      "same web-setup",
      "create-replacement web-fetch",
      "replace web-fetch",
      "same web-image",
      "same web-container",
      "update web-release",
      "delete-replaced web-fetch",
    ]);
  });

  it("a new runtime image replaces the container delete-first, taking the release along and running it again", async () => {
    // Same commit and fingerprint: only the image changed (e.g. runtime/ was edited).
    const { world, snapshot } = await deployed();
    const actions = await world.up(host({ ...V1, image: "rt:bbb" }), snapshot);
    assert.deepEqual(actions, [
      "same web-setup",
      "same web-fetch",
      "create-replacement web-image",
      "replace web-image",
      // calculateDependentReplacements: the release's triggers hold the container's id.
      "delete-replaced web-release",
      "delete-replaced web-container",
      "replace web-container",
      "create-replacement web-container",
      "replace web-release",
      "create-replacement web-release",
      "delete-replaced web-image",
    ]);
    assert.deepEqual(world.log, [
      "image rt:bbb: build",
      "container app-web: remove c1",
      "container app-web: create c2 from sha256:real-rt:bbb",
      "web-release: release c1 f1",
    ]);
  });

  it("mutation: without the release's triggers a new container never gets a release", async () => {
    const { world, snapshot } = await deployed({ ...V1, releaseTriggers: false });
    const actions = await world.up(
      host({ ...V1, image: "rt:bbb", releaseTriggers: false }),
      snapshot,
    );
    assert.deepEqual(actions, [
      "same web-setup",
      "same web-fetch",
      "create-replacement web-image",
      "replace web-image",
      "delete-replaced web-container",
      "replace web-container",
      "create-replacement web-container",
      "same web-release",
      "delete-replaced web-image",
    ]);
    assert.ok(!world.log.some((l) => l.startsWith("web-release")), world.log.join("\n"));
  });

  it("mutation: with deleteBeforeReplace flipped, the new container is created while the old one holds its name, and the deploy fails", async () => {
    const { world, snapshot } = await deployed({ ...V1, containerDeleteBeforeReplace: false });
    const error = await world
      .up(host({ ...V1, image: "rt:bbb", containerDeleteBeforeReplace: false }), snapshot)
      .then(() => assert.fail("the deploy succeeded"))
      .catch((e: unknown) => e as DeploymentError);
    assert.equal(
      error.message,
      'create-replacement web-container failed: Conflict. The container name "/app-web" is already in use',
    );
    assert.deepEqual(world.containers.get("app-web"), { id: "c1", image: "sha256:real-rt:aaa" });
  });

  it("a failed create-replacement leaves the old resource live; the next deploy deletes what the failed one left pending", async () => {
    const { world, snapshot } = await deployed();
    world.failCommand = (c) => c.startsWith("release c2");
    await assert.rejects(
      world.up(host({ ...V1, commit: "c2" }), snapshot),
      /^Error: create-replacement web-release failed: release c2 f1: exit 1$/,
    );
    // The old fetch (c1) was replaced, so it is pending deletion; the old release is live.
    const pending = snapshot.resources.filter((r) => r.delete).map((r) => r.name);
    assert.deepEqual(pending, ["web-fetch"]);
    world.failCommand = undefined;
    const actions = await world.up(host({ ...V1, commit: "c2" }), snapshot);
    assert.deepEqual(actions, [
      "same web-setup",
      "same web-fetch",
      "same web-image",
      "same web-container",
      "create-replacement web-release",
      "replace web-release",
      "delete-replaced web-release",
      "delete-replaced web-fetch",
    ]);
  });
});

describe("engine model: resource options", () => {
  it("aliases: a renamed resource with an alias from its old name is the same resource", async () => {
    const { world, snapshot } = await deployed({ ...V1, setupName: "web-app-root" });
    const renamed = { ...V1, setupName: "web-setup", setupAliasFrom: "web-app-root" };
    assert.deepEqual((await world.up(host(renamed), snapshot)).slice(0, 1), ["same web-setup"]);
    assert.deepEqual(world.log, []);
    assert.deepEqual(snapshot.resources.map((r) => r.name).sort(), [
      "web-container",
      "web-docker",
      "web-fetch",
      "web-image",
      "web-release",
      "web-setup",
    ]);
  });

  it("aliases: without one, the renamed resource is created and the old one deleted with its stored stdin", async () => {
    const { world, snapshot } = await deployed({ ...V1, setupName: "web-app-root" });
    const actions = await world.up(host({ ...V1, setupName: "web-setup" }), snapshot);
    assert.equal(actions[0], "create web-setup");
    assert.equal(actions[actions.length - 1], "delete web-app-root");
    assert.deepEqual(world.log, [
      "web-setup: setup /srv/app",
      "web-app-root: destroy /srv/app <SCRIPT>",
    ]);
  });

  it("ignoreChanges: a change on an ignored path is no change", async () => {
    const p = (stdin: string) =>
      new Program().add("a", LOCAL_CMD, {
        inputs: { create: "x", stdin },
        options: { ignoreChanges: ["stdin"] },
      }).goals;
    const world = new World();
    const snapshot = emptySnapshot();
    await world.up(p("one"), snapshot);
    assert.deepEqual(await world.up(p("two"), snapshot), ["same a"]);
    assert.equal(snapshot.resources[0].inputs.stdin, "one");
  });

  it("replaceOnChanges: the option turns an update into a replacement", async () => {
    const p = (stdin: string, replaceOnChanges: string[]) =>
      new Program().add("a", LOCAL_CMD, {
        inputs: { create: "x", stdin },
        options: { replaceOnChanges },
      }).goals;
    const world = new World();
    const snapshot = emptySnapshot();
    await world.up(p("one", []), snapshot);
    assert.deepEqual(await world.up(p("two", []), snapshot), ["update a"]);
    assert.deepEqual(await world.up(p("three", ["stdin"]), snapshot), [
      "create-replacement a",
      "replace a",
      "delete-replaced a",
    ]);
  });

  it("protect: a protected resource is neither deleted nor replaced", async () => {
    const p = (create: string) =>
      new Program().add("a", LOCAL_CMD, {
        inputs: { create, triggers: [create] },
        options: { protect: true },
      }).goals;
    const world = new World();
    const snapshot = emptySnapshot();
    await world.up(p("x"), snapshot);
    await assert.rejects(
      world.up(p("y"), snapshot),
      /^Error: replace a failed: unable to replace resource "urn:pulumi:test::touchdeploy::command:local:Command::a" as it is currently marked for protection$/,
    );
    await assert.rejects(
      destroy(snapshot, { providers: world.registry() }),
      /^Error: delete a failed: resource "urn:pulumi:test::touchdeploy::command:local:Command::a" cannot be deleted because it is protected$/,
    );
  });

  it("retainOnDelete: the delete step runs but the provider's Delete does not", async () => {
    const goals = new Program().add("a", LOCAL_CMD, {
      inputs: { create: "x", delete: "rm -rf" },
      options: { retainOnDelete: true },
    }).goals;
    const world = new World();
    const snapshot = emptySnapshot();
    await world.up(goals, snapshot);
    world.log.length = 0;
    const steps = await destroy(snapshot, { providers: world.registry() });
    assert.deepEqual(actionsOf(steps), ["delete a"]);
    assert.deepEqual(world.log, []);
    assert.deepEqual(snapshot.resources, []);
  });

  it("destroy deletes in reverse dependency order and runs each command's delete with its stored stdin", async () => {
    const { world, snapshot } = await deployed();
    world.log.length = 0;
    const steps: Step[] = await destroy(snapshot, { providers: world.registry() });
    assert.deepEqual(actionsOf(steps), [
      "delete web-release",
      "delete web-container",
      "delete web-image",
      "delete web-fetch",
      "delete web-setup",
    ]);
    assert.deepEqual(world.log, [
      "container app-web: remove c1",
      "web-setup: destroy /srv/app <SCRIPT>",
    ]);
    assert.deepEqual(snapshot.resources, []);
  });
});

describe("provider models", () => {
  const state = (inputs: Record<string, unknown>, outputs = inputs) => ({
    type: "t",
    name: "n",
    inputs,
    outputs,
  });

  it("command (pulumi-command 1.2.1): create/stdin changes are updates; a whole `triggers` change replaces", () => {
    const old = state({ create: "a", stdin: "s", triggers: ["c1"] });
    assert.deepEqual(commandDiff(old, { create: "b", stdin: "t", triggers: ["c1"] }, []), {
      detailed: { create: "update", stdin: "update" },
      changedKeys: ["create", "stdin"],
      replaceKeys: [],
      deleteBeforeReplace: false,
    });
    // An element change is an update for the provider (its replaceOnChanges is per key); the
    // SDK's `replaceOnChanges: ["triggers[*]"]` option makes the engine replace it.
    assert.deepEqual(commandDiff(old, { create: "a", stdin: "s", triggers: ["c2"] }, []).detailed, {
      "triggers[0]": "update",
    });
    assert.deepEqual(commandDiff(old, { create: "a", stdin: "s" }, []).replaceKeys, ["triggers"]);
    assert.deepEqual(
      commandDiff(old, { create: "a", stdin: "s", triggers: UNKNOWN }, []).replaceKeys,
      ["triggers"],
    );
  });

  const declared = {
    name: "app-web",
    image: "sha256:abc",
    envs: ["B=2", "A=1"],
    ports: [{ internal: 8000, external: 8080, ip: "127.0.0.1", protocol: "tcp" }],
    restart: "unless-stopped",
    healthcheck: { tests: ["CMD", "true"], interval: "10s", timeout: "5s", retries: 3 },
    logDriver: "json-file",
    logOpts: { "max-size": "10m" },
    networkMode: "bridge",
    mustRun: true,
  };
  const inspect = (logOpts: Record<string, string>): ContainerInspect => ({
    Id: "id1",
    Name: "/app-web",
    Image: "sha256:abc",
    State: { Running: true },
    Config: {
      Image: "sha256:abc",
      Healthcheck: { Test: ["CMD", "true"], Interval: 10e9, Timeout: 5e9, Retries: 3 },
    },
    HostConfig: {
      RestartPolicy: { Name: "unless-stopped" },
      LogConfig: { Type: "json-file", Config: logOpts },
      NetworkMode: "bridge",
    },
    NetworkSettings: { Ports: { "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }] } },
  });

  it("container (terraform-provider-docker v4.5.0): what Read takes back equals what was declared, so nothing changes", () => {
    const outputs = containerOutputs(declared, inspect({ "max-size": "10m" }));
    assert.deepEqual(containerDiff(state(declared, outputs), declared, []).changedKeys, []);
    // Env order does not matter (a set).
    assert.deepEqual(
      containerDiff(state(declared, outputs), { ...declared, envs: ["A=1", "B=2"] }, [])
        .changedKeys,
      [],
    );
  });

  it("container: restart and healthcheck are updates, env and image replace", () => {
    const outputs = containerOutputs(declared, inspect({ "max-size": "10m" }));
    const diff = (news: Record<string, unknown>) => {
      const d = containerDiff(state(declared, outputs), news, []);
      return { changed: d.changedKeys, replace: d.replaceKeys };
    };
    assert.deepEqual(diff({ ...declared, restart: "always" }), {
      changed: ["restart"],
      replace: [],
    });
    assert.deepEqual(
      diff({ ...declared, healthcheck: { ...declared.healthcheck, interval: "30s" } }),
      { changed: ["healthcheck"], replace: [] },
    );
    assert.deepEqual(diff({ ...declared, envs: ["A=1"] }), {
      changed: ["envs"],
      replace: ["envs"],
    });
    assert.deepEqual(diff({ ...declared, image: UNKNOWN }), {
      changed: ["image"],
      replace: ["image"],
    });
  });

  it("container: log options the daemon merges in are read back, and replace the container on the next deploy", () => {
    // A daemon.json with "log-opts": {"compress": "true"} (issue 8, item 5).
    const outputs = containerOutputs(declared, inspect({ "max-size": "10m", compress: "true" }));
    assert.deepEqual(containerDiff(state(declared, outputs), declared, []).replaceKeys, [
      "logOpts",
    ]);
  });

  it("Go durations as Read prints them", () => {
    assert.deepEqual([0, 5e8, 10e9, 90e9, 3600e9].map(goDuration), [
      "0s",
      "500ms",
      "10s",
      "1m30s",
      "1h0m0s",
    ]);
  });
});

// The real program (index.ts under mocks) through the same model, with the fake providers: the
// end-to-end test's scenarios at unit speed, so a dropped `triggers`, a flipped
// `deleteBeforeReplace` or a dropped `dependsOn` in components/ fails without Docker too.
describe("the program through the engine model (fake providers)", () => {
  let scratch: string;
  let repo: TestRepo;
  let config: StackConfig;
  const world = new World();
  const snapshot = emptySnapshot();

  before(async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "tdtest-model-"));
    repo = await TestRepo.create(path.join(scratch, "repo"));
    config = {
      appName: "shop",
      repoPath: repo.work,
      appDir: APP_SUBDIR,
      hosts: ["local local port=8000 bind=127.0.0.1"],
      root: "/var/tmp/touchdeploy/shop",
    };
  });
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  const container = () => world.containers.get("shop-local");

  it("first deploy: everything created, each after what it depends on", async () => {
    const actions = await world.up((await runProgram({ config })).resources, snapshot);
    assert.deepEqual(actions, [
      "create local-setup",
      "create local-fetch",
      "create local-user",
      "create local-image",
      "create local-container",
      "create local-release",
    ]);
    assert.equal(container()?.id, "c1");
  });

  it("a new commit: fetch and release replaced create-before-delete, the container kept", async () => {
    await repo.commitGreeting("Hello from the model");
    const actions = await world.up((await runProgram({ config })).resources, snapshot);
    assert.deepEqual(actions, [
      "same local-setup",
      "create-replacement local-fetch",
      "replace local-fetch",
      "same local-user",
      "same local-image",
      "same local-container",
      "create-replacement local-release",
      "replace local-release",
      "delete-replaced local-release",
      "delete-replaced local-fetch",
    ]);
    assert.equal(container()?.id, "c1");
  });

  it("a container deploy whose fetch fails: the image may be built, the container is untouched", async () => {
    await repo.commitAptPackage("python3-yaml");
    const down = await runProgram({ config: { ...config, repoUrl: "/srv/no-such-repo.git" } });
    world.failCommand = (c) => c.includes("/srv/no-such-repo.git");
    const error = await world
      .up(down.resources, snapshot)
      .then(() => assert.fail("the deploy succeeded"))
      .catch((e: unknown) => e as DeploymentError);
    world.failCommand = undefined;
    assert.deepEqual(
      { op: error.failed.op, name: error.failed.name },
      { op: "create-replacement", name: "local-fetch" },
    );
    assert.deepEqual(actionsOf(error.steps), [
      "same local-setup",
      "same local-user",
      "create-replacement local-image",
      "replace local-image",
    ]);
    assert.equal(container()?.id, "c1");
  });

  it("the container deploy: release deleted, container replaced delete-first, release run on the new one", async () => {
    const actions = await world.up((await runProgram({ config })).resources, snapshot);
    assert.deepEqual(actions, [
      "same local-setup",
      "create-replacement local-fetch",
      "replace local-fetch",
      "same local-user",
      "same local-image",
      "delete-replaced local-release",
      "delete-replaced local-container",
      "replace local-container",
      "create-replacement local-container",
      "replace local-release",
      "create-replacement local-release",
      "delete-replaced local-image",
      "delete-replaced local-fetch",
    ]);
    assert.equal(container()?.id, "c2");
  });

  it("destroy: reverse dependency order; the setup's delete gets the stdin it was created with", async () => {
    world.log.length = 0;
    const steps = await destroy(snapshot, { providers: world.registry() });
    assert.deepEqual(actionsOf(steps), [
      "delete local-release",
      "delete local-container",
      "delete local-image",
      "delete local-user",
      "delete local-fetch",
      "delete local-setup",
    ]);
    assert.equal(container(), undefined);
    const setupDelete = world.log.find((l) => l.startsWith("local-setup: "));
    assert.match(
      setupDelete ?? "",
      /^local-setup: bash -s -- destroy --root \/var\/tmp\/touchdeploy\/shop <#!\/usr\/bin\/env bash/,
    );
  });
});
