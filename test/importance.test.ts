import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { CancelledError, DataError, NumericError, UsageError } from "../src/errors";
import { accumulate, CRITERIA, ImportanceScores, type Criterion } from "../src/importance";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { loadModel } from "../src/model/load";
import { tinyStories, storyRange } from "../src/data/text";
import { calibrationWindows } from "../src/data/windows";
import { TeacherCache } from "../src/teacher";
import type { ProgressEvent } from "../src/types";
import { referenceImportance } from "./reference/importance-ref";
import { TINY_CONFIGS, randomIds, relError } from "./reference/configs";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";
import { sliceMlpChannels } from "./support/slice";
import { spearman } from "../src/stats";

const flat = (m: ArrayLike<number>[]) => m.flatMap((r) => Array.from(r));

/** |top-K(a) ∩ top-K(b)| / K, ties broken by lower index (as the pruner does). */
function keptOverlap(a: number[], b: number[], K: number): number {
  const top = (x: number[]) => new Set(x.map((v, i) => [v, i] as const).sort((p, q) => q[0] - p[0] || p[1] - q[1]).slice(0, K).map((p) => p[1]));
  const A = top(a);
  let n = 0;
  for (const i of top(b)) if (A.has(i)) n++;
  return n / K;
}

describe("importance: tiny random models", function () {
  const cfg = TINY_CONFIGS["mqa+untied+head_dim16+per-layer-I"];
  const tensors = randomTensors(cfg, 3, 0.3);
  let model: CausalLM;
  let other: CausalLM;
  const windows = [1, 2, 3, 4].map((s) => randomIds(16, cfg.vocab_size, s));
  let teacher: TeacherCache;

  before(async () => {
    console.log(`      backend: ${await initEngine()}`);
    model = CausalLM.fromTensors(cfg, tensors);
    other = CausalLM.fromTensors(cfg, randomTensors(cfg, 4, 0.3));
    teacher = await TeacherCache.build(model, windows, { topk: "full" });
  });
  after(() => {
    model.dispose();
    other.dispose();
  });

  it("sd-taylor (α=0.4, τ=0.2) and ce-taylor match the float64 hand-written backward on every tiny config", async () => {
    for (const [name, c] of Object.entries(TINY_CONFIGS)) {
      const t = randomTensors(c, 5, 0.3);
      const m = CausalLM.fromTensors(c, t);
      try {
        const ws = [randomIds(12, c.vocab_size, 9)];
        const tc = await TeacherCache.build(m, ws, { topk: "full" });
        for (const [crit, alpha] of [["sd-taylor", 0.4], ["ce-taylor", 0]] as const) {
          const s = await accumulate(m, ws, tc, null, { criterion: crit, alpha, temperature: 0.2 });
          const ref = referenceImportance(c, t, ws[0], { alpha, temperature: 0.2 });
          const e = relError(flat(s.scores()), flat(ref.scores));
          assert.ok(e.rel <= 1e-4, `${name} ${crit}: rel ${e.rel}`);
        }
      } finally {
        m.dispose();
      }
    }
  });

  it("sd-taylor against a different teacher network (student ≠ teacher) matches the float64 reference", async () => {
    const tTensors = randomTensors(cfg, 4, 0.3);
    const tc = await TeacherCache.build(other, windows.slice(0, 1), { topk: "full" });
    for (const tau of [0.2, 1]) {
      const s = await accumulate(model, windows.slice(0, 1), tc, null, { criterion: "sd-taylor", alpha: 0.7, temperature: tau });
      const ref = referenceImportance(cfg, tensors, windows[0], { alpha: 0.7, temperature: tau, teacher: { config: cfg, tensors: tTensors } });
      const e = relError(flat(s.scores()), flat(ref.scores));
      assert.ok(e.rel <= 1e-4, `τ=${tau}: rel ${e.rel}`);
    }
  });

  it("stage 2: a pruned student scored against the original's teacher cache matches the float64 reference", async () => {
    const kept = [[0, 3, 9, 20, 39], [1, 2, 23], [...Array(30).keys()].map((i) => 2 * i % 56)].map((k) => [...new Set(k)].sort((x, y) => x - y));
    const student = sliceMlpChannels(model, kept);
    try {
      const s = await accumulate(student, windows.slice(0, 2), teacher, null, { criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
      assert.deepEqual(s.modelFingerprint.intermediate_sizes, kept.map((k) => k.length));
      const st = student.toTensors();
      const r0 = referenceImportance(student.config, st, windows[0], { alpha: 0.4, temperature: 0.2, teacher: { config: cfg, tensors } });
      const r1 = referenceImportance(student.config, st, windows[1], { alpha: 0.4, temperature: 0.2, teacher: { config: cfg, tensors } });
      const want = r0.scores.map((a, l) => Array.from(a, (v, i) => (v + r1.scores[l][i]) / 2));
      const e = relError(flat(s.scores()), flat(want));
      assert.ok(e.rel <= 1e-4, `rel ${e.rel}`);
    } finally {
      student.dispose();
    }
  });

  it("layerwise and straightforward paths agree (≤ 1e-4 relative) for sd-taylor and ce-taylor", async () => {
    for (const [crit, alpha] of [["sd-taylor", 0.4], ["ce-taylor", 0]] as const) {
      const a = await accumulate(model, windows, teacher, null, { criterion: crit, alpha, temperature: 0.2, path: "layerwise" });
      const b = await accumulate(model, windows, teacher, null, { criterion: crit, alpha, temperature: 0.2, path: "straightforward" });
      const e = relError(flat(a.scores()), flat(b.scores()));
      console.log(`      ${crit}: layerwise vs straightforward rel ${e.rel.toExponential(2)}, elementwise ${e.elementwise.toExponential(2)}`);
      assert.ok(e.rel <= 1e-4, `${crit}: ${e.rel}`);
      assert.equal(a.samples, 4);
    }
  });

  // Identical on wasm and cpu; libtensorflow picks GEMM blockings by row count, so batches change float32 rounding there.
  it("batched windows give each sample the scores it gets alone (batch 1, 3 and the default)", async () => {
    for (const [crit, alpha] of [["sd-taylor", 0.4], ["ce-taylor", 0]] as const) {
      const one = await accumulate(model, windows, teacher, null, { criterion: crit, alpha, temperature: 0.2, batchWindows: 1 });
      for (const batchWindows of [3, undefined]) {
        const events: number[] = [];
        const b = await accumulate(model, windows, teacher, null, { criterion: crit, alpha, temperature: 0.2, batchWindows, onProgress: (e) => events.push(e.done) });
        const e = relError(flat(b.scores()), flat(one.scores()));
        console.log(`      ${crit}: batch ${batchWindows ?? "default"} vs 1: rel ${e.rel.toExponential(2)}; progress ${events.join(",")}`);
        assert.ok(e.rel <= 1e-5, `${crit} batch ${batchWindows}: ${e.rel}`);
        assert.equal(b.samples, 4);
        if (batchWindows === 3) assert.deepEqual(events, [3, 4]);
      }
    }
  });

  it("merge of two halves equals the whole; accumulate continues; merge refuses mismatches", async () => {
    const opts = { criterion: "sd-taylor" as Criterion, alpha: 0.4, temperature: 0.2, seed: 7 };
    const whole = await accumulate(model, windows, teacher, null, opts);
    const h1 = await accumulate(model, windows, teacher, null, { ...opts, from: 0, count: 2 });
    const h2 = await accumulate(model, windows, teacher, null, { ...opts, from: 2, count: 2 });
    const merged = h1.merge(h2);
    assert.equal(merged.samples, 4);
    const e = relError(flat(merged.scores()), flat(whole.scores()));
    assert.ok(e.rel <= 1e-12, `merged vs whole ${e.rel}`);
    // continuing the first half with the second half gives the same accumulator
    const h1b = await accumulate(model, windows, teacher, null, { ...opts, from: 0, count: 2 });
    await accumulate(model, windows, teacher, h1b, { ...opts, from: 2, count: 2 });
    assert.ok(relError(flat(h1b.scores()), flat(whole.scores())).rel <= 1e-12);

    const ce = await accumulate(model, windows, null, null, { criterion: "ce-taylor", seed: 7 });
    assert.throws(() => whole.merge(ce), (err: Error) => err instanceof UsageError && /criterion/.test(err.message));
    const otherSettings = await accumulate(model, windows, teacher, null, { ...opts, temperature: 0.5, count: 1 });
    assert.throws(() => whole.merge(otherSettings), (err: Error) => err instanceof UsageError && /settings/.test(err.message));
    const tOther = await TeacherCache.build(other, windows, { topk: "full" });
    const otherModel = await accumulate(other, windows, tOther, null, { ...opts, count: 1 });
    assert.throws(() => whole.merge(otherModel), (err: Error) => err instanceof UsageError && /different models/.test(err.message));
    // accumulate refuses scores of another model or other settings
    await assert.rejects(accumulate(other, windows, tOther, whole, opts), (err: Error) => err instanceof UsageError && /different model/.test(err.message));
    await assert.rejects(accumulate(model, windows, teacher, whole, { ...opts, alpha: 0.1 }), UsageError);
    const lp = await accumulate(model, windows, null, null, { criterion: "llm-pruner" });
    assert.throws(() => lp.merge(lp), (err: Error) => err instanceof UsageError && /not additive/.test(err.message));
  });

  it("every criterion gives finite scores of the right shapes; random is seeded", async () => {
    const widths = [40, 24, 56];
    for (const c of CRITERIA) {
      const s = await accumulate(model, windows, c === "sd-taylor" ? teacher : null, null, { criterion: c, alpha: 0.4, temperature: 0.2, seed: 1 });
      const sc = s.scores();
      assert.deepEqual(sc.map((r) => r.length), widths, c);
      assert.ok(sc.every((r) => r.every(Number.isFinite)), `${c}: non-finite score`);
      assert.ok(sc.every((r) => r.some((v) => v > 0)), `${c}: all-zero layer`);
      assert.ok(sc.every((r) => r.every((v) => v >= 0)), `${c}: negative score`);
    }
    const r1 = await accumulate(model, [], null, null, { criterion: "random", seed: 3 });
    const r2 = await accumulate(model, [], null, null, { criterion: "random", seed: 3 });
    const r3 = await accumulate(model, [], null, null, { criterion: "random", seed: 4 });
    assert.deepEqual(r1.scores(), r2.scores());
    assert.notDeepEqual(r1.scores(), r3.scores());
  });

  it("llm-pruner, magnitude and wanda match direct formulas", async () => {
    // magnitude: Σ|W| over gate column, up column, down row (internal layout)
    const mag = (await accumulate(model, [], null, null, { criterion: "magnitude" })).scores();
    const H = cfg.hidden_size;
    const sizes = [40, 24, 56];
    const hf = (l: number, k: string) => tensors.get(`model.layers.${l}.mlp.${k}.weight`)!.data;
    for (let l = 0; l < 3; l++) {
      const I = sizes[l];
      for (const i of [0, I - 1]) {
        let s = 0;
        for (let k = 0; k < H; k++) s += Math.abs(hf(l, "gate_proj")[i * H + k]) + Math.abs(hf(l, "up_proj")[i * H + k]) + Math.abs(hf(l, "down_proj")[k * I + i]);
        assert.ok(Math.abs(mag[l][i] - s) <= 1e-5 * s, `magnitude layer ${l} channel ${i}: ${mag[l][i]} vs ${s}`);
      }
    }
    // llm-pruner: batch-mean CE gradient, windows as one batch through model.gradients
    const g = model.gradients(
      windows,
      (logits) => {
        const [B, T, V] = logits.shape;
        const lp = tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, V]));
        const oh = tf.oneHot(tf.tensor2d(windows.map((w) => w.slice(1)), [B, T - 1], "int32"), V);
        return tf.neg(tf.div(tf.sum(tf.mul(lp, oh)), B * (T - 1))) as tf.Scalar;
      },
      (n) => /mlp\.(gate|up|down)_proj/.test(n),
    );
    const lp = (await accumulate(model, windows, null, null, { criterion: "llm-pruner" })).scores();
    const lpv = (await accumulate(model, windows, null, null, { criterion: "llm-pruner-vector" })).scores();
    for (let l = 0; l < 3; l++) {
      const I = sizes[l];
      const G = (k: string) => g.grads.get(`model.layers.${l}.mlp.${k}.weight`)!.dataSync();
      const W = (k: string) => model.weights.layers[l][k as "gate_proj"].dataSync();
      const [gg, gu, gd, wg, wu, wd] = [G("gate_proj"), G("up_proj"), G("down_proj"), W("gate_proj"), W("up_proj"), W("down_proj")];
      for (const i of [1, I - 2]) {
        let el = 0;
        let vg = 0;
        let vu = 0;
        let vd = 0;
        for (let k = 0; k < H; k++) {
          el += Math.abs(wg[k * I + i] * gg[k * I + i]) + Math.abs(wu[k * I + i] * gu[k * I + i]) + Math.abs(wd[i * H + k] * gd[i * H + k]);
          vg += wg[k * I + i] * gg[k * I + i];
          vu += wu[k * I + i] * gu[k * I + i];
          vd += wd[i * H + k] * gd[i * H + k];
        }
        const vec = Math.abs(vg) + Math.abs(vu) + Math.abs(vd);
        assert.ok(Math.abs(lp[l][i] - el) <= 1e-4 * el, `llm-pruner ${l}/${i}: ${lp[l][i]} vs ${el}`);
        assert.ok(Math.abs(lpv[l][i] - vec) <= 1e-3 * vec + 1e-9, `llm-pruner-vector ${l}/${i}: ${lpv[l][i]} vs ${vec}`);
      }
    }
    for (const t of g.grads.values()) t.dispose();
    // wanda: activation norms collected independently with forward hooks
    const sx = sizes.map(() => new Float64Array(H));
    const sa = sizes.map((I) => new Float64Array(I));
    for (const w of windows) {
      tf.tidy(() => {
        model.forward([w], {
          hooks: Object.fromEntries(
            sizes.flatMap((_, l) => [
              [`layers.${l}.mlp.in`, (xn: tf.Tensor2D) => void xn.arraySync().forEach((row) => row.forEach((v, k) => (sx[l][k] += v * v)))],
              [`layers.${l}.mlp.act`, (act: tf.Tensor2D) => void act.arraySync().forEach((row) => row.forEach((v, i) => (sa[l][i] += v * v)))],
            ]),
          ),
        });
      });
    }
    const wa = (await accumulate(model, windows, null, null, { criterion: "wanda" })).scores();
    for (let l = 0; l < 3; l++) {
      const I = sizes[l];
      for (const i of [0, I - 1]) {
        let s = 0;
        for (let k = 0; k < H; k++) {
          s += (Math.abs(hf(l, "gate_proj")[i * H + k]) + Math.abs(hf(l, "up_proj")[i * H + k])) * Math.sqrt(sx[l][k]);
          s += Math.abs(hf(l, "down_proj")[k * I + i]) * Math.sqrt(sa[l][i]);
        }
        assert.ok(Math.abs(wa[l][i] - s) <= 1e-4 * s, `wanda ${l}/${i}: ${wa[l][i]} vs ${s}`);
      }
    }
  });

  it("reports progress per window, cancels between windows keeping whole samples, and names the sample on NaN", async () => {
    const events: ProgressEvent[] = [];
    const ctl = new AbortController();
    const acc = ImportanceScores.create(model, "ce-taylor", { alpha: 0, temperature: null, topk: null, seqLen: 16, seed: null });
    await assert.rejects(
      accumulate(model, windows, null, acc, {
        criterion: "ce-taylor",
        batchWindows: 1,
        onProgress: (e) => {
          events.push(e);
          if (e.done === 2) ctl.abort();
        },
        signal: ctl.signal,
      }),
      CancelledError,
    );
    assert.equal(acc.samples, 2);
    assert.equal(events.length, 2);
    assert.equal(events[1].total, 4);
    assert.equal(events[1].tokens, 32);
    assert.ok(events[1].message && /loss/.test(events[1].message));
    const two = await accumulate(model, windows, null, null, { criterion: "ce-taylor", count: 2, batchWindows: 1 });
    assert.ok(relError(flat(acc.scores()), flat(two.scores())).rel <= 1e-12);

    // a NaN weight makes the loss NaN: NumericError names the sample
    const bad = randomTensors(cfg, 3, 0.3);
    bad.get("model.layers.1.self_attn.v_proj.weight")!.data[5] = NaN;
    const m = CausalLM.fromTensors(cfg, bad);
    try {
      await assert.rejects(accumulate(m, windows, null, null, { criterion: "ce-taylor", from: 2 }), (err: Error) => err instanceof NumericError && /sample 2/.test(err.message));
    } finally {
      m.dispose();
    }
  });

  it("refuses a teacher cache built on other windows and sd-taylor without a teacher", async () => {
    await assert.rejects(accumulate(model, windows, null, null, { criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 }), UsageError);
    const shifted = [windows[1], windows[0]];
    await assert.rejects(accumulate(model, shifted, teacher, null, { criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 }), /teacher cache/);
    await assert.rejects(accumulate(model, windows, null, null, { criterion: "bogus" as Criterion }), UsageError);
    await assert.rejects(accumulate(model, windows, null, null, { criterion: "ce-taylor", from: 3, count: 2 }), UsageError);
    await assert.rejects(accumulate(model, [[1, 2, cfg.vocab_size]], null, null, { criterion: "ce-taylor" }), (e: Error) => e instanceof DataError && /position 2/.test(e.message));
  });
});

