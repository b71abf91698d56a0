// Reading the commit's dependency files: raw bytes on both sides (issue 9's "real bug"), one
// request per file on GitHub (issue 8 item 13), and a pinned commit that is not there fails
// naming it (item 8). Expected fingerprints come from sha256sum, not from components/.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  decodeDependencyFile,
  dependencyFingerprint,
  EncodedDependencyFile,
} from "../../components/fingerprint";
import { HOST_SCRIPT_PATH } from "../../components/hostScript";
import { githubFilesAt, localBranchHead, localFilesAt } from "../../components/source";

const sha256sum = (input: Buffer | string) =>
  execFileSync("sha256sum", { input }).toString().split(" ")[0];

/** requirements.txt with a Latin-1 "é" (0xe9): not valid UTF-8. */
const LATIN1 = Buffer.from("flask==3.0  # caf\xe9\n", "latin1");
const SHA = "0123456789abcdef0123456789abcdef01234567";

/**
 * Whether the host script's dependency guard accepts `fingerprint` as the container's for
 * `commit`: a real `deploy` (no health URL) into a scratch root, through the script's public
 * interface. Exit 0: the script computed the same fingerprint; 5: another one.
 */
function hostScriptAccepts(repo: string, commit: string, fingerprint: string): number | null {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "td-guard-"));
  try {
    const r = spawnSync(
      "bash",
      [
        HOST_SCRIPT_PATH,
        "deploy",
        "--root",
        root,
        "--repo",
        repo,
        "--commit",
        commit,
        "--subdir",
        "app",
        "--dependency-files",
        "requirements.txt Aptfile",
        "--container-fingerprint",
        fingerprint,
      ],
      { encoding: "utf8" },
    );
    if (r.status !== 0 && r.status !== 5) assert.fail(`deploy failed (${r.status}): ${r.stderr}`);
    return r.status;
  } finally {
    spawnSync("chmod", ["-R", "u+w", root]);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

const fingerprintOf = (files: EncodedDependencyFile[]) =>
  dependencyFingerprint(files.map(decodeDependencyFile));

describe("a non-UTF-8 requirements.txt gives one fingerprint on both sides", () => {
  let dir: string;
  let commit: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "td-source-"));
    const git = (...args: string[]) =>
      execFileSync("git", ["-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", ...args])
        .toString()
        .trim();
    git("init", "-q", "-b", "main");
    fs.mkdirSync(path.join(dir, "app"));
    fs.writeFileSync(path.join(dir, "app", "requirements.txt"), LATIN1);
    fs.writeFileSync(path.join(dir, "app", "uwsgi.ini"), "[uwsgi]\nmodule = app\n");
    git("add", "-A");
    git("commit", "-qm", "latin-1");
    commit = git("rev-parse", "HEAD");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("GIVEN a Latin-1 file in a local repository THEN the program reads its bytes and agrees with sha256sum and the host script", async () => {
    const files = await localFilesAt(dir, commit, ["app/requirements.txt", "app/Aptfile"]);
    assert.deepEqual(
      files.map(decodeDependencyFile).map((f) => [f.path, f.content && Buffer.from(f.content)]),
      [
        ["app/requirements.txt", LATIN1],
        ["app/Aptfile", null],
      ],
    );
    const relative = files.map((f) => ({ ...f, path: f.path.slice("app/".length) }));
    const expected = sha256sum(`requirements.txt\n${sha256sum(LATIN1)}\nAptfile\nabsent\n`);
    assert.equal(fingerprintOf(relative), expected);
    // The host script, given the program's fingerprint as the container's, deploys the
    // commit; given the fingerprint of the same file read as UTF-8 text (the old bug), it
    // refuses with exit 5.
    assert.equal(hostScriptAccepts(dir, commit, fingerprintOf(relative)), 0);
    const asText = sha256sum(
      `requirements.txt\n${sha256sum(Buffer.from(LATIN1.toString("utf8"), "utf8"))}\nAptfile\nabsent\n`,
    );
    assert.notEqual(asText, expected);
    assert.equal(hostScriptAccepts(dir, commit, asText), 5);
  });

  it("GIVEN a pinned commit the repository does not have THEN it fails naming the commit and the repository (issue 8 item 8)", async () => {
    await assert.rejects(localFilesAt(dir, SHA, ["app/requirements.txt"]), {
      name: "Error",
      message: `touchdeploy:commit ${SHA} is not in the repository ${dir}: fetch it (git fetch origin ${SHA}) or pin a commit it has`,
    });
  });
});

