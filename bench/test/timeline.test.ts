/** What a load window says about a deploy (lib/timeline.ts), on hand-made windows. */
import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LoadWindow } from "../lib/load";
import { OUTCOME_ERROR, summarizeSamples, type RequestSample } from "../../test/harness/load";
import { timeline, viewDeploy } from "../lib/timeline";

/** A window that started at epoch 10_000 with these samples; revisions "old", "new". */
function windowOf(samples: RequestSample[]): LoadWindow {
  const revisionNames = ["old", "new"];
  return {
    ...summarizeSamples(samples, revisionNames),
    statuses: {},
    errorSamples: [],
    bodyMismatches: 0,
    samples,
    revisionNames,
    perConnection: [],
    startedAt: 10_000,
    durationMs: 5000,
    cpuSeconds: 0,
    machineBusy: 0,
  };
}

describe("viewDeploy", () => {
  // The deploy starts 1000 ms into the window (epoch 11_000).
  it("GIVEN a clean switch THEN first new, last old and no old answer after new", () => {
    const w = windowOf([
      [500, 2, 0],
      [1100, 3, 0],
      [1400, 600, 1], // waited in the queue: new code at 2000 ms, 1000 ms after the start
      [2100, 2, 1],
    ]);
    assert.deepEqual(viewDeploy(w, 11_000, "new"), {
      firstNewMs: 1000,
      lastOldMs: 103,
      oldAfterNew: 0,
      failed: 0,
    });
  });

  it("GIVEN old code answering after new code answered THEN each such answer counts", () => {
    const w = windowOf([
      [1200, 5, 1], // new at 205 ms
      [1300, 5, 0], // sent at 300 ms, after new answered: old after new
      [1250, 100, 0], // sent at 250 ms, ended later: old after new too
      [1150, 2, 0], // sent before new answered: fine
      [1400, 5, OUTCOME_ERROR],
    ]);
    assert.deepEqual(viewDeploy(w, 11_000, "new"), {
      firstNewMs: 205,
      lastOldMs: 350,
      oldAfterNew: 2,
      failed: 1,
    });
  });

  it("GIVEN no answer from the new code THEN firstNewMs is absent", () => {
    const v = viewDeploy(windowOf([[1500, 2, 0]]), 11_000, "new");
    assert.equal(v.firstNewMs, undefined);
    assert.equal(v.lastOldMs, 502);
  });
});

describe("timeline", () => {
  it("buckets by send time relative to the deploy's start, pooled over windows", () => {
    const a = windowOf([
      [900, 4, 0], // -100 ms
      [1050, 700, 1], // +50 ms
      [1060, 10, 1],
      [1250, 3, OUTCOME_ERROR], // +250 ms
    ]);
    const b = windowOf([[1020, 900, 1]]); // +20 ms
    const t = timeline(
      [
        { w: a, deployStartMs: 11_000 },
        { w: b, deployStartMs: 11_000 },
      ],
      100,
      -200,
    );
    assert.deepEqual(t, {
      bucketMs: 100,
      t: [-100, 0, 200],
      max: [4, 900, 3],
      p50: [4, 700, 3],
      failed: [0, 0, 1],
    });
  });
});
