// The dependency fingerprint: pure, and equal to what host/touchdeploy.sh computes (see e2e).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { dependencyFingerprint } from "../../components/fingerprint";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

describe("dependencyFingerprint", () => {
  it("GIVEN files THEN it hashes 'PATH\\nsha256(content)\\n' per file, absent files as 'absent'", () => {
    const expected = sha(`requirements.txt\n${sha("flask==3.0\n")}\nAptfile\nabsent\n`);
    assert.equal(
      dependencyFingerprint([
        { path: "requirements.txt", content: "flask==3.0\n" },
        { path: "Aptfile", content: null },
      ]),
      expected,
    );
  });
  it("GIVEN non-ASCII text THEN its UTF-8 bytes are hashed (as sha256sum does on the host)", () => {
    const expected = sha(
      `a\n${createHash("sha256").update(Buffer.from("é\n", "utf8")).digest("hex")}\n`,
    );
    assert.equal(dependencyFingerprint([{ path: "a", content: "é\n" }]), expected);
  });
  it("GIVEN an empty file vs an absent file THEN they differ", () => {
    assert.notEqual(
      dependencyFingerprint([{ path: "a", content: "" }]),
      dependencyFingerprint([{ path: "a", content: null }]),
    );
  });
  it("GIVEN a changed file THEN the fingerprint changes; GIVEN the same files THEN it is stable", () => {
    const a = [{ path: "requirements.txt", content: "flask==3.0\n" }];
    const b = [{ path: "requirements.txt", content: "flask==3.1\n" }];
    assert.equal(dependencyFingerprint(a), dependencyFingerprint([...a]));
    assert.notEqual(dependencyFingerprint(a), dependencyFingerprint(b));
    assert.match(dependencyFingerprint(a), /^[0-9a-f]{64}$/);
  });
});
