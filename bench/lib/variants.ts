/**
 * Variants of the deploy contract, measured side by side with the shipped one: the previous
 * contract (before/after) and the single changes between the two. None of them changes runtime/
 * or host/: a runtime variant is an image built FROM the runtime image (built from runtime/,
 * which already holds the wake module) with another /etc/touchdeploy/uwsgi.ini, derived from
 * runtime/uwsgi.ini by text edits that fail loudly when the expected lines are not there; a
 * script variant is the host script's text with lines changed, sent on stdin as usual.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureDocker, followProgress } from "../../test/e2e/support/docker";
import { hostScriptText } from "../../test/e2e/support/hostScript";
import { REPO_ROOT } from "../../test/e2e/support/images";
import { removeTree } from "../../test/e2e/support/process";

/** The contract touchdeploy ships (runtime/uwsgi.ini): fs-reload + the wake module. */
export const SHIPPED = "shipped";
/** The contract before commit 624ea2c: touch-reload, no wake module. */
export const PREVIOUS = "previous";
export const TOUCH_WAKE = "touch-reload + wake";
export const FS_NO_WAKE = "fs-reload, no wake";

/** What each contract variant is, in words (written into the results). */
export const CONTRACTS: Record<string, string> = {
  [SHIPPED]: "runtime/uwsgi.ini as shipped: fs-reload (inotify) + wake (no-op SIGCHLD handler)",
  [PREVIOUS]: "touch-reload (1 s stat check), no wake module: the contract before 624ea2c",
  [TOUCH_WAKE]: "runtime/uwsgi.ini with fs-reload -> touch-reload",
  [FS_NO_WAKE]: "runtime/uwsgi.ini without the pythonpath/pyimport lines of the wake module",
};

/** runtime/uwsgi.ini, as the runtime image has it. */
export function shippedContract(): string {
  return fs.readFileSync(path.join(REPO_ROOT, "runtime", "uwsgi.ini"), "utf8");
}

/** Replaces the one line matching `re` (it must match exactly once) by `replace(match)`. */
function editOnce(
  text: string,
  re: RegExp,
  replace: (m: RegExpExecArray) => string,
  what: string,
): string {
  const all = [...text.matchAll(new RegExp(re.source, "gm"))];
  if (all.length !== 1) {
    throw new Error(
      `runtime/uwsgi.ini: expected exactly one ${what}, found ${all.length}: the benchmark's ` +
        "contract variants (bench/lib/variants.ts) must be updated with the runtime",
    );
  }
  const m = re.exec(text) as RegExpExecArray;
  return text.slice(0, m.index) + replace(m) + text.slice(m.index + m[0].length);
}

/**
 * `fs-reload = X` -> `touch-reload = X`: the same trigger file, noticed by the master's stat
 * check once per ~1 s cycle instead of by inotify on the touch itself.
 */
export function withTouchReload(contract: string): string {
  if (/^touch-reload\s*=/m.test(contract)) {
    throw new Error("runtime/uwsgi.ini already has a `touch-reload = ...` line");
  }
  return editOnce(
    contract,
    /^fs-reload = (.*)$/m,
    (m) => `touch-reload = ${m[1]}`,
    "`fs-reload = ...` line",
  );
}

/** Without the two lines that import the wake module (runtime/touchdeploy_wake.py). */
export function withoutWake(contract: string): string {
  const a = editOnce(
    contract,
    /^pythonpath = \/etc\/touchdeploy\n/m,
    () => "",
    "`pythonpath = /etc/touchdeploy` line",
  );
  return editOnce(
    a,
    /^pyimport = touchdeploy_wake\n/m,
    () => "",
    "`pyimport = touchdeploy_wake` line",
  );
}

/** The contract text of a variant; undefined for the shipped one (the runtime image as is). */
export function contractOf(variant: string): string | undefined {
  const shipped = shippedContract();
  // Checked for every variant, so that a changed runtime/uwsgi.ini fails before anything runs.
  const previous = withoutWake(withTouchReload(shipped));
  switch (variant) {
    case SHIPPED:
      return undefined;
    case PREVIOUS:
      return previous;
    case TOUCH_WAKE:
      return withTouchReload(shipped);
    case FS_NO_WAKE:
      return withoutWake(shipped);
    default:
      throw new Error(`unknown contract variant ${variant}`);
  }
}

/**
 * The image of a contract variant: the runtime image itself for the shipped contract, else an
 * image FROM it with another /etc/touchdeploy/uwsgi.ini (built when missing); returns its tag.
 */
export async function ensureContractImage(
  runtimeImage: string,
  variant: string,
  scratch: string,
): Promise<string> {
  const contract = contractOf(variant);
  if (contract === undefined) return runtimeImage;
  const docker = await ensureDocker();
  const hash = crypto
    .createHash("sha256")
    .update(runtimeImage)
    .update("\0")
    .update(contract)
    .digest("hex")
    .slice(0, 12);
  const tag = `tdbench-runtime:${variant.replace(/[^a-z]+/g, "-").replace(/-$/, "")}-${hash}`;
  const dir = path.join(scratch, `image-${hash}`);
  fs.mkdirSync(dir, { recursive: true });
  try {
    fs.writeFileSync(path.join(dir, "uwsgi.ini"), contract);
    fs.writeFileSync(
      path.join(dir, "Dockerfile"),
      `FROM ${runtimeImage}\nCOPY uwsgi.ini /etc/touchdeploy/uwsgi.ini\n`,
    );
    const stream = await docker.buildImage(
      { context: dir, src: ["Dockerfile", "uwsgi.ini"] },
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
