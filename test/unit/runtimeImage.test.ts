// The runtime image's tag hashes what git tracks of runtime/ (issue 8 item 6): a stray file or
// a CRLF checkout gives the same tag; an edit to a tracked file does not. The expected hash is
// computed by a shell pipeline over `git ls-files`, not by components/.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { aptPackages, runtimeBuildArgs, runtimeContextHash } from "../../components/runtimeImage";

const PROJECT = path.join(__dirname, "..", "..");

const sha256sum = (input: Buffer | string) =>
  execFileSync("sha256sum", { input }).toString().split(" ")[0];

/** sha256 over "PATH\nsha256(bytes, CRLF read as LF)\n" per tracked file, by bash + coreutils. */
function shellHash(dir: string): string {
  const script =
    'git ls-files -z | sort -z | while IFS= read -r -d "" f; do ' +
    'printf "%s\\n%s\\n" "$f" "$(sed "s/\\r$//" "$f" | sha256sum | cut -d" " -f1)"; done | sha256sum | cut -d" " -f1';
  return execFileSync("bash", ["-c", script], { cwd: dir }).toString().trim();
}

describe("runtimeContextHash", () => {
  let scratch: string;
  let runtime: string;
  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "td-runtime-"));
    execFileSync("git", ["init", "-q", scratch]);
    runtime = path.join(scratch, "runtime");
    fs.cpSync(path.join(PROJECT, "runtime"), runtime, { recursive: true });
    execFileSync("git", ["-C", scratch, "add", "runtime"]);
  });
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it("GIVEN this repository's runtime/ THEN the hash of what git tracks, as a shell computes it", async () => {
    assert.equal(
      await runtimeContextHash(path.join(PROJECT, "runtime")),
      shellHash(path.join(PROJECT, "runtime")),
    );
    assert.equal(await runtimeContextHash(runtime), shellHash(runtime));
  });

  it("GIVEN an untracked .DS_Store and a CRLF checkout of a tracked file THEN the same hash", async () => {
    const before = await runtimeContextHash(runtime);
    fs.writeFileSync(path.join(runtime, ".DS_Store"), "\0\0\0\x01Bud1");
    fs.writeFileSync(path.join(runtime, "notes.txt~"), "editor backup");
    const ini = path.join(runtime, "uwsgi.ini");
    const lf = fs.readFileSync(ini, "utf8");
    fs.writeFileSync(ini, lf.replace(/\n/g, "\r\n"));
    try {
      assert.equal(await runtimeContextHash(runtime), before);
    } finally {
      fs.writeFileSync(ini, lf);
      fs.rmSync(path.join(runtime, ".DS_Store"));
      fs.rmSync(path.join(runtime, "notes.txt~"));
    }
  });

  it("GIVEN an edit to a tracked file THEN another hash", async () => {
    const before = await runtimeContextHash(runtime);
    const ini = path.join(runtime, "uwsgi.ini");
    const lf = fs.readFileSync(ini, "utf8");
    fs.writeFileSync(ini, `${lf}; changed\n`);
    try {
      assert.notEqual(await runtimeContextHash(runtime), before);
      assert.equal(await runtimeContextHash(runtime), shellHash(runtime));
    } finally {
      fs.writeFileSync(ini, lf);
    }
  });
});

describe("aptPackages", () => {
  it("GIVEN names, comments and blank lines THEN the names in order", () => {
    assert.deepEqual(aptPackages("# tools\npython3-yaml  libpq5\n\nlibxml2 # parser\n"), [
      "python3-yaml",
      "libpq5",
      "libxml2",
    ]);
  });
  it("GIVEN anything that is not a Debian package name THEN it refuses: the list reaches apt-get in a shell", () => {
    assert.throws(() => aptPackages("python3-yaml\n$(reboot)\n"), {
      message: 'Aptfile: "$(reboot)" is not a Debian package name (NAME or NAME/SUITE)',
    });
    assert.throws(() => aptPackages("-o APT::x\n"), {
      message: 'Aptfile: "-o" is not a Debian package name (NAME or NAME/SUITE)',
    });
  });
  it("GIVEN NAME/SUITE (apt-get's PKG/RELEASE) THEN kept as written, e.g. Django 4.2 from bookworm-backports", () => {
    assert.deepEqual(aptPackages("python3-django/bookworm-backports\nlibjs-jquery\ng++/sid\n"), [
      "python3-django/bookworm-backports",
      "libjs-jquery",
      "g++/sid",
    ]);
    // The example's own Aptfile.
    assert.deepEqual(
      aptPackages(fs.readFileSync(path.join(PROJECT, "examples/django-app/Aptfile"), "utf8")),
      ["python3-django/bookworm-backports", "libjs-jquery"],
    );
  });
  for (const bad of [
    "pkg/",
    "pkg/Bookworm",
    "pkg/a/b",
    "pkg/../x",
    "pkg;x",
    "pkg/$(x)",
    "/bookworm",
    "pkg/-x",
    "pkg/.",
    "pkg/bookworm;reboot",
    "p",
  ]) {
    it(`GIVEN ${JSON.stringify(bad)} THEN refused, naming it`, () => {
      assert.throws(() => aptPackages(`libjs-jquery\n${bad}\n`), {
        message: `Aptfile: ${JSON.stringify(bad)} is not a Debian package name (NAME or NAME/SUITE)`,
      });
    });
  }
});

