/**
 * Deploys that meet a uWSGI which is just starting (a first deploy into a new container, or the
 * release of a container deploy), and the fetch cache. A worker spawned a moment before a
 * reload request can miss it and stall the reload for worker-reload-mercy (30 s), so the script
 * never touches the trigger of a server that is not answering promptly: it waits for it, and
 * touches only if it came up on another release.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getServed, startAppContainer, waitForRevision } from "../harness/app";
import { APP_SUBDIR } from "../harness/git";
import { describeRun, EXIT, runHostScript } from "../harness/hostScript";
import { ensureRuntimeImage } from "../harness/images";
import { setupFixture, short, waitForReloads, type Fixture } from "../harness/fixture";
import { startPaused } from "../host/support/harness";
import { e2eGate } from "../harness/prerequisites";

/** uWSGI's line when a reload stalled until worker-reload-mercy ran out. */
const STALLED = "NO MERCY";

describe(
  "host script: deploying into a starting uWSGI",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock"]),
  () => {
    let fx: Fixture;
    before(async () => {
      fx = await setupFixture("startup", { container: false });
    });
    after(async () => {
      await fx?.cleanup();
    });

    it("first deploy into a fresh container: no touch, the new release is served once uWSGI starts", async () => {
      const image = await ensureRuntimeImage();
      const app = await startAppContainer({
        image: image.tag,
        root: fx.root,
        subdir: APP_SUBDIR,
        name: "startup-first",
      });
      try {
        const sha = await fx.repo.head();
        const r = await runHostScript([...fx.deployArgs(sha), "--health-url", app.healthUrl]);
        assert.equal(r.code, EXIT.ok, describeRun(r));
        assert.match(r.stdout, /touchdeploy: start +the server is not answering yet/);
        assert.match(
          r.stdout,
          new RegExp(`it started on releases/${short(sha)}, no reload needed`),
        );
        assert.doesNotMatch(r.stdout, /touchdeploy: reload /);
        assert.equal((await getServed(`${app.baseUrl}/`)).revision, sha);
        assert.equal(await app.countReloads(), 0);
      } finally {
        await app.remove();
      }
    });

    it("release right after a container (re)start, as in a container deploy: served at once, never a 30 s stall", async () => {
      const image = await ensureRuntimeImage();
      const live = await fx.repo.head();
      const next = await fx.repo.commitGreeting("Hello after a container deploy");
      // Fetch (prepare) first, as the program does before it replaces the container.
      const prepared = await runHostScript([
        "fetch",
        "--root",
        fx.root,
        "--repo",
        fx.repo.origin,
        "--commit",
        next,
      ]);
      assert.equal(prepared.code, EXIT.ok, describeRun(prepared));
      // The new container starts on the live release; the release is activated at once.
      const app = await startAppContainer({
        image: image.tag,
        root: fx.root,
        subdir: APP_SUBDIR,
        name: "startup-container-deploy",
      });
      try {
        // Made deterministic: the release stops after its first look at the server (not
        // answering yet) until uWSGI has come up on the live release, then goes on. It must
        // wait for the workers to settle before it touches, and touch once.
        const run = startPaused(fx.dir, "switch", [
          "release",
          "--root",
          fx.root,
          "--commit",
          next,
          "--subdir",
          APP_SUBDIR,
          "--health-url",
          app.healthUrl,
          "--container",
          app.name,
        ]);
        await run.paused;
        await waitForRevision(`${app.baseUrl}/`, live);
        run.resume();
        const r = await run.run.result;
        assert.equal(r.code, EXIT.ok, describeRun(r));
        assert.match(r.stdout, /touchdeploy: start +the server is not answering yet/);
        assert.match(r.stdout, new RegExp(`\\.\\.\\. up on ${short(live)} in \\d`));
        const served = await getServed(`${app.baseUrl}/`);
        assert.equal(served.revision, next);
        assert.match(served.body, /^Hello after a container deploy/);
        await waitForReloads(app, 1);
        assert.equal(await app.countReloads(), 1, "exactly one reload");
        assert.ok(!(await app.logs()).includes(STALLED), "a reload stalled until NO MERCY");
        assert.notEqual(live, next);
      } finally {
        await app.remove();
      }
    });
  },
);

describe("host script: the fetch cache", e2eGate(["git", "bash", "flock"]), () => {
  let fx: Fixture;
  before(async () => {
    fx = await setupFixture("fetchcache", { container: false });
  });
  after(async () => {
    await fx?.cleanup();
  });

  /**
   * Objects in the cache, loose and packed: a history fetched again is stored again (as a
   * second pack), so it shows up here even though git already had every object.
   */
  async function storedObjects(): Promise<number> {
    const out = await fx.repo.git(`${fx.root}/repo.git`, "count-objects", "-v");
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, "m").exec(out)?.[1]);
    return field("count") + field("in-pack");
  }

  it("a new commit fetches only what is new, not the whole history again", async () => {
    for (let i = 0; i < 30; i++) {
      await fx.repo.commitGreeting(`Hello number ${i}`);
    }
    const first = await fx.repo.head();
    const r1 = await runHostScript(fx.args("fetch", "--repo", fx.repo.origin, "--commit", first));
    assert.equal(r1.code, EXIT.ok, describeRun(r1));
    const afterFirst = await storedObjects();
    assert.ok(afterFirst >= 90, `the first fetch brings the history (${afterFirst} objects)`);

    const second = await fx.repo.commitGreeting("Hello, one more");
    const r2 = await runHostScript(fx.args("fetch", "--repo", fx.repo.origin, "--commit", second));
    assert.equal(r2.code, EXIT.ok, describeRun(r2));
    const added = (await storedObjects()) - afterFirst;
    // One commit, its tree, the changed subtree(s) and the changed file: a handful.
    assert.ok(added > 0 && added <= 10, `the second fetch added ${added} objects`);
    const refs = await fx.repo.git(`${fx.root}/repo.git`, "for-each-ref", "--format=%(refname)");
    assert.deepEqual(
      refs.split("\n").sort(),
      [`refs/touchdeploy/commits/${first}`, `refs/touchdeploy/commits/${second}`].sort(),
    );
  });
});
