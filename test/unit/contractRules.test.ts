// The contract's path and URL rules at their boundaries (the host script applies the same ones,
// hostRules.test.ts): the first reason each value is refused, exactly. No mocks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  isReservedRootName,
  relativePathProblem,
  repoProblem,
  rootProblem,
} from "../../components/contract";

describe("isReservedRootName", () => {
  it("GIVEN touchdeploy's names, or a prefix name with any suffix THEN reserved", () => {
    for (const name of [
      "releases",
      "current",
      ".ssh",
      ".lock",
      ".lock-fetch",
      ".tmp-x",
      ".current.new",
    ]) {
      assert.equal(isReservedRootName(name), true, name);
    }
  });
  it("GIVEN an exact name with a suffix, or a shorter name THEN not reserved", () => {
    for (const name of ["releases2", "release", "current.txt", "state2", ".sshx", ".reload"]) {
      assert.equal(isReservedRootName(name), false, name);
    }
  });
});

describe("rootProblem", () => {
  it("GIVEN absolute paths with dots inside names, and trailing slashes THEN accepted", () => {
    for (const root of ["/srv/app.v2", "/srv/.hidden/app", "/srv/app/"]) {
      assert.equal(rootProblem(root), undefined, root);
    }
  });
  it("GIVEN only slashes THEN it must not be /", () => {
    for (const root of ["/", "//", "///"]) {
      assert.equal(rootProblem(root), 'must not be "/"', root);
    }
  });
});

describe("relativePathProblem", () => {
  it("GIVEN an absolute path THEN it must be relative", () => {
    assert.equal(relativePathProblem("/srv/app"), "must be relative");
  });
  it("GIVEN a trailing slash or an empty component THEN empty components are refused", () => {
    for (const value of ["app/", "a//b"]) {
      assert.equal(relativePathProblem(value), 'must not contain ".." or empty components', value);
    }
  });
  it("GIVEN plain relative paths, with dashes inside THEN accepted", () => {
    for (const value of ["app", "examples/hello-wsgi", "a-"]) {
      assert.equal(relativePathProblem(value), undefined, value);
    }
  });
});

describe("repoProblem", () => {
  it("GIVEN a control character THEN that first", () => {
    assert.equal(repoProblem("https://example.com/x.git\n"), "must not contain control characters");
  });
  it("GIVEN a leading - (an option to git) THEN that first", () => {
    assert.equal(repoProblem("-oProxyCommand=x"), 'must not start with "-"');
  });
  it("GIVEN a URL ending in - THEN accepted", () => {
    assert.equal(repoProblem("https://example.com/x-"), undefined);
  });
});
