/**
 * A code-only deploy under concurrent load: no request may fail, and every client sees the old
 * revision, then the new one, and never the old one again.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { waitForRevision } from "./support/app";
import { setupFixture, short, type Fixture } from "./support/fixture";
import { describeRun, EXIT, runHostScript } from "./support/hostScript";
import { runLoad } from "./support/load";
import { e2eGate } from "./support/prerequisites";
import { sleep } from "./support/process";

const CLIENTS = 8;
const LOAD_MS = 10_000;
/** The deploy starts this long into the load, so both revisions are served at length. */
const DEPLOY_AT_MS = 2_500;

describe(
  "host script: code-only deploy under load",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock"]),
  () => {
    let fx: Fixture;
    before(async () => {
      fx = await setupFixture("load");
    });
    after(async () => {
      await fx?.cleanup();
    });

    it(`${CLIENTS} concurrent clients for ${LOAD_MS / 1000}s across a deploy: zero failed requests, old -> new once per client`, async (t) => {
      const app = fx.container();
      const oldSha = await fx.repo.head();
      const first = await fx.deploy(oldSha);
      assert.equal(first.code, EXIT.ok, describeRun(first));
      await waitForRevision(`${app.baseUrl}/`, oldSha);
      const newSha = await fx.repo.commitGreeting("Hello under load");

      const load = runLoad({
        url: `${app.baseUrl}/`,
        connections: CLIENTS,
        durationMs: LOAD_MS,
        // The body says "(revision <sha12>)": it must match the X-Revision header it came with.
        bodyRevision: (body) => /\(revision ([0-9a-f]{12})\)/.exec(body)?.[1],
      });
      await sleep(DEPLOY_AT_MS);
      const deploy = await runHostScript(fx.deployArgs(newSha));
      const result = await load;

      assert.equal(deploy.code, EXIT.ok, describeRun(deploy));
      t.diagnostic(
        `load: ${result.requests} requests in ${result.durationMs} ms from ${CLIENTS} clients; ` +
          `failed: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts; ` +
          `latency p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms; ` +
          `old ${short(oldSha)} last seen at ${result.seen[oldSha]?.lastMs} ms, ` +
          `new ${short(newSha)} first seen at ${result.seen[newSha]?.firstMs} ms`,
      );
      assert.deepEqual(
        { non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts },
        { non2xx: 0, errors: 0, timeouts: 0 },
        `failed requests: ${result.errorSamples.join(" | ")}`,
      );
      assert.equal(result.bodyMismatches, 0, "a body named another revision than its X-Revision");
      assert.ok(
        result.requests > CLIENTS * 10,
        `too few requests to mean anything: ${result.requests}`,
      );
      result.perConnection.forEach((runs, i) => {
        assert.deepEqual(
          runs.map((r) => r.revision),
          [oldSha, newSha],
          `client ${i} saw ${runs.map((r) => `${short(r.revision)} x${r.count}`).join(" -> ")}`,
        );
      });
      assert.equal((await app.identity()).id, app.id);
    });
  },
);