describe("runtimeContextHash: where the build context sits", () => {
  let scratch: string;
  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "td-context-"));
    execFileSync("git", ["init", "-q", scratch]);
    fs.mkdirSync(path.join(scratch, "deploy", "runtime"), { recursive: true });
    fs.writeFileSync(path.join(scratch, "README.md"), "outside the context\n");
    fs.writeFileSync(path.join(scratch, "deploy", "runtime", "Dockerfile"), "FROM scratch\n");
    fs.writeFileSync(path.join(scratch, "deploy", "runtime", "uwsgi.ini"), "[uwsgi]\n");
    execFileSync("git", ["-C", scratch, "add", "-A"]);
    fs.writeFileSync(path.join(scratch, "deploy", "runtime", "untracked"), "not counted\n");
  });
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it("GIVEN a context two levels inside the repository THEN only its own tracked files, by their paths in it", async () => {
    const context = path.join(scratch, "deploy", "runtime");
    const expected = sha256sum(
      `Dockerfile\n${sha256sum("FROM scratch\n")}\nuwsgi.ini\n${sha256sum("[uwsgi]\n")}\n`,
    );
    assert.equal(shellHash(context), expected);
    assert.equal(await runtimeContextHash(context), expected);
  });

  it("GIVEN a tracked file deleted from the work tree THEN it is not counted (nor read)", async () => {
    const context = path.join(scratch, "deploy", "runtime");
    const dockerfile = path.join(context, "Dockerfile");
    fs.rmSync(dockerfile);
    try {
      assert.equal(
        await runtimeContextHash(context),
        sha256sum(`uwsgi.ini\n${sha256sum("[uwsgi]\n")}\n`),
      );
    } finally {
      fs.writeFileSync(dockerfile, "FROM scratch\n");
    }
  });

  it("GIVEN the repository's root as the context THEN every tracked file", async () => {
    assert.equal(await runtimeContextHash(scratch), shellHash(scratch));
  });
});

describe("runtimeContextHash outside a git work tree: every file but dot-files", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "td-nogit-"));
    const write = (name: string, content: Buffer | string) => {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), content);
    };
    for (const name of ["zeta", "mid", "alpha"]) write(name, `${name}\n`);
    write("uwsgi.ini", "a\r\nb\r\n");
    write("bin.dat", Buffer.from([0x00, 0x0d, 0x0a, 0x41]));
    write("latin.txt", Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0a]));
    write("sub/z.txt", "z\n");
    // Listed after sub/ by the directory, before sub/z.txt by path ("-" sorts before "/").
    write("sub-file", "s\n");
    write(".hidden", "dot-file\n");
    write(".cache/x", "inside a dot-directory\n");
    fs.symlinkSync("alpha", path.join(dir, "link"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("GIVEN text with CRLF, binary with NUL, Latin-1 bytes, a subdirectory and a symlink THEN the sorted files' bytes, CRLF read as LF in text only", async () => {
    assert.throws(() => execFileSync("git", ["-C", dir, "rev-parse"], { stdio: "ignore" }));
    const files: [string, Buffer | string][] = [
      ["alpha", "alpha\n"],
      ["bin.dat", Buffer.from([0x00, 0x0d, 0x0a, 0x41])],
      ["latin.txt", Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])],
      ["mid", "mid\n"],
      ["sub-file", "s\n"],
      ["sub/z.txt", "z\n"],
      ["uwsgi.ini", "a\nb\n"],
      ["zeta", "zeta\n"],
    ];
    const expected = sha256sum(
      files.map(([name, bytes]) => `${name}\n${sha256sum(bytes)}\n`).join(""),
    );
    assert.equal(await runtimeContextHash(dir), expected);
  });
});

describe("aptPackages and the build arguments", () => {
  it("GIVEN a name with something before or after it THEN refused", () => {
    assert.throws(() => aptPackages("-xy\n"), {
      message: 'Aptfile: "-xy" is not a Debian package name (NAME or NAME/SUITE)',
    });
    assert.throws(() => aptPackages("python3;reboot\n"), {
      message: 'Aptfile: "python3;reboot" is not a Debian package name (NAME or NAME/SUITE)',
    });
  });
  it("GIVEN an Aptfile of two lines and requirements THEN the packages space-separated and the requirements verbatim", () => {
    assert.deepEqual(
      runtimeBuildArgs("debian:bookworm-slim", [
        { path: "requirements.txt", content: "flask==3.0\n" },
        { path: "Aptfile", content: "libpq5\npython3-yaml\n" },
      ]),
      {
        BASE_IMAGE: "debian:bookworm-slim",
        APT_PACKAGES: "libpq5 python3-yaml",
        REQUIREMENTS: "flask==3.0\n",
      },
    );
  });
});
