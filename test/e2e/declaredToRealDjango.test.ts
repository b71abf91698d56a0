// Declared-to-real, the django stack (issue 11): what the program declares for Pulumi.django.yaml
// (recorded through the mocks) realized on the real Docker engine, uWSGI, Django 4.2 and git by
// the engine model (test/support/engineModel.ts): the order of steps comes only from the declared
// dependencies, update vs replace from the providers' rules (pulumi-command 1.2.1: a change of
// stdin is an update that runs `create` again; terraform-provider-docker v4.5.0: user, volumes
// are ForceNew), and which container runs is read from Docker itself.
//
// The host script and runtime image tests (test/host/, engine11) prove what `release` does with
// a payload and a release command; these prove that the program declares what makes it happen:
// the migration runs before the switch, a failing one is never switched to, an env or a secret
// change is one reload of the same container, no secret is in a declared input in plaintext, and
// the worker runs the new revision.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type Docker from "dockerode";
import { parse } from "yaml";
import {
  CONTAINER,
  plain,
  plaintextOccurrences,
  PROJECT_DIR,
  ProgramRun,
  runProgram,
  StackConfig,
} from "../support/pulumiProgram";
import { RELOAD_LOG_LINE } from "../harness/app";
import { demuxLogs, ensureDocker } from "../harness/docker";
import { BASE_IMAGE, ensureBaseImage } from "../harness/images";
import { e2eGate } from "../harness/prerequisites";
import { freePort, makeScratchDir, removeTree, run, waitFor } from "../harness/process";
import {
  apply,
  CommandFailedError,
  DeploymentError,
  destroy,
  emptyState,
  RealizedState,
} from "../harness/realize";

const APP_SUBDIR = "examples/django-app";
const SECRET_1 = "tdtest-django-secret-one-8f2c0e7d5b";
const SECRET_2 = "tdtest-django-secret-two-41a9c3e6f0";

/** Whether this checkout's host script has what issue 11 needs (engine11 merged). */
const ENGINE11 = /'payload +\|/.test(
  fs.readFileSync(path.join(PROJECT_DIR, "host", "touchdeploy.sh"), "utf8"),
);

/** Pulumi.django.yaml's touchdeploy:* values, as the stack gives them to the program. */
function djangoStackConfig(): StackConfig {
  const file = parse(fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.django.yaml"), "utf8")) as {
    config: Record<string, StackConfig[string]>;
  };
  return Object.fromEntries(
    Object.entries(file.config).map(([k, v]) => [k.replace(/^touchdeploy:/, ""), v]),
  );
}

/** A git repository holding examples/django-app, committed on `main`. */
class DjangoRepo {
  private constructor(
    readonly work: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  static async create(dir: string): Promise<DjangoRepo> {
    fs.mkdirSync(dir, { recursive: true });
    const gitconfig = path.join(dir, "gitconfig");
    fs.writeFileSync(
      gitconfig,
      "[user]\n\tname = touchdeploy tests\n\temail = tests@touchdeploy.invalid\n" +
        "[init]\n\tdefaultBranch = main\n",
    );
    const env = { ...process.env, GIT_CONFIG_GLOBAL: gitconfig, GIT_CONFIG_NOSYSTEM: "1" };
    const repo = new DjangoRepo(path.join(dir, "work"), env);
    await run("git", ["init", "--quiet", repo.work], { env });
    fs.cpSync(path.join(PROJECT_DIR, APP_SUBDIR), path.join(repo.work, APP_SUBDIR), {
      recursive: true,
      // No bytecode or local databases a developer's run may have left.
      filter: (src) => !/__pycache__|\.pyc$|\.sqlite3/.test(src),
    });
    await repo.commit("Add the Django example");
    return repo;
  }

  file(relative: string): string {
    return path.join(this.work, APP_SUBDIR, relative);
  }

  async commit(message: string): Promise<string> {
    await run("git", ["-C", this.work, "add", "--all"], { env: this.env });
    await run("git", ["-C", this.work, "commit", "--quiet", "-m", message], { env: this.env });
    return (
      await run("git", ["-C", this.work, "rev-parse", "HEAD"], { env: this.env })
    ).stdout.trim();
  }
}

/** One HTTP exchange on a new connection; status 0 = no answer. */
interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  url: string,
  opts: { method?: string; host?: string; form?: Record<string, string> } = {},
): Promise<Answer> {
  const body = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
  return new Promise((resolve) => {
    const req = http.request(
      url,
      {
        method: opts.method ?? (body ? "POST" : "GET"),
        agent: false,
        timeout: 5000,
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
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ status: 0, headers: {}, body: "" }));
    req.end(body);
  });
}

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** Which container Docker runs under a name: its id, creation time and user. */
async function identity(docker: Docker, name: string) {
  const info = await docker.getContainer(name).inspect();
  return {
    id: info.Id,
    created: info.Created,
    user: info.Config.User,
    running: info.State.Running,
  };
}

