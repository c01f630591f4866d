import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { NumericError, UsageError } from "../src/errors";
import { PruneHistory } from "../src/history";
import { parseConfig, paramCounts } from "../src/model/config";
import type { LayerWeights } from "../src/model/causal-lm";
import { accounting, floorCount, resolvePrune, selectChannels, sliceMlp, topKIndices } from "../src/prune";
import { keepForTarget, paperSettings, planSdmprune, stage1Keep } from "../src/recipe";
import { Rng } from "../src/rng";

const LLAMA_1B = parseConfig({
  hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8,
  vocab_size: 128256, tie_word_embeddings: true,
});

describe("prune: selection", () => {
  it("top-K keeps the largest scores, breaks ties by lower index, returns ascending indices", () => {
    const s = [0.5, 0.9, 0.5, 0.1, 0.9, 0.5];
    assert.deepEqual(topKIndices(s, 2), [1, 4]);
    // three-way tie at 0.5 for the last slot: lowest index (0) wins
    assert.deepEqual(topKIndices(s, 3), [0, 1, 4]);
    assert.deepEqual(topKIndices(s, 4), [0, 1, 2, 4]);
    // against a brute-force reference on random scores with many ties
    const rng = new Rng(3);
    const r = Array.from({ length: 50 }, () => Math.floor(rng.next() * 5));
    const ref = r.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 17).map((x) => x[1]).sort((a, b) => a - b);
    assert.deepEqual(topKIndices(r, 17), ref);
  });

  it("resolves ratio against the original width with floor, keep and mlpRatio against hidden", () => {
    const p = resolvePrune({ ratio: 0.2 }, 64, [172, 172], [172, 172]);
    assert.deepEqual(p.keep, [Math.floor(172 * 0.8), Math.floor(172 * 0.8)]);
    // incremental: ratio is cumulative against the original width
    const p2 = resolvePrune({ ratio: 0.4 }, 64, [172, 172], [137, 137]);
    assert.deepEqual(p2.keep, [Math.floor(172 * 0.6), Math.floor(172 * 0.6)]);
    assert.deepEqual(resolvePrune({ mlpRatio: 2.741 }, 2048, [8192], [8192]).keep, [5613]);
    assert.deepEqual(resolvePrune({ mlpRatio: 3.9 }, 2048, [8192], [8192]).keep, [7987]);
    assert.equal(floorCount(100 * 0.29), 29);
    const ranged = resolvePrune({ keep: 10, layers: [1, 3] }, 8, [16, 16, 16, 16], [16, 16, 16, 16]);
    assert.deepEqual(ranged.keep, [null, 10, 10, null]);
  });

  it("rejects bad requests with UsageError naming the problem", () => {
    const w = [172, 172];
    for (const ratio of [0, 1, -0.1, 1.5, NaN]) {
      assert.throws(() => resolvePrune({ ratio }, 64, w, w), (e: Error) => e instanceof UsageError && /0 < ratio < 1/.test(e.message));
    }
    assert.throws(() => resolvePrune({ keep: 173 }, 64, w, w), (e: Error) => e instanceof UsageError && /173.*172/.test(e.message));
    assert.throws(() => resolvePrune({ keep: 172 }, 64, w, w), /removes no channels/);
    assert.throws(() => resolvePrune({ keep: 0 }, 64, w, w), UsageError);
    assert.throws(() => resolvePrune({ keep: 10, ratio: 0.5 }, 64, w, w), /exactly one/);
    assert.throws(() => resolvePrune({ keep: 10, layers: [0, 3] }, 64, w, w), /outside the model's layers \[0, 2\)/);
    assert.throws(() => resolvePrune({ keep: 10, layers: [1, 1] }, 64, w, w), UsageError);
    // already pruned below the requested width
    assert.throws(() => resolvePrune({ ratio: 0.1 }, 64, w, [100, 100]), /current width is 100/);
  });

  it("global allocation keeps the same total by one ranking and at least one channel per layer", () => {
    const scores = [new Float32Array([9, 8, 7, 6]), new Float32Array([0.1, 0.2, 0.3, 0.4])];
    const plan = resolvePrune({ keep: 2, allocation: "global" }, 4, [4, 4], [4, 4]);
    const kept = selectChannels(scores, plan, [4, 4]);
    assert.deepEqual(kept, [[0, 1, 2], [3]]);
    const uni = selectChannels(scores, resolvePrune({ keep: 2 }, 4, [4, 4], [4, 4]), [4, 4]);
    assert.deepEqual(uni, [[0, 1], [2, 3]]);
    assert.throws(
      () => selectChannels([new Float32Array([1, NaN, 2, 3]), scores[1]], plan, [4, 4]),
      (e: Error) => e instanceof NumericError && /layer 0 channel 1/.test(e.message),
    );
  });
});

