import { strict as assert } from "node:assert";
import { keptOverlap, meanStd, seedAgreement } from "../src/compare";
import { Session } from "../src/session";
import { cli } from "./support/cli";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

const STORIES = () => sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");

describe("compare: criteria × ratios over seeds", () => {
  it("mean, sample std and kept-set agreement", () => {
    const m = meanStd([1, 2, 3, 4]);
    assert.equal(m.mean, 2.5);
    assert.ok(Math.abs(m.std! - Math.sqrt(5 / 3)) < 1e-12);
    assert.equal(meanStd([7]).std, null);
    assert.equal(keptOverlap([[0, 1, 2], [5]], [[1, 2, 3], [5]]), 3 / 4);
    assert.equal(seedAgreement([[[0, 1]], [[0, 1]], [[0, 2]]]), (1 + 0.5 + 0.5) / 3);
    assert.equal(seedAgreement([[[0]]]), null);
  });

  it("Session.compare: calibrates once per seed, scores once per criterion and seed, matches a manual run, restores the session", async function () {
    requireShared(this);
    this.timeout(300_000);
    const s = await Session.load(STORIES260K());
    try {
      const calibration = { files: STORIES(), stories: "1-100", samples: 4, seqLen: 32 };
      const ppl = { file: STORIES(), stories: "501-512", seqLen: 32 };
      await s.calibrate({ ...calibration, seed: 9, teacher: false });
      const before = s.calibrationWindows;
      const calls = { calibrate: 0, score: 0, prune: 0 };
      for (const k of Object.keys(calls) as (keyof typeof calls)[]) {
        const orig = (s as unknown as Record<string, (...a: unknown[]) => unknown>)[k].bind(s);
        (s as unknown as Record<string, unknown>)[k] = (...a: unknown[]) => {
          calls[k]++;
          return orig(...a);
        };
      }
      const t = await s.compare({ criteria: ["ce-taylor", "magnitude"], ratios: [0.2, 0.4], seeds: [0, 1], calibration, ppl });
      assert.deepEqual(calls, { calibrate: 2, score: 4, prune: 8 });
      const raw = t.raw;
      assert.equal(raw.runs.length, 8);
      assert.equal(raw.summary.length, 4);
      for (const row of raw.summary) {
        const runs = raw.runs.filter((r) => r.criterion === row.criterion && r.ratio === row.ratio);
        assert.deepEqual(row.ppl, meanStd(runs.map((r) => r.ppl)));
        assert.equal(row.agreement, keptOverlap(runs[0].kept, runs[1].kept));
        assert.ok(row.ppl.mean > raw.baseline.ppl, "pruning raises perplexity");
        if (row.criterion === "magnitude") {
          assert.equal(row.ppl.std, 0); // data-free: every seed keeps the same channels
          assert.equal(row.agreement, 1);
        }
      }
      const ce = raw.summary.find((r) => r.criterion === "ce-taylor" && r.ratio === 0.4)!;
      assert.ok(ce.agreement! < 1 && ce.ppl.std! > 0, "calibration seeds change ce-taylor");
      assert.match(t.toText(), /ce-taylor\s+0\.400\s+[\d.]+\s+[\d.]+ ± [\d.]+/);
      // session restored: no pruning steps, the earlier calibration
      assert.equal(s.history.raw.length, 0);
      assert.equal(s.calibrationWindows, before);
      // one cell recomputed by hand
      await s.calibrate({ ...calibration, seed: 1, teacher: false });
      await s.score({ criterion: "ce-taylor", seed: 1 });
      s.prune({ ratio: 0.4 });
      const manual = await s.evaluate({ ppl });
      const cell = raw.runs.find((r) => r.criterion === "ce-taylor" && r.ratio === 0.4 && r.seed === 1)!;
      assert.equal(cell.ppl, manual.raw.ppl!.ppl);
      assert.deepEqual(cell.kept, s.originalIndices());
    } finally {
      s.dispose();
    }
  });

  it("CLI compare --json prints every run and the summary; refuses bad lists", async function () {
    requireShared(this);
    this.timeout(300_000);
    const r = await cli(["compare", "--model", STORIES260K(), "--criteria", "random", "--ratios", "0.3", "--seeds", "0,1", "--text", STORIES(), "--stories", "1-50", "--samples", "2", "--seq-len", "32", "--eval-text", STORIES(), "--eval-stories", "1-8", "--eval-seq-len", "32", "--tasks", "arc_easy", "--limit", "4", "--json"]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.runs.length, 2);
    assert.deepEqual(j.summary[0].ppl, meanStd(j.runs.map((x: { ppl: number }) => x.ppl)));
    // task accuracy: the average of each run, mean ± std over seeds
    assert.ok(j.runs.every((x: { tasks: Record<string, number> }) => typeof x.tasks.arc_easy === "number"));
    assert.deepEqual(j.summary[0].average, meanStd(j.runs.map((x: { average: number }) => x.average)));
    assert.equal(typeof j.baseline.average, "number");
    // evaluation stories 1-8 are calibration stories: the overlap is named
    assert.match(r.err, /warning: seed 0: calibration text overlaps the evaluation text/);
    const bad = await cli(["compare", "--model", STORIES260K(), "--criteria", "random", "--ratios", "0.3,1.2", "--seeds", "0", "--text", STORIES(), "--eval-text", STORIES()]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /--ratios: each ratio must satisfy 0 < ratio < 1, got 1.2/);
  });
});
