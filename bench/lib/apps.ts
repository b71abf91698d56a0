/**
 * The apps the deploy contracts are measured with. Each gets its own test repository (a bare
 * origin the host script fetches from, as the e2e tests use), with the app under APP_SUBDIR.
 *
 * - `slow-<s>s`: bench/apps/slow-wsgi, whose import sleeps <s> seconds (a framework's boot,
 *   under control; 0 is hello-wsgi's boot). Its answers name the commit their code came from
 *   (found from the module's own file, not from `current`), so a body can be checked against
 *   its X-Revision header.
 * - `django`: the Django example (examples/django-app): Django 4.2 from bookworm-backports (its
 *   Aptfile, installed into each design's image), SQLite, a template rendered from the database
 *   on `/`. Measured with the designs whose runtime installs NAME/SUITE Aptfile entries (the
 *   shipped one and the one it replaced); in --smoke with the shipped one only.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { APP_SUBDIR, TestRepo } from "../../test/harness/git";
import { aptPackagesOf, REPO_ROOT } from "../../test/harness/images";
import type { BenchContainer } from "./containers";

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
  /** Debian packages its image needs (APT_PACKAGES of each design's image); none by default. */
  aptPackages?: string;
  /** More container environment (its settings). */
  env?: string[];
  /** The designs it is measured with (default: all the run compares); `smoke` in --smoke. */
  designs?: { full: readonly string[]; smoke: readonly string[] };
  /**
   * Before the first deploy to a host: e.g. the database migrated in the container from the
   * fetched release (`app dir` = /srv/app/releases/<sha>/<APP_SUBDIR>).
   */
  prepare?(container: BenchContainer, appDir: string): Promise<void>;
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

/** The Django example's directory. */
export const DJANGO_DIR = path.join(REPO_ROOT, "examples", "django-app");

const DJANGO_VIEWS = "jobs/views.py";
const DJANGO_BROKEN = "import touchdeploy_no_such_module  # broken on purpose\n";

/**
 * The Django example (null without examples/django-app): its files replace hello-wsgi's at
 * APP_SUBDIR, so the hosts need nothing else. Its settings come from the container's env (a
 * fixed, not secret, key: the benchmark measures deploys, not secrets handling; the database in
 * the container's /tmp); its database is migrated and its static files collected once from the
 * first release, before the first deploy (its /healthz is 500 while a migration is missing, its
 * pages 500 without the static files' manifest). A change is one line of a view.
 * Its answers (HTML) carry no "(revision <12 hex>)": they are checked by X-Revision only.
 */
export function djangoApp(designs: {
  full: readonly string[];
  smoke: readonly string[];
}): BenchApp | null {
  if (!fs.existsSync(DJANGO_DIR)) return null;
  return {
    id: "django",
    description:
      "examples/django-app: Django 4.2 (bookworm-backports), SQLite, 2 workers; `/` renders a " +
      "template from the database",
    aptPackages: aptPackagesOf(DJANGO_DIR),
    env: [
      "DJANGO_SECRET_KEY=touchdeploy-bench-only-not-a-secret-0123456789abcdef",
      "TOUCHDEPLOY_STATE_DIR=/tmp/state",
    ],
    designs,
    createRepo: async (dir) => {
      const repo = await TestRepo.create(dir);
      const work = path.join(repo.work, APP_SUBDIR);
      for (const name of fs.readdirSync(work))
        fs.rmSync(path.join(work, name), { recursive: true });
      fs.cpSync(DJANGO_DIR, work, {
        recursive: true,
        filter: (src) => path.basename(src) !== "__pycache__",
      });
      await repo.commit("The Django example");
      return repo;
    },
    change: async (repo, n) => {
      repo.writeAppFile(DJANGO_VIEWS, `${repo.readAppFile(DJANGO_VIEWS)}\nCHANGE = ${n}\n`);
      return repo.commit(`Django change ${n}`);
    },
    breakIt: async (repo) => {
      repo.writeAppFile(DJANGO_VIEWS, `${DJANGO_BROKEN}${repo.readAppFile(DJANGO_VIEWS)}`);
      return repo.commit("Break the Django app (ImportError)");
    },
    fixIt: async (repo, n) => {
      repo.writeAppFile(DJANGO_VIEWS, repo.readAppFile(DJANGO_VIEWS).replace(DJANGO_BROKEN, ""));
      return repo.commit(`Fix the Django app ${n}`);
    },
    prepare: async (container, appDir) => {
      const code = await container.exec([
        "sh",
        "-c",
        `mkdir -p /tmp/state/data /tmp/state/static /tmp/state/media && cd ${appDir} && ` +
          "python3 manage.py migrate --noinput && python3 manage.py collectstatic --noinput",
      ]);
      if (code !== 0) throw new Error(`django: migrate in ${container.name} exited ${code}`);
    },
  };
}

export { APP_SUBDIR };
