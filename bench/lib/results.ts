/** The benchmark's results: what latest.json holds (one object per measurement). */
import type { Summary } from "./stats";
import type { Timeline } from "./timeline";

export interface LoadStats {
  /** Requests sent during the windows of this measurement (all runs). */
  requests: number;
  ok: number;
  non2xx: number;
  /** Connection refused / reset / closed before a complete answer. */
  errors: number;
  timeouts: number;
  /** Pooled over all runs, ms. */
  latencyMs: { p50: number; p99: number; max: number };
  /** Answers whose body came from other code than their X-Revision says (should be 0). */
  bodyMismatches: number;
  /** What failed requests looked like (a few distinct ones). */
  errorSamples?: string[];
  /** Seconds of load per run (the window: 1 s before the deploy, the deploy, 1 s after). */
  windowSeconds: Summary;
  /** Share of both cores busy during the windows (median over runs). */
  machineBusy: number;
  /** Cores the load generator itself used during its windows (its CPU s / window s). */
  loadGeneratorCores: number;
}

export interface Measurement {
  /**
   * code-deploy, container-deploy, ratio-container-over-code, code-deploy-under-load,
   * container-deploy-under-load, ratio-container-over-code-under-load, load-baseline,
   * scale-parallel, scale-rolling, reload-experiment, and ratio-previous-over-shipped (the
   * previous contract's time / the shipped one's, pair by pair) with n and label saying where.
   */
  kind: string;
  /** What was measured, in words. */
  label: string;
  /**
   * Contract/script variant (BenchResults.variants): "shipped" is what touchdeploy ships
   * (runtime/ and host/ as they are), "previous" the contract before fs-reload + wake.
   */
  variant: string;
  /** The app deployed, when not hello-wsgi (lib/apps.ts id, e.g. slow-2s). */
  app?: string;
  /** Hosts deployed to. */
  n: number;
  batchSize?: number;
  runs: number;
  /** "s" for times, "x" for ratios. */
  unit: "s" | "x";
  median: number;
  min: number;
  max: number;
  /** Every run's value, in run order. */
  samples: number[];
  /** Requests and failed requests (non-2xx + errors + timeouts) under load; null without load. */
  requests: number | null;
  failed: number | null;
  load?: LoadStats;
  /** Per-step times in seconds (median/min/max over runs). */
  steps?: Record<string, Summary>;
  /** The whole machine's CPU during the runs (medians): busy share of all cores, CPU seconds. */
  cpu?: { busy: number; seconds: number };
  /**
   * CPU seconds per deploy (median over runs of the run's CPU / deploys in it), split as in
   * lib/cpu.ts: runtime containers, Docker's processes, the benchmark process, and the rest
   * (mostly the host scripts and their children).
   */
  cpuPerDeploy?: { total: number; containers: number; docker: number; bench: number; rest: number };
  /** With --profile: CPU seconds per deploy by process group (perf, lib/profile.ts), medians. */
  profilePerDeploy?: Record<string, number>;
  /** Graceful reloads uWSGI performed per deploy (every value must be 1). */
  reloadsPerDeploy?: number[];
  /** The contracts part (kind contract-deploy, contract-rollback): what users saw. */
  contract?: ContractView;
}

/** One design's deploys under load in the contracts part (bench/parts/contracts.ts). */
export interface ContractView {
  /** The app (lib/apps.ts id) and its import time by construction. */
  app: string;
  importSeconds?: number;
  /** Deploy start -> the first answer of the new code ended (s). */
  firstNew?: Summary;
  /** Deploy start -> the last answer of the old code ended (s): old code served until then. */
  lastOld?: Summary;
  /** Answers of old code to requests sent after new code had answered (all runs). */
  oldAfterNew: number;
  /** Windows of the same length on the same host, right after, without a deploy. */
  baseline?: LoadStats;
  /**
   * CPU seconds of the runtime container per deploy beyond serving the load: its CPU in the
   * deploy window minus its CPU in the baseline window (includes the app's own import CPU,
   * ~0 for the slow app, which sleeps).
   */
  runtimeCpuPerDeploy?: Summary;
  /** CPU seconds of the host script and its children per deploy (the same for every design). */
  scriptCpuPerDeploy?: Summary;
  /** Exit codes of the host script (rollback: 6 = rolled back, as expected). */
  exitCodes?: number[];
  /** Request latency over time around the deploys, pooled over runs. */
  timeline?: Timeline;
}

export interface Target {
  name: string;
  target: string;
  measured: string;
  met: boolean;
}

export interface BenchResults {
  /**
   * 3: + the contracts part (ContractView) and more image paths; 2: "shipped"/"previous"
   * variants (schema 1 had "stock" and a proposed variant).
   */
  schema: 3;
  /** ISO date-time the run started (UTC). */
  date: string;
  mode: "full" | "smoke";
  durationSeconds: number;
  machine: Record<string, string | number>;
  settings: Record<string, unknown>;
  /** Every variant measured, in words (the keys are Measurement.variant). */
  variants: Record<string, string>;
  measurements: Measurement[];
  targets: Target[];
  notes: string[];
}
