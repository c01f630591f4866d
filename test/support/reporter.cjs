// Spec output for people, then the closing `N passed, N failed` line that CI reads. It is computed from
// mocha's own run statistics; skipped (pending) tests are reported separately, never as passed.
const Mocha = require("mocha");

class ClosingLineReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats;
      const skipped = s.pending ? `, ${s.pending} skipped` : "";
      process.stdout.write(`\n${s.passes} passed, ${s.failures} failed${skipped}\n`);
    });
  }
}
module.exports = ClosingLineReporter;
