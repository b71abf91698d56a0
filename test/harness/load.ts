/**
 * Concurrent HTTP load with exact accounting: every request sent ends as exactly one of
 * 2xx / non-2xx / error / timeout, and each client's sequence of X-Revision values is kept.
 *
 * Why not autocannon: uWSGI's http-socket closes the connection after every response without
 * a `Connection: close` header. autocannon then writes its next request onto the closing socket
 * and, on the close, silently re-sends on a new connection: measured here, 25,469 requests
 * "sent" for 12,731 responses in 3 s, and a request the server drops unanswered is never
 * counted as an error. A load test whose claim is "zero failed requests" cannot use that
 * count. Here each client sends one request per connection (as a browser or proxy talking to
 * a non-keep-alive server does), so nothing can be lost without being counted.
 */
import * as http from "node:http";

export interface LoadOptions {
  /** The URL every request GETs (127.0.0.1 only in the tests). */
  url: string;
  /** Concurrent clients, each sending its requests one after another. */
  connections: number;
  /** The longest the load sends requests; it stops by itself after this. */
  durationMs: number;
  /** Stop sending new requests once this settles (in-flight ones are still counted). */
  until?: Promise<unknown>;
  /**
   * Requests per second over all clients (request i is not sent before start + i / rate);
   * unset: each client sends its next request as soon as the previous one ended.
   */
  ratePerSecond?: number;
  /** Called with each request's outcome as it ends (client index, ms after the start). */
  onOutcome?: (client: number, outcome: Outcome, ms: number) => void;
  /** A request without a complete answer after this long counts as a timeout (default 10 s). */
  requestTimeoutMs?: number;
  /** Extracts the revision the body claims, to check it against X-Revision (optional). */
  bodyRevision?: (body: string) => string | undefined;
}

/** A run of consecutive responses with the same X-Revision on one client. */
export interface RevisionRun {
  revision: string;
  count: number;
}

export interface LoadResult {
  /** Requests that got an outcome (all of them: the load waits for in-flight ones). */
  requests: number;
  ok: number;
  non2xx: number;
  /** Connection refused/reset, closed before a complete answer, ... */
  errors: number;
  timeouts: number;
  /** Count per HTTP status. */
  statuses: Record<string, number>;
  /** Up to 10 error messages, for diagnosis. */
  errorSamples: string[];
  /** Per client: its 2xx responses' X-Revision values, run-length encoded, in order. */
  perConnection: RevisionRun[][];
  /** Responses whose body names another revision than X-Revision (needs bodyRevision). */
  bodyMismatches: number;
  /** Per revision: ms after the load started when it was first and last seen. */
  seen: Record<string, { firstMs: number; lastMs: number }>;
  /** Latency of answered requests (any status): median, 99th percentile and maximum, in ms. */
  latencyMs: { p50: number; p99: number; max: number };
  durationMs: number;
}

/** How one request ended: an HTTP answer, or an error or timeout without one. */
export type Outcome =
  | { kind: "response"; status: number; revision: string | undefined; body: string }
  | { kind: "error" | "timeout"; message: string };

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

/** Runs `connections` clients against `url` for `durationMs`; see LoadResult. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  if (!(opts.connections >= 1 && opts.durationMs > 0)) {
    throw new Error("runLoad needs connections >= 1 and durationMs > 0");
  }
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  const t0 = Date.now();
  const end = t0 + opts.durationMs;
  let stopped = false;
  void opts.until?.then(
    () => (stopped = true),
    () => (stopped = true),
  );
  const rate = opts.ratePerSecond;
  if (rate !== undefined && !(rate > 0)) throw new Error("runLoad: ratePerSecond must be > 0");
  let slot = 0;
  /** Waits for this client's next request slot; false when the load is over. */
  const nextSlot = async (): Promise<boolean> => {
    if (rate !== undefined) {
      const due = t0 + (slot++ * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    return !stopped && Date.now() < end;
  };
  const result: LoadResult = {
    requests: 0,
    ok: 0,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    statuses: {},
    errorSamples: [],
    perConnection: [],
    bodyMismatches: 0,
    seen: {},
    latencyMs: { p50: 0, p99: 0, max: 0 },
    durationMs: 0,
  };
  const latencies: number[] = [];
  const client = async (index: number, runs: RevisionRun[]): Promise<void> => {
    while (await nextSlot()) {
      const sent = Date.now();
      const o = await requestOnce(opts.url, timeoutMs);
      result.requests++;
      opts.onOutcome?.(index, o, Date.now() - t0);
      if (o.kind !== "response") {
        if (o.kind === "timeout") result.timeouts++;
        else result.errors++;
        if (result.errorSamples.length < 10) result.errorSamples.push(`${o.kind}: ${o.message}`);
        continue;
      }
      latencies.push(Date.now() - sent);
      result.statuses[o.status] = (result.statuses[o.status] ?? 0) + 1;
      if (o.status < 200 || o.status > 299) {
        result.non2xx++;
        if (result.errorSamples.length < 10) {
          result.errorSamples.push(
            `HTTP ${o.status} revision ${o.revision}: ${o.body.slice(0, 100)}`,
          );
        }
        continue;
      }
      result.ok++;
      const revision = o.revision ?? "(none)";
      const ms = Date.now() - t0;
      const seen = (result.seen[revision] ??= { firstMs: ms, lastMs: ms });
      seen.lastMs = ms;
      const claimed = opts.bodyRevision?.(o.body);
      if (opts.bodyRevision && (claimed === undefined || !revision.startsWith(claimed))) {
        result.bodyMismatches++;
      }
      const last = runs[runs.length - 1];
      if (last && last.revision === revision) last.count++;
      else runs.push({ revision, count: 1 });
    }
  };
  const clients = Array.from({ length: opts.connections }, (_, i) => {
    const runs: RevisionRun[] = [];
    result.perConnection.push(runs);
    return client(i, runs);
  });
  await Promise.all(clients);
  result.durationMs = Date.now() - t0;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  result.latencyMs = { p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1] ?? 0 };
  return result;
}
