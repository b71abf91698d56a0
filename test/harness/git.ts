/**
 * Real git repositories for the e2e tests: a bare "origin" the host script fetches from and a
 * work tree that commits the hello-wsgi example with changes (new greeting, broken import,
 * changed dependencies) and pushes them, force-pushes included.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "./images";
import { run } from "./process";

/** Where the example app lives, in this repository and in the test repositories. */
export const APP_SUBDIR = "examples/hello-wsgi";

/** The greeting line app.py starts with; tests rewrite it to make a one-line code change. */
export const DEFAULT_GREETING = "Hello from touchdeploy";

/** One test repository: `origin` (bare) and `work` (its clone). */
export class TestRepo {
  /** The bare repository the host script fetches from (an absolute path, a valid --repo). */
  readonly origin: string;
  /** The work tree commits are made in. */
  readonly work: string;
  /** The app's directory in the repository (APP_SUBDIR unless created with another app). */
  readonly appSubdir: string;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(dir: string, appSubdir: string) {
    this.appSubdir = appSubdir;
    this.origin = path.join(dir, "origin.git");
    this.work = path.join(dir, "work");
    // Our own global config: identity, branch name, and safe.directory=* because the origin
    // may be chowned to the SSH deploy user while root pushes into it (receive-pack runs in
    // the origin and refuses a repository owned by someone else; -c does not reach it).
    const gitconfig = path.join(dir, "gitconfig");
    fs.writeFileSync(
      gitconfig,
      "[user]\n\tname = touchdeploy tests\n\temail = tests@touchdeploy.invalid\n" +
        "[init]\n\tdefaultBranch = main\n[safe]\n\tdirectory = *\n" +
        "[advice]\n\tdetachedHead = false\n",
    );
    this.env = {
      ...process.env,
      GIT_CONFIG_GLOBAL: gitconfig,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_TERMINAL_PROMPT: "0",
    };
  }

  /**
   * Creates `dir/origin.git` and `dir/work` with one commit holding an example app (default
   * hello-wsgi, APP_SUBDIR; `app: "examples/django-app"` for that one, at the same path),
   * pushed to `main`. Returns the repository; `head()` is that commit.
   */
  static async create(dir: string, opts: { app?: string } = {}): Promise<TestRepo> {
    fs.mkdirSync(dir, { recursive: true });
    const appSubdir = opts.app ?? APP_SUBDIR;
    const repo = new TestRepo(dir, appSubdir);
    await repo.git(dir, "init", "--quiet", "--bare", repo.origin);
    await repo.git(dir, "init", "--quiet", repo.work);
    await repo.git(repo.work, "remote", "add", "origin", repo.origin);
    fs.cpSync(path.join(REPO_ROOT, appSubdir), path.join(repo.work, appSubdir), {
      recursive: true,
      filter: (src) => path.basename(src) !== "__pycache__",
    });
    await repo.commit(`Add ${path.basename(appSubdir)}`);
    return repo;
  }

  /** Runs git in `cwd` with the test config; returns stdout trimmed. */
  async git(cwd: string, ...args: string[]): Promise<string> {
    return (await run("git", args, { cwd, env: this.env })).stdout.trim();
  }

  /** The SHA `main` points to in the work tree. */
  head(): Promise<string> {
    return this.git(this.work, "rev-parse", "HEAD");
  }

  /** Writes a file of the app (relative to APP_SUBDIR): text, or raw bytes. */
  writeAppFile(relativePath: string, content: string | Buffer): void {
    const file = path.join(this.work, this.appSubdir, relativePath);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }

  readAppFile(relativePath: string): string {
    return fs.readFileSync(path.join(this.work, this.appSubdir, relativePath), "utf8");
  }

  /** Removes a file of the app (relative to its directory). */
  removeAppFile(relativePath: string): void {
    fs.rmSync(path.join(this.work, this.appSubdir, relativePath));
  }

  /** Commits everything and pushes `main` (forced when asked); returns the new SHA. */
  async commit(message: string, opts: { force?: boolean } = {}): Promise<string> {
    await this.git(this.work, "add", "--all");
    await this.git(this.work, "commit", "--quiet", "--allow-empty", "-m", message);
    await this.git(
      this.work,
      "push",
      "--quiet",
      ...(opts.force ? ["--force"] : []),
      "origin",
      "HEAD:main",
    );
    return this.head();
  }

  /** A one-line code change: app.py's GREETING becomes `greeting`. Returns the new SHA. */
  async commitGreeting(greeting: string): Promise<string> {
    this.setGreeting(greeting);
    return this.commit(`Say "${greeting}"`);
  }

  /** A commit whose app cannot be imported (ImportError): uWSGI then answers 500. */
  async commitBroken(): Promise<string> {
    const app = this.readAppFile("app.py");
    this.writeAppFile("app.py", `import touchdeploy_no_such_module  # broken on purpose\n${app}`);
    return this.commit("Break the app (ImportError)");
  }

  /** Undoes commitBroken's change (or any change to app.py) back to the given greeting. */
  async commitFixed(greeting: string): Promise<string> {
    const app = this.readAppFile("app.py").replace(/^import touchdeploy_no_such_module.*\n/m, "");
    this.writeAppFile("app.py", app);
    return this.commitGreeting(greeting);
  }

  /** A dependency change: a line appended to requirements.txt. Returns the new SHA. */
  async commitRequirement(line: string): Promise<string> {
    this.writeAppFile("requirements.txt", `${this.readAppFile("requirements.txt")}${line}\n`);
    return this.commit(`Require ${line}`);
  }

  /** A Debian dependency: a package line appended to the app's Aptfile. Returns the new SHA. */
  async commitAptPackage(debianPackage: string): Promise<string> {
    const file = path.join(this.work, this.appSubdir, "Aptfile");
    const before = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    this.writeAppFile("Aptfile", `${before}${debianPackage}\n`);
    return this.commit(`Need Debian package ${debianPackage}`);
  }

  /**
   * Rewrites history: drops the last `drop` commits, commits a new greeting instead and
   * force-pushes. The dropped commits are no longer reachable from origin. Returns the new SHA.
   */
  async rewriteHistory(greeting: string, drop = 1): Promise<string> {
    await this.git(this.work, "reset", "--quiet", "--hard", `HEAD~${drop}`);
    this.setGreeting(greeting);
    return this.commit(`Say "${greeting}" (rewritten)`, { force: true });
  }

  /** Makes the origin owned by `uid:gid` (git refuses to serve a repository owned by another user). */
  chownOrigin(uid: number, gid: number): void {
    const walk = (p: string): void => {
      fs.lchownSync(p, uid, gid);
      if (fs.lstatSync(p).isDirectory()) {
        for (const entry of fs.readdirSync(p)) walk(path.join(p, entry));
      }
    };
    walk(this.origin);
  }

  private setGreeting(greeting: string): void {
    const app = this.readAppFile("app.py");
    const next = app.replace(/^GREETING = .*$/m, `GREETING = ${JSON.stringify(greeting)}`);
    if (next === app && !app.includes(`GREETING = ${JSON.stringify(greeting)}`)) {
      throw new Error("app.py has no GREETING line to rewrite");
    }
    this.writeAppFile("app.py", next);
  }
}