describe("importance: stories260K", function () {
  this.timeout(600_000);
  let model: CausalLM;
  let windows: number[][];

  before(async function () {
    requireShared(this);
    await initEngine();
    const loaded = await loadModel(STORIES260K());
    model = loaded.model;
    const r = storyRange("1-200");
    windows = calibrationWindows({
      docs: tinyStories(sharedPath("data", "tinystories", "tinystories_valid_first1000.txt"), r.from, r.to),
      tokenizer: loaded.tokenizer!,
      samples: 16,
      seqLen: 128,
      seed: 0,
      stream: "importance-test",
    }).windows;
  });
  after(() => model?.dispose());

  it("sd-taylor (α=0.4, τ=0.2, exact teacher) on a 128-token window matches the float64 hand-written backward within 1e-3", async () => {
    const teacher = await TeacherCache.build(model, windows.slice(0, 1), { topk: "full" });
    const s = await accumulate(model, windows.slice(0, 1), teacher, null, { criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
    const ref = referenceImportance(model.config, model.toTensors(), windows[0], { alpha: 0.4, temperature: 0.2 });
    const e = relError(flat(s.scores()), flat(ref.scores));
    console.log(`      reference loss ${ref.loss.toFixed(6)} (CE ${ref.ce.toFixed(4)}, KD ${ref.kd.toFixed(4)}); score rel error ${e.rel.toExponential(2)}, elementwise ${e.elementwise.toExponential(2)}`);
    assert.ok(ref.kd > 0, "τ ≠ 1 must give a non-zero KD term against the same model");
    assert.ok(e.rel <= 1e-3, `rel ${e.rel}`);
    assert.ok(e.elementwise <= 1e-3, `elementwise ${e.elementwise}`);
  });

  it("teacher top-k (8, 32) vs exact: ranking agreement at τ = 0.2, 0.5, 1, and tensors back to baseline", async () => {
    model.disposeCaches();
    const baseline = tf.memory().numTensors;
    const ws = windows.slice(0, 12);
    const fullCache = await TeacherCache.build(model, ws, { topk: "full" });
    const caches = new Map<number, TeacherCache>();
    for (const k of [8, 32]) caches.set(k, await TeacherCache.build(model, ws, { topk: k }));
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const lines: string[] = [];
    for (const tau of [0.2, 0.5, 1]) {
      const opts = { criterion: "sd-taylor" as Criterion, alpha: 0.4, temperature: tau, seed: 0 };
      const exact = (await accumulate(model, ws, fullCache, null, opts)).scores();
      for (const [k, tc] of caches) {
        const s = (await accumulate(model, ws, tc, null, opts)).scores();
        const tail = tc.tailStats(tau);
        const rho = exact.map((row, l) => spearman(row, s[l]));
        const ov50 = exact.map((row, l) => keptOverlap(row, s[l], Math.floor(row.length / 2)));
        const ov90 = exact.map((row, l) => keptOverlap(row, s[l], Math.floor(row.length * 0.9)));
        lines.push(
          `τ=${tau} top-${k}: Spearman mean ${mean(rho).toFixed(6)} (min ${Math.min(...rho).toFixed(6)}), kept-50% overlap mean ${mean(ov50).toFixed(4)} (min ${Math.min(...ov50).toFixed(4)}), ` +
            `kept-90% overlap mean ${mean(ov90).toFixed(4)} (min ${Math.min(...ov90).toFixed(4)}), max score rel err ${relError(flat(s), flat(exact)).rel.toExponential(2)}; ` +
            `dropped mass at τ=1 mean ${tail.meanTailMass1.toExponential(2)} max ${tail.maxTailMass1.toExponential(2)}, bound at τ=${tau} mean ${tail.meanTailBound.toExponential(2)} max ${tail.maxTailBound.toExponential(2)}`,
        );
        assert.ok(Math.min(...ov50) > 0.5, `τ=${tau} top-${k} kept overlap ${ov50}`);
        assert.ok(Math.min(...rho) > 0.5, `τ=${tau} top-${k} Spearman ${rho}`);
      }
    }
    console.log(`      (${ws.length} windows × 128 tokens; cache bytes: full ${fullCache.bytes()}, top-8 ${caches.get(8)!.bytes()}, top-32 ${caches.get(32)!.bytes()})\n      ` + lines.join("\n      "));
    model.disposeCaches();
    assert.equal(tf.memory().numTensors, baseline, "tensor count after teacher build + accumulate");
  });
});
