/**
 * The load generator's own process (see lib/pacedLoad.ts). Started by lib/load.ts with the
 * options as JSON in argv[2]; prints "ready" once started, stops when a line "stop" arrives on
 * stdin (or stdin closes, or the hard limit passes) and prints the result as one JSON line.
 */
import { runPacedLoad, type PacedLoadOptions } from "./lib/pacedLoad";

const opts = JSON.parse(process.argv[2] ?? "{}") as PacedLoadOptions;
let stop = false;
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk: string) => {
  if (chunk.includes("stop")) stop = true;
});
process.stdin.on("end", () => (stop = true));

void runPacedLoad(opts, () => stop).then((result) => {
  // Exit once the line is written: stdout is a pipe (asynchronous), and a long unpaced window's
  // latencies make a line far bigger than the pipe holds.
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
});
process.stdout.write("ready\n");
