/**
 * examples/django-app deployed by the host script on real Docker and uWSGI (issue 11), the way
 * the program runs it: `setup --state-dirs` (and the container's user it reports), a runtime
 * image built from runtime/ with the app's Aptfile (`python3-django/bookworm-backports`), a
 * long-lived container running as that user with the app root read-only and the state
 * directories read-write, and every deploy with `--container`, the release command (migrate +
 * collectstatic), and the env, a secret and the worker process as `--payload stdin`.
 *
 * What it proves: migrations run before the switch and a failing one switches nothing (exit 9);
 * a new env value and a new secret value are each exactly one reload of the same container and
 * reach the app; the secret is in no command line sampled during the deploy, no output, no log,
 * no `docker inspect`; the worker runs the new revision after each deploy; the SQLite database
 * in a state directory survives ten deploys and a container replacement; and a deploy with a
 * migration under 16 clients fails no request.
 *
 * The load is paced (LOAD_RATE): unpaced, uWSGI 2.0.21 resets about one request per 40 reloads
 * at ~1,400 requests/s, whatever the deploy does (a worker leaving between `accept` and reading
 * the request; measured and explained in hostScriptLoad.test.ts). Django adds nothing to that
 * race: its requests wait in the listen queue while the master loads the app (~0.25 s).
 */
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { startAppContainer, waitForRevision, type AppContainer } from "../harness/app";
import { short, waitForReloads } from "../harness/fixture";
import { TestRepo } from "../harness/git";
import {
  describeRun,
  encodePayload,
  errorLines,
  EXIT,
  runHostScript,
  startHostScript,
} from "../harness/hostScript";
import { aptPackagesOf, ensureRuntimeImage, REPO_ROOT } from "../harness/images";
import { runLoad } from "../harness/load";
import { e2eGate } from "../harness/prerequisites";
import { makeScratchDir, removeTree, run, waitFor, type RunResult } from "../harness/process";

const APP = "examples/django-app";
/** The release command examples/django-app/README.md gives. */
const RELEASE_COMMAND =
  "python3 manage.py migrate --noinput && python3 manage.py collectstatic --noinput";
const STATE_DIRS = ["data", "static", "media"];
const WORKER = "python3 manage.py worker --poll-interval 0.2";
const LOAD_CLIENTS = 16;
/** Requests per second over all clients (see the module comment for why paced). */
const LOAD_RATE = 100;

/** One HTTP exchange on a new connection (status 0: no answer). */
interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  url: string,
  opts: { form?: Record<string, string>; host?: string } = {},
): Promise<Answer> {
  return new Promise((resolve) => {
    const body = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
    const req = http.request(
      url,
      {
        method: body ? "POST" : "GET",
        agent: false,
        timeout: 10_000,
        headers: {
          ...(opts.host ? { Host: opts.host } : {}),
          ...(body
            ? {
                "Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": Buffer.byteLength(body),
              }
            : {}),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        );
        res.on("error", () => resolve({ status: 0, headers: {}, body: text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ status: 0, headers: {}, body: "" }));
    req.end(body);
  });
}

/** Every process's command line right now (the container's are on this kernel too). */
function allCommandLines(): string[] {
  const lines: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      lines.push(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " "));
    } catch {
      // gone meanwhile
    }
  }
  return lines;
}

/** A migration of the jobs app adding an integer field (with a default: old code keeps working). */
function addFieldMigration(field: string, after: string): string {
  return [
    "from django.db import migrations, models",
    "",
    "",
    "class Migration(migrations.Migration):",
    `    dependencies = [("jobs", "${after}")]`,
    "    operations = [",
    `        migrations.AddField("job", "${field}", models.IntegerField(default=0)),`,
    "    ]",
    "",
  ].join("\n");
}

