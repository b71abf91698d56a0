/**
 * The load generator's own process (see lib/pacedLoad.ts). Started by lib/load.ts with the
 * options as JSON in argv[2]; prints "ready" once started, and stops when a line arrives on
 * stdin (or stdin closes, or the hard limit passes), then prints the result as one JSON line:
 *   stop                      stop now
 *   settle REVISION MARGIN    stop once every 2xx answer for MARGIN ms has been REVISION (and
 *                             at least MARGIN ms after this line): the window ends only when the
 *                             old code no longer answers, however long a contract keeps it.
 */
import { runPacedLoad, type PacedLoadOptions } from "./lib/pacedLoad";

const opts = JSON.parse(process.argv[2] ?? "{}") as PacedLoadOptions;
let stop = false;
let settle: { revision: string; marginMs: number; since: number } | undefined;
let lastOther = 0;
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk: string) => {
  for (const line of chunk.split("\n")) {
    const words = line.trim().split(/\s+/);
    if (words[0] === "stop") stop = true;
    else if (words[0] === "settle" && words.length === 3) {
      settle = { revision: words[1], marginMs: Number(words[2]), since: Date.now() };
    }
  }
});
process.stdin.on("end", () => (stop = true));

const stopped = (): boolean =>
  stop ||
  (settle !== undefined && Date.now() - Math.max(settle.since, lastOther) >= settle.marginMs);

void runPacedLoad(opts, stopped, (revision, atMs) => {
  if (settle ? revision !== settle.revision : true) lastOther = Math.max(lastOther, atMs);
}).then((result) => {
  // Exit once the line is written: stdout is a pipe (asynchronous), and a long unpaced window's
  // latencies make a line far bigger than the pipe holds.
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
});
process.stdout.write("ready\n");
