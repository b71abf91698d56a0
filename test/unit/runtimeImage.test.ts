// The runtime image's tag hashes what git tracks of runtime/ (issue 8 item 6): a stray file or
// a CRLF checkout gives the same tag; an edit to a tracked file does not. The expected hash is
// computed by a shell pipeline over `git ls-files`, not by components/.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { aptPackages, runtimeContextHash } from "../../components/runtimeImage";

const PROJECT = path.join(__dirname, "..", "..");

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
