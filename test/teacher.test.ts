import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { CancelledError, FormatError, UsageError } from "../src/errors";
import { headLossVjp } from "../src/importance/head-loss";
import { chunkLabels, LossMeter, mixedLoss, validateLossSpec, type LossSpec } from "../src/loss";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { modelFingerprint } from "../src/importance";
import { TeacherCache } from "../src/teacher";
import type { ProgressEvent } from "../src/types";
import { TINY_CONFIGS, randomIds, relError } from "./reference/configs";

function softmaxRow(z: ArrayLike<number>, off: number, V: number, tau: number): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, z[off + v] / tau);
  const p = new Float64Array(V);
  let s = 0;
  for (let v = 0; v < V; v++) s += p[v] = Math.exp(z[off + v] / tau - m);
  for (let v = 0; v < V; v++) p[v] /= s;
  return p;
}

describe("teacher cache", function () {
  const cfg = TINY_CONFIGS["gqa+llama3+tied"];
  const V = cfg.vocab_size;
  const T = 14;
  let model: CausalLM;
  let other: CausalLM;
  const windows = [11, 12, 13].map((s) => randomIds(T, V, s));
  let logits: Float32Array[]; // per window [T·V] straight from model.forward

  before(async () => {
    await initEngine();
    model = CausalLM.fromTensors(cfg, randomTensors(cfg, 21, 0.5));
    other = CausalLM.fromTensors(cfg, randomTensors(cfg, 22, 0.5));
    logits = windows.map((w) => {
      const t = model.forward([w]);
      const d = t.dataSync() as Float32Array;
      t.dispose();
      return Float32Array.from(d);
    });
  });
  after(() => {
    model.dispose();
    other.dispose();
  });

  it('"full" reproduces softmax(z/τ) of the model logits, with Σ p log p', async () => {
    const events: ProgressEvent[] = [];
    const c = await TeacherCache.build(model, windows, { topk: "full", batchWindows: 1 }, { onProgress: (e) => events.push(e) });
    assert.deepEqual(events.map((e) => [e.phase, e.done, e.total, e.tokens]), [["teacher", 1, 3, T], ["teacher", 2, 3, 2 * T], ["teacher", 3, 3, 3 * T]]);
    // two windows per pass: progress per batch, the same logits up to float32 rounding of the batched products
    const batched: number[] = [];
    const c2 = await TeacherCache.build(model, windows, { topk: "full", batchWindows: 2 }, { onProgress: (e) => batched.push(e.done) });
    assert.deepEqual(batched, [2, 3]);
    for (let w = 0; w < windows.length; w++) {
      const a = c.targets(w, 0, T, 1).probs;
      const b = c2.targets(w, 0, T, 1).probs;
      assert.ok(relError(Array.from(b), Array.from(a)).rel <= 1e-5, `window ${w}: batched teacher differs`);
    }
    assert.equal(c.k, V);
    assert.equal(c.bytes(), 3 * (T * V * 4 + T * 4 + T * 4));
    for (const tau of [0.2, 1, 2]) {
      const tg = c.targets(1, 3, 9, tau);
      let plogp = 0;
      let worst = 0;
      for (let r = 0; r < 6; r++) {
        const p = softmaxRow(logits[1], (3 + r) * V, V, tau);
        for (let v = 0; v < V; v++) {
          worst = Math.max(worst, Math.abs(tg.probs[r * V + v] - p[v]));
          if (p[v] > 0) plogp += p[v] * Math.log(p[v]);
        }
      }
      assert.ok(worst < 1e-5, `τ=${tau}: max |Δp| ${worst}`);
      assert.ok(Math.abs(tg.plogp - plogp) < 1e-4 * Math.max(1, Math.abs(plogp)), `τ=${tau}: Σ p log p ${tg.plogp} vs ${plogp}`);
    }
  });

  it("top-k keeps the k largest logits; p_τ is their renormalised softmax; the dropped-mass bound holds", async () => {
    const k = 8;
    const c = await TeacherCache.build(model, windows, { topk: k });
    assert.equal(c.bytes(), 3 * (T * k * 8 + T * 4 + T * 4));
    for (const tau of [0.2, 0.5, 1, 3]) {
      let maxDropped = 0;
      for (let w = 0; w < windows.length; w++) {
        const tg = c.targets(w, 0, T, tau);
        for (let t = 0; t < T; t++) {
          const z = logits[w].subarray(t * V, t * V + V);
          const order = Array.from(z.keys()).sort((a, b) => z[b] - z[a]);
          const top = new Set(order.slice(0, k));
          let zs = 0;
          for (const v of top) zs += Math.exp((z[v] - z[order[0]]) / tau);
          for (let v = 0; v < V; v++) {
            const want = top.has(v) ? Math.exp((z[v] - z[order[0]]) / tau) / zs : 0;
            assert.ok(Math.abs(tg.probs[t * V + v] - want) < 1e-5, `w${w} t${t} v${v} τ=${tau}: ${tg.probs[t * V + v]} vs ${want}`);
          }
          const full = softmaxRow(z, 0, V, tau);
          let dropped = 0;
          for (let v = 0; v < V; v++) if (!top.has(v)) dropped += full[v];
          maxDropped = Math.max(maxDropped, dropped);
        }
      }
      const st = c.tailStats(tau);
      assert.ok(st.maxTailBound >= maxDropped - 1e-6, `τ=${tau}: bound ${st.maxTailBound} < true dropped mass ${maxDropped}`);
      if (tau === 1) assert.ok(Math.abs(st.maxTailMass1 - maxDropped) < 1e-4, `τ=1 tail mass ${st.maxTailMass1} vs ${maxDropped}`);
    }
  });

  it("round-trips through JSON and validates the file", async () => {
    const c = await TeacherCache.build(model, windows.slice(0, 2), { topk: 5 });
    const back = TeacherCache.fromJSON(JSON.parse(JSON.stringify(c.toJSON())));
    assert.deepEqual(back.targets(1, 2, 7, 0.3), c.targets(1, 2, 7, 0.3));
    assert.deepEqual(back.fingerprint, c.fingerprint);
    const j = c.toJSON() as Record<string, unknown>;
    assert.throws(() => TeacherCache.fromJSON({ ...j, format: "x" }), FormatError);
    assert.throws(() => TeacherCache.fromJSON({ ...j, topk: 0 }), (e: Error) => e instanceof FormatError && /topk/.test(e.message));
    assert.throws(() => TeacherCache.fromJSON({ ...j, lse: ["AAAA", "AAAA"] }), (e: Error) => e instanceof FormatError && /lse\[0\]/.test(e.message));
    assert.throws(() => TeacherCache.fromJSON({ ...j, windows: [[1, 2]] }), (e: Error) => e instanceof FormatError && /windows\[0\]/.test(e.message));
  });

  it("refuses bad arguments, other windows, another teacher; cancels between windows", async () => {
    await assert.rejects(TeacherCache.build(model, windows, { topk: 0 }), UsageError);
    await assert.rejects(TeacherCache.build(model, [windows[0], windows[1].slice(1)], { topk: 4 }), UsageError);
    const c = await TeacherCache.build(model, windows.slice(0, 2), { topk: 4 });
    assert.throws(() => c.checkWindows([windows[1], windows[0]], 0, 2), UsageError);
    assert.throws(() => c.checkWindows(windows, 0, 3), UsageError);
    c.checkWindows(windows, 0, 2);
    c.checkTeacher(modelFingerprint(model));
    assert.throws(() => c.checkTeacher(modelFingerprint(other)), UsageError);
    const ctl = new AbortController();
    await assert.rejects(
      TeacherCache.build(model, windows, { topk: 4, batchWindows: 1 }, { signal: ctl.signal, onProgress: (e) => e.done === 1 && ctl.abort() }),
      CancelledError,
    );
  });
});

