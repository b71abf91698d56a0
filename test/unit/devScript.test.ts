// scripts/dev.sh on a fresh machine (issue 8 item 18), run in a sandbox: a copy of the project
// and a PATH of fake `pulumi`, `docker`, `curl`, `apt-get`, `id`, `uname` that record their
// arguments (the real CLI cannot run here), next to the real bash, git and node.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";

const PROJECT = path.join(__dirname, "..", "..");
const REAL_TOOLS = [
  "bash",
  "sh",
  "env",
  "dirname",
  "basename",
  "cat",
  "mkdir",
  "rm",
  "cp",
  "chmod",
  "seq",
  "sleep",
  "git",
  "node",
  "sha256sum",
  "stat",
  "flock",
  "nohup",
  "printf",
  "grep",
  "sed",
  "tr",
  "head",
];

interface Sandbox {
  dir: string;
  project: string;
  bin: string;
  home: string;
  log: string;
}

/**
 * Writes a new file. An existing entry is removed first: the sandbox's bin/ holds symlinks to
 * the real tools, and writing through one would overwrite the real tool on this machine.
 */
function write(file: string, text: string, mode = 0o755): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, text, { mode, flag: "wx" });
}

const FAKE_PULUMI = `#!/bin/bash
printf 'pulumi %s\\n' "$*" >> "$LOG"
case "$1 \${2-}" in
"whoami "*) exit 1 ;;
"stack select") exit 1 ;;
"up "*) printf 'env PULUMI_BACKEND_URL=%s PULUMI_CONFIG_PASSPHRASE=[%s]\\n' "$PULUMI_BACKEND_URL" "$PULUMI_CONFIG_PASSPHRASE" >> "$LOG" ;;
"stack output") echo '{"local":{"commit":"c","url":"http://localhost:8000/","container":"hello-wsgi-local"}}' ;;
"config get") exit "\${FAKE_CONFIG_GET:-1}" ;;
"config set") printf 'stdin [%s]\n' "$(cat)" >> "$LOG" ;;
esac
`;

function sandbox(): Sandbox {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "td-dev-"));
  const project = path.join(dir, "project");
  const bin = path.join(dir, "bin");
  const home = path.join(dir, "home");
  const log = path.join(dir, "log");
  fs.mkdirSync(home);
  fs.writeFileSync(log, "");
  write(
    path.join(project, "scripts", "dev.sh"),
    fs.readFileSync(path.join(PROJECT, "scripts", "dev.sh"), "utf8"),
  );
  for (const stackFile of ["Pulumi.dev.yaml", "Pulumi.django.yaml"]) {
    write(
      path.join(project, stackFile),
      fs.readFileSync(path.join(PROJECT, stackFile), "utf8"),
      0o644,
    );
  }
  write(path.join(project, "package-lock.json"), "{}", 0o644);
  write(path.join(project, "node_modules", ".package-lock.json"), "{}", 0o644);
  fs.utimesSync(path.join(project, "package-lock.json"), 1_000_000, 1_000_000);
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", project, "-c", "user.name=t", "-c", "user.email=t@t", ...args]);
  git("init", "-q", "-b", "main");
  git("commit", "-q", "--allow-empty", "-m", "c1");
  fs.mkdirSync(bin);
  for (const tool of REAL_TOOLS) {
    const real = spawnSync("bash", ["-c", `command -v ${tool}`], {
      encoding: "utf8",
    }).stdout.trim();
    if (real.startsWith("/")) fs.symlinkSync(real, path.join(bin, tool));
  }
  const record = (name: string, body = "") =>
    write(path.join(bin, name), `#!/bin/bash\nprintf '${name} %s\\n' "$*" >> "$LOG"\n${body}`);
  record("docker", 'if [[ $1 == info ]]; then exit "${FAKE_DOCKER_INFO:-0}"; fi\n');
  record("apt-get");
  record("systemctl", "exit 1\n");
  record("dockerd", "exit 1\n");
  write(path.join(bin, "id"), '#!/bin/bash\necho "${FAKE_UID:-1000}"\n');
  write(path.join(bin, "uname"), '#!/bin/bash\necho "${FAKE_UNAME:-Linux}"\n');
  write(path.join(dir, "fake-pulumi"), FAKE_PULUMI);
  // curl: Pulumi's installer (a script that installs the fake CLI) or the app's answer.
  record(
    "curl",
    `if [[ $* == *get.pulumi.com* ]]; then
  printf '%s\\n' 'mkdir -p "$HOME/.pulumi/bin" && cp "$FAKE_PULUMI" "$HOME/.pulumi/bin/pulumi" && printf "installer %s\\n" "$*" >> "$LOG"'
else
  echo "Hello from touchdeploy"
fi
`,
  );
  return { dir, project, bin, home, log };
}

