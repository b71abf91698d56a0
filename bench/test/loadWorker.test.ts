/**
 * The benchmark's load process (loadWorker.ts via lib/load.ts) against a node http server on
 * 127.0.0.1: `stop` ends it with a result, `settle` ends it only once the old revision has not
 * answered for the margin.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { startLoad } from "../lib/load";

describe("the load process (loadWorker.ts)", () => {
  let server: http.Server;
  let url = "";
  /** The revision the server answers with from now on, and when (epoch ms) it changed. */
  let current = { revision: "a".repeat(40), since: 0 };
  before(async () => {
    server = http.createServer((_req, res) => {
      const { revision } = current;
      res.writeHead(200, { "X-Revision": revision, "Content-Type": "text/plain" });
      res.end(`Hello (revision ${revision.slice(0, 12)})\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const options = () => ({
    url,
    connections: 2,
    ratePerSecond: 100,
    requestTimeoutMs: 1000,
    durationMs: 20_000,
  });

  it("GIVEN `stop` THEN the result counts every request, with its samples and its own CPU time", async () => {
    const load = await startLoad(options());
    await new Promise((resolve) => setTimeout(resolve, 300));
    const w = await load.stop();
    assert.ok(w.requests >= 1, `${w.requests} requests`);
    assert.deepEqual(
      [w.ok, w.samples.length, w.bodyMismatches, w.revisionNames],
      [w.requests, w.requests, 0, [current.revision]],
    );
    assert.ok(w.durationMs < 5000, `the window lasted ${w.durationMs} ms`);
    assert.ok(w.cpuSeconds > 0 && w.machineBusy >= 0 && w.machineBusy <= 1);
  });

  it("GIVEN `settle NEW 300` while the old revision still answers THEN it ends only 300 ms after the old one's last answer", async () => {
    const old = "b".repeat(40);
    const next = "c".repeat(40);
    current = { revision: old, since: Date.now() };
    const load = await startLoad(options());
    const settled = load.settle(next, 300);
    await new Promise((resolve) => setTimeout(resolve, 500));
    current = { revision: next, since: Date.now() };
    const w = await settled;

    const oldSeen = w.revisions[old];
    const newSeen = w.revisions[next];
    assert.ok(oldSeen && newSeen, JSON.stringify(w.revisions));
    const switchedMs = current.since - w.startedAt;
    // Not before: the old revision answered until (about) the switch, 500 ms after the settle
    // line, and the window ends only 300 ms after its last answer.
    assert.ok(oldSeen.lastMs + 300 <= w.durationMs, `${oldSeen.lastMs} + 300 > ${w.durationMs}`);
    // Not much after (a bound for a loaded machine, not an expectation).
    assert.ok(w.durationMs < switchedMs + 5000, `${w.durationMs} >= ${switchedMs} + 5000`);
    assert.equal(w.ok, w.requests);
  });
});
