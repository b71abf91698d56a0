/**
 * Variants of the deploy contract, measured side by side with the stock one to see what makes a
 * code deploy faster. None of them changes runtime/ or host/: the runtime variant is an image
 * built FROM the stock runtime image with another /etc/touchdeploy/uwsgi.ini, the script
 * variant is the script text with one line changed, sent on stdin as usual.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureDocker, followProgress } from "../../test/e2e/support/docker";
import { hostScriptText } from "../../test/e2e/support/hostScript";
import { REPO_ROOT } from "../../test/e2e/support/images";
import { removeTree } from "../../test/e2e/support/process";

/** The stock deploy contract, runtime/uwsgi.ini. */
export function stockContract(): string {
  return fs.readFileSync(path.join(REPO_ROOT, "runtime", "uwsgi.ini"), "utf8");
}

/**
 * The contract with `touch-reload` (the master stats the trigger once per ~1 s cycle) replaced
 * by `fs-reload` (uWSGI's inotify file monitor: the master wakes up on the touch itself). The
 * same trigger file, still outside releases/, still one graceful reload per touch.
 */
export function fsReloadContract(): string {
  const stock = stockContract();
  const re = /^touch-reload = (.*)$/m;
  if (!re.test(stock)) throw new Error("runtime/uwsgi.ini has no `touch-reload = ...` line");
  return stock.replace(re, "fs-reload = $1");
}

/** The Python module the "wake" variant imports in the uWSGI master (see its docstring). */
export const WAKE_MODULE = path.join(REPO_ROOT, "bench", "image", "wake", "touchdeploy_wake.py");

/**
 * The contract plus a no-op SIGCHLD handler in the master (bench/image/wake/): the master
 * reaps the gracefully stopped workers at once instead of at its next 1 s tick.
 */
export function wakeContract(contract: string): string {
  return (
    `${contract.trimEnd()}\n` +
    "; Wake the master as soon as a worker exits (SIGCHLD), not at its next 1 s tick.\n" +
    "pythonpath = /etc/touchdeploy\n" +
    "pyimport = touchdeploy_wake\n"
  );
}

/**
 * Builds (if needed) the stock runtime image with another contract (and, for the wake variant,
 * its module in /etc/touchdeploy); returns its tag.
 */
export async function ensureContractImage(
  runtimeImage: string,
  variant: string,
  contract: string,
  scratch: string,
): Promise<string> {
  const docker = await ensureDocker();
  const hash = crypto
    .createHash("sha256")
    .update(runtimeImage)
    .update("\0")
    .update(contract)
    .update("\0")
    .update(fs.readFileSync(WAKE_MODULE))
    .digest("hex")
    .slice(0, 12);
  const tag = `tdbench-runtime:${variant}-${hash}`;
  const dir = path.join(scratch, `image-${variant}`);
  fs.mkdirSync(dir, { recursive: true });
  try {
    fs.writeFileSync(path.join(dir, "uwsgi.ini"), contract);
    fs.copyFileSync(WAKE_MODULE, path.join(dir, "touchdeploy_wake.py"));
    fs.writeFileSync(
      path.join(dir, "Dockerfile"),
      `FROM ${runtimeImage}\n` +
        "COPY uwsgi.ini /etc/touchdeploy/uwsgi.ini\n" +
        "COPY touchdeploy_wake.py /etc/touchdeploy/touchdeploy_wake.py\n",
    );
    const stream = await docker.buildImage(
      { context: dir, src: ["Dockerfile", "uwsgi.ini", "touchdeploy_wake.py"] },
      { t: tag, labels: { "touchdeploy.bench": "true" } },
    );
    await followProgress(docker, stream);
  } finally {
    removeTree(dir);
  }
  return tag;
}

/** The host script with its health check polling every `seconds` instead of every 0.2 s. */
export function scriptWithPoll(seconds: string): string {
  const text = hostScriptText();
  // The one `sleep 0.2` is wait_served's poll (possibly with a redirection after it).
  const re = /^( +)sleep 0\.2( .*)?$/gm;
  const found = text.match(re) ?? [];
  if (found.length !== 1) {
    throw new Error(
      `host/touchdeploy.sh has ${found.length} \`sleep 0.2\` lines, expected 1 (the poll)`,
    );
  }
  return text.replace(
    re,
    (_line, indent: string, rest: string | undefined) => `${indent}sleep ${seconds}${rest ?? ""}`,
  );
}
