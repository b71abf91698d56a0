/**
 * The apps the deploy contracts are measured with. Each gets its own test repository (a bare
 * origin the host script fetches from, as the e2e tests use), with the app under APP_SUBDIR.
 *
 * - `slow-<s>s`: bench/apps/slow-wsgi, whose import sleeps <s> seconds (a framework's boot,
 *   under control; 0 is hello-wsgi's boot). Its answers name the commit their code came from
 *   (found from the module's own file, not from `current`), so a body can be checked against
 *   its X-Revision header.
 * - `django`: the Django example, once it exists (examples/django-app, another track's work).
 *   Hook: DJANGO below; it is skipped, with a note, while that directory does not exist.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { APP_SUBDIR, TestRepo } from "../../test/harness/git";
import { REPO_ROOT } from "../../test/harness/images";

export interface BenchApp {
  /** Short id used in labels and results. */
  id: string;
  description: string;
  /** Seconds the app's import takes by construction (undefined: unknown, e.g. Django). */
  importSeconds?: number;
  /** Creates the app's repository under `dir`; its head is the first release. */
  createRepo(dir: string): Promise<TestRepo>;
  /** A one-line code change, committed and pushed: returns its SHA. */
  change(repo: TestRepo, n: number): Promise<string>;
  /** A commit whose app cannot be imported (for the rollback measurement). */
  breakIt(repo: TestRepo): Promise<string>;
  /** Undoes breakIt (a commit back to a working app). */
  fixIt(repo: TestRepo, n: number): Promise<string>;
}

export const SLOW_APP_DIR = path.join(REPO_ROOT, "bench", "apps", "slow-wsgi");

/** app.py of the slow app with its import sleeping `seconds`. */
export function slowAppSource(seconds: number): string {
  const text = fs.readFileSync(path.join(SLOW_APP_DIR, "app.py"), "utf8");
  const next = text.replace(/^IMPORT_SECONDS = .*$/m, `IMPORT_SECONDS = ${seconds}`);
  if (next === text && !text.includes(`IMPORT_SECONDS = ${seconds}\n`)) {
    throw new Error(`${SLOW_APP_DIR}/app.py has no IMPORT_SECONDS line to set`);
  }
  return next;
}

export function slowApp(seconds: number): BenchApp {
  return {
    id: `slow-${seconds}s`,
    description: `bench/apps/slow-wsgi: import sleeps ${seconds} s, 2 workers (processes = 2)`,
    importSeconds: seconds,
    createRepo: async (dir) => {
      // TestRepo starts with hello-wsgi under APP_SUBDIR; the slow app replaces its files there.
      const repo = await TestRepo.create(dir);
      repo.writeAppFile("app.py", slowAppSource(seconds));
      repo.writeAppFile("uwsgi.ini", fs.readFileSync(path.join(SLOW_APP_DIR, "uwsgi.ini"), "utf8"));
      await repo.commit(`The slow app: import takes ${seconds} s`);
      return repo;
    },
    change: (repo, n) => repo.commitGreeting(`Hello from touchdeploy, change ${n}`),
    breakIt: (repo) => repo.commitBroken(),
    fixIt: (repo, n) => repo.commitFixed(`Hello from touchdeploy, fixed ${n}`),
  };
}

/** The Django example's directory (another track adds it); the hook below uses it. */
export const DJANGO_DIR = path.join(REPO_ROOT, "examples", "django-app");

/**
 * The Django example, when it exists: null until then (the benchmark notes that it was
 * skipped). To enable it, make createRepo copy DJANGO_DIR into the repository (at APP_SUBDIR,
 * or pass its subdir to the hosts) and make change() edit one line of a view; the benchmark
 * needs nothing else (its answers are checked by X-Revision; a body without "(revision
 * <12 hex>)" is simply not checked for mixed code).
 */
export function djangoApp(): BenchApp | null {
  if (!fs.existsSync(DJANGO_DIR)) return null;
  return null;
}

export { APP_SUBDIR };
