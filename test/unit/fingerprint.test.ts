// The dependency fingerprint: pure, and equal to what host/touchdeploy.sh computes. Expected
// values come from sha256sum (coreutils), never from the function under test.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import {
  dependencyFingerprint,
  dependencyText,
  encodeDependencyFile,
} from "../../components/fingerprint";

const sha256sum = (input: Buffer | string) =>
  execFileSync("sha256sum", { input }).toString().split(" ")[0];

describe("dependencyFingerprint", () => {
  it("GIVEN files THEN sha256 of 'PATH\\nsha256(bytes)\\n' per file in order, absent files as 'absent'", () => {
    assert.equal(
      dependencyFingerprint([
        { path: "requirements.txt", content: "flask==3.0\n" },
        { path: "Aptfile", content: null },
      ]),
      sha256sum(`requirements.txt\n${sha256sum("flask==3.0\n")}\nAptfile\nabsent\n`),
    );
  });
  it("GIVEN bytes that are not UTF-8 THEN exactly those bytes are hashed (as sha256sum does on the host)", () => {
    const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]);
    assert.equal(
      dependencyFingerprint([{ path: "a", content: latin1 }]),
      sha256sum(`a\n${sha256sum(latin1)}\n`),
    );
  });
  it("GIVEN text THEN its UTF-8 bytes are hashed", () => {
    assert.equal(
      dependencyFingerprint([{ path: "a", content: "é\n" }]),
      sha256sum(`a\n${sha256sum(Buffer.from("é\n", "utf8"))}\n`),
    );
  });
  it("GIVEN an empty file THEN the hash of nothing, not 'absent'", () => {
    assert.equal(
      dependencyFingerprint([{ path: "a", content: "" }]),
      sha256sum(`a\n${sha256sum("")}\n`),
    );
  });
  it("GIVEN the same files in another order THEN another fingerprint (order is the configured one)", () => {
    const a = { path: "a", content: "1" };
    const b = { path: "b", content: "2" };
    assert.equal(
      dependencyFingerprint([b, a]),
      sha256sum(`b\n${sha256sum("2")}\na\n${sha256sum("1")}\n`),
    );
    assert.notEqual(dependencyFingerprint([a, b]), dependencyFingerprint([b, a]));
  });
});

describe("dependencyText (build arguments only; the fingerprint never uses it)", () => {
  it("GIVEN UTF-8 bytes THEN the text; GIVEN Latin-1 bytes THEN one character per byte; GIVEN none THEN empty", () => {
    assert.equal(dependencyText(Buffer.from("café\n", "utf8")), "café\n");
    assert.equal(dependencyText(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])), "café\n");
    assert.equal(dependencyText(null), "");
  });
});

describe("encodeDependencyFile and dependencyText at their edges", () => {
  it("GIVEN an absent file THEN null, not the encoding of nothing", () => {
    assert.deepEqual(encodeDependencyFile({ path: "Aptfile", content: null }), {
      path: "Aptfile",
      base64: null,
    });
  });
  it("GIVEN text that is not ASCII THEN the same text (never re-read as bytes)", () => {
    assert.equal(dependencyText("café\n"), "café\n");
  });
});