/** A fetch that answers from a table keyed by path + query, recording each request. */
function fakeFetch(
  routes: Record<string, { status: number; body: Buffer | string; type?: string }>,
) {
  const requests: { url: string; headers: Record<string, string> }[] = [];
  const fetch = (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : input.toString();
    requests.push({ url, headers: (init?.headers ?? {}) as Record<string, string> });
    const u = new URL(url);
    const route = routes[u.pathname + u.search] ?? { status: 404, body: '{"message":"Not Found"}' };
    return Promise.resolve(
      new Response(route.body, {
        status: route.status,
        headers: { "content-type": route.type ?? "application/vnd.github.raw" },
      }),
    );
  };
  return { fetch: fetch, requests };
}

describe("githubFilesAt: one REST request per file, raw bytes", () => {
  const repo = { owner: "acme", repository: "shop" };
  const api = (f: ReturnType<typeof fakeFetch>, token?: string) => ({
    baseUrl: "https://api.github.test",
    token,
    fetch: f.fetch,
  });

  it("GIVEN a Latin-1 file and a missing one THEN their bytes and null, one request each, with the raw media type", async () => {
    const f = fakeFetch({
      [`/repos/acme/shop/contents/app/requirements.txt?ref=${SHA}`]: { status: 200, body: LATIN1 },
    });
    const files = await githubFilesAt(
      api(f, "t0ken"),
      repo,
      SHA,
      ["app/requirements.txt", "app/Aptfile"],
      false,
    );
    assert.deepEqual(files, [
      { path: "app/requirements.txt", base64: LATIN1.toString("base64") },
      { path: "app/Aptfile", base64: null },
    ]);
    assert.deepEqual(
      f.requests.map((r) => [r.url, r.headers.Accept, r.headers.Authorization]),
      [
        [
          `https://api.github.test/repos/acme/shop/contents/app/requirements.txt?ref=${SHA}`,
          "application/vnd.github.raw",
          "Bearer t0ken",
        ],
        [
          `https://api.github.test/repos/acme/shop/contents/app/Aptfile?ref=${SHA}`,
          "application/vnd.github.raw",
          "Bearer t0ken",
        ],
      ],
    );
  });

  it("GIVEN a pinned commit GitHub does not have THEN it fails naming the commit and the repository, before any file is read", async () => {
    const f = fakeFetch({});
    await assert.rejects(githubFilesAt(api(f), repo, SHA, ["requirements.txt"], true), {
      message: `touchdeploy:commit ${SHA} is not in acme/shop on GitHub (or the repository is private and no github:token is set)`,
    });
    assert.deepEqual(
      f.requests.map((r) => r.url),
      [`https://api.github.test/repos/acme/shop/commits/${SHA}`],
    );
  });

  it("GIVEN the rate limit (403) THEN the message says what to do and never shows the token", async () => {
    const f = fakeFetch({
      [`/repos/acme/shop/contents/requirements.txt?ref=${SHA}`]: {
        status: 403,
        body: '{"message":"API rate limit exceeded"}',
        type: "application/json",
      },
    });
    await assert.rejects(
      githubFilesAt(api(f, "t0ken"), repo, SHA, ["requirements.txt"], false),
      (err: Error) => {
        assert.equal(
          err.message,
          `GitHub answered 403 for requirements.txt at ${SHA} of acme/shop (rate limit or token: set github:token, see README "GitHub access"): {"message":"API rate limit exceeded"}`,
        );
        assert.ok(!err.message.includes("t0ken"));
        return true;
      },
    );
  });

  it("GIVEN a directory where a file is configured THEN it says so", async () => {
    const f = fakeFetch({
      [`/repos/acme/shop/contents/requirements.txt?ref=${SHA}`]: {
        status: 200,
        body: "[]",
        type: "application/json; charset=utf-8",
      },
    });
    await assert.rejects(githubFilesAt(api(f), repo, SHA, ["requirements.txt"], false), {
      message: `requirements.txt at ${SHA} in acme/shop is a directory, not a file`,
    });
  });
});