function runDev(sb: Sandbox, env: Record<string, string> = {}, args: string[] = []) {
  const r = spawnSync("bash", [path.join(sb.project, "scripts", "dev.sh"), ...args], {
    encoding: "utf8",
    env: {
      PATH: sb.bin,
      HOME: sb.home,
      LOG: sb.log,
      FAKE_PULUMI: path.join(sb.dir, "fake-pulumi"),
      ...env,
    },
  });
  return { ...r, calls: fs.readFileSync(sb.log, "utf8").trim().split("\n").filter(Boolean) };
}

describe("scripts/dev.sh", () => {
  let sb: Sandbox;
  beforeEach(() => {
    sb = sandbox();
  });
  afterEach(() => fs.rmSync(sb.dir, { recursive: true, force: true }));

  it("GIVEN a Pulumi CLI on PATH and no login THEN a local backend, the dev stack created, up, and the app's answer", () => {
    fs.copyFileSync(path.join(sb.dir, "fake-pulumi"), path.join(sb.bin, "pulumi"));
    const r = runDev(sb);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.calls, [
      "docker info",
      "pulumi whoami",
      "pulumi stack select dev",
      "pulumi stack init dev",
      "pulumi up --yes --stack dev",
      `env PULUMI_BACKEND_URL=file://${sb.project}/.pulumi-local PULUMI_CONFIG_PASSPHRASE=[]`,
      "pulumi stack output --stack dev --json hosts",
      "curl -fsS http://localhost:8000/",
    ]);
    assert.equal(
      r.stdout,
      "touchdeploy-dev: no Pulumi login: keeping state in .pulumi-local/\n" +
        "touchdeploy-dev: serving at http://localhost:8000/:\nHello from touchdeploy\n",
    );
  });

  it("GIVEN no Pulumi CLI THEN Pulumi's official installer puts it in ~/.pulumi/bin, and it is used", () => {
    const r = runDev(sb);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.calls.slice(0, 4), [
      "docker info",
      "curl -fsSL https://get.pulumi.com",
      "installer ",
      "pulumi whoami",
    ]);
    assert.ok(
      r.stdout.startsWith(
        "touchdeploy-dev: installing the Pulumi CLI with Pulumi's official installer (curl -fsSL https://get.pulumi.com | sh): " +
          "it downloads the CLI into ~/.pulumi/bin and adds that directory to PATH in ~/.bashrc or ~/.zshrc\n" +
          "touchdeploy-dev: using the Pulumi CLI in ~/.pulumi/bin\n",
      ),
      r.stdout,
    );
  });

  it("GIVEN TOUCHDEPLOY_PULUMI_VERSION THEN the installer is asked for that version", () => {
    const r = runDev(sb, { TOUCHDEPLOY_PULUMI_VERSION: "3.248.0" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.calls[2], "installer --version 3.248.0");
  });

  it("GIVEN an existing ~/.pulumi/bin/pulumi not on PATH THEN it is used and nothing is installed", () => {
    write(path.join(sb.home, ".pulumi", "bin", "pulumi"), FAKE_PULUMI);
    const r = runDev(sb);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.calls.some((c) => c.includes("get.pulumi.com")), r.calls.join("\n"));
    assert.ok(r.calls.includes("pulumi up --yes --stack dev"));
  });

  it("GIVEN no Docker and root on Debian THEN docker.io comes from the distribution", () => {
    fs.rmSync(path.join(sb.bin, "docker"));
    fs.copyFileSync(path.join(sb.dir, "fake-pulumi"), path.join(sb.bin, "pulumi"));
    // apt-get "installs" docker: the fake docker appears.
    write(
      path.join(sb.bin, "apt-get"),
      `#!/bin/bash\nprintf 'apt-get %s\\n' "$*" >> "$LOG"\nif [[ $1 == install ]]; then printf '#!/bin/bash\\nprintf "docker %%s\\\\n" "$*" >> "$LOG"\\n' > "${sb.bin}/docker"; chmod +x "${sb.bin}/docker"; fi\n`,
    );
    const r = runDev(sb, { FAKE_UID: "0" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.calls.slice(0, 3), [
      "apt-get update -qq",
      "apt-get install -y -qq --no-install-recommends docker.io",
      "docker info",
    ]);
    assert.match(r.stdout, /^touchdeploy-dev: installing Debian packages: docker.io\n/);
  });

  it("GIVEN no Docker and not root THEN it says what is missing and how to get it", () => {
    fs.rmSync(path.join(sb.bin, "docker"));
    const r = runDev(sb);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      "touchdeploy-dev: error: not installed: docker.io (run this script as root on Debian/Ubuntu to install them, or install Docker from https://docs.docker.com/engine/install/)\n",
    );
  });

  it("GIVEN a stopped Docker daemon and not root THEN it says so and stops", () => {
    const r = runDev(sb, { FAKE_DOCKER_INFO: "1" });
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      "touchdeploy-dev: error: the Docker daemon is not running or not reachable (try: docker info; sudo systemctl start docker)\n",
    );
  });

  it("GIVEN macOS without GNU tools THEN it names them and the Homebrew commands, before anything runs", () => {
    write(path.join(sb.bin, "stat"), "#!/bin/bash\nexit 1\n");
    fs.rmSync(path.join(sb.bin, "flock"), { force: true });
    const r = runDev(sb, { FAKE_UNAME: "Darwin" });
    assert.equal(r.status, 1);
    assert.deepEqual(r.calls, []);
    assert.equal(
      r.stderr,
      "touchdeploy-dev: error: on macOS the dev stack's release commands run on this machine and need GNU tools; " +
        "missing: flock GNU stat (stat -c). Install them with Homebrew and put GNU coreutils first on PATH:\n" +
        "  brew install bash coreutils flock\n" +
        '  export PATH="$(brew --prefix coreutils)/libexec/gnubin:$(brew --prefix)/bin:$PATH"\n' +
        "then run scripts/dev.sh again from that shell.\n",
    );
  });

  it("GIVEN --stack django on a first run THEN its stack, a random DJANGO_SECRET_KEY set encrypted from stdin (never in argv), then up", () => {
    fs.copyFileSync(path.join(sb.dir, "fake-pulumi"), path.join(sb.bin, "pulumi"));
    const r = runDev(sb, {}, ["--stack", "django"]);
    assert.equal(r.status, 0, r.stderr);
    const key = "touchdeploy:secretEnv.DJANGO_SECRET_KEY";
    const secret = /^stdin \[(.*)\]$/.exec(r.calls.find((c) => c.startsWith("stdin ")) ?? "")?.[1];
    assert.match(secret ?? "", /^[A-Za-z0-9_-]{64}$/, "48 random bytes, base64url");
    assert.deepEqual(r.calls, [
      "docker info",
      "pulumi whoami",
      "pulumi stack select django",
      "pulumi stack init django",
      `pulumi config get --stack django --path ${key}`,
      `pulumi config set --stack django --secret --path ${key}`,
      `stdin [${secret}]`,
      "pulumi up --yes --stack django",
      `env PULUMI_BACKEND_URL=file://${sb.project}/.pulumi-local PULUMI_CONFIG_PASSPHRASE=[]`,
      "pulumi stack output --stack django --json hosts",
      "curl -fsS http://localhost:8000/",
    ]);
    assert.ok(!r.calls.some((c) => c.startsWith("pulumi") && c.includes(secret ?? "?")));
    assert.match(
      r.stdout,
      /touchdeploy-dev: generating a random touchdeploy:secretEnv.DJANGO_SECRET_KEY into the django stack's encrypted config\n/,
    );
  });

  it("GIVEN --stack django whose secret is set THEN it is kept (nothing generated) and extra options reach `pulumi up`", () => {
    fs.copyFileSync(path.join(sb.dir, "fake-pulumi"), path.join(sb.bin, "pulumi"));
    const r = runDev(sb, { FAKE_CONFIG_GET: "0" }, ["--stack", "django", "--diff"]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.calls.some((c) => c.startsWith("pulumi config set")), r.calls.join("\n"));
    assert.ok(r.calls.includes("pulumi up --yes --stack django --diff"), r.calls.join("\n"));
  });

  it("GIVEN the dev stack THEN no secret is generated", () => {
    fs.copyFileSync(path.join(sb.dir, "fake-pulumi"), path.join(sb.bin, "pulumi"));
    const r = runDev(sb);
    assert.ok(!r.calls.some((c) => c.startsWith("pulumi config")), r.calls.join("\n"));
  });

  it("GIVEN --stack with no name or an unknown stack THEN it says which stacks exist, before anything runs", () => {
    for (const args of [["--stack"], ["--stack", "staging"], ["--stack", "../x"]]) {
      const r = runDev(sb, {}, args);
      assert.equal(r.status, 1);
      assert.deepEqual(r.calls, []);
      assert.match(
        r.stderr,
        /^touchdeploy-dev: error: (--stack needs a name \(dev or django\)|no stack file Pulumi\.\S+\.yaml here \(the local stacks are dev and django\))\n$/,
      );
    }
  });
});
