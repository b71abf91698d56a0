/**
 * examples/django-app on the real runtime: Django 4.2 from bookworm-backports in the runtime
 * image, the release mounted read-only at /srv/app as the host script lays it out, a writable
 * state directory at /srv/state, uWSGI under supervisord. The release command (migrate,
 * collectstatic) and the worker run with `docker exec` in that container, as touchdeploy's
 * `releaseCommand` and `processes` will (issue #11).
 */
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type Docker from "dockerode";
import { CONTAINER_PORT, sweepStaleContainers } from "../harness/app";
import { demuxLogs, ensureDocker } from "../harness/docker";
import { defaultHardeningHostConfig } from "../harness/hardening";
import { aptPackagesOf, ensureRuntimeImage, REPO_ROOT } from "../harness/images";
import { e2eGate } from "../harness/prerequisites";
import { makeScratchDir, removeTree, waitFor } from "../harness/process";

const APP_SUBDIR = "examples/django-app";
const APP_SOURCE = path.join(REPO_ROOT, APP_SUBDIR);
/** The release command the example's README gives for touchdeploy's `releaseCommand`. */
const RELEASE_COMMAND =
  "python3 manage.py migrate --noinput && python3 manage.py collectstatic --noinput";
/** The label app.ts's sweepStaleContainers() removes containers of dead test processes by. */
const OWNER_LABEL = "touchdeploy.e2e.pid";

/**
 * The runtime image built for the example's Aptfile: `python3-django/bookworm-backports` is
 * runtime/Dockerfile's `NAME/SUITE` rule (the suite is added to apt's sources first).
 */
async function ensureDjangoImage(): Promise<string> {
  return (await ensureRuntimeImage({ aptPackages: aptPackagesOf(APP_SOURCE) })).tag;
}

/** A command running in the container (`docker exec`), its output collected as it comes. */
interface Exec {
  output(): string;
  /** Resolves with the exit code and the whole output once the command exits (bounded). */
  done: Promise<{ code: number; output: string }>;
}

async function startExec(
  container: Docker.Container,
  cmd: string[],
  opts: { workdir: string; timeoutMs: number },
): Promise<Exec> {
  const exec = await container.exec({
    Cmd: cmd,
    WorkingDir: opts.workdir,
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  const output = (): string => demuxLogs(Buffer.concat(chunks));
  const done = new Promise<{ code: number; output: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`${cmd.join(" ")} did not exit within ${opts.timeoutMs} ms:\n${output()}`));
    }, opts.timeoutMs);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      // The stream can end a moment before the engine records the exit code.
      waitFor(
        `the exit code of ${cmd.join(" ")}`,
        async () => {
          const info = await exec.inspect();
          return info.Running || info.ExitCode === null ? undefined : info.ExitCode;
        },
        { timeoutMs: 10_000, intervalMs: 20 },
      ).then((code) => resolve({ code, output: output() }), reject);
    };
    stream.on("end", finish);
    stream.on("close", finish);
  });
  return { output, done };
}

async function execIn(
  container: Docker.Container,
  cmd: string[],
  workdir: string,
  timeoutMs = 60_000,
): Promise<{ code: number; output: string }> {
  return (await startExec(container, cmd, { workdir, timeoutMs })).done;
}

