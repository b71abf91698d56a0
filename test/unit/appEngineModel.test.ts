// The app's keys (issue 11) through the engine model (test/support/engineModel.ts, the
// providers' diff rules in providerModels.ts, cited from pulumi v3.248.0, pulumi-command 1.2.1
// and terraform-provider-docker v4.5.0) with fake providers: which steps `pulumi up` takes when
// env, secrets, processes or state dirs change, and in which order the releases run. No Docker,
// no processes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  actionsOf,
  emptySnapshot,
  ProviderOps,
  ProviderRegistry,
  Snapshot,
  Step,
  up,
} from "../support/engineModel";
import { CONTAINER, IMAGE, LOCAL_CMD, runProgram, StackConfig } from "../support/pulumiProgram";

const SHA = "0123456789abcdef0123456789abcdef01234567";

/** Fake providers: commands record what ran, containers get ids c1, c2, ... */
class World {
  /** `name phase` of every command run, in order. */
  readonly ran: string[] = [];
  readonly containers = new Map<string, string>();
  private n = 0;

  registry(): ProviderRegistry {
    const run = (name: string, phase: string, inputs: Record<string, unknown>) => {
      this.ran.push(`${name} ${phase}`);
      return { id: `${name}-${++this.n}`, outputs: { ...inputs, stdout: "" } };
    };
    const command: ProviderOps = {
      create: ({ name, inputs }) => Promise.resolve(run(name, "create", inputs)),
      update: (old, inputs) =>
        Promise.resolve({ outputs: run(old.name, "update", inputs).outputs }),
      delete: () => Promise.resolve(),
    };
    const container: ProviderOps = {
      create: ({ inputs }) => {
        const id = `c${++this.n}`;
        this.containers.set(String(inputs.name), id);
        return Promise.resolve({ id, outputs: { ...inputs } });
      },
      update: (old, inputs) => Promise.resolve({ outputs: { ...old.outputs, ...inputs } }),
      delete: (old) => {
        this.containers.delete(String(old.inputs.name));
        return Promise.resolve();
      },
    };
    const image: ProviderOps = {
      create: ({ inputs }) =>
        Promise.resolve({
          id: `img-${String(inputs.name)}`,
          outputs: { ...inputs, imageId: `sha256:real-${String(inputs.name)}` },
        }),
      update: (old, inputs) => Promise.resolve({ outputs: { ...old.outputs, ...inputs } }),
      delete: () => Promise.resolve(),
    };
    return (type) =>
      ({ [LOCAL_CMD]: command, [CONTAINER]: container, [IMAGE]: image })[type] ?? undefined;
  }
}

/** Two local hosts of the Django stack's shape. */
function stack(extra: StackConfig = {}): StackConfig {
  return {
    appName: "shop",
    repoUrl: "https://example.test/shop.git",
    commit: SHA,
    hosts: ["web1 local port=8001 root=/srv/shop1", "web2 local port=8002 root=/srv/shop2"],
    env: { DJANGO_DEBUG: "false" },
    secretEnv: { DJANGO_SECRET_KEY: "k1" },
    stateDirs: ["data"],
    processes: ["worker python3 manage.py worker"],
    releaseCommand: "python3 manage.py migrate --noinput",
    ...extra,
  };
}

async function deploy(world: World, snapshot: Snapshot, config: StackConfig): Promise<Step[]> {
  const run = await runProgram({
    config,
    secretKeys: ["secretEnv"],
    // One image id per host's image (the model maps each mock id to the one resource it came
    // from; two hosts building the same tag would otherwise share one).
    computed: (type, name) => (type === IMAGE ? { imageId: `sha256:mock-${name}` } : {}),
  });
  return up(run.resources, snapshot, { providers: world.registry() });
}

/** The actions other than "same", in order. */
const changes = (steps: Step[]) => actionsOf(steps).filter((a) => !a.startsWith("same "));

describe("the app's keys through the engine model", () => {
  it("GIVEN a first deploy with releaseCommand on the first host THEN web1's release runs before web2's", async () => {
    const world = new World();
    await deploy(world, emptySnapshot(), stack());
    const releases = world.ran.filter((r) => r.endsWith("-release create"));
    assert.deepEqual(releases, ["web1-release create", "web2-release create"]);
  });

  for (const [what, change] of [
    ["an env value", { env: { DJANGO_DEBUG: "true" } }],
    ["a secret value", { secretEnv: { DJANGO_SECRET_KEY: "k2" } }],
    ["a new process", { processes: ["worker python3 manage.py worker", "beat run"] as string[] }],
    ["no processes any more", { processes: [] as string[] }],
  ] as const) {
    it(`GIVEN ${what} changed THEN only the releases are updated (create runs again), web1's first; the containers stay`, async () => {
      const world = new World();
      const snapshot = emptySnapshot();
      await deploy(world, snapshot, stack());
      const before = new Map(world.containers);
      world.ran.length = 0;
      const steps = await deploy(world, snapshot, stack(change));
      assert.deepEqual(changes(steps), ["update web1-release", "update web2-release"]);
      assert.deepEqual(world.ran, ["web1-release update", "web2-release update"]);
      assert.deepEqual(world.containers, before);
      // What changed on the wire: the stdin only.
      const updates = steps.filter((s) => s.op === "update");
      assert.deepEqual(
        updates.map((s) => [s.name, s.keys]),
        [
          ["web1-release", ["stdin"]],
          ["web2-release", ["stdin"]],
        ],
      );
    });
  }

  it("GIVEN a new state dir THEN setup is updated (it creates the dir) and the container replaced after it: a container deploy", async () => {
    const world = new World();
    const snapshot = emptySnapshot();
    await deploy(world, snapshot, stack());
    const before = new Map(world.containers);
    const steps = await deploy(world, snapshot, stack({ stateDirs: ["data", "media"] }));
    const actions = changes(steps);
    for (const host of ["web1", "web2"]) {
      const setup = actions.indexOf(`update ${host}-setup`);
      const container = actions.indexOf(`create-replacement ${host}-container`);
      assert.ok(setup >= 0 && container > setup, actions.join("\n"));
      assert.notEqual(world.containers.get(`shop-${host}`), before.get(`shop-${host}`));
    }
  });

  it("GIVEN the same config again THEN nothing at all changes", async () => {
    const world = new World();
    const snapshot = emptySnapshot();
    await deploy(world, snapshot, stack());
    world.ran.length = 0;
    const steps = await deploy(world, snapshot, stack());
    assert.deepEqual(changes(steps), []);
    assert.deepEqual(world.ran, []);
  });
});
