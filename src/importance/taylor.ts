import * as tf from "@tensorflow/tfjs";
import { NumericError, UsageError } from "../errors";
import { chunkLabels, chunkLossGrad, LossMeter, mixedLoss, positionChunk, type LossSpec } from "../loss";
import type { LlamaModel } from "../model/llama";
import type { TeacherCache } from "../teacher";
import { mlpGroup, take64, taylorChannel } from "./reduce";
import { runWindows } from "../progress";
import type { CriterionContext, CriterionImpl, ScoreSink } from "./types";

/**
 * First-order Taylor importance of (1−α)·CE + α·KD, per sample (B = 1), reduced per layer as soon as a
 * layer's gradients exist (METHOD.md §4–5). "sd-taylor" uses the teacher cache; "ce-taylor" is α = 0.
 */
export interface WindowScore {
  /** Per layer, per channel: mean_k |W_g⊙G_g + W_u⊙G_u + (W_d⊙G_d)ᵀ| for this window. */
  perLayer: Float64Array[];
  loss: number;
  ce: number;
  kd: number;
}

/**
 * VJP of `model.head` (final RMSNorm, then · W_head) at rows `h` [n, H] for upstream dLogits [n, V].
 * Written out rather than taped: the product with the head is the most expensive step for large
 * vocabularies, and this way it runs once, as dLogits · E [n,V]·[V,H] for a tied head (no transpose),
 * instead of a forward recompute plus a transposed product. Only the cheap RMSNorm is taped. The
 * straightforward path and the float64 reference test check it against the model's own head.
 */
export function headVjp(model: LlamaModel, h: tf.Tensor2D, dLogits: tf.Tensor2D): tf.Tensor2D {
  const w = model.weights;
  const eps = model.config.rms_norm_eps;
  return tf.tidy(() => {
    let dNormed: tf.Tensor2D;
    if (w.lm_head) {
      dNormed = tf.getBackend() === "tensorflow" ? tf.matMul(dLogits, w.lm_head, false, true) : tf.matMul(dLogits, tf.transpose(w.lm_head));
    } else {
      dNormed = tf.matMul(dLogits, w.embed_tokens);
    }
    const norm = (x: tf.Tensor): tf.Tensor => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w.norm);
    return tf.grads(norm)([h], dNormed)[0] as tf.Tensor2D;
  });
}

/**
 * Layer-by-layer path: forward keeping each layer's input, analytic ∂L/∂logits per position chunk,
 * VJP through the head, then for l = L−1..0 a VJP of `layer(l)` w.r.t. (h_l, gate, up, down) with the
 * upstream gradient. Only one layer's weight gradients are alive at a time.
 */
export function taylorWindowLayerwise(model: LlamaModel, window: number[], w: number, teacher: TeacherCache | null, spec: LossSpec): WindowScore {
  const L = model.config.num_hidden_layers;
  const V = model.config.vocab_size;
  const T = window.length;
  const meter = new LossMeter(spec);
  const inputs: tf.Tensor2D[] = [];
  let dh: tf.Tensor2D | null = null;
  try {
    const ids = tf.tensor2d([window], [1, T], "int32");
    let h = model.embed(ids);
    ids.dispose();
    for (let l = 0; l < L; l++) {
      inputs.push(h);
      h = model.layer(l, h, 1, T);
    }
    const top = h;
    const chunk = positionChunk(V, T);
    const parts: tf.Tensor2D[] = [];
    try {
      for (let p0 = 0; p0 < T; p0 += chunk) {
        const n = Math.min(chunk, T - p0);
        const hc = tf.slice(top, [p0, 0], [n, -1]);
        try {
          const logits = model.head(hc);
          const tg = spec.alpha > 0 ? (teacher as TeacherCache).targets(w, p0, p0 + n, spec.temperature) : null;
          let cl;
          try {
            cl = chunkLossGrad(logits, chunkLabels([window], T, p0, p0 + n), tg ? tg.probs : null, spec);
          } finally {
            logits.dispose();
          }
          meter.add(cl, tg ? tg.plogp : 0);
          const g = headVjp(model, hc, cl.grad);
          cl.grad.dispose();
          parts.push(g);
        } finally {
          hc.dispose();
        }
      }
      if (!Number.isFinite(meter.loss)) throw new NumericError(`loss is ${meter.loss} on sample ${w} (CE ${meter.ce}, KD ${meter.kd})`);
      dh = parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor2D);
    } finally {
      top.dispose();
      for (const p of parts) if (p !== dh) p.dispose();
    }
    const perLayer: Float64Array[] = new Array(L);
    for (let l = L - 1; l >= 0; l--) {
      const lw = model.weights.layers[l];
      const x = inputs[l];
      const f = (hIn: tf.Tensor, g: tf.Tensor, u: tf.Tensor, d: tf.Tensor): tf.Tensor =>
        model.layer(l, hIn as tf.Tensor2D, 1, T, { ...lw, gate_proj: g as tf.Tensor2D, up_proj: u as tf.Tensor2D, down_proj: d as tf.Tensor2D });
      // Layer 0 needs no gradient w.r.t. its input.
      const res =
        l > 0
          ? tf.grads(f)([x, lw.gate_proj, lw.up_proj, lw.down_proj], dh as tf.Tensor2D)
          : [null, ...tf.grads((g: tf.Tensor, u: tf.Tensor, d: tf.Tensor) => f(x, g, u, d))([lw.gate_proj, lw.up_proj, lw.down_proj], dh as tf.Tensor2D)];
      const [dx, gG, gU, gD] = res as [tf.Tensor2D | null, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      perLayer[l] = take64(taylorChannel(mlpGroup(lw), { gate: gG, up: gU, down: gD }));
      tf.dispose([gG, gU, gD]);
      (dh as tf.Tensor2D).dispose();
      dh = dx;
      x.dispose();
      inputs[l] = null as unknown as tf.Tensor2D;
      if (perLayer[l].some((v) => !Number.isFinite(v))) throw new NumericError(`non-finite importance in layer ${l} on sample ${w} (loss ${meter.loss})`);
    }
    return { perLayer, loss: meter.loss, ce: meter.ce, kd: meter.kd };
  } finally {
    for (const x of inputs) if (x && !x.isDisposed) x.dispose();
    if (dh && !dh.isDisposed) dh.dispose();
  }
}

/**
 * Straightforward path: one taped loss over the full logits and model.gradients over all MLP weights,
 * then the same reduction. Holds every layer's gradients at once; used to check the layerwise path.
 */
export function taylorWindowStraightforward(model: LlamaModel, window: number[], w: number, teacher: TeacherCache | null, spec: LossSpec): WindowScore {
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
      perLayer.push(take64(taylorChannel(mlpGroup(lw), { gate: g("gate_proj"), up: g("up_proj"), down: g("down_proj") })));
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
    const one = opts.path === "straightforward" ? taylorWindowStraightforward : taylorWindowLayerwise;
    await runWindows("score", from, count, T, opts, (w) => {
      const r = one(model, windows[w], w, teacher, spec);
      sink(r.perLayer, 1);
      return `loss ${r.loss.toFixed(4)}`;
    });
  },
};