describe("loss: CE + KD fused with the head's backward (headLossVjp)", () => {
  before(async () => {
    await initEngine();
  });

  /**
   * Final hidden rows of B windows through headLossVjp in position chunks, against autograd of the taped
   * loss (mixedLoss of model.head) w.r.t. the same rows; teacher p_τ either sparse (top-k entries per row:
   * the gathered-rows path) or dense (all V entries: the dense-target path).
   */
  const check = (tied: boolean, k: number, alpha: number): void => {
    const cfg = parseConfig({ ...TINY_CONFIGS["gqa+llama3+tied"], vocab_size: 64, tie_word_embeddings: tied });
    const model = CausalLM.fromTensors(cfg, randomTensors(cfg, 31, 0.5));
    const B = 2;
    const T = 6;
    const V = cfg.vocab_size;
    const H = cfg.hidden_size;
    const spec: LossSpec = { alpha, temperature: 0.2, B, T };
    validateLossSpec(spec);
    const windows = [randomIds(T, V, 1), randomIds(T, V, 2)];
    // teacher: the top k of random logits per row, softmax at τ over them
    const zt = tf.randomNormal([B * T, V], 0, 2, "float32", 6).dataSync();
    const ids = new Int32Array(B * T * k);
    const pk = new Float32Array(B * T * k);
    const dense = new Float32Array(B * T * V);
    let plogp = 0;
    for (let r = 0; r < B * T; r++) {
      const order = Array.from({ length: V }, (_, v) => v).sort((x, y) => zt[r * V + y] - zt[r * V + x]).slice(0, k);
      const top = Float32Array.from(order, (v) => zt[r * V + v]);
      const p = softmaxRow(top, 0, k, spec.temperature);
      order.forEach((v, j) => {
        ids[r * k + j] = v;
        pk[r * k + j] = p[j];
        dense[r * V + v] = p[j];
        if (p[j] > 0) plogp += p[j] * Math.log(p[j]);
      });
    }
    const h = tf.randomNormal([B * T, H], 0, 1, "float32", 7) as tf.Tensor2D;
    const pT = tf.tensor2d(dense, [B * T, V]);
    const taped = tf.valueAndGrad((x: tf.Tensor) => mixedLoss(model.head(x as tf.Tensor2D).reshape([B, T, V]) as tf.Tensor3D, windows, alpha > 0 ? pT : null, plogp, spec))(h);
    const meter = new LossMeter(spec);
    meter.plogp = alpha > 0 ? plogp : 0;
    const got = new Float32Array(B * T * H);
    for (const [p0, p1] of [[0, 5], [5, 7], [7, 12]]) {
      const rows = tf.slice(h, [p0, 0], [p1 - p0, H]);
      const tg = alpha > 0 ? { k, ids: ids.slice(p0 * k, p1 * k), probs: pk.slice(p0 * k, p1 * k), plogp: 0 } : null;
      const r = headLossVjp(model, rows, chunkLabels(windows, T, p0, p1), tg, spec);
      got.set(r.dh.dataSync(), p0 * H);
      for (let i = 0; i < p1 - p0; i++) meter.add({ nllSum: r.nll[i], crossSum: r.cross[i] });
      if (p1 === 12) assert.equal(r.nll[p1 - p0 - 1], 0, "the last position of a window has no label");
      tf.dispose([r.dh, rows]);
    }
    const e = relError(got, taped.grad.dataSync());
    const value = taped.value.dataSync()[0];
    const what = `${tied ? "tied" : "untied"}, k ${k} (${8 * (k + 1) <= V ? "sparse" : "dense"} targets), α ${alpha}`;
    assert.ok(e.rel <= 1e-5, `${what}: ∂L/∂h rel ${e.rel}`);
    assert.ok(Math.abs(meter.loss - value) < 1e-5 * Math.abs(value), `${what}: loss ${meter.loss} vs ${value}`);
    tf.dispose([h, pT, taped.value, taped.grad]);
    model.dispose();
  };

  it("equals autograd of the taped loss: tied and untied head, sparse (top-k) and dense teacher targets, α 0.4 and 0", () => {
    for (const tied of [true, false]) {
      for (const k of [4, 64]) check(tied, k, 0.4);
      check(tied, 4, 0);
    }
  });

  it("CE and KD follow the definitions (float64): CE over B·(T−1) positions, KL over all B·T; bad specs are refused", () => {
    const spec: LossSpec = { alpha: 0.4, temperature: 0.5, B: 1, T: 4 };
    const cfg = parseConfig({ ...TINY_CONFIGS["gqa+llama3+tied"], vocab_size: 48 });
    const model = CausalLM.fromTensors(cfg, randomTensors(cfg, 32, 0.5));
    const V = cfg.vocab_size;
    const win = [3, 7, 1, 9];
    const h = tf.randomNormal([4, cfg.hidden_size], 0, 1, "float32", 8) as tf.Tensor2D;
    const z = model.head(h);
    const zz = z.dataSync();
    const k = 5;
    const ids = new Int32Array(4 * k);
    const probs = new Float32Array(4 * k);
    for (let r = 0; r < 4; r++) {
      const p = softmaxRow(Float32Array.from({ length: k }, (_, j) => j * 0.7 - r), 0, k, 1);
      for (let j = 0; j < k; j++) {
        ids[r * k + j] = (r * 11 + j * 3) % V;
        probs[r * k + j] = p[j];
      }
    }
    const r = headLossVjp(model, h, chunkLabels([win], 4, 0, 4), { k, ids, probs, plogp: 0 }, spec);
    let ce = 0;
    let cross = 0;
    for (let row = 0; row < 4; row++) {
      const lq = softmaxRow(zz, row * V, V, 1).map(Math.log);
      if (row < 3) ce -= lq[win[row + 1]];
      for (let j = 0; j < k; j++) cross -= probs[row * k + j] * lq[ids[row * k + j]];
    }
    const nll = r.nll.reduce((a, b) => a + b, 0);
    const cr = r.cross.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(nll - ce) < 1e-4 * ce, `Σ nll ${nll} vs ${ce}`);
    assert.ok(Math.abs(cr - cross) < 1e-4 * cross, `Σ cross ${cr} vs ${cross}`);
    assert.equal(r.nll[3], 0);
    tf.dispose([h, z, r.dh]);
    model.dispose();
    assert.throws(() => validateLossSpec({ alpha: 1.5, temperature: 1, B: 1, T: 4 }), UsageError);
    assert.throws(() => validateLossSpec({ alpha: 0.5, temperature: 0, B: 1, T: 4 }), UsageError);
    assert.throws(() => validateLossSpec({ alpha: 0.5, temperature: 1, B: 1, T: 1 }), UsageError);
  });
});
