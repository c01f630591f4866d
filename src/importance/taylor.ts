import * as tf from "@tensorflow/tfjs";
import { windowsPerPass } from "../engine";
import { NumericError, UsageError } from "../errors";
import { chunkLabels, LossMeter, mixedLoss, positionChunk, type LossSpec } from "../loss";
import { disposeActivations, layerVjp } from "../model/backward";
import { layerActivationFloats, type LayerActivations, type CausalLM } from "../model/causal-lm";
import { defaultKeepActivationsMiB } from "../resources";
import { headLossVjp } from "./head-loss";
import type { SparseTargets, TeacherCache } from "../teacher";
import { mlpGroupT, take64, taylorChannel } from "./reduce";
import { runWindowBatches } from "../progress";
import type { CriterionContext, CriterionImpl, ScoreSink } from "./types";

/**
 * First-order Taylor importance of (1−α)·CE + α·KD, per sample (B = 1), reduced per layer as soon as a
 * layer's gradients exist (docs/method.md, "Gradient with respect to the student logits" and "Importance"). "sd-taylor" uses the teacher cache; "ce-taylor" is α = 0.
 */
export interface WindowScore {
  /** Per layer, per channel: mean_k |W_g⊙G_g + W_u⊙G_u + (W_d⊙G_d)ᵀ| for this window. */
  perLayer: Float64Array[];
  loss: number;
  ce: number;
  kd: number;
}

/** Bytes of one window's saved activations over all layers. */
export function windowActivationBytes(model: CausalLM, T: number): number {
  let f = 0;
  for (let l = 0; l < model.config.num_hidden_layers; l++) f += layerActivationFloats(model.config, l, T);
  return 4 * f;
}

/**
 * Windows per batch (see windowsPerPass): as many as the activation budget holds with every layer saved, or, where
 * more fit with the layers beyond the budget recomputed in the backward sweep, as many as hold one layer's
 * activations within it. The recomputation (one more forward of those layers) costs less than running every
 * product at T rows instead of B·T: stories110M importance on the native backend, 16 windows of 128 tokens,
 * best of 3 interleaved rounds: 130 tok/s at 1 window per batch, 151 at 8 with recomputation (bench/NOTES.md).
 */
export function defaultBatchWindows(model: CausalLM, T: number, keepMiB: number): number {
  const budget = keepMiB * 1024 * 1024;
  let layer = 0;
  for (let l = 0; l < model.config.num_hidden_layers; l++) layer = Math.max(layer, 4 * layerActivationFloats(model.config, l, T));
  return windowsPerPass(Math.max(budget / windowActivationBytes(model, T), budget / layer));
}

/**
 * p_τ entries for rows p0..p1 of a batch (row b·T + pos is position pos of window ws[b]); Σ p log p of
 * each window's rows is added to plogp[b].
 */
function batchTargets(teacher: TeacherCache, ws: number[], T: number, p0: number, p1: number, tau: number, plogp: number[]): SparseTargets {
  const parts: SparseTargets[] = [];
  for (let b = Math.floor(p0 / T); b * T < p1; b++) {
    const t = teacher.sparseTargets(ws[b], Math.max(p0, b * T) - b * T, Math.min(p1, (b + 1) * T) - b * T, tau);
    plogp[b] += t.plogp;
    parts.push(t);
  }
  if (parts.length === 1) return parts[0];
  const k = parts[0].k;
  const ids = new Int32Array((p1 - p0) * k);
  const probs = new Float32Array((p1 - p0) * k);
  let o = 0;
  for (const t of parts) {
    ids.set(t.ids, o);
    probs.set(t.probs, o);
    o += t.ids.length;
  }
  return { k, ids, probs, plogp: NaN };
}

/**
 * Layer-by-layer path for a batch of B windows (ws: their indices in the teacher cache): a forward that
 * keeps each layer's activations (within `keepMiB`; beyond it only the layer input, and the layer is
 * recomputed in the backward sweep), then per chunk of positions the loss fused with the head's backward
 * (headLossVjp), then for l = L−1..0 the hand-written layer backward (layerVjp), each sample's MLP
 * gradients reduced to its channel scores and freed before the next. Sequences only meet in the shared
 * products, row by row, so batching leaves each sample's scores as they are (bit for bit on wasm and cpu;
 * within float32 rounding on tensorflow, whose GEMM blocking depends on the row count); it cuts the
 * kernels per token, which dominate on small models (bench/NOTES.md).
 */
