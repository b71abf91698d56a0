/**
 * Everything the benchmark starts registers how to undo it here; `runCleanups` undoes it in
 * reverse order, also on failure and on Ctrl-C (see run.ts).
 */
import { log } from "./log";

const tasks: { name: string; fn: () => Promise<void> | void }[] = [];

/** Registers a cleanup; the returned function runs it now (once) and unregisters it. */
export function onCleanup(name: string, fn: () => Promise<void> | void): () => Promise<void> {
  const task = { name, fn };
  tasks.push(task);
  return async () => {
    const i = tasks.indexOf(task);
    if (i >= 0) {
      tasks.splice(i, 1);
      await fn();
    }
  };
}

export async function runCleanups(): Promise<void> {
  while (tasks.length > 0) {
    const task = tasks.pop();
    if (!task) break;
    try {
      await task.fn();
    } catch (err) {
      log(`cleanup of ${task.name} failed: ${(err as Error).message}`);
    }
  }
}
