/**
 * What a load window saw around one deploy, from its per-request samples (test/harness/load.ts):
 * when the new code answered first, when the old code answered last, whether a client could get
 * old code after someone already got new code, and request latency over time (for the chart:
 * the pause users feel).
 */
import type { LoadWindow } from "./load";
import { quantile } from "./stats";

export interface DeployView {
  /** Deploy start -> the first answer of the new revision ended (ms). */
  firstNewMs?: number;
  /** Deploy start -> the last answer of any other revision ended (ms); undefined: none after. */
  lastOldMs?: number;
  /**
   * Answers of an older revision to requests *sent after* an answer of the new revision had
   * already ended: a client that reloads a page can go back from new to old code.
   */
  oldAfterNew: number;
  /** Requests that failed (non-2xx, error, timeout). */
  failed: number;
}

/**
 * Reads one window: `deployStartMs` is the epoch ms the deploy started, `revision` the new
 * commit.
 */
export function viewDeploy(w: LoadWindow, deployStartMs: number, revision: string): DeployView {
  const offset = deployStartMs - w.startedAt;
  const newIndex = w.revisionNames.indexOf(revision);
  let firstNew = Infinity;
  let lastOld = -Infinity;
  let failed = 0;
  for (const [sent, latency, outcome] of w.samples) {
    const end = sent + latency - offset;
    if (outcome < 0) failed++;
    else if (outcome === newIndex) firstNew = Math.min(firstNew, end);
    else if (end > 0) lastOld = Math.max(lastOld, end);
  }
  let oldAfterNew = 0;
  for (const [sent, , outcome] of w.samples) {
    if (outcome >= 0 && outcome !== newIndex && sent - offset > firstNew) oldAfterNew++;
  }
  return {
    ...(Number.isFinite(firstNew) ? { firstNewMs: firstNew } : {}),
    ...(Number.isFinite(lastOld) ? { lastOldMs: lastOld } : {}),
    oldAfterNew,
    failed,
  };
}

/** Request latency over time around deploys, pooled over runs, per bucket of send time. */
export interface Timeline {
  /** Bucket width, ms. */
  bucketMs: number;
  /** Bucket start relative to the deploy's start (ms), one per bucket. */
  t: number[];
  /** Highest latency of a request sent in the bucket (ms), over all runs. */
  max: number[];
  /** Median latency of the requests sent in the bucket (ms). */
  p50: number[];
  /** Requests sent in the bucket that failed, over all runs. */
  failed: number[];
}

/** Pools `windows` (each with the epoch ms its deploy started) into buckets of `bucketMs`. */
export function timeline(
  windows: { w: LoadWindow; deployStartMs: number }[],
  bucketMs = 100,
  fromMs = -1000,
  toMs?: number,
): Timeline {
  const buckets = new Map<number, { lat: number[]; failed: number }>();
  let last = 0;
  for (const { w, deployStartMs } of windows) {
    const offset = deployStartMs - w.startedAt;
    for (const [sent, latency, outcome] of w.samples) {
      const t = sent - offset;
      if (t < fromMs || (toMs !== undefined && t >= toMs)) continue;
      const k = Math.floor(t / bucketMs);
      last = Math.max(last, k);
      const b = buckets.get(k) ?? { lat: [], failed: 0 };
      b.lat.push(latency);
      if (outcome < 0) b.failed++;
      buckets.set(k, b);
    }
  }
  const out: Timeline = { bucketMs, t: [], max: [], p50: [], failed: [] };
  for (let k = Math.floor(fromMs / bucketMs); k <= last; k++) {
    const b = buckets.get(k);
    if (!b) continue;
    const sorted = [...b.lat].sort((a, c) => a - c);
    out.t.push(k * bucketMs);
    out.max.push(sorted[sorted.length - 1]);
    out.p50.push(quantile(sorted, 0.5));
    out.failed.push(b.failed);
  }
  return out;
}
