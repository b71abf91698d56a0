/**
 * Concurrent, paced HTTP load with exact accounting: the one load generator of the e2e tests
 * and of the benchmark (bench/loadWorker.ts runs it in its own process). Every request sent
 * ends as exactly one of 2xx / non-2xx / error / timeout and becomes one sample (send time,
 * latency, outcome); the summary the tests assert on (failed counts, latency p50/p99/max, when
 * each revision was first and last seen) is computed from those samples, and the benchmark
 * keeps the samples themselves to draw the pause over time and find old answers after new ones.
 *
 * Why not autocannon: uWSGI's http-socket closes the connection after every response without
 * a `Connection: close` header. autocannon then writes its next request onto the closing socket
 * and, on the close, silently re-sends on a new connection: measured here, 25,469 requests
 * "sent" for 12,731 responses in 3 s, and a request the server drops unanswered is never
 * counted as an error. A load test whose claim is "zero failed requests" cannot use that
 * count. Here each client sends one request per connection (as a browser or proxy talking to
 * a non-keep-alive server does), so nothing can be lost without being counted.
 *
 * Why paced: on 2 shared cores, unpaced clients keep both cores busy and the deploy being
 * measured starves; and uWSGI's reload race (test/e2e/hostScriptLoad.test.ts) grows with the
 * request rate.
 */
import * as http from "node:http";

export interface LoadOptions {
  /** The URL every request GETs (127.0.0.1 only in the tests and the benchmark). */
  url: string;
  /** Concurrent clients, each sending its requests one after another (an integer >= 1). */
  connections: number;
  /** The longest the load sends requests; it stops by itself after this (ms, > 0). */
  durationMs: number;
  /** Stop sending new requests once this settles (in-flight ones are still counted). */
  until?: Promise<unknown>;
  /**
   * Requests per second over all clients. Client k of n sends its j-th request no sooner than
   * start + (j * n + k) / rate, so request i overall is not sent before start + i / rate; a
   * client that fell behind (a slow answer) sends at once and then keeps its pace: no burst to
   * catch up. Unset or 0: unpaced, each client sends its next request as soon as the previous
   * one ended.
   */
  ratePerSecond?: number;
  /**
   * Called with each request's outcome once it is counted (client index, ms after the start
   * when it ended: the sample's send time + latency).
   */
  onOutcome?: (client: number, outcome: Outcome, ms: number) => void;
  /** A request without a complete answer after this long counts as a timeout (default 10 s). */
  requestTimeoutMs?: number;
  /**
   * Extracts the revision a 2xx body claims, to check it against X-Revision: a body that claims
   * another one counts in `bodyMismatches`, and so does a body that claims none (undefined)
   * unless `bodyRevisionOptional`. Unset: bodies are not checked.
   */
  bodyRevision?: (body: string) => string | undefined;
  /** A body without a revision is not checked (instead of counted as a mismatch). */
  bodyRevisionOptional?: boolean;
}

/** How one request ended: an HTTP answer, or an error or timeout without one. */
export type Outcome =
  | { kind: "response"; status: number; revision: string | undefined; body: string }
  | { kind: "error" | "timeout"; message: string };

/**
 * One request: [sent (ms after the load started), latency ms (to the end of the answer or of
 * the failure), outcome]: outcome >= 0 is the index in `revisionNames` of a 2xx answer's
 * X-Revision; OUTCOME_* for the rest. A tuple, not an object: the benchmark ships tens of
 * thousands of them as JSON from its load process.
 */
export type RequestSample = [number, number, number];
export const OUTCOME_NON2XX = -1;
export const OUTCOME_ERROR = -2;
export const OUTCOME_TIMEOUT = -3;

/** A run of consecutive responses with the same X-Revision on one client. */
export interface RevisionRun {
  revision: string;
  count: number;
}