/** One HTTP exchange on a new connection: status, headers and body (status 0 = no answer). */
interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, form?: Record<string, string>): Promise<Answer> {
  return new Promise((resolve) => {
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const req = http.request(
      url,
      {
        method: form ? "POST" : "GET",
        agent: false,
        timeout: 5000,
        headers: body
          ? {
              "Content-Type": "application/x-www-form-urlencoded",
              "Content-Length": Buffer.byteLength(body),
            }
          : {},
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

/** Every file and directory under `dir`, relative, sorted. */
function listTree(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

describe("examples/django-app on the runtime image", e2eGate(["docker", "debootstrap"]), () => {
  const revisions = [1, 2].map(() => crypto.randomBytes(20).toString("hex"));
  let scratch: string;
  let root: string;
  let state: string;
  let container: Docker.Container;
  let baseUrl: string;
  let startedAt: number;
  let image: string;

  const releaseDir = (sha: string): string => path.join(root, "releases", sha);
  const appDirInContainer = (sha: string): string => `/srv/app/releases/${sha}/${APP_SUBDIR}`;

  /** `current` -> releases/<sha>, by an atomic rename, as the host script switches. */
  function switchTo(sha: string): void {
    const tmp = path.join(root, `.current-${sha}`);
    fs.symlinkSync(path.join("releases", sha), tmp);
    fs.renameSync(tmp, path.join(root, "current"));
  }

  before(async () => {
    image = await ensureDjangoImage();
    await sweepStaleContainers();
    scratch = makeScratchDir("django");
    root = path.join(scratch, "root");
    state = path.join(scratch, "state");
    for (const sha of revisions) {
      const dest = path.join(releaseDir(sha), APP_SUBDIR);
      fs.cpSync(APP_SOURCE, dest, {
        recursive: true,
        filter: (src) => path.basename(src) !== "__pycache__",
      });
      fs.writeFileSync(path.join(releaseDir(sha), "REVISION"), `${sha}\n`);
    }
    switchTo(revisions[0]);
    fs.writeFileSync(path.join(root, ".reload"), "");
    for (const name of ["data", "static", "media"]) {
      fs.mkdirSync(path.join(state, name), { recursive: true });
      // The container's user (uid 10001) writes here; root could chown, anyone can chmod.
      fs.chmodSync(path.join(state, name), 0o777);
    }
    const docker = await ensureDocker();
    container = await docker.createContainer({
      name: `tdtest-django-${process.pid}`,
      Image: image,
      Env: [
        `TOUCHDEPLOY_APP_SUBDIR=${APP_SUBDIR}`,
        `DJANGO_SECRET_KEY=${crypto.randomBytes(32).toString("hex")}`,
      ],
      Labels: { [OWNER_LABEL]: String(process.pid) },
      ExposedPorts: { [`${CONTAINER_PORT}/tcp`]: {} },
      HostConfig: {
        // Hardened as the program declares it (components/containerArgs.ts).
        ...defaultHardeningHostConfig(),
        Binds: [`${root}:/srv/app:ro`, `${state}:/srv/state`],
        PortBindings: { [`${CONTAINER_PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: "" }] },
      },
    });
    startedAt = Date.now();
    await container.start();
    const info = await container.inspect();
    baseUrl = `http://127.0.0.1:${info.NetworkSettings.Ports[`${CONTAINER_PORT}/tcp`]?.[0]?.HostPort}`;
  });

  after(async () => {
    if (container) {
      // Files the container's user made in the state directory: removed by that user.
      await execIn(container, ["find", "/srv/state", "-mindepth", "2", "-delete"], "/").catch(
        () => undefined,
      );
      await container.remove({ force: true });
    }
    if (scratch) removeTree(scratch);
  });

  it("runs Django 4.2 from bookworm-backports", async () => {
    const r = await execIn(container, ["python3", "-m", "django", "--version"], "/");
    assert.equal(r.code, 0, r.output);
    assert.match(r.output.trim(), /^4\.2\.\d+$/);
  });

  it("before the release command, /healthz is 500 and names the unapplied migrations", async (t) => {
    const first = await waitFor(
      "uWSGI to answer /healthz",
      async () => {
        const a = await request(`${baseUrl}/healthz`);
        return a.status === 0 ? undefined : a;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    t.diagnostic(`container start -> first answer: ${Date.now() - startedAt} ms`);
    assert.equal(first.status, 500);
    assert.match(first.body, /^unapplied migrations: .*\bjobs\.0001_initial\b/);
  });

  it("the release command migrates and collects static files into the state directory", async () => {
    const r = await execIn(
      container,
      ["sh", "-c", RELEASE_COMMAND],
      appDirInContainer(revisions[0]),
    );
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /Applying jobs\.0001_initial\.\.\. OK/);
    assert.match(r.output, /static files copied to '\/srv\/state\/static'/);
    assert.ok(fs.existsSync(path.join(state, "data", "db.sqlite3")));
    assert.ok(fs.existsSync(path.join(state, "static", "staticfiles.json")));

    const health = await request(`${baseUrl}/healthz`);
    assert.deepEqual([health.status, health.body], [200, "ok\n"]);
    assert.equal(health.headers["x-revision"], revisions[0]);
  });

  it("serves / with the revision and a count, and its stylesheet from STATIC_ROOT", async () => {
    const page = await request(`${baseUrl}/`);
    assert.equal(page.status, 200, page.body);
    assert.match(page.body, new RegExp(`revision <code>${revisions[0].slice(0, 12)}</code>`));
    assert.match(page.body, /0 of 0 jobs done/);
    const href = /<link rel="stylesheet" href="([^"]+)" \/>/.exec(page.body)?.[1];
    // A hashed name (ManifestStaticFilesStorage): each release's files coexist in STATIC_ROOT.
    assert.match(href ?? "", /^\/static\/jobs\/site\.[0-9a-f]{12}\.css$/);
    const css = await request(`${baseUrl}${href}`);
    assert.equal(css.status, 200);
    assert.match(String(css.headers["content-type"]), /^text\/css/);
    assert.equal(
      css.body,
      fs.readFileSync(path.join(APP_SOURCE, "jobs", "static", "jobs", "site.css"), "utf8"),
    );

    const write = await execIn(
      container,
      ["sh", "-c", "echo uploaded > /srv/state/media/upload.txt"],
      "/",
    );
    assert.equal(write.code, 0, write.output);
    const media = await request(`${baseUrl}/media/upload.txt`);
    assert.deepEqual([media.status, media.body], [200, "uploaded\n"]);
  });

  it("the worker processes a job posted to /jobs, records its revision, and stops on SIGTERM", async (t) => {
    const worker = await startExec(
      container,
      ["sh", "-c", 'echo "pid $$"; exec python3 manage.py worker --poll-interval 0.2'],
      { workdir: `/srv/app/current/${APP_SUBDIR}`, timeoutMs: 60_000 },
    );
    const pid = await waitFor(
      "the worker to start",
      () =>
        /worker: started on revision/.test(worker.output())
          ? /^pid (\d+)$/m.exec(worker.output())?.[1]
          : undefined,
      { timeoutMs: 30_000, describeLast: () => worker.output() },
    );
    assert.match(worker.output(), new RegExp(`worker: started on revision ${revisions[0]}\\n`));

    const posted = await request(`${baseUrl}/jobs`, { payload: "three little words" });
    assert.equal(posted.status, 201, posted.body);
    const id = (JSON.parse(posted.body) as { id: number }).id;
    const job = await waitFor(
      `job ${id} to be done`,
      async () => {
        const j = JSON.parse((await request(`${baseUrl}/jobs/${id}`)).body) as Record<
          string,
          string
        >;
        return j.state === "done" ? j : undefined;
      },
      { timeoutMs: 15_000, describeLast: () => worker.output() },
    );
    assert.equal(job.result, "3 words");
    assert.equal(job.enqueued_revision, revisions[0]);
    assert.equal(job.processed_revision, revisions[0]);
    assert.match((await request(`${baseUrl}/`)).body, /1 of 1 jobs done/);

    const sent = Date.now();
    const kill = await execIn(container, ["sh", "-c", `kill -TERM ${pid}`], "/");
    assert.equal(kill.code, 0, kill.output);
    const stopped = await worker.done;
    const stopMs = Date.now() - sent;
    t.diagnostic(`worker: SIGTERM -> exited in ${stopMs} ms (docker exec round trips included)`);
    assert.equal(stopped.code, 0, stopped.output);
    assert.match(stopped.output, /worker: job \d+ done: 3 words\nworker: stopped after 1 job\n$/);
    // The < 1 s bound itself is asserted without Docker in jobs/tests.py.
    assert.ok(stopMs < 5000, `the worker took ${stopMs} ms to stop`);
  });

  it("a reload onto the next release serves its revision, with the data kept", async (t) => {
    const [live, next] = revisions;
    // The release command runs in the new release before the switch; nothing left to do here.
    const r = await execIn(container, ["sh", "-c", RELEASE_COMMAND], appDirInContainer(next));
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /No migrations to apply/);

    switchTo(next);
    const trigger = path.join(root, ".reload");
    const mtime = Math.max(Math.ceil(Date.now() / 1000), fs.statSync(trigger).mtimeMs / 1000 + 1);
    const touched = Date.now();
    fs.utimesSync(trigger, mtime, mtime);
    await waitFor(
      `/healthz to answer 200 from ${next.slice(0, 12)}`,
      async () => {
        const a = await request(`${baseUrl}/healthz`);
        return a.status === 200 && a.headers["x-revision"] === next ? a : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 10 },
    );
    t.diagnostic(`reload: touch -> first 200 from the next release: ${Date.now() - touched} ms`);

    // The runtime retires the previous generation only once the new one answered (the host
    // script's health check waits for "retired", runtime/touchdeploy_generations.py): until
    // then a request may still reach one of its workers (seen here under the 1-CPU limit).
    const page = await waitFor(
      `/ to be served by ${next.slice(0, 12)} alone`,
      async () => {
        const a = await request(`${baseUrl}/`);
        return a.body.includes(`revision <code>${next.slice(0, 12)}</code>`) ? a : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    assert.match(page.body, new RegExp(`revision <code>${next.slice(0, 12)}</code>`));
    assert.match(page.body, /1 of 1 jobs done/);

    const queued = await execIn(
      container,
      ["python3", "manage.py", "enqueue", "after the deploy"],
      `/srv/app/current/${APP_SUBDIR}`,
    );
    assert.equal(queued.code, 0, queued.output);
    const once = await execIn(
      container,
      ["python3", "manage.py", "worker", "--once"],
      `/srv/app/current/${APP_SUBDIR}`,
    );
    assert.equal(once.code, 0, once.output);
    const job = JSON.parse(
      (await request(`${baseUrl}/jobs/${queued.output.trim()}`)).body,
    ) as Record<string, string>;
    assert.deepEqual([job.state, job.processed_revision], ["done", next]);
    assert.notEqual(live, next);
  });

  it("the example's own tests pass on Django 4.2 with the code read-only", async () => {
    const r = await execIn(
      container,
      ["python3", "manage.py", "test", "--noinput"],
      `/srv/app/current/${APP_SUBDIR}`,
      120_000,
    );
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /^OK$/m);
  });

  it("wrote nothing in the release directories", () => {
    for (const sha of revisions) {
      const expected = listTree(APP_SOURCE).filter(
        (p) => !p.split(path.sep).includes("__pycache__"),
      );
      assert.deepEqual(listTree(path.join(releaseDir(sha), APP_SUBDIR)), expected);
    }
  });
});
