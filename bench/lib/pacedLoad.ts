/**
 * Paced concurrent HTTP load with exact accounting, run in its own process (loadWorker.ts) so
 * that it neither shares an event loop with the timers of the benchmark nor hides its own CPU.
 *
 * Same accounting as the e2e tests' load (test/harness/load.ts): one request per
 * connection (`Connection: close`, uWSGI's http-socket closes after each answer anyway), and
 * every request ends as exactly one of 2xx / non-2xx / error / timeout. What that module lacks
 * and a benchmark on 2 shared cores needs: a request rate (each client sends at most one request
 * per `1 / ratePerClient` s; unpaced, 16 clients keep both cores ~90% busy and the deploy being
 * measured starves), a stop on demand (the window ends 1 s after the deploy, whatever it took),
 * and the raw latencies, so percentiles can be pooled across runs; and every request's send time,
 * latency and outcome (`samples`), so the pause can be drawn over time and mixed old/new answers
 * found afterwards.
 */
import { requestOnce } from "../../test/harness/load";

export interface PacedLoadOptions {
  url: string;
  connections: number;
  /** Requests per second over all clients; 0 = unpaced (each client as fast as it can). */
  ratePerSecond: number;
  requestTimeoutMs: number;
  /** Hard stop even if nobody asks (bounded load). */
  maxDurationMs: number;
}

/**
 * One request: [sent (ms after the load started), latency ms (to the end of the answer or of
 * the failure), outcome]: outcome >= 0 is the index in `revisionNames` of a 2xx answer's
 * X-Revision; OUTCOME_* for the rest.
 */
export type RequestSample = [number, number, number];
export const OUTCOME_NON2XX = -1;
export const OUTCOME_ERROR = -2;
export const OUTCOME_TIMEOUT = -3;

export interface PacedLoadResult {
  requests: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statuses: Record<string, number>;
  errorSamples: string[];
  /** Latency of every answered request (any status), ms, in the order they completed. */
  latenciesMs: number[];
  /** Responses whose body names another revision than their X-Revision header. */
  bodyMismatches: number;
  /** Every request, in the order they completed (see RequestSample). */
  samples: RequestSample[];
  /** X-Revision values of 2xx answers, indexed by RequestSample's outcome. */
  revisionNames: string[];
  /** Per X-Revision of 2xx answers: count and first/last time seen (ms after the start). */
  revisions: Record<string, { count: number; firstMs: number; lastMs: number }>;
  /** Epoch ms the load started at (samples' time 0). */
  startedAt: number;
  durationMs: number;
  /** CPU the load process itself used (user + system), in seconds. */
  cpuSeconds: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the load until `stopped()` is true or maxDurationMs passed; waits for in-flight requests.
 * `onAnswer` sees the X-Revision and end time (epoch ms) of every 2xx answer.
 */
export async function runPacedLoad(
  opts: PacedLoadOptions,
  stopped: () => boolean,
  onAnswer?: (revision: string, atMs: number) => void,
): Promise<PacedLoadResult> {
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  const end = t0 + opts.maxDurationMs;
  const result: PacedLoadResult = {
    requests: 0,
    ok: 0,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    statuses: {},
    errorSamples: [],
    latenciesMs: [],
    bodyMismatches: 0,
    samples: [],
    revisionNames: [],
    revisions: {},
    startedAt: t0,
    durationMs: 0,
    cpuSeconds: 0,
  };
  const intervalMs = opts.ratePerSecond > 0 ? (opts.connections * 1000) / opts.ratePerSecond : 0;
  const running = (): boolean => !stopped() && Date.now() < end;
  const client = async (index: number): Promise<void> => {
    // Clients start spread over one interval so that the requests are spread too.
    let next = t0 + (intervalMs * index) / opts.connections;
    while (running()) {
      const wait = next - Date.now();
      if (wait > 0) {
        await sleep(wait);
        if (!running()) break;
      }
      const sent = Date.now();
      // The next slot; a client that fell behind (slow answer) sends right away, no burst.
      next = Math.max(next + intervalMs, sent);
      const o = await requestOnce(opts.url, opts.requestTimeoutMs);
      const done = Date.now();
      result.requests++;
      const sample = (outcome: number): void => {
        result.samples.push([sent - t0, done - sent, outcome]);
      };
      if (o.kind !== "response") {
        sample(o.kind === "timeout" ? OUTCOME_TIMEOUT : OUTCOME_ERROR);
        if (o.kind === "timeout") result.timeouts++;
        else result.errors++;
        if (result.errorSamples.length < 10) result.errorSamples.push(`${o.kind}: ${o.message}`);
        continue;
      }
      result.latenciesMs.push(done - sent);
      result.statuses[o.status] = (result.statuses[o.status] ?? 0) + 1;
      if (o.status < 200 || o.status > 299) {
        sample(OUTCOME_NON2XX);
        result.non2xx++;
        if (result.errorSamples.length < 10) {
          result.errorSamples.push(`HTTP ${o.status}: ${o.body.slice(0, 100)}`);
        }
        continue;
      }
      result.ok++;
      const revision = o.revision ?? "(none)";
      let index = result.revisionNames.indexOf(revision);
      if (index < 0) index = result.revisionNames.push(revision) - 1;
      sample(index);
      onAnswer?.(revision, done);
      const ms = done - t0;
      const seen = (result.revisions[revision] ??= { count: 0, firstMs: ms, lastMs: ms });
      seen.count++;
      seen.lastMs = ms;
      // hello-wsgi and the slow app answer "<greeting> (revision <12 hex>)": the code that ran.
      // Another app's body (no such text) is not checked.
      const claimed = /\(revision ([0-9a-f]{12})\)/.exec(o.body)?.[1];
      if (claimed && !revision.startsWith(claimed)) result.bodyMismatches++;
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, (_, i) => client(i)));
  result.durationMs = Date.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  result.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return result;
}
