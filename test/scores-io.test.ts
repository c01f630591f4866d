import { strict as assert } from "node:assert";
import { initEngine } from "../src/engine";
import { FormatError, UsageError } from "../src/errors";
import { accumulate, ImportanceScores } from "../src/importance";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { TINY_CONFIGS, randomIds } from "./reference/configs";
import { sliceMlpChannels } from "./support/slice";

describe("importance scores: JSON, fingerprint, reindex", function () {
  const cfg = TINY_CONFIGS["mqa+untied+head_dim16+per-layer-I"];
  const windows = [1, 2, 3].map((s) => randomIds(10, cfg.vocab_size, s));
  let model: CausalLM;
  let scores: ImportanceScores;

  before(async () => {
    await initEngine();
    model = CausalLM.fromTensors(cfg, randomTensors(cfg, 8, 0.3));
    scores = await accumulate(model, windows, null, null, { criterion: "ce-taylor", seed: 11 });
  });
  after(() => model.dispose());

  it("toJSON has criterion, samples, settings, scores[layer][channel] and the accumulator; fromJSON restores it", () => {
    const j = JSON.parse(JSON.stringify(scores.toJSON()));
    assert.equal(j.criterion, "ce-taylor");
    assert.equal(j.samples, 3);
    assert.deepEqual(j.settings, { alpha: 0, temperature: null, topk: null, seqLen: 10, seed: null });
    assert.equal(j.version, 2);
    assert.equal(j.windows[0].seed, 11);
    assert.deepEqual(j.scores.map((r: number[]) => r.length), [40, 24, 56]);
    assert.deepEqual(j.scores, scores.scores());
    assert.ok(j.sums[0][0] > 0 && Math.abs(j.sums[0][0] / 3 - j.scores[0][0]) < 1e-15);
    const back = ImportanceScores.fromJSON(j, "scores.json");
    assert.deepEqual(back.scores(), scores.scores());
    assert.equal(back.samples, 3);
    back.checkModel(model);
    assert.deepEqual(back.sums, scores.sums);
    assert.deepEqual(back.windows, scores.windows);
    // merged with itself: the same windows twice, refused
    assert.throws(() => back.merge(scores), (e: Error) => e instanceof UsageError && /share a window/.test(e.message));
    // a file with scores only rebuilds the accumulator from scores × samples
    const { sums: _s, ...noSums } = j;
    void _s;
    assert.deepEqual(ImportanceScores.fromJSON(noSums).scores().map((r) => r.map((v) => +v.toPrecision(12))), scores.scores().map((r) => r.map((v) => +v.toPrecision(12))));
  });

  it("fromJSON rejects malformed files with FormatError naming the field", () => {
    const j = JSON.parse(JSON.stringify(scores.toJSON()));
    const bad = (mut: (x: any) => void, field: RegExp) => {
      const c = JSON.parse(JSON.stringify(j));
      mut(c);
      assert.throws(() => ImportanceScores.fromJSON(c, "s.json"), (e: Error) => e instanceof FormatError && field.test(e.message) && /s\.json/.test(e.message), field.source);
    };
    assert.throws(() => ImportanceScores.fromJSON([], "s.json"), FormatError);
    bad((c) => (c.criterion = "obs"), /criterion/);
    bad((c) => delete c.criterion, /criterion/);
    bad((c) => (c.samples = -1), /samples/);
    bad((c) => (c.settings.alpha = 2), /settings\.alpha/);
    bad((c) => (c.settings.topk = 0), /settings\.topk/);
    bad((c) => c.scores[1].pop(), /scores\[1\]/);
    bad((c) => (c.scores[2][5] = null), /scores\[2\]\[5\]/);
    bad((c) => c.sums.pop(), /sums/);
    bad((c) => (c.modelFingerprint.intermediate_sizes = [1, 2]), /intermediate_sizes/);
    bad((c) => delete c.modelFingerprint, /modelFingerprint/);
    bad((c) => (c.format = "other"), /format/);
  });

  it("scores of another model are refused (weights or widths differ)", () => {
    const other = CausalLM.fromTensors(cfg, randomTensors(cfg, 9, 0.3));
    try {
      assert.throws(() => scores.checkModel(other), (e: Error) => e instanceof UsageError && /weightHash/.test(e.message));
    } finally {
      other.dispose();
    }
  });

  it("reindex keeps surviving channels in the given order and matches the pruned model", () => {
    const kept = [
      [0, 5, 7, 39],
      [23, 1],
      Array.from({ length: 56 }, (_, i) => 55 - i),
    ];
    const r = scores.reindex(kept);
    const s = scores.scores();
    assert.deepEqual(r.scores(), kept.map((k, l) => k.map((i) => s[l][i])));
    assert.deepEqual(r.modelFingerprint.intermediate_sizes, [4, 2, 56]);
    assert.throws(() => r.checkModel(model), UsageError);
    // slice the model the same way
    const pruned = sliceMlpChannels(model, kept);
    try {
      r.checkModel(pruned);
    } finally {
      pruned.dispose();
    }
    assert.throws(() => scores.reindex([[0], [0]]), UsageError);
    assert.throws(() => scores.reindex([[0, 0], [1], [2]]), (e: Error) => e instanceof UsageError && /twice/.test(e.message));
    assert.throws(() => scores.reindex([[40], [1], [2]]), (e: Error) => e instanceof UsageError && /outside/.test(e.message));
  });
});
