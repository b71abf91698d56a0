/**
 * The dependency guard: a code deploy of a commit whose dependency files differ from what the
 * running container was built for is refused (exit 5) before anything is switched; the
 * fingerprint the script computes equals the one the Pulumi program computes.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { dependencyFingerprint as programFingerprint } from "../../components/fingerprint";
import { getServed } from "../harness/app";
import { dependencyFingerprintOfDir } from "../harness/fingerprint";
import { setupFixture, short, type Fixture } from "../harness/fixture";
import { APP_SUBDIR } from "../harness/git";
import { describeRun, errorLines, EXIT, snapshotRoot } from "../harness/hostScript";
import { e2eGate } from "../harness/prerequisites";
import { REPO_ROOT } from "../harness/images";

/** In this order; Aptfile is absent from the example, which is part of the fingerprint. */
const DEPENDENCY_FILES = ["requirements.txt", "Aptfile"];
const DEP_ARGS = ["--dependency-files", DEPENDENCY_FILES.join(" ")];

describe(
  "host script: dependency guard",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock"]),
  () => {
    let fx: Fixture;
    let built: string;
    const appDir = (): string => path.join(fx.repo.work, APP_SUBDIR);

    before(async () => {
      // The container is "built for" the example's dependencies as the first commit has them
      // (the test repository starts with a copy of examples/hello-wsgi).
      built = dependencyFingerprintOfDir(path.join(REPO_ROOT, APP_SUBDIR), DEPENDENCY_FILES);
      fx = await setupFixture("deps", { fingerprint: built });
    });
    after(async () => {
      await fx?.cleanup();
    });

    it("the script and the Pulumi program agree on the fingerprint", async () => {
      const requirements = fx.repo.readAppFile("requirements.txt");
      // The documented formula, spelled out: PATH, sha256(content) or "absent", one per line.
      const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
      assert.equal(built, sha256(`requirements.txt\n${sha256(requirements)}\nAptfile\nabsent\n`));
      assert.equal(
        built,
        programFingerprint([
          { path: "requirements.txt", content: requirements },
          { path: "Aptfile", content: null },
        ]),
      );
      // The script accepts the first commit against exactly this fingerprint.
      const r = await fx.deploy(await fx.repo.head(), [
        ...DEP_ARGS,
        "--container-fingerprint",
        built,
      ]);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(
        r.stdout,
        new RegExp(
          `touchdeploy: deps +\\w+ has the container's dependency fingerprint ${short(built)}`,
        ),
      );
    });

    it("a code-only commit passes the guard, with the fingerprint read from the running server", async () => {
      const sha = await fx.repo.commitGreeting("Hello, same dependencies");
      assert.equal((await getServed(fx.container().healthUrl)).fingerprint, built);
      const r = await fx.deploy(sha, DEP_ARGS);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(r.stdout, /touchdeploy: deps /);
      assert.equal((await getServed(`${fx.container().baseUrl}/`)).revision, sha);
    });

    it("a commit that changes requirements.txt is refused with exit 5 and nothing is switched", async () => {
      const app = fx.container();
      const live = (await getServed(`${app.baseUrl}/`)).revision ?? "";
      // The last deploy returned once its reload served the new code: its log line is in.
      const reloads = await app.countReloads();
      const changed = await fx.repo.commitRequirement("requests==2.31.0");
      const wanted = dependencyFingerprintOfDir(appDir(), DEPENDENCY_FILES);
      const before = snapshotRoot(fx.root);

      for (const extra of [[], ["--container-fingerprint", built]]) {
        const r = await fx.deploy(changed, [...DEP_ARGS, ...extra]);
        assert.equal(r.code, EXIT.dependencies, describeRun(r));
        const errors = errorLines(r.stderr);
        assert.equal(errors.length, 1, describeRun(r));
        const line = errors[0];
        assert.match(
          line,
          new RegExp(`commit ${short(changed)} has dependency fingerprint ${wanted}`),
        );
        assert.match(line, new RegExp(`but the container runs ${built}`));
        assert.match(
          line,
          new RegExp(`changed since live commit ${short(live)}: requirements\\.txt:`),
        );
        assert.match(line, /run a container deploy \(pulumi up builds the image for them\)/);
        assert.doesNotMatch(r.stdout, /touchdeploy: (switch|reload) /);
      }
      const afterSnap = snapshotRoot(fx.root);
      assert.equal(afterSnap.current, before.current);
      assert.equal(afterSnap.previous, before.previous);
      // The trigger was not touched, so nothing could reload.
      assert.equal(afterSnap.triggerMtimeMs, before.triggerMtimeMs);
      assert.equal(await app.countReloads(), reloads, "the container was reloaded");
      assert.equal((await getServed(`${app.baseUrl}/`)).revision, live);
    });

    it("a container with unmanaged dependencies skips the guard with a warning", async () => {
      const sha = await fx.repo.head();
      const r = await fx.deploy(sha, [...DEP_ARGS, "--container-fingerprint", "unmanaged"]);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(
        r.stderr,
        /touchdeploy: warning: dependency check skipped: the container's dependencies are unmanaged/,
      );
      assert.equal((await getServed(`${fx.container().baseUrl}/`)).revision, sha);
    });
  },
);