describe(
  "host script: a Django app (release command, env and secrets, state, worker)",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock"]),
  () => {
    let dir: string;
    let root: string;
    let repo: TestRepo;
    let app: AppContainer;
    let image: string;
    /** The container's user, as `setup` reported it. */
    let user: string;
    let env: Record<string, string>;
    let secretKey: string;
    /** The commit live now. */
    let live: string;
    const figures: string[] = [];

    const payload = (): Buffer =>
      encodePayload([
        ...Object.entries(env).map(([key, value]) => ({ env: key, value })),
        { secret: "DJANGO_SECRET_KEY", value: secretKey },
        { process: "worker", command: WORKER },
      ]);
    const deployArgs = (sha: string): string[] => [
      "deploy",
      "--root",
      root,
      "--repo",
      repo.origin,
      "--commit",
      sha,
      "--subdir",
      APP,
      "--health-url",
      app.healthUrl,
      "--health-timeout",
      "60",
      "--container",
      app.name,
      "--release-command",
      RELEASE_COMMAND,
      "--payload",
      "stdin",
    ];
    const deploy = (sha: string): Promise<RunResult> =>
      runHostScript(deployArgs(sha), { payload: payload(), timeoutMs: 300_000 });
    const liveConfig = (): string =>
      fs.readlinkSync(path.join(root, "config")).replace(/^configs\//, "");

    const supervisorStatus = async (): Promise<string> =>
      (
        await run("docker", [
          "exec",
          app.name,
          "supervisorctl",
          "-c",
          "/etc/touchdeploy/supervisord.conf",
          "status",
          "worker",
        ])
      ).stdout;

    /** Queues a job through the web app and waits until the worker has done it. */
    async function jobDone(payloadText: string): Promise<Record<string, string>> {
      const posted = await request(`${app.baseUrl}/jobs`, { form: { payload: payloadText } });
      assert.equal(posted.status, 201, posted.body);
      const id = (JSON.parse(posted.body) as { id: number }).id;
      return waitFor(
        `job ${id} to be done by the worker`,
        async () => {
          const j = JSON.parse((await request(`${app.baseUrl}/jobs/${id}`)).body) as Record<
            string,
            string
          >;
          return j.state === "done" ? j : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 50 },
      );
    }

    async function startContainer(): Promise<AppContainer> {
      return startAppContainer({
        image,
        root,
        subdir: APP,
        name: "django",
        user,
        binds: STATE_DIRS.map((name) => `${root}/state/${name}:/srv/state/${name}`),
      });
    }

    before(async () => {
      image = (await ensureRuntimeImage({ aptPackages: aptPackagesOf(path.join(REPO_ROOT, APP)) }))
        .tag;
      dir = makeScratchDir("django-deploy");
      root = path.join(dir, "root");
      repo = await TestRepo.create(path.join(dir, "repo"), { app: APP });
      const setup = await runHostScript([
        "setup",
        "--root",
        root,
        "--state-dirs",
        STATE_DIRS.join(" "),
      ]);
      assert.equal(setup.code, EXIT.ok, describeRun(setup));
      const reported = /^touchdeploy: user (\d+:\d+)$/m.exec(setup.stdout)?.[1];
      assert.ok(reported, setup.stdout);
      user = reported;
      app = await startContainer();
      env = { DJANGO_ALLOWED_HOSTS: "localhost,127.0.0.1", DJANGO_LOG_LEVEL: "WARNING" };
      secretKey = `first-${crypto.randomBytes(24).toString("hex")}`;
    });

    after(async () => {
      // Shown in the TAP output: the figures README.md's note quotes.
      console.log(`# django figures: ${figures.join("; ")}`);
      await app?.remove().catch(() => undefined);
      if (dir) removeTree(dir);
    });

    it("the first deploy migrates and collects static files before the switch; the worker starts on it", async (t) => {
      live = await repo.head();
      const r = await deploy(live);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      figures.push(`first deploy (new container, migrate from nothing): ${r.durationMs} ms`);
      const lines = r.stdout.split("\n");
      const command = lines.findIndex((l) => l.startsWith("touchdeploy: command "));
      const applied = lines.findIndex((l) =>
        /^ {4}\s*Applying jobs\.0001_initial\.\.\. OK$/.test(l),
      );
      const collected = lines.findIndex((l) =>
        /static files copied to '\/srv\/state\/static'/.test(l),
      );
      const done = lines.findIndex((l) => /^touchdeploy: command  done in /.test(l));
      const switched = lines.findIndex((l) => l.startsWith("touchdeploy: switch "));
      assert.ok(
        command >= 0 &&
          command < applied &&
          applied < collected &&
          collected < done &&
          done < switched,
        r.stdout,
      );
      const health = await request(`${app.baseUrl}/healthz`);
      assert.deepEqual(
        [health.status, health.headers["x-revision"], health.headers["x-touchdeploy-config"]],
        [200, live, liveConfig()],
      );
      const page = await request(`${app.baseUrl}/`);
      assert.equal(page.status, 200, page.body);
      const href = /<link rel="stylesheet" href="([^"]+)" \/>/.exec(page.body)?.[1];
      assert.match(href ?? "", /^\/static\/jobs\/site\.[0-9a-f]{12}\.css$/);
      assert.equal((await request(`${app.baseUrl}${href}`)).status, 200);
      // Everything the container wrote is in the state directories, as its user.
      const db = fs.statSync(path.join(root, "state", "data", "db.sqlite3"));
      assert.equal(`${db.uid}:${db.gid}`, user);
      assert.match(await supervisorStatus(), /^worker +RUNNING +pid \d+/);
      const job = await jobDone("three little words");
      assert.deepEqual([job.result, job.processed_revision], ["3 words", live]);
      t.diagnostic(`first deploy: ${r.durationMs} ms`);
    });

    it("a commit with a new migration is migrated before the switch and served after it", async (t) => {
      repo.writeAppFile(
        "jobs/migrations/0002_job_priority.py",
        addFieldMigration("priority", "0001_initial"),
      );
      repo.writeAppFile(
        "jobs/models.py",
        repo
          .readAppFile("jobs/models.py")
          .replace(
            "    processed_revision = models.CharField(max_length=64, blank=True)\n",
            "    processed_revision = models.CharField(max_length=64, blank=True)\n    priority = models.IntegerField(default=0)\n",
          ),
      );
      const sha = await repo.commit("Jobs get a priority (migration 0002)");
      const reloads = await app.countReloads();
      const r = await deploy(sha);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(r.stdout, /\n {4}\s*Applying jobs\.0002_job_priority\.\.\. OK\n/);
      // Its /healthz answers 500 while a migration of its code is missing: 200 proves it ran.
      const health = await request(`${app.baseUrl}/healthz`);
      assert.deepEqual([health.status, health.headers["x-revision"]], [200, sha]);
      // The runtime logs the reload once the new generation answered it (as the health check
      // did): wait for the line, then it must be exactly one.
      await waitForReloads(app, reloads + 1);
      assert.equal(await app.countReloads(), reloads + 1, "one reload");
      figures.push(`deploy with a migration: ${r.durationMs} ms`);
      t.diagnostic(`deploy with a migration (0002): ${r.durationMs} ms`);
      live = sha;
    });

    it("a failing migration: exit 9, nothing switched, the old code still serving", async () => {
      repo.writeAppFile(
        "jobs/migrations/0003_fails.py",
        [
          "from django.db import migrations",
          "",
          "",
          "def fail(apps, schema_editor):",
          '    raise RuntimeError("this migration fails on purpose")',
          "",
          "",
          "class Migration(migrations.Migration):",
          '    dependencies = [("jobs", "0002_job_priority")]',
          "    operations = [migrations.RunPython(fail)]",
          "",
        ].join("\n"),
      );
      const failing = await repo.commit("A migration that fails");
      const reloads = await app.countReloads();
      const config = liveConfig();
      const r = await deploy(failing);
      assert.equal(r.code, EXIT.releaseCommand, describeRun(r));
      assert.deepEqual(errorLines(r.stderr), [
        `touchdeploy: error: the release command failed (exit status 1) in container ${app.name}: nothing was switched, releases/${short(live)} and its env still serve; fix the command or the commit (its output is above) and deploy again`,
      ]);
      assert.match(r.stdout, /\n {4}RuntimeError: this migration fails on purpose\n/);
      assert.doesNotMatch(r.stdout, /touchdeploy: switch /);
      assert.equal(fs.readlinkSync(path.join(root, "current")), `releases/${live}`);
      assert.equal(liveConfig(), config);
      const health = await request(`${app.baseUrl}/healthz`);
      assert.deepEqual([health.status, health.headers["x-revision"]], [200, live]);
      assert.equal(await app.countReloads(), reloads, "no reload");
      // Fixed in the next commit: the failing migration goes.
      repo.removeAppFile("jobs/migrations/0003_fails.py");
      await repo.commit("Drop the failing migration");
    });

    it("a new env value: exactly one reload of the same container, and the app has it", async () => {
      const before = await app.identity();
      const config = liveConfig();
      const reloads = await app.countReloads();
      assert.equal((await request(`${app.baseUrl}/`, { host: "shop.example" })).status, 400);
      env = { ...env, DJANGO_ALLOWED_HOSTS: `${env.DJANGO_ALLOWED_HOSTS},shop.example` };
      const r = await deploy(live);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(
        r.stdout,
        new RegExp(`switch   current stays releases/${short(live)}, config -> `),
      );
      await waitForReloads(app, reloads + 1);
      assert.equal(await app.countReloads(), reloads + 1, "exactly one reload");
      assert.notEqual(liveConfig(), config);
      const page = await request(`${app.baseUrl}/`, { host: "shop.example" });
      assert.equal(page.status, 200, page.body);
      assert.equal(page.headers["x-touchdeploy-config"], liveConfig());
      assert.deepEqual(await app.identity(), before, "the same container, never restarted");
      figures.push(`env change: ${r.durationMs} ms, 1 reload`);
    });

    it("a new secret value: exactly one reload of the same container; the value in no command line, output, log or docker inspect", async () => {
      const before = await app.identity();
      const reloads = await app.countReloads();
      const old = secretKey;
      secretKey = `second-${crypto.randomBytes(24).toString("hex")}`;
      const seen = new Set<string>();
      const started = startHostScript(deployArgs(live), {
        payload: payload(),
        timeoutMs: 300_000,
      });
      let finished = false;
      const result = started.result.then((res) => {
        finished = true;
        return res;
      });
      let samples = 0;
      while (!finished) {
        for (const line of allCommandLines()) seen.add(line);
        samples++;
        await new Promise((res) => setTimeout(res, 10));
      }
      const r = await result;
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.ok(
        [...seen].some((l) => l.includes("manage.py migrate")),
        "the release command was seen running",
      );
      assert.deepEqual(
        [...seen].filter((l) => l.includes(secretKey) || l.includes(old)),
        [],
      );
      assert.doesNotMatch(r.stdout + r.stderr, new RegExp(`${secretKey}|${old}`));
      assert.doesNotMatch(await app.logs(), new RegExp(`${secretKey}|${old}`));
      const inspect = await app.container.inspect();
      assert.doesNotMatch(JSON.stringify(inspect), new RegExp(`${secretKey}|${old}`));
      await waitForReloads(app, reloads + 1);
      assert.equal(await app.countReloads(), reloads + 1, "exactly one reload");
      assert.deepEqual(await app.identity(), before, "the same container, never restarted");
      // The worker was started with the new value (its environment block, read as root on the
      // host). uWSGI's own block is the one its master re-exec'd with: the previous load's;
      // the app's os.environ is what the loader set at this load (X-Touchdeploy-Config above).
      const top = (await app.container.top({ ps_args: "-o pid,args" })) as {
        Processes: string[][];
      };
      const worker = top.Processes.filter((p) => p[1].startsWith("python3 manage.py worker"));
      assert.equal(worker.length, 1, JSON.stringify(top.Processes));
      const environ = fs.readFileSync(`/proc/${worker[0][0]}/environ`, "latin1").split("\0");
      assert.ok(environ.includes(`DJANGO_SECRET_KEY=${secretKey}`), "the worker's env");
      assert.ok(!environ.some((e) => e.includes(old)), "the worker has the old value");
      const health = await request(`${app.baseUrl}/healthz`);
      assert.equal(health.headers["x-touchdeploy-config"], liveConfig());
      // On the host, only in files of the container's user, 0600 in 0700 directories.
      const holding = (await run("grep", ["-rlF", secretKey, root], { check: false })).stdout
        .split("\n")
        .filter(Boolean);
      assert.ok(holding.length > 0);
      for (const file of holding) {
        const st = fs.statSync(file);
        assert.deepEqual([st.mode & 0o777, `${st.uid}:${st.gid}`], [0o600, user], file);
        assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700, file);
      }
      figures.push(`secret change: ${r.durationMs} ms, 1 reload, ${samples} ps samples`);
    });

    it("the worker runs the new revision after a deploy", async () => {
      const before = /pid (\d+)/.exec(await supervisorStatus())?.[1];
      repo.writeAppFile(
        "jobs/templates/jobs/index.html",
        repo
          .readAppFile("jobs/templates/jobs/index.html")
          .replace("Hello from Django", "Hi from Django"),
      );
      const sha = await repo.commit("Say hi");
      const r = await deploy(sha);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      const after = /pid (\d+)/.exec(await supervisorStatus())?.[1];
      assert.notEqual(after, before, "the worker was restarted");
      const job = await jobDone("after the deploy");
      assert.equal(job.processed_revision, sha);
      assert.match((await request(`${app.baseUrl}/`)).body, /Hi from Django/);
      live = sha;
    });

    it("the SQLite database in a state directory survives ten deploys and a container replacement", async (t) => {
      const count = async (): Promise<string> =>
        /(\d+ of \d+ jobs done)/.exec((await request(`${app.baseUrl}/`)).body)?.[1] ?? "none";
      const before = await count();
      assert.match(before, /^2 of 2 jobs done$/);
      const times: number[] = [];
      for (let i = 1; i <= 10; i++) {
        repo.writeAppFile("jobs/deploys.py", `DEPLOY = ${i}\n`);
        const sha = await repo.commit(`Deploy ${i}`);
        const r = await deploy(sha);
        assert.equal(r.code, EXIT.ok, describeRun(r));
        times.push(r.durationMs);
        live = sha;
      }
      assert.equal(await count(), before);
      t.diagnostic(`ten deploys: ${times.join(", ")} ms`);
      figures.push(
        `code deploy (release command + worker restart): ${Math.min(...times)}–${Math.max(...times)} ms`,
      );
      // A container deploy: a new container on the same root and state directories.
      const oldId = app.id;
      await app.remove();
      app = await startContainer();
      assert.notEqual(app.id, oldId);
      const served = await waitForRevision(app.healthUrl, live, 60_000);
      assert.equal(served.status, 200);
      assert.equal(
        (await request(`${app.baseUrl}/healthz`)).headers["x-touchdeploy-config"],
        liveConfig(),
      );
      assert.equal(await count(), before);
      await waitFor(
        "the worker to run in the new container",
        async () => (/^worker +RUNNING/.test(await supervisorStatus()) ? true : undefined),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      const job = await jobDone("in the new container");
      assert.equal(job.processed_revision, live);
      assert.match(await count(), /^3 of 3 jobs done$/);
    });

    it(`under load (${LOAD_CLIENTS} clients at ${LOAD_RATE}/s), a deploy with a migration fails no request`, async (t) => {
      repo.writeAppFile(
        "jobs/migrations/0003_job_attempts.py",
        addFieldMigration("attempts", "0002_job_priority"),
      );
      repo.writeAppFile(
        "jobs/models.py",
        repo
          .readAppFile("jobs/models.py")
          .replace(
            "    priority = models.IntegerField(default=0)\n",
            "    priority = models.IntegerField(default=0)\n    attempts = models.IntegerField(default=0)\n",
          ),
      );
      const sha = await repo.commit("Jobs count their attempts (migration 0003)");
      await waitForRevision(`${app.baseUrl}/`, live);
      let deployed = (): void => undefined;
      const done = new Promise<void>((r) => (deployed = r));
      const resetsBefore = await app.serverResets();
      const load = runLoad({
        url: `${app.baseUrl}/`,
        connections: LOAD_CLIENTS,
        ratePerSecond: LOAD_RATE,
        durationMs: 240_000,
        until: done,
        // The page says "revision <code><sha12></code>": it must match its X-Revision header.
        bodyRevision: (body) => /revision <code>([0-9a-f]{12})<\/code>/.exec(body)?.[1],
      });
      const r = await deploy(sha);
      // A second of the new release under load, then stop.
      await waitForRevision(`${app.baseUrl}/`, sha);
      setTimeout(deployed, 1000);
      const result = await load;
      const serverResets = (await app.serverResets()) - resetsBefore;
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(r.stdout, /\n {4}\s*Applying jobs\.0003_job_attempts\.\.\. OK\n/);
      const line =
        `${result.requests} requests from ${LOAD_CLIENTS} clients at ${LOAD_RATE}/s across a deploy with a migration (${r.durationMs} ms): ` +
        `${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts; ` +
        `latency p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms`;
      t.diagnostic(line);
      figures.push(line);
      assert.deepEqual(
        { non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts },
        { non2xx: 0, errors: 0, timeouts: 0 },
        `failed requests: ${result.errorSamples.join(" | ")}; statuses ${JSON.stringify(result.statuses)}; ` +
          `connections the container reset unanswered: ${serverResets} (uWSGI's reload race when equal to the errors)`,
      );
      assert.equal(result.bodyMismatches, 0);
      result.perConnection.forEach((runs, i) => {
        assert.deepEqual(
          runs.map((x) => x.revision),
          [live, sha],
          `client ${i} saw ${runs.map((x) => `${short(x.revision)} x${x.count}`).join(" -> ")}`,
        );
      });
      live = sha;
      // No worker restart found the database behind its code.
      assert.doesNotMatch(await app.logs(), /lacks migrations/);
    });
  },
);
