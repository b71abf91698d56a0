/** The benchmark's results: what latest.json holds (one object per measurement). */
import type { Summary } from "./stats";

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
}

export interface Target {
  name: string;
  target: string;
  measured: string;
  met: boolean;
}

export interface BenchResults {
  /** 2: "shipped"/"previous" variants (schema 1 had "stock" and a proposed variant). */
  schema: 2;
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
