/** Progress lines with the time since the benchmark started, so a slow step is easy to spot. */
const T0 = Date.now();

export function log(message: string): void {
  const s = ((Date.now() - T0) / 1000).toFixed(1).padStart(6);
  console.log(`[${s}s] ${message}`);
}

/** Seconds with two decimals, for progress lines. */
export const secs = (ms: number): string => `${(ms / 1000).toFixed(2)}s`;

/** Runs `fn`, logging its start and how long it took. */
export async function step<T>(label: string, fn: () => Promise<T>): Promise<T> {
  log(`${label} ...`);
  const t0 = Date.now();
  const result = await fn();
  log(`${label}: done in ${secs(Date.now() - t0)}`);
  return result;
}