export function taylorBatchLayerwise(model: CausalLM, windows: number[][], ws: number[], teacher: TeacherCache | null, spec: LossSpec, keepMiB = defaultKeepActivationsMiB(model.config)): WindowScore[] {
  const L = model.config.num_hidden_layers;
  const V = model.config.vocab_size;
  const B = windows.length;
  const T = spec.T;
  if (windows.some((x) => x.length !== T)) throw new UsageError(`taylorBatchLayerwise: every window must have ${T} tokens`);
  const meters = windows.map(() => new LossMeter(spec));
  const plogp = windows.map(() => 0);
  const inputs: (tf.Tensor2D | null)[] = new Array(L).fill(null);
  const saved: (LayerActivations | null)[] = new Array(L).fill(null);
  let dh: tf.Tensor2D | null = null;
  try {
    const ids = tf.tensor2d(windows, [B, T], "int32");
    let h = model.embed(ids);
    ids.dispose();
    let budget = keepMiB * 1024 * 1024;
    for (let l = 0; l < L; l++) {
      const bytes = 4 * B * layerActivationFloats(model.config, l, T);
      let next: tf.Tensor2D;
      if (bytes <= budget) {
        budget -= bytes;
        const r = model.layerSaved(l, h, B);
        saved[l] = r.saved;
        next = r.h;
        h.dispose();
      } else {
        inputs[l] = h;
        next = model.layer(l, h, B, T);
      }
      h = next;
    }
    const top = h;
    const N = B * T;
    const chunk = positionChunk(V, N);
    const parts: tf.Tensor2D[] = [];
    try {
      for (let p0 = 0; p0 < N; p0 += chunk) {
        const n = Math.min(chunk, N - p0);
        const hc = n === N ? top : tf.slice(top, [p0, 0], [n, -1]);
        try {
          const tg = spec.alpha > 0 ? batchTargets(teacher as TeacherCache, ws, T, p0, p0 + n, spec.temperature, plogp) : null;
          const r = headLossVjp(model, hc, chunkLabels(windows, T, p0, p0 + n), tg, spec);
          for (let i = 0; i < n; i++) meters[Math.floor((p0 + i) / T)].add({ nllSum: r.nll[i], crossSum: r.cross[i] });
          parts.push(r.dh);
        } finally {
          if (hc !== top) hc.dispose();
        }
      }
      meters.forEach((m, b) => {
        m.add({ nllSum: 0, crossSum: 0 }, plogp[b]);
        if (!Number.isFinite(m.loss)) throw new NumericError(`loss is ${m.loss} on sample ${ws[b]} (CE ${m.ce}, KD ${m.kd})`);
      });
      dh = parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor2D);
    } finally {
      top.dispose();
      for (const p of parts) if (p !== dh) p.dispose();
    }
    const perLayer: Float64Array[][] = windows.map(() => new Array(L));
    for (let l = L - 1; l >= 0; l--) {
      let a = saved[l];
      if (!a) {
        const r = model.layerSaved(l, inputs[l] as tf.Tensor2D, B);
        r.h.dispose();
        a = r.saved;
        (inputs[l] as tf.Tensor2D).dispose();
        inputs[l] = null;
      }
      let dIn: tf.Tensor2D | null;
      const act = a;
      try {
        // a streamed layer is uploaded for its backward step and disposed after it
        dIn = model.withLayer(l, (lw) => {
          const group = mlpGroupT(lw);
          try {
            return layerVjp(model, l, act, dh as tf.Tensor2D, l > 0, (b, g) => {
              const s = take64(taylorChannel(group, g));
              if (s.some((v) => !Number.isFinite(v))) throw new NumericError(`non-finite importance in layer ${l} on sample ${ws[b]} (loss ${meters[b].loss})`);
              perLayer[b][l] = s;
            }, lw, group.downT);
          } finally {
            group.downT.dispose();
          }
        });
      } finally {
        disposeActivations(a);
        saved[l] = null;
      }
      (dh as tf.Tensor2D).dispose();
      dh = dIn;
    }
    return meters.map((m, b) => ({ perLayer: perLayer[b], loss: m.loss, ce: m.ce, kd: m.kd }));
  } finally {
    for (const x of inputs) if (x && !x.isDisposed) x.dispose();
    for (const a of saved) if (a) disposeActivations(a);
    if (dh && !dh.isDisposed) dh.dispose();
  }
}

