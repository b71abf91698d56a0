/**
 * A slow code deploy explains itself: the script's output and what the container logged
 * meanwhile, condensed so that a note shows the lines that matter (uWSGI's startup banner
 * dropped, runs of request lines counted) with Docker's receive time in front and, in the
 * lines where uWSGI prints it, uWSGI's own clock (whether a line was written late or only
 * received late).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { RELOAD_FILE, type CodeDeployResult, type CodeHost } from "./codeHost";

/** uWSGI's startup banner: the same lines at every (re)start. */
const BANNER = [
  /^compiled with version/,
  /^os: /,
  /^nodename: /,
  /^machine: /,
  /^clock source: /,
  /^pcre jit /,
  /^detected number of CPU cores/,
  /^current working directory: /,
  /^detected binary path: /,
  /^chdir\(\) to /,
  /^your (processes number limit|memory page size|server socket listen backlog|mercy) /,
  /^detected max file descriptor number/,
  /^lock engine: /,
  /^thunder lock: /,
  /^uwsgi socket \d+ (inherited|bound)/,
  /^Python (version|main interpreter)/,
  /^python threads support/,
  /^mapped \d+ bytes/,
  /^\*\*\* Operational MODE/,
  /^\[uWSGI\] getting INI configuration/,
  /^closing all non-uwsgi socket fds/,
  /^found fd \d+ mapped to socket/,
  /^running \/usr\/bin\//,
  /^added .* to pythonpath/,
  /^WSGI app \d+ \(mountpoint/,
];
const REQUEST =
  /^\[pid: (\d+)\|app: \d+\|req: [^\]]*\] .*?\] (\S+ \S+) => .*\(HTTP\/[\d.]+ (\d+)\)/;

const hhmmss = (ms: number): string => new Date(ms).toISOString().slice(11, 23);

/** The container's log between two times, condensed (see above), at most `max` entries. */
export function condenseLog(lines: { atMs: number; text: string }[], max = 80): string[] {
  const out: string[] = [];
  let run:
    | { pid: string; what: string; status: string; n: number; first: number; last: number }
    | undefined;
  const flush = (): void => {
    if (!run) return;
    out.push(
      run.n === 1
        ? `${hhmmss(run.first)} ${run.what} ${run.status} (worker pid ${run.pid})`
        : `${hhmmss(run.first)}..${hhmmss(run.last)} ${run.n}x ${run.what} ${run.status} (worker pid ${run.pid})`,
    );
    run = undefined;
  };
  for (const l of lines) {
    if (BANNER.some((re) => re.test(l.text))) continue;
    const m = REQUEST.exec(l.text);
    if (m) {
      const [, pid, what, status] = m;
      if (run && run.pid === pid && run.what === what && run.status === status) {
        run.n++;
        run.last = l.atMs;
      } else {
        flush();
        run = { pid, what, status, n: 1, first: l.atMs, last: l.atMs };
      }
      continue;
    }
    flush();
    out.push(`${hhmmss(l.atMs)} ${l.text}`);
  }
  flush();
  return out.length > max ? [...out.slice(0, max / 2), "...", ...out.slice(-max / 2)] : out;
}

/** The note for a slow deploy: times, the script's output, the condensed container log. */
export async function describeSlowDeploy(host: CodeHost, d: CodeDeployResult): Promise<string> {
  const lines = (await host.container.logLines(d.startedAt - 1000)).filter(
    (l) => l.atMs <= d.endedAt + 1000,
  );
  let ctime = "";
  try {
    ctime = hhmmss(fs.statSync(path.join(host.root, RELOAD_FILE)).ctimeMs);
  } catch {
    ctime = "?";
  }
  return (
    `${host.label}: the deploy of ${d.sha.slice(0, 12)} took ${(d.totalMs / 1000).toFixed(2)}s ` +
    `(started ${hhmmss(d.startedAt)}, trigger touched ${ctime}, ended ${hhmmss(d.endedAt)}, UTC). ` +
    `Script output: ${d.result.stdout.trim().split("\n").join(" | ")}` +
    `${d.result.stderr.trim() ? ` | stderr: ${d.result.stderr.trim().split("\n").join(" | ")}` : ""}. ` +
    `Container log (Docker's receive time): ${condenseLog(lines).join(" | ")}`
  );
}
