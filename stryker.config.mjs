// StrykerJS over components/ (`npm run mutate`). Not run in CI: a full run takes about an hour
// here; the committed report lets the next run be incremental (only changed code and tests).
// @ts-check
import * as fs from "node:fs";
/** The files a mutant runs first, in this order (see tap.testFiles). */
const FIRST = [
  "hostSpecRules",
  "hostSpec",
  "contractRules",
  "rollout",
  "fingerprint",
  "contract",
  "hostScriptCommand",
  "fetchKey",
  "destroy",
  "containerArgs",
  "runtimeImage",
  "stackFiles",
  "configRules",
  "config",
  "source",
  "components",
  "program",
  "componentErrors",
  "hostRules",
];

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  mutate: ["components/**/*.ts"],
  testRunner: "tap",
  tap: {
    // The unit suite only (e2e and automation tests need Docker or the Pulumi CLI). A mutant
    // reruns the files that reach it in this order until one fails: cheap and focused files
    // first (no @pulumi/pulumi import, a second or less), the whole program and the host
    // script's corpus (5 s each) last, and componentErrors (which waits for an error a mutant
    // may remove) near them; any new file after them.
    testFiles: [
      ...FIRST.map((name) => `test/unit/${name}.test.ts`),
      // Every other unit test file but load.test.ts: it tests the load harness (nothing in
      // components/), with timing bounds a starved mutation run can miss.
      ...fs
        .readdirSync("test/unit")
        .filter((f) => f.endsWith(".test.ts") && f !== "load.test.ts")
        .filter((f) => !FIRST.includes(f.replace(/\.test\.ts$/, "")))
        .map((f) => `test/unit/${f}`),
    ],
    // Each test file runs as `node --import tsx FILE` with the TAP reporter; the hook records
    // which mutants a file reaches, so a mutant only reruns the files that reach it.
    nodeArgs: ["--import", "tsx", "--test-reporter=tap", "-r", "{{hookFile}}", "{{testFile}}"],
  },
  // Per test (here: per test file, the tap runner's unit) coverage.
  coverageAnalysis: "perTest",
  // The report doubles as the incremental file: mutants whose code and covering tests did not
  // change keep their result. `npm run mutate -- --force` reruns every mutant.
  incremental: true,
  incrementalFile: "reports/mutation/mutation.json",
  reporters: ["clear-text", "progress-append-only", "html"],
  htmlReporter: { fileName: "reports/mutation/mutation.html" },
  // A shared 2-core machine: two workers, and generous timeouts (a busy machine is not an
  // infinite loop).
  concurrency: 2,
  timeoutMS: 30000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 15,
  thresholds: { high: 90, low: 80, break: null },
};