/** The deployment error `promise` rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<DeploymentError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof DeploymentError, String(err));
    return err;
  }
  return assert.fail("the deployment succeeded");
}

describe(
  "declared-to-real: the django stack, realized on the real engine",
  ENGINE11
    ? e2eGate(["docker", "debootstrap", "git", "bash", "curl", "flock", "root"])
    : { skip: "engine11 not merged: the host script has no --payload" },
  () => {
    let scratch: string;
    let repo: DjangoRepo;
    let config: StackConfig;
    let url: string;
    let root: string;
    let docker: Docker;
    let containerName = "";
    let first: string;
    let current: ProgramRun;
    const state: RealizedState = emptyState();

    /** The declaration of the stack with these changes, the secret as a Pulumi secret. */
    const declare = (extra: StackConfig = {}) =>
      runProgram({ config: { ...config, ...extra }, secretKeys: ["secretEnv"] });

    const reloads = async () =>
      demuxLogs(
        await docker.getContainer(containerName).logs({ stdout: true, stderr: true }),
      ).split(RELOAD_LOG_LINE).length - 1;

    /** Queues a job and waits until the worker has processed it; returns it. */
    async function processedJob(payload: string): Promise<Record<string, unknown>> {
      const queued = await request(`${url}/jobs`, { form: { payload } });
      assert.equal(queued.status, 201, queued.body);
      const id = (JSON.parse(queued.body) as { id: number }).id;
      return waitFor(
        `job ${id} to be processed by the worker`,
        async () => {
          const r = await request(`${url}/jobs/${id}`);
          const job = JSON.parse(r.body || "{}") as Record<string, unknown>;
          return job.state === "done" ? job : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
    }

    before(async () => {
      await ensureBaseImage();
      docker = await ensureDocker();
      scratch = makeScratchDir("django");
      repo = await DjangoRepo.create(path.join(scratch, "repo"));
      const port = await freePort();
      root = path.join(scratch, "root");
      const django = djangoStackConfig();
      assert.deepEqual(django.hosts, ["local local port=8001 bind=127.0.0.1"]);
      // The django stack as committed, pointed at a test repository, a scratch root and a free
      // port, built on the locally imported base image, with the secret dev.sh would generate.
      config = {
        ...django,
        appName: "tdtest-django",
        repoPath: repo.work,
        root,
        hosts: [`local local port=${port} bind=127.0.0.1`],
        baseImage: BASE_IMAGE,
        secretEnv: { DJANGO_SECRET_KEY: SECRET_1 },
      };
      url = `http://127.0.0.1:${port}`;
    });

    after(async () => {
      if (state.snapshot.resources.length > 0) {
        await destroy(state).catch((err: unknown) => console.error(`destroy: ${String(err)}`));
      }
      if (containerName) {
        await docker
          .getContainer(containerName)
          .remove({ force: true })
          .catch(() => undefined);
      }
      if (scratch) removeTree(scratch);
    });

    it("first deploy: state dirs made, migrated and collected before the switch, served, the worker up", async (t) => {
      first = (await run("git", ["-C", repo.work, "rev-parse", "HEAD"])).stdout.trim();
      current = await declare();
      containerName = plain<{ name: string }>(
        current.get(CONTAINER, "local-container").inputs,
      ).name;
      const started = Date.now();
      const report = await apply(current, state);
      t.diagnostic(
        `first deploy (image build included): ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      assert.deepEqual(report.actions, [
        "create local-setup",
        "create local-fetch",
        "create local-user",
        "create local-image",
        "create local-container",
        "create local-release",
      ]);
      const out = report.commandOutput.get("local-release")?.stdout ?? "";
      // The release command ran in the new release, then the switch.
      const command = out.indexOf("touchdeploy: command  python3 manage.py migrate");
      const switched = out.indexOf("touchdeploy: switch ");
      assert.ok(command >= 0 && switched > command, out);
      assert.match(out, /Applying jobs\.0001_initial\.\.\. OK/);
      const page = await request(`${url}/`);
      assert.equal(page.status, 200, page.body);
      assert.equal(one(page.headers["x-revision"]), first);
      // collectstatic's output, from the state dir: the page links the hashed name.
      const css = /href="(\/static\/jobs\/site\.[0-9a-f]{12}\.css)"/.exec(page.body)?.[1];
      assert.ok(css, page.body.slice(0, 400));
      assert.equal((await request(`${url}${css}`)).status, 200);
      assert.ok(fs.existsSync(path.join(root, "state", "static", css.replace(/^\/static\//, ""))));
      assert.ok(fs.existsSync(path.join(root, "state", "data", "db.sqlite3")));
      // The container: the user setup makes the state dirs writable by, the state dirs mounted.
      const info = await docker.getContainer(containerName).inspect();
      assert.equal(info.Config.User, "10001:10001");
      assert.deepEqual(
        info.HostConfig.Binds?.slice().sort(),
        [
          `${root}:/srv/app:ro`,
          `${root}/state/data:/srv/state/data`,
          `${root}/state/media:/srv/state/media`,
          `${root}/state/static:/srv/state/static`,
        ].sort(),
      );
      assert.equal(fs.statSync(path.join(root, "state", "data")).uid, 10001);
    });

    it("the worker processes jobs with the live revision", async () => {
      const job = await processedJob("hello from the first revision");
      assert.equal(job.processed_revision, first);
      assert.equal(job.enqueued_revision, first);
    });

    it("a new env value: only the release is updated, one reload, the same container, the app sees it", async () => {
      const before = await identity(docker, containerName);
      const reloadsBefore = await reloads();
      const configBefore = one((await request(`${url}/healthz`)).headers["x-touchdeploy-config"]);
      // Not an allowed host yet: Django answers 400.
      assert.equal((await request(`${url}/`, { host: "shop.example.test" })).status, 400);
      const old = config.env as Record<string, string>;
      const env = { ...old, DJANGO_ALLOWED_HOSTS: `${old.DJANGO_ALLOWED_HOSTS},shop.example.test` };
      current = await declare({ env });
      const report = await apply(current, state);
      assert.deepEqual(
        report.actions.filter((a) => !a.startsWith("same ")),
        ["update local-release"],
      );
      assert.deepEqual(await identity(docker, containerName), before);
      await waitFor(
        "the runtime's reload line",
        async () => ((await reloads()) > reloadsBefore ? true : undefined),
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      assert.equal((await reloads()) - reloadsBefore, 1, "exactly one graceful reload");
      assert.equal((await request(`${url}/`, { host: "shop.example.test" })).status, 200);
      const health = await request(`${url}/healthz`);
      assert.notEqual(one(health.headers["x-touchdeploy-config"]), configBefore);
      assert.equal(one(health.headers["x-revision"]), first, "the same commit");
      config = { ...config, env };
    });

    it("a new secret value: only the release is updated, one reload, the same container; the secret in no declared input, output or log in plaintext", async () => {
      const before = await identity(docker, containerName);
      const reloadsBefore = await reloads();
      const configBefore = one((await request(`${url}/healthz`)).headers["x-touchdeploy-config"]);
      current = await declare({ secretEnv: { DJANGO_SECRET_KEY: SECRET_2 } });
      const report = await apply(current, state);
      assert.deepEqual(
        report.actions.filter((a) => !a.startsWith("same ")),
        ["update local-release"],
      );
      assert.deepEqual(await identity(docker, containerName), before);
      await waitFor(
        "the runtime's reload line",
        async () => ((await reloads()) > reloadsBefore ? true : undefined),
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      assert.equal((await reloads()) - reloadsBefore, 1, "exactly one graceful reload");
      assert.notEqual(
        one((await request(`${url}/healthz`)).headers["x-touchdeploy-config"]),
        configBefore,
      );
      config = { ...config, secretEnv: { DJANGO_SECRET_KEY: SECRET_2 } };
      for (const secret of [SECRET_1, SECRET_2]) {
        assert.deepEqual(plaintextOccurrences(current, secret), [], "declared inputs, outputs");
        for (const [name, r] of report.commandOutput) {
          assert.ok(!`${r.stdout}${r.stderr}`.includes(secret), `${name}'s output`);
        }
        const logs = demuxLogs(
          await docker.getContainer(containerName).logs({ stdout: true, stderr: true }),
        );
        assert.ok(!logs.includes(secret), "the container's log");
      }
    });

    it("a commit with a new migration: migrated before the switch, served after it, same container; the worker runs the new revision", async (t) => {
      const before = await identity(docker, containerName);
      // The README's commands: a field and its migration.
      const models = repo.file("jobs/models.py");
      fs.writeFileSync(
        models,
        fs
          .readFileSync(models, "utf8")
          .replace(
            /^( {4}processed_revision = .*\n)/m,
            '$1    note = models.CharField(max_length=100, blank=True, default="")\n',
          )
          .replace(
            '"processed_revision": self.processed_revision,',
            '"processed_revision": self.processed_revision,\n            "note": self.note,',
          ),
      );
      fs.writeFileSync(
        repo.file("jobs/migrations/0002_job_note.py"),
        "from django.db import migrations, models\n\n\n" +
          "class Migration(migrations.Migration):\n" +
          '    dependencies = [("jobs", "0001_initial")]\n' +
          "    operations = [\n" +
          '        migrations.AddField("job", "note", models.CharField(blank=True, default="", max_length=100)),\n' +
          "    ]\n",
      );
      const migrated = await repo.commit("Jobs get a note");
      current = await declare();
      const started = Date.now();
      const report = await apply(current, state);
      const seconds = (Date.now() - started) / 1000;
      assert.deepEqual(
        report.actions.filter((a) => !a.startsWith("same ")),
        [
          "create-replacement local-fetch",
          "replace local-fetch",
          "create-replacement local-release",
          "replace local-release",
          "delete-replaced local-release",
          "delete-replaced local-fetch",
        ],
      );
      const out = report.commandOutput.get("local-release")?.stdout ?? "";
      const applied = out.indexOf("Applying jobs.0002_job_note... OK");
      const switched = out.indexOf("touchdeploy: switch ");
      assert.ok(applied >= 0 && switched > applied, out);
      assert.deepEqual(await identity(docker, containerName), before);
      const page = await request(`${url}/`);
      assert.equal(one(page.headers["x-revision"]), migrated);
      const job = await processedJob("hello from the migrated revision");
      assert.equal(job.processed_revision, migrated, "the worker restarted on the new code");
      assert.equal(job.note, "", "the new column exists");
      t.diagnostic(
        `code deploy with a migration (migrate + collectstatic + switch + reload + health + worker restart): ${seconds.toFixed(2)} s`,
      );
    });

    it("a commit whose migration fails: never switched to (exit 9), the old code keeps serving on the same container", async () => {
      const live = one((await request(`${url}/`)).headers["x-revision"]);
      const before = await identity(docker, containerName);
      fs.writeFileSync(
        repo.file("jobs/migrations/0003_broken.py"),
        "from django.db import migrations\n\n\n" +
          "def fail(apps, schema_editor):\n" +
          '    raise RuntimeError("this migration always fails")\n\n\n' +
          "class Migration(migrations.Migration):\n" +
          '    dependencies = [("jobs", "0002_job_note")]\n' +
          "    operations = [migrations.RunPython(fail)]\n",
      );
      await repo.commit("A migration that fails");
      current = await declare();
      const error = await failure(apply(current, state));
      assert.deepEqual(
        { op: error.failed.op, name: error.failed.name },
        { op: "create-replacement", name: "local-release" },
      );
      const cause = error.cause;
      assert.ok(cause instanceof CommandFailedError, String(cause));
      assert.equal(cause.result.code, 9, cause.message);
      assert.match(cause.result.stderr, /the release command failed/);
      assert.match(`${cause.result.stdout}${cause.result.stderr}`, /this migration always fails/);
      assert.doesNotMatch(cause.result.stdout, /touchdeploy: switch /);
      assert.deepEqual(await identity(docker, containerName), before);
      const page = await request(`${url}/`);
      assert.equal(page.status, 200);
      assert.equal(one(page.headers["x-revision"]), live);
      assert.equal((await request(`${url}/healthz`)).status, 200, "its migrations are all there");
    });

    it("`pulumi destroy`: the container and touchdeploy's files go; state/ (the database, static files, uploads) stays", async () => {
      const report = await destroy(state);
      // The failed deploy left its new fetch next to the old one (the old one marked for
      // deletion, pulumi's OpDeleteReplaced): both are deleted, in reverse dependency order,
      // the container before the setup whose delete cleans the root.
      assert.deepEqual(report.actions, [
        "delete local-release",
        "delete local-container",
        "delete local-image",
        "delete local-user",
        "delete local-fetch",
        "delete-replaced local-fetch",
        "delete local-setup",
      ]);
      assert.deepEqual(state.snapshot.resources, []);
      await assert.rejects(docker.getContainer(containerName).inspect());
      // destroy keeps shared/ and state/ unless empty: state/ holds the app's data, shared/
      // was never used here (host/README.md, destroy).
      assert.deepEqual(fs.readdirSync(root).sort(), ["state"]);
      assert.ok(fs.existsSync(path.join(root, "state", "data", "db.sqlite3")));
    });
  },
);