/** One window through the layerwise path (taylorBatchLayerwise with B = 1). */
export function taylorWindowLayerwise(model: CausalLM, window: number[], w: number, teacher: TeacherCache | null, spec: LossSpec, keepMiB = defaultKeepActivationsMiB(model.config)): WindowScore {
  return taylorBatchLayerwise(model, [window], [w], teacher, spec, keepMiB)[0];
}

/**
 * Straightforward path: one taped loss over the full logits and model.gradients over all MLP weights,
 * then the same reduction. Holds every layer's gradients at once; used to check the layerwise path.
 */
export function taylorWindowStraightforward(model: CausalLM, window: number[], w: number, teacher: TeacherCache | null, spec: LossSpec): WindowScore {
  const T = window.length;
  const V = model.config.vocab_size;
  const L = model.config.num_hidden_layers;
  const tg = spec.alpha > 0 ? (teacher as TeacherCache).targets(w, 0, T, spec.temperature) : null;
  const p = tg ? tf.tensor2d(tg.probs, [T, V]) : null;
  let res: { loss: number; grads: Map<string, tf.Tensor> };
  try {
    res = model.gradients([window], (logits) => mixedLoss(logits, [window], p, tg ? tg.plogp : 0, spec), (n) => /\.mlp\.(gate|up|down)_proj\.weight$/.test(n));
  } catch (e) {
    if (e instanceof NumericError) throw new NumericError(`${e.message} on sample ${w}`);
    throw e;
  } finally {
    p?.dispose();
  }
  const perLayer: Float64Array[] = [];
  try {
    for (let l = 0; l < L; l++) {
      const lw = model.weights.layers[l];
      const g = (k: string) => res.grads.get(`model.layers.${l}.mlp.${k}.weight`) as tf.Tensor2D;
      const group = mlpGroupT(lw);
      const gDownT = tf.transpose(g("down_proj"));
      try {
        perLayer.push(take64(taylorChannel(group, { gate: g("gate_proj"), up: g("up_proj"), downT: gDownT })));
      } finally {
        tf.dispose([group.downT, gDownT]);
      }
    }
  } finally {
    for (const t of res.grads.values()) t.dispose();
  }
  return { perLayer, loss: res.loss, ce: NaN, kd: NaN };
}

export const taylor: CriterionImpl = {
  async run(ctx: CriterionContext, sink: ScoreSink): Promise<void> {
    const { model, windows, from, count, teacher, opts, settings } = ctx;
    const alpha = settings.alpha ?? 0;
    const T = settings.seqLen as number;
    // accumulate() has already checked the teacher's vocabulary and windows
    if (alpha > 0 && !teacher) throw new UsageError(`criterion ${opts.criterion} with alpha ${alpha} needs a teacher cache`);
    const spec: LossSpec = { alpha, temperature: settings.temperature ?? 1, B: 1, T };
    const keep = opts.keepActivationsMiB ?? defaultKeepActivationsMiB(model.config);
    if (!(keep >= 0)) throw new UsageError(`keepActivationsMiB must be ≥ 0, got ${keep}`);
    const straight = opts.path === "straightforward";
    const batch = straight ? 1 : opts.batchWindows ?? defaultBatchWindows(model, T, keep);
    if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`batchWindows must be a positive integer, got ${batch}`);
    await runWindowBatches("score", from, count, T, opts, batch, (w0, n) => {
      const ws = Array.from({ length: n }, (_, i) => w0 + i);
      const rs = straight ? [taylorWindowStraightforward(model, windows[w0], w0, teacher, spec)] : taylorBatchLayerwise(model, ws.map((w) => windows[w]), ws, teacher, spec, keep);
      for (const r of rs) sink(r.perLayer, 1);
      return `loss ${(rs.reduce((a, r) => a + r.loss, 0) / rs.length).toFixed(4)}`;
    });
  },
};
