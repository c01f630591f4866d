import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { IoError, UsageError } from "../src/errors";
import { intFlag } from "../src/cli/flags";
import { writeFileAtomic } from "../src/io/atomic";
import { Rng } from "../src/rng";

function draws(r: Rng, n = 8): number[] {
  return Array.from({ length: n }, () => r.next());
}

describe("typed errors: seeds, flags and OS errors", () => {
  it("seeds: above 2^53 refused (they cannot be told apart); seed and seed + 2^32 give different streams", () => {
    assert.throws(() => new Rng(2 ** 53), UsageError);
    assert.throws(() => Rng.derive(2 ** 53 + 2, "x"), /seed must be an integer in \[-\(2\^53 - 1\), 2\^53 - 1\].*cannot be represented/);
    assert.notDeepEqual(draws(new Rng(-3)), draws(new Rng(2 ** 32 - 3)));
    assert.throws(() => new Rng(1.5), UsageError);
    assert.notDeepEqual(draws(new Rng(5)), draws(new Rng(5 + 2 ** 32)));
    assert.notDeepEqual(draws(Rng.derive(5, "a")), draws(Rng.derive(5 + 2 ** 32, "a")));
    assert.deepEqual(draws(new Rng(2 ** 53 - 1)), draws(new Rng(2 ** 53 - 1)));
    // --seed 9007199254740993 used to be read as 9007199254740992 (the same windows as that seed).
    assert.throws(() => intFlag("seed", "9007199254740993", 0), /--seed must be an integer of magnitude at most 2\^53 - 1/);
    assert.equal(intFlag("seed", "9007199254740991", 0), 2 ** 53 - 1);
  });

  it("writing onto a directory is an IoError naming the path and EISDIR", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-typed-"));
    try {
      const target = path.join(dir, "scores.json");
      fs.mkdirSync(target);
      fs.writeFileSync(path.join(target, "keep"), "x");
      await assert.rejects(writeFileAtomic(target, (t) => fs.writeFileSync(t, "{}")), (e: Error) => {
        assert.ok(e instanceof IoError, String(e));
        assert.equal(e.path, target);
        assert.match(e.message, /scores\.json: cannot write: (EISDIR|ENOTEMPTY|EEXIST)/);
        return true;
      });
      assert.deepEqual(fs.readdirSync(dir), ["scores.json"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
