/**
 * The load generator's own process: test/harness/load.ts's runLoad, away from the benchmark's
 * event loop (its timers would delay the requests, and the benchmark's would be delayed) and
 * with its own CPU time measured. Started by lib/load.ts with the options as JSON in argv[2];
 * prints "ready" once started, and stops when a line arrives on stdin (or stdin closes, or
 * `durationMs` passes), then prints the result as one JSON line:
 *   stop                      stop now
 *   settle REVISION MARGIN    stop once every 2xx answer for MARGIN ms has been REVISION (and
 *                             at least MARGIN ms after this line): the window ends only when the
 *                             old code no longer answers, however long a contract keeps it.
 */
import { runLoad, type LoadOptions, type LoadResult } from "../test/harness/load";

/** What the benchmark passes: runLoad's options that JSON can carry. */
export type WorkerLoadOptions = Pick<
  LoadOptions,
  "url" | "connections" | "durationMs" | "ratePerSecond" | "requestTimeoutMs"
>;

export interface WorkerLoadResult extends LoadResult {
  /** CPU the load process itself used (user + system), in seconds. */
  cpuSeconds: number;
}

const opts = JSON.parse(process.argv[2] ?? "{}") as WorkerLoadOptions;
let stopNow = (): void => undefined;
const stopped = new Promise<void>((resolve) => (stopNow = resolve));
let settle: { revision: string; marginMs: number; since: number } | undefined;
/** Epoch ms of the latest 2xx answer of another revision than the one settled on. */
let lastOther = 0;
let settleTimer: NodeJS.Timeout | undefined;
/** Stops once MARGIN ms passed since the settle line and since the last other answer. */
const checkSettled = (): void => {
  if (!settle) return;
  clearTimeout(settleTimer);
  const wait = Math.max(settle.since, lastOther) + settle.marginMs - Date.now();
  if (wait <= 0) stopNow();
  else settleTimer = setTimeout(checkSettled, wait);
};
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk: string) => {
  for (const line of chunk.split("\n")) {
    const words = line.trim().split(/\s+/);
    if (words[0] === "stop") stopNow();
    else if (words[0] === "settle" && words.length === 3) {
      settle = { revision: words[1], marginMs: Number(words[2]), since: Date.now() };
      checkSettled();
    }
  }
});
process.stdin.on("end", () => stopNow());

const cpu0 = process.cpuUsage();
void runLoad({
  ...opts,
  until: stopped,
  // hello-wsgi and the slow app answer "<greeting> (revision <12 hex>)": the code that ran.
  // Another app's body (no such text) is not checked.
  bodyRevision: (body) => /\(revision ([0-9a-f]{12})\)/.exec(body)?.[1],
  bodyRevisionOptional: true,
  onOutcome: (_client, o) => {
    if (o.kind !== "response" || o.status < 200 || o.status > 299) return;
    if ((o.revision ?? "(none)") !== settle?.revision) lastOther = Date.now();
  },
}).then((load) => {
  clearTimeout(settleTimer);
  const cpu = process.cpuUsage(cpu0);
  const result: WorkerLoadResult = { ...load, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  // Exit once the line is written: stdout is a pipe (asynchronous), and a long unpaced window's
  // samples make a line far bigger than the pipe holds.
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
});
process.stdout.write("ready\n");
