import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rolloutBatches } from "../../components/rollout";

describe("rolloutBatches", () => {
  const hosts = ["a", "b", "c", "d", "e"];
  it("parallel: one batch with every host, in order", () => {
    assert.deepEqual(rolloutBatches(hosts, { strategy: "parallel" }), [hosts]);
  });
  it("rolling 2: consecutive batches, the last one shorter", () => {
    assert.deepEqual(rolloutBatches(hosts, { strategy: "rolling", batchSize: 2 }), [
      ["a", "b"],
      ["c", "d"],
      ["e"],
    ]);
  });
  it("rolling 1: one host at a time", () => {
    assert.deepEqual(rolloutBatches(["a", "b"], { strategy: "rolling", batchSize: 1 }), [
      ["a"],
      ["b"],
    ]);
  });
  it("rolling with a batch larger than the fleet: one batch", () => {
    assert.deepEqual(rolloutBatches(["a", "b"], { strategy: "rolling", batchSize: 4 }), [
      ["a", "b"],
    ]);
  });
  it("no hosts: no batches", () => {
    assert.deepEqual(rolloutBatches([], { strategy: "parallel" }), []);
  });
});