/** What the samples say, summed up: see summarizeSamples. */
export interface LoadSummary {
  /** Requests that got an outcome (all of them: the load waits for in-flight ones). */
  requests: number;
  ok: number;
  non2xx: number;
  /** Connection refused/reset, closed before a complete answer, ... */
  errors: number;
  timeouts: number;
  /** Latency of answered requests (any status): median, 99th percentile and maximum, in ms. */
  latencyMs: { p50: number; p99: number; max: number };
  /** Per X-Revision of 2xx answers: count, and when first and last seen (ms after the start). */
  revisions: Record<string, { count: number; firstMs: number; lastMs: number }>;
}

export interface LoadResult extends LoadSummary {
  /** Count per HTTP status. */
  statuses: Record<string, number>;
  /** Up to 10 error messages, for diagnosis. */
  errorSamples: string[];
  /** Per client: its 2xx responses' X-Revision values, run-length encoded, in order. */
  perConnection: RevisionRun[][];
  /** 2xx bodies whose claimed revision is not their X-Revision (needs bodyRevision). */
  bodyMismatches: number;
  /** Every request, in the order they ended (see RequestSample). */
  samples: RequestSample[];
  /** X-Revision values of 2xx answers ("(none)" without the header), indexed by outcome. */
  revisionNames: string[];
  /** Epoch ms the load started at (the samples' time 0). */
  startedAt: number;
  durationMs: number;
}

