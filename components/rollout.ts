/** Rollout order across hosts. Pure. */
import { RolloutConfig } from "./config";

/**
 * Splits hosts into the batches that change together: one batch of everything for `parallel`,
 * consecutive batches of `batchSize` for `rolling` (batch k+1 waits for batch k to be healthy).
 */
export function rolloutBatches<T>(items: readonly T[], rollout: RolloutConfig): T[][] {
  if (items.length === 0) {
    return [];
  }
  if (rollout.strategy === "parallel") {
    return [[...items]];
  }
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += rollout.batchSize) {
    batches.push(items.slice(i, i + rollout.batchSize));
  }
  return batches;
}
