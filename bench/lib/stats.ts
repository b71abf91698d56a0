/** Median, min and max of a series of timings (or counts). */
export interface Summary {
  runs: number;
  median: number;
  min: number;
  max: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Summary of `values` (e.g. milliseconds), scaled by `scale` (e.g. 1/1000 for seconds). */
export function summarize(values: readonly number[], scale = 1): Summary {
  const scaled = values.map((v) => v * scale);
  return {
    runs: values.length,
    median: round(median(scaled)),
    min: round(scaled.length ? Math.min(...scaled) : NaN),
    max: round(scaled.length ? Math.max(...scaled) : NaN),
  };
}

/** The value at quantile q (0..1) of an ascending-sorted list (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