/** One GET on a new connection, bounded by `timeoutMs`; never rejects. */
export function requestOnce(url: string, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (o: Outcome): void => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(o);
      }
    };
    const req = http.get(url, { agent: false, headers: { Connection: "close" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        const rev = res.headers["x-revision"];
        finish({
          kind: "response",
          status: res.statusCode ?? 0,
          revision: Array.isArray(rev) ? rev[0] : rev,
          body,
        });
      });
      res.on("error", (err) => finish({ kind: "error", message: err.message }));
      res.on("aborted", () => finish({ kind: "error", message: "response aborted" }));
    });
    const timer = setTimeout(() => {
      finish({ kind: "timeout", message: `no complete answer within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on("error", (err) => finish({ kind: "error", message: err.message }));
  });
}

/** Latencies (ms) of the answered requests (any status) among `samples`, in their order. */
export function answeredLatencies(samples: readonly RequestSample[]): number[] {
  return samples.filter(([, , outcome]) => outcome >= OUTCOME_NON2XX).map(([, ms]) => ms);
}

/** The counts, latency percentiles and revisions seen, from the samples alone. */
export function summarizeSamples(
  samples: readonly RequestSample[],
  revisionNames: readonly string[],
): LoadSummary {
  const summary: LoadSummary = {
    requests: samples.length,
    ok: 0,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    latencyMs: { p50: 0, p99: 0, max: 0 },
    revisions: {},
  };
  for (const [sent, latency, outcome] of samples) {
    if (outcome === OUTCOME_NON2XX) summary.non2xx++;
    else if (outcome === OUTCOME_ERROR) summary.errors++;
    else if (outcome === OUTCOME_TIMEOUT) summary.timeouts++;
    else {
      const name = revisionNames[outcome];
      if (name === undefined) throw new Error(`sample outcome ${outcome} names no revision`);
      summary.ok++;
      const end = sent + latency;
      const seen = (summary.revisions[name] ??= { count: 0, firstMs: end, lastMs: end });
      seen.count++;
      seen.firstMs = Math.min(seen.firstMs, end);
      seen.lastMs = Math.max(seen.lastMs, end);
    }
  }
  const latencies = answeredLatencies(samples).sort((a, b) => a - b);
  const at = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  summary.latencyMs = { p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1] ?? 0 };
  return summary;
}

/** Runs `connections` clients against `url` until `until` or `durationMs`; see LoadResult. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const { connections, durationMs } = opts;
  const rate = opts.ratePerSecond ?? 0;
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  if (!(Number.isInteger(connections) && connections >= 1)) {
    throw new Error(`runLoad: \`connections\` must be an integer >= 1, got ${connections}`);
  }
  if (!(durationMs > 0)) throw new Error(`runLoad: \`durationMs\` must be > 0, got ${durationMs}`);
  if (!(rate >= 0 && Number.isFinite(rate))) {
    throw new Error(`runLoad: \`ratePerSecond\` must be >= 0 (0: unpaced), got ${rate}`);
  }
  if (!(timeoutMs > 0)) {
    throw new Error(`runLoad: \`requestTimeoutMs\` must be > 0, got ${timeoutMs}`);
  }
  const t0 = Date.now();
  const end = t0 + durationMs;

  // Stopping wakes the clients waiting for their next slot, so the load ends at once.
  let stopped = false;
  const wakers = new Set<() => void>();
  const stop = (): void => {
    stopped = true;
    for (const wake of wakers) wake();
  };
  void opts.until?.then(stop, stop);
  const running = (): boolean => !stopped && Date.now() < end;
  const waitUntil = async (due: number): Promise<void> => {
    for (let now = Date.now(); running() && now < due; now = Date.now()) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          wakers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(due, end) - now);
        wakers.add(wake);
      });
    }
  };

  const samples: RequestSample[] = [];
  const revisionNames: string[] = [];
  const statuses: Record<string, number> = {};
  const errorSamples: string[] = [];
  const perConnection: RevisionRun[][] = [];
  let bodyMismatches = 0;
  const noteError = (message: string): void => {
    if (errorSamples.length < 10) errorSamples.push(message);
  };
  /** Counts one outcome; returns the sample's outcome code. */
  const account = (o: Outcome, runs: RevisionRun[]): number => {
    if (o.kind !== "response") {
      noteError(`${o.kind}: ${o.message}`);
      return o.kind === "timeout" ? OUTCOME_TIMEOUT : OUTCOME_ERROR;
    }
    statuses[o.status] = (statuses[o.status] ?? 0) + 1;
    if (o.status < 200 || o.status > 299) {
      noteError(`HTTP ${o.status} revision ${o.revision}: ${o.body.slice(0, 100)}`);
      return OUTCOME_NON2XX;
    }
    const revision = o.revision ?? "(none)";
    if (opts.bodyRevision) {
      const claimed = opts.bodyRevision(o.body);
      const mismatch =
        claimed === undefined ? !opts.bodyRevisionOptional : !revision.startsWith(claimed);
      if (mismatch) bodyMismatches++;
    }
    const last = runs[runs.length - 1];
    if (last && last.revision === revision) last.count++;
    else runs.push({ revision, count: 1 });
    const index = revisionNames.indexOf(revision);
    return index >= 0 ? index : revisionNames.push(revision) - 1;
  };

  const intervalMs = rate > 0 ? (connections * 1000) / rate : 0;
  const client = async (index: number, runs: RevisionRun[]): Promise<void> => {
    // Clients start spread over one interval so that their requests are spread too.
    let next = t0 + (intervalMs * index) / connections;
    for (;;) {
      await waitUntil(next);
      if (!running()) return;
      const sent = Date.now();
      next = Math.max(next + intervalMs, sent);
      const o = await requestOnce(opts.url, timeoutMs);
      const done = Date.now();
      samples.push([sent - t0, done - sent, account(o, runs)]);
      opts.onOutcome?.(index, o, done - t0);
    }
  };
  await Promise.all(
    Array.from({ length: connections }, (_, i) => {
      const runs: RevisionRun[] = [];
      perConnection.push(runs);
      return client(i, runs);
    }),
  );
  return {
    ...summarizeSamples(samples, revisionNames),
    statuses,
    errorSamples,
    perConnection,
    bodyMismatches,
    samples,
    revisionNames,
    startedAt: t0,
    durationMs: Date.now() - t0,
  };
}