describe("prune: slicing and accounting", () => {
  it("slices gate/up columns and down rows; two slices equal one slice with composed indices, bit for bit", () => {
    const H = 3, I = 6;
    const rng = new Rng(1);
    const mk = (shape: [number, number]) => tf.tensor2d(Array.from({ length: shape[0] * shape[1] }, () => rng.normal()), shape);
    const lw = { gate_proj: mk([H, I]), up_proj: mk([H, I]), down_proj: mk([I, H]) } as unknown as LayerWeights;
    const before = tf.memory().numTensors;
    const a = sliceMlp(lw, [0, 2, 3, 5]);
    const b = sliceMlp({ ...lw, ...a }, [1, 3]);
    const once = sliceMlp(lw, [2, 5]);
    assert.deepEqual(b.gate_proj.shape, [H, 2]);
    assert.deepEqual(b.down_proj.shape, [2, H]);
    const g = lw.gate_proj.arraySync();
    assert.deepEqual(once.gate_proj.arraySync(), g.map((row) => [row[2], row[5]]));
    assert.deepEqual(once.down_proj.arraySync(), [lw.down_proj.arraySync()[2], lw.down_proj.arraySync()[5]]);
    for (const k of ["gate_proj", "up_proj", "down_proj"] as const) assert.deepEqual(b[k].dataSync(), once[k].dataSync());
    for (const s of [a, b, once]) tf.dispose(Object.values(s));
    assert.equal(tf.memory().numTensors, before);
    tf.dispose(Object.values(lw));
  });

  it("counts parameters the paper's way (LLaMA-3.2-1B numbers of docs/method.md, Recipe numbers)", () => {
    assert.equal(paramCounts(LLAMA_1B).total, 1_235_814_400);
    const after = { ...LLAMA_1B, intermediate_size: 5613 };
    const acc = accounting(LLAMA_1B, LLAMA_1B, after);
    assert.equal(acc.paramsAfter, 982_288_384);
    assert.equal(acc.channelsRemoved, (8192 - 5613) * 16);
    assert.equal(acc.paramsRemoved, 3 * 2048 * (8192 - 5613) * 16);
    assert.ok(Math.abs(100 * acc.totalParamsRemovedShare - 20.51) < 0.005);
    assert.ok(Math.abs(acc.mlpParamsRemovedShare - (8192 - 5613) / 8192) < 1e-12);
  });
});

describe("recipe", () => {
  it("stage 1 keeps floor(0.975·width): 7987 of 8192 as the reference, 167 of 172 on stories260K", () => {
    assert.deepEqual(stage1Keep([8192, 172]), [7987, 167]);
  });

  it("converts a parameter target to a uniform K and picks α/τ from the nearest paper row", () => {
    const k = keepForTarget(LLAMA_1B, 0.3)[0];
    const share = accounting(LLAMA_1B, LLAMA_1B, { ...LLAMA_1B, intermediate_size: k }).totalParamsRemovedShare;
    // nearest: one channel more or less per layer is further from the target
    const perChannel = (3 * 2048 * 16) / 1_235_814_400;
    assert.ok(Math.abs(share - 0.3) <= perChannel / 2 + 1e-12);
    assert.deepEqual([paperSettings(0.33).alpha, paperSettings(0.33).temperature], [0.42, 0.5]);
    assert.equal(paperSettings(0.25).target, 0.2); // tie → lower target
    const plan = planSdmprune(LLAMA_1B, { target: 0.4, temperature: 0.3 });
    assert.equal(plan.alpha, 0.1);
    assert.equal(plan.temperature, 0.3);
    assert.equal(plan.stage1Keep[0], 7987);
    assert.throws(() => planSdmprune(LLAMA_1B, { target: 0.01 }), /not below the stage-1 width/);
    assert.throws(() => planSdmprune(LLAMA_1B, { target: 0.99 }), /at most/);
    assert.throws(() => planSdmprune(LLAMA_1B, { target: 0 }), UsageError);
  });
});

describe("history", () => {
  it("maps current channel indices back to the original and pops exactly", () => {
    const h = new PruneHistory([6, 4]);
    const acc = accounting(LLAMA_1B, LLAMA_1B, LLAMA_1B);
    const base = { rule: "test", criterion: null, settings: {}, samples: 0, layers: [0, 2] as [number, number], allocation: "uniform" as const, accounting: acc };
    h.push({ ...base, widthsBefore: [6, 4], widthsAfter: [4, 4], kept: [[0, 2, 3, 5], null] });
    h.push({ ...base, widthsBefore: [4, 4], widthsAfter: [2, 2], kept: [[1, 3], [0, 3]] });
    assert.deepEqual(h.originalIndices(), [[2, 5], [0, 3]]);
    assert.equal(h.toOriginal(0, 1), 5);
    assert.deepEqual(h.widths(), [2, 2]);
    assert.throws(() => h.toOriginal(0, 2), UsageError);
    assert.equal(h.pop()!.step, 2);
    assert.deepEqual(h.originalIndices(), [[0, 2, 3, 5], [0, 1, 2, 3]]);
    assert.equal(h.table().rows.length, 1);
    h.pop();
    assert.equal(h.pop(), undefined);
  });
});
