// Spec output for people, then the closing `N passed, N failed` line that CI reads. It is computed from
// mocha's own run statistics; skipped (pending) tests are reported separately, never as passed.
// When scripts/run-tests.js runs several passes (the suite, then the same files on webgpu), it sets
// SDMPRUNE_TEST_STATS to a file: the counts go there, this pass prints a labelled line that is not in the
// closing-line format, and run-tests.js prints the one closing line with the sum of all passes.
const fs = require("node:fs");
const Mocha = require("mocha");

class ClosingLineReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats;
      const statsFile = process.env.SDMPRUNE_TEST_STATS;
      if (statsFile) {
        fs.writeFileSync(statsFile, JSON.stringify({ passes: s.passes, failures: s.failures, pending: s.pending }));
        const label = process.env.SDMPRUNE_TEST_PASS || "this pass";
        process.stdout.write(`\n[${label}] passes ${s.passes}, failures ${s.failures}, skipped ${s.pending}\n`);
        return;
      }
      const skipped = s.pending ? `, ${s.pending} skipped` : "";
      process.stdout.write(`\n${s.passes} passed, ${s.failures} failed${skipped}\n`);
    });
  }
}
module.exports = ClosingLineReporter;