describe("githubFilesAt: what it sends and what each answer means", () => {
  const repo = { owner: "acme", repository: "shop" };
  const api = (f: ReturnType<typeof fakeFetch>, token?: string) => ({
    baseUrl: "https://api.github.test",
    token,
    fetch: f.fetch,
  });
  const FILE = `/repos/acme/shop/contents/requirements.txt?ref=${SHA}`;
  const COMMIT = `/repos/acme/shop/commits/${SHA}`;

  it("GIVEN a token or none THEN GitHub's versioned API headers, the token only as a bearer", async () => {
    const f = fakeFetch({ [FILE]: { status: 200, body: "flask\n" } });
    await githubFilesAt(api(f, "t0ken"), repo, SHA, ["requirements.txt"], false);
    await githubFilesAt(api(f), repo, SHA, ["requirements.txt"], false);
    const raw = {
      Accept: "application/vnd.github.raw",
      "X-GitHub-Api-Version": "2022-11-28",
      "User-Agent": "touchdeploy",
    };
    assert.deepEqual(
      f.requests.map((r) => r.headers),
      [{ ...raw, Authorization: "Bearer t0ken" }, raw],
    );
  });

  it("GIVEN 401 or 429 THEN the rate-limit-or-token hint; GIVEN 500 THEN none, and at most 200 characters of the body", async () => {
    const hint = ' (rate limit or token: set github:token, see README "GitHub access")';
    for (const status of [401, 429]) {
      const f = fakeFetch({ [FILE]: { status, body: "no" } });
      await assert.rejects(githubFilesAt(api(f), repo, SHA, ["requirements.txt"], false), {
        message: `GitHub answered ${status} for requirements.txt at ${SHA} of acme/shop${hint}: no`,
      });
    }
    const body = "x".repeat(150) + "y".repeat(150);
    const f = fakeFetch({ [FILE]: { status: 500, body } });
    await assert.rejects(githubFilesAt(api(f), repo, SHA, ["requirements.txt"], false), {
      message: `GitHub answered 500 for requirements.txt at ${SHA} of acme/shop: ${"x".repeat(150)}${"y".repeat(50)}`,
    });
  });

  it("GIVEN a pinned commit: 404 with a token, 422, or 500 THEN not in the repository (no private-repo hint with a token), or GitHub's answer", async () => {
    const notThere = `touchdeploy:commit ${SHA} is not in acme/shop on GitHub`;
    await assert.rejects(
      githubFilesAt(api(fakeFetch({}), "t0ken"), repo, SHA, ["requirements.txt"], true),
      { message: notThere },
    );
    const unprocessable = fakeFetch({ [COMMIT]: { status: 422, body: "No commit found" } });
    await assert.rejects(
      githubFilesAt(api(unprocessable, "t0ken"), repo, SHA, ["requirements.txt"], true),
      { message: notThere },
    );
    const broken = fakeFetch({ [COMMIT]: { status: 500, body: "oops" } });
    await assert.rejects(githubFilesAt(api(broken), repo, SHA, ["requirements.txt"], true), {
      message: `GitHub answered 500 for commit ${SHA} of acme/shop: oops`,
    });
    assert.deepEqual(
      broken.requests.map((r) => r.url),
      [`https://api.github.test${COMMIT}`],
      "no file is read after a failed commit check",
    );
  });
});

describe("local repositories that cannot be read", () => {
  let scratch: string;
  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "td-local-"));
  });
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));
  const git = (dir: string, ...args: string[]) =>
    execFileSync("git", ["-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", ...args])
      .toString()
      .trim();

  it("GIVEN a directory that is no repository THEN it says so, naming the path", async () => {
    const plain = fs.mkdtempSync(path.join(scratch, "plain-"));
    await assert.rejects(localBranchHead(plain, "main"), {
      message: `touchdeploy:repoPath ${JSON.stringify(plain)} is not a git repository`,
    });
  });

  it("GIVEN a repository without any branch THEN the branches are `none`", async () => {
    const empty = path.join(scratch, "empty");
    git(scratch, "init", "-q", "-b", "main", empty);
    await assert.rejects(localBranchHead(empty, "main"), {
      message: `touchdeploy:branch "main" does not exist in ${empty} (branches: none): Could not find refs/heads/main.`,
    });
  });

  it("GIVEN a directory where a dependency file is configured THEN it fails (never read as an absent file)", async () => {
    const dir = path.join(scratch, "tree");
    git(scratch, "init", "-q", "-b", "main", dir);
    fs.mkdirSync(path.join(dir, "app", "requirements.txt"), { recursive: true });
    fs.writeFileSync(path.join(dir, "app", "requirements.txt", "inner"), "x\n");
    git(dir, "add", "-A");
    git(dir, "commit", "-qm", "a directory named like a file");
    await assert.rejects(
      localFilesAt(dir, git(dir, "rev-parse", "HEAD"), ["app/requirements.txt"]),
      {
        code: "ObjectTypeError",
      },
    );
  });
});
