// StrykerJS over components/ (`npm run mutate`). Not run in CI: a full run takes about an hour
// here; the committed report lets the next run be incremental (only changed code and tests).
// @ts-check
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
      ...[
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
      ].map((name) => `test/unit/${name}.test.ts`),
      "test/unit/*.test.ts",
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
