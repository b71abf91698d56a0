/**
 * The load generator of the e2e tests and the benchmark (test/harness/load.ts), against a node
 * http server on 127.0.0.1 that decides each answer by the order requests arrive in: the load's
 * counts must equal what the server did, its pacing must hold the rate without a burst after a
 * stall, and each client's revisions must be recorded in order.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import {
  OUTCOME_ERROR,
  OUTCOME_NON2XX,
  OUTCOME_TIMEOUT,
  runLoad,
  summarizeSamples,
  type LoadOptions,
} from "../harness/load";

interface TestServer {
  url: string;
  /** Requests that arrived so far. */
  arrivals: () => number;
  close: () => Promise<void>;
}

const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

/** A server on 127.0.0.1 that hands each request to `handle` with its arrival index (0-based). */
async function serve(
  handle: (n: number, req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<TestServer> {
  let arrivals = 0;
  const server = http.createServer((req, res) => handle(arrivals++, req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const s: TestServer = {
    url: `http://127.0.0.1:${port}/`,
    arrivals: () => arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

function answer(res: http.ServerResponse, status: number, revision: string, body: string): void {
  res.writeHead(status, { "X-Revision": revision, "Content-Type": "text/plain" });
  res.end(body);
}

/** The most send times (ms) that fall in any window [t, t + windowMs). */
function busiestWindow(sends: number[], windowMs: number): number {
  const sorted = [...sends].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j] < sorted[i] + windowMs) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

describe("runLoad (test/harness/load.ts)", () => {
  it("GIVEN 4 clients at 200 requests/s for 1 s and a 250 ms stall of every client THEN at most 200 requests, no burst after the stall", async () => {
    const STALLED = [40, 41, 42, 43];
    const server = await serve((n, _req, res) => {
      if (STALLED.includes(n)) setTimeout(() => answer(res, 200, "r", "late"), 250);
      else answer(res, 200, "r", "ok");
    });
    const result = await runLoad({
      url: server.url,
      connections: 4,
      ratePerSecond: 200,
      durationMs: 1000,
    });

    // The stall happened: one request of each client waited 250 ms (a client has one in flight).
    assert.ok(result.samples.filter(([, latency]) => latency >= 240).length >= 4);
    // Request i is not sent before start + i / rate: at most 200 start within 1 s.
    assert.ok(result.requests <= 200, `${result.requests} requests, more than 200 in 1 s`);
    // A bound, not an expectation (about 150-200 on an idle machine): the rate is not starved.
    // Loose: a test process that gets little CPU (a niced mutation run on a busy machine) once
    // fell under 100.
    assert.ok(result.requests >= 50, `${result.requests} requests, fewer than 50 in 1 s`);
    // A client's slots are >= 20 ms apart and it sends no earlier than its slot, and only its
    // first send in a window can be a late one: at most 1 + 5 sends per client in any 100 ms.
    // Catching up on the stall's missed slots would send ~50 at once.
    const busiest = busiestWindow(
      result.samples.map(([sent]) => sent),
      100,
    );
    assert.ok(busiest <= 24, `${busiest} requests sent within 100 ms (at most 24 when paced)`);
    assert.equal(result.requests, server.arrivals());
    assert.deepEqual(
      { ok: result.ok, failed: result.non2xx + result.errors + result.timeouts },
      { ok: result.requests, failed: 0 },
    );
  });

  it("GIVEN a server that answers 200, 503, 404, resets or never answers THEN each count is exactly what the server did, and each client's revisions old -> new", async () => {
    const SWITCH = 40;
    const did = { ok: 0, s503: 0, s404: 0, reset: 0, hung: 0, mismatched: 0 };
    const okPer: Record<string, number> = {};
    const server = await serve((n, req, res) => {
      const revision = n < SWITCH ? "aaa" : "bbb";
      switch (n % 8) {
        case 1:
          did.s503++;
          return answer(res, 503, revision, "busy");
        case 3:
          did.reset++;
          return req.socket.destroy();
        case 5:
          did.hung++;
          return; // never answered: the client times out
        case 6:
          did.s404++;
          return answer(res, 404, revision, "not found");
      }
      did.ok++;
      okPer[revision] = (okPer[revision] ?? 0) + 1;
      // Two bodies that do not back their header: one names another revision, one none.
      if (n === 2) return (did.mismatched++, answer(res, 200, revision, "Hi (revision ccc)"));
      if (n === 4) return (did.mismatched++, answer(res, 200, revision, "Hi"));
      answer(res, 200, revision, `Hi (revision ${revision})`);
    });
    const seen: Record<string, number[]> = {};
    const result = await runLoad({
      url: server.url,
      connections: 3,
      ratePerSecond: 150,
      durationMs: 800,
      requestTimeoutMs: 100,
      bodyRevision: (body) => /\(revision (\w+)\)/.exec(body)?.[1],
      onOutcome: (_client, o, ms) => {
        if (o.kind === "response" && o.status === 200) (seen[o.revision!] ??= []).push(ms);
      },
    });

    assert.ok(server.arrivals() > SWITCH + 8, `only ${server.arrivals()} requests arrived`);
    assert.deepEqual(
      {
        requests: result.requests,
        ok: result.ok,
        non2xx: result.non2xx,
        errors: result.errors,
        timeouts: result.timeouts,
        statuses: result.statuses,
        bodyMismatches: result.bodyMismatches,
      },
      {
        requests: server.arrivals(),
        ok: did.ok,
        non2xx: did.s503 + did.s404,
        errors: did.reset,
        timeouts: did.hung,
        statuses: { 200: did.ok, 503: did.s503, 404: did.s404 },
        bodyMismatches: did.mismatched,
      },
    );
    // One sample per request, with the same outcome.
    const tally = (code: number): number => result.samples.filter(([, , o]) => o === code).length;
    assert.deepEqual(
      [tally(OUTCOME_NON2XX), tally(OUTCOME_ERROR), tally(OUTCOME_TIMEOUT), result.samples.length],
      [did.s503 + did.s404, did.reset, did.hung, server.arrivals()],
    );
    assert.ok(
      result.samples.every(([, latency, o]) => o !== OUTCOME_TIMEOUT || latency >= 95),
      "a timeout before requestTimeoutMs",
    );
    const failed = did.s503 + did.s404 + did.reset + did.hung;
    assert.equal(result.errorSamples.length, Math.min(10, failed));
    for (const e of result.errorSamples) {
      assert.match(
        e,
        /^(HTTP 503 revision (aaa|bbb): busy|HTTP 404 revision (aaa|bbb): not found|error: socket hang up|timeout: no complete answer within 100 ms)$/,
      );
    }
    // Revision transitions: every client old then new, never back; counts and first/last seen
    // exactly what the clients were told as their answers ended.
    assert.equal(result.perConnection.length, 3);
    result.perConnection.forEach((runs, i) => {
      assert.deepEqual(
        runs.map((r) => r.revision),
        ["aaa", "bbb"],
        `client ${i}: ${JSON.stringify(runs)}`,
      );
    });
    assert.deepEqual(result.revisions, {
      aaa: { count: okPer.aaa, firstMs: Math.min(...seen.aaa), lastMs: Math.max(...seen.aaa) },
      bbb: { count: okPer.bbb, firstMs: Math.min(...seen.bbb), lastMs: Math.max(...seen.bbb) },
    });
    const perRevision = (rev: string): number =>
      result.perConnection.flat().reduce((a, r) => a + (r.revision === rev ? r.count : 0), 0);
    assert.deepEqual([perRevision("aaa"), perRevision("bbb")], [okPer.aaa, okPer.bbb]);
    // The summary is the samples' summary.
    const { requests, ok, non2xx, errors, timeouts, latencyMs, revisions } = result;
    assert.deepEqual(
      { requests, ok, non2xx, errors, timeouts, latencyMs, revisions },
      summarizeSamples(result.samples, result.revisionNames),
    );
  });

  it("GIVEN bodies that name no revision THEN each is a mismatch, unless bodyRevisionOptional", async () => {
    const server = await serve((_n, _req, res) => answer(res, 200, "abc", "Hello"));
    const opts: LoadOptions = {
      url: server.url,
      connections: 1,
      ratePerSecond: 50,
      durationMs: 200,
      bodyRevision: (body) => /\(revision (\w+)\)/.exec(body)?.[1],
    };
    const strict = await runLoad(opts);
    assert.ok(strict.ok >= 1);
    assert.equal(strict.bodyMismatches, strict.ok);
    const lenient = await runLoad({ ...opts, bodyRevisionOptional: true });
    assert.ok(lenient.ok >= 1);
    assert.equal(lenient.bodyMismatches, 0);
  });

  it("GIVEN `until` settles THEN nothing is sent after it, the request in flight is still counted, and a client waiting for its slot stops at once", async () => {
    const server = await serve((n, _req, res) => {
      if (n === 0) setTimeout(() => answer(res, 200, "r", "slow"), 300);
      else answer(res, 200, "r", "ok");
    });
    let stoppedAt = 0;
    const until = new Promise<void>((resolve) =>
      setTimeout(() => {
        stoppedAt = Date.now();
        resolve();
      }, 100),
    );
    // 2 clients at 1/s: client 0's first request hangs 300 ms; client 1's first slot is 1 s
    // after the start, but the stop at 100 ms wakes it.
    const result = await runLoad({
      url: server.url,
      connections: 2,
      ratePerSecond: 1,
      durationMs: 10_000,
      until,
    });
    assert.ok(stoppedAt > 0);
    assert.deepEqual(
      result.samples.map(([sent, , outcome]) => [sent <= stoppedAt - result.startedAt, outcome]),
      [[true, 0]],
    );
    assert.ok(result.samples[0][1] >= 290, `latency ${result.samples[0][1]} ms`);
    assert.equal(server.arrivals(), 1);
    // The load ended when its last request did, not at client 1's slot (1000 ms).
    assert.ok(result.durationMs < 800, `the load took ${result.durationMs} ms`);
  });

  it("GIVEN invalid options THEN the error names the option and its value", async () => {
    const base: LoadOptions = { url: "http://127.0.0.1:9/", connections: 1, durationMs: 100 };
    const cases: [Partial<LoadOptions>, string][] = [
      [{ connections: 0 }, "runLoad: `connections` must be an integer >= 1, got 0"],
      [{ connections: 1.5 }, "runLoad: `connections` must be an integer >= 1, got 1.5"],
      [{ durationMs: 0 }, "runLoad: `durationMs` must be > 0, got 0"],
      [{ ratePerSecond: -1 }, "runLoad: `ratePerSecond` must be >= 0 (0: unpaced), got -1"],
      [{ ratePerSecond: NaN }, "runLoad: `ratePerSecond` must be >= 0 (0: unpaced), got NaN"],
      [{ requestTimeoutMs: 0 }, "runLoad: `requestTimeoutMs` must be > 0, got 0"],
    ];
    for (const [change, message] of cases) {
      await assert.rejects(runLoad({ ...base, ...change }), { message });
    }
  });
});

describe("summarizeSamples", () => {
  it("GIVEN hand-made samples THEN the exact counts, latency percentiles and revisions seen", () => {
    assert.deepEqual(
      summarizeSamples(
        [
          [0, 5, 0],
          [10, 40, OUTCOME_NON2XX],
          [20, 3, OUTCOME_ERROR],
          [30, 100, OUTCOME_TIMEOUT],
          [40, 7, 1],
          [45, 2, 0], // ends at 47, after "new" was first seen at 47: old after new
          [50, 1, 1],
        ],
        ["old", "new"],
      ),
      {
        requests: 7,
        ok: 4,
        non2xx: 1,
        errors: 1,
        timeouts: 1,
        // Answered: 5, 40, 7, 2, 1 (errors and timeouts have no answer's latency).
        latencyMs: { p50: 5, p99: 40, max: 40 },
        revisions: {
          old: { count: 2, firstMs: 5, lastMs: 47 },
          new: { count: 2, firstMs: 47, lastMs: 51 },
        },
      },
    );
    assert.deepEqual(summarizeSamples([], []), {
      requests: 0,
      ok: 0,
      non2xx: 0,
      errors: 0,
      timeouts: 0,
      latencyMs: { p50: 0, p99: 0, max: 0 },
      revisions: {},
    });
    assert.throws(() => summarizeSamples([[0, 1, 2]], ["old"]), {
      message: "sample outcome 2 names no revision",
    });
  });
});
