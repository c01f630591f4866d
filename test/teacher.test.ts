import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { CancelledError, FormatError, UsageError } from "../src/errors";
import { chunkLabels, chunkLossGrad, LossMeter, mixedLoss, validateLossSpec, type LossSpec } from "../src/loss";
import { LlamaModel } from "../src/model/llama";
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
  let model: LlamaModel;
  let other: LlamaModel;
  const windows = [11, 12, 13].map((s) => randomIds(T, V, s));
  let logits: Float32Array[]; // per window [T·V] straight from model.forward

  before(async () => {
    await initEngine();
    model = LlamaModel.fromTensors(cfg, randomTensors(cfg, 21, 0.5));
    other = LlamaModel.fromTensors(cfg, randomTensors(cfg, 22, 0.5));
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

describe("loss: CE + KD and the analytic logits gradient", () => {
  before(async () => {
    await initEngine();
  });

  it("chunked analytic ∂L/∂z equals autograd of the taped loss (B=2, α=0.4, τ=0.2), values agree", () => {
    const B = 2;
    const T = 6;
    const V = 11;
    const spec: LossSpec = { alpha: 0.4, temperature: 0.2, B, T };
    validateLossSpec(spec);
    const windows = [randomIds(T, V, 1), randomIds(T, V, 2)];
    const z = tf.randomNormal([B, T, V], 0, 2, "float32", 5) as tf.Tensor3D;
    const zt = tf.randomNormal([B * T, V], 0, 2, "float32", 6).dataSync();
    const probs = new Float32Array(B * T * V);
    let plogp = 0;
    for (let r = 0; r < B * T; r++) {
      const p = softmaxRow(zt, r * V, V, spec.temperature);
      for (let v = 0; v < V; v++) {
        probs[r * V + v] = p[v];
        if (p[v] > 0) plogp += p[v] * Math.log(p[v]);
      }
    }
    const pT = tf.tensor2d(probs, [B * T, V]);
    const taped = tf.valueAndGrad((x: tf.Tensor) => mixedLoss(x as tf.Tensor3D, windows, pT, plogp, spec))(z);
    const meter = new LossMeter(spec);
    const flatZ = z.reshape([B * T, V]) as tf.Tensor2D;
    const got = new Float32Array(B * T * V);
    for (const [p0, p1] of [[0, 5], [5, 7], [7, 12]]) {
      const chunk = tf.slice(flatZ, [p0, 0], [p1 - p0, V]);
      const cl = chunkLossGrad(chunk, chunkLabels(windows, T, p0, p1), probs.slice(p0 * V, p1 * V), spec);
      got.set(cl.grad.dataSync(), p0 * V);
      meter.add(cl, 0);
      cl.grad.dispose();
      chunk.dispose();
    }
    meter.plogp = plogp;
    const want = taped.grad.dataSync();
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < want.length; i++) {
      worst = Math.max(worst, Math.abs(got[i] - want[i]));
      scale = Math.max(scale, Math.abs(want[i]));
    }
    assert.ok(worst <= 1e-5 * scale, `max |Δ grad| ${worst} (scale ${scale})`);
    const value = taped.value.dataSync()[0];
    assert.ok(Math.abs(meter.loss - value) < 1e-5 * Math.abs(value), `loss ${meter.loss} vs ${value}`);
    // a float64 check of the definitions: CE over B·(T−1) positions, KL over all B·T
    const zz = z.dataSync();
    let ce = 0;
    let kl = 0;
    for (let r = 0; r < B * T; r++) {
      const lq = softmaxRow(zz, r * V, V, 1).map(Math.log);
      const pos = r % T;
      if (pos < T - 1) ce -= lq[windows[Math.floor(r / T)][pos + 1]];
      for (let v = 0; v < V; v++) if (probs[r * V + v] > 0) kl += probs[r * V + v] * (Math.log(probs[r * V + v]) - lq[v]);
    }
    ce /= B * (T - 1);
    kl /= B * T;
    assert.ok(Math.abs(meter.ce - ce) < 1e-4 * ce && Math.abs(meter.kd - kl) < 1e-4 * Math.max(kl, 1e-3), `CE ${meter.ce} vs ${ce}, KD ${meter.kd} vs ${kl}`);
    tf.dispose([z, pT, taped.value, taped.grad, flatZ]);
  });

  it("α = 0 is plain CE and needs no teacher; bad specs are refused", () => {
    const spec: LossSpec = { alpha: 0, temperature: 1, B: 1, T: 4 };
    const z = tf.tensor2d([[1, 2, 3], [0, 0, 0], [3, 1, 0], [5, 5, 5]]);
    const cl = chunkLossGrad(z, chunkLabels([[0, 2, 1, 0]], 4, 0, 4), null, spec);
    const g = cl.grad.arraySync();
    assert.deepEqual(g[3], [0, 0, 0], "last position has no label and no KD term");
    assert.ok(Math.abs(g[0].reduce((a, b) => a + b, 0)) < 1e-6);
    const lse0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    const lse2 = Math.log(Math.exp(3) + Math.exp(1) + 1);
    assert.ok(Math.abs(cl.nllSum - (lse0 - 3 + Math.log(3) + (lse2 - 3))) < 1e-5, `nll ${cl.nllSum}`);
    assert.equal(cl.crossSum, 0);
    tf.dispose([z, cl.grad]);
    assert.throws(() => validateLossSpec({ alpha: 1.5, temperature: 1, B: 1, T: 4 }), UsageError);
    assert.throws(() => validateLossSpec({ alpha: 0.5, temperature: 0, B: 1, T: 4 }), UsageError);
    assert.throws(() => validateLossSpec({ alpha: 0.5, temperature: 1, B: 1, T: 1 }), UsageError);
  });
});
