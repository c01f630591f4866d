import * as tf from "@tensorflow/tfjs";
import { NumericError, UsageError } from "../errors";
import { chunkLabels, LossMeter, mixedLoss, positionChunk, type LossSpec } from "../loss";
import { disposeActivations, layerVjp } from "../model/layer-vjp";
import { layerActivationFloats, type LayerActivations, type LlamaModel } from "../model/llama";
import { headLossVjp } from "./head-loss";
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

/** Default of AccumulateOptions.keepActivationsMiB: all layers of models up to ~110M parameters at seq 128. */
export const KEEP_ACTIVATIONS_MIB = 64;

/**
 * Layer-by-layer path: a forward that keeps each layer's activations (within `keepMiB`; beyond it only
 * the layer input, and the layer is recomputed in the backward sweep), then per position chunk the loss
 * fused with the head's backward (headLossVjp), then for l = L−1..0 the hand-written layer backward
 * (layerVjp), each layer's MLP gradients reduced to channel scores and freed before the next layer.
 */
export function taylorWindowLayerwise(model: LlamaModel, window: number[], w: number, teacher: TeacherCache | null, spec: LossSpec, keepMiB = KEEP_ACTIVATIONS_MIB): WindowScore {
  const L = model.config.num_hidden_layers;
  const V = model.config.vocab_size;
  const T = window.length;
  const meter = new LossMeter(spec);
  const inputs: (tf.Tensor2D | null)[] = new Array(L).fill(null);
  const saved: (LayerActivations | null)[] = new Array(L).fill(null);
  let dh: tf.Tensor2D | null = null;
  try {
    const ids = tf.tensor2d([window], [1, T], "int32");
    let h = model.embed(ids);
    ids.dispose();
    let budget = keepMiB * 1024 * 1024;
    for (let l = 0; l < L; l++) {
      const bytes = 4 * layerActivationFloats(model.config, l, T);
      let next: tf.Tensor2D;
      if (bytes <= budget) {
        budget -= bytes;
        const r = model.layerSaved(l, h);
        saved[l] = r.saved;
        next = r.h;
        h.dispose();
      } else {
        inputs[l] = h;
        next = model.layer(l, h, 1, T);
      }
      h = next;
    }
    const top = h;
    const chunk = positionChunk(V, T);
    const parts: tf.Tensor2D[] = [];
    try {
      for (let p0 = 0; p0 < T; p0 += chunk) {
        const n = Math.min(chunk, T - p0);
        const hc = n === T ? top : tf.slice(top, [p0, 0], [n, -1]);
        try {
          const tg = spec.alpha > 0 ? (teacher as TeacherCache).sparseTargets(w, p0, p0 + n, spec.temperature) : null;
          const r = headLossVjp(model, hc, chunkLabels([window], T, p0, p0 + n), tg, spec);
          meter.add(r, tg ? tg.plogp : 0);
          parts.push(r.dh);
        } finally {
          if (hc !== top) hc.dispose();
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
      let a = saved[l];
      if (!a) {
        const r = model.layerSaved(l, inputs[l] as tf.Tensor2D);
        r.h.dispose();
        a = r.saved;
        (inputs[l] as tf.Tensor2D).dispose();
        inputs[l] = null;
      }
      let res;
      try {
        res = layerVjp(model, l, a, dh as tf.Tensor2D, l > 0);
      } finally {
        disposeActivations(a);
        saved[l] = null;
      }
      (dh as tf.Tensor2D).dispose();
      dh = res.dh;
      perLayer[l] = take64(taylorChannel(mlpGroup(model.weights.layers[l]), res.grads));
      tf.dispose([res.grads.gate, res.grads.up, res.grads.down]);
      if (perLayer[l].some((v) => !Number.isFinite(v))) throw new NumericError(`non-finite importance in layer ${l} on sample ${w} (loss ${meter.loss})`);
    }
    return { perLayer, loss: meter.loss, ce: meter.ce, kd: meter.kd };
  } finally {
    for (const x of inputs) if (x && !x.isDisposed) x.dispose();
    for (const a of saved) if (a) disposeActivations(a);
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
    const keep = opts.keepActivationsMiB ?? KEEP_ACTIVATIONS_MIB;
    if (!(keep >= 0)) throw new UsageError(`keepActivationsMiB must be ≥ 0, got ${keep}`);
    await runWindows("score", from, count, T, opts, (w) => {
      const r = opts.path === "straightforward" ? taylorWindowStraightforward(model, windows[w], w, teacher, spec) : taylorWindowLayerwise(model, windows[w], w, teacher, spec, keep);
      sink(r.perLayer, 1);
      return `loss ${r.loss.toFixed(4)}`;
    });
  },
};
