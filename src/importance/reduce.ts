import * as tf from "@tensorflow/tfjs";
import type { LayerWeights } from "../model/causal-lm";

/**
 * Per-channel reductions of an MLP group in the internal [in, out] layout: gate/up are [H, I] (channel i
 * = column i), down is [I, H] (channel i = row i). Pairing "channel i, hidden k" across the three.
 * Each returns a float32 [I] tensor; callers read it into float64 accumulators.
 */
export interface MlpGroup {
  gate: tf.Tensor2D; // [H, I]
  up: tf.Tensor2D; // [H, I]
  down: tf.Tensor2D; // [I, H]
}

/** The MLP group of one layer's weights. */
export function mlpGroup(lw: LayerWeights): MlpGroup {
  return { gate: lw.gate_proj, up: lw.up_proj, down: lw.down_proj };
}

/** An MLP group with down_proj transposed: all three [H, I] (channel i = column i). */
export interface MlpGroupT {
  gate: tf.Tensor2D; // [H, I]
  up: tf.Tensor2D; // [H, I]
  downT: tf.Tensor2D; // [H, I]
}

/**
 * The MLP group of one layer's weights with down_proj transposed; `downT` is a new tensor the caller disposes.
 * Taken once per layer and batch, not per window (the transpose per window and layer was 4.5 % of the
 * importance pass's kernel time on stories110M, bench/NOTES.md).
 */
export function mlpGroupT(lw: LayerWeights): MlpGroupT {
  return { gate: lw.gate_proj, up: lw.up_proj, downT: tf.transpose(lw.down_proj) };
}

/**
 * SDMPrune per-sample Taylor score (docs/method.md, "Importance"): mean_k |W_g⊙G_g + W_u⊙G_u + (W_d⊙G_d)ᵀ|, the signed
 * sum of the three modules taken before the absolute value, from weights and gradients with down's transposed
 * ((W_d⊙G_d)ᵀ = W_dᵀ⊙G_dᵀ). (The reference's ×100 is omitted: it only guarded bf16 and does not change rankings.)
 */
export function taylorChannel(w: MlpGroupT, g: MlpGroupT): tf.Tensor1D {
  // Step by step with each temporary freed as soon as it is used: every one is as large as a weight matrix,
  // and inside one tidy all seven stayed alive (~0.45 GB of the 1B importance pass's peak; bench/NOTES.md).
  const step = <T extends tf.Tensor>(f: () => T, ...done: tf.Tensor[]): T => {
    const r = f();
    tf.dispose(done);
    return r;
  };
  const gg = tf.mul(w.gate, g.gate);
  const uu = tf.mul(w.up, g.up);
  const s1 = step(() => tf.add(gg, uu), gg, uu);
  const dT = tf.mul(w.downT, g.downT);
  const s = step(() => tf.add(s1, dT), s1, dT);
  const a = step(() => tf.abs(s), s);
  return step(() => tf.mean(a, 0) as tf.Tensor1D, a);
}

/** LLM-Pruner param_first, element-wise: Σ_k |W⊙G| per module, modules summed (grouping "sum"). */
export function llmPrunerChannel(w: MlpGroup, g: MlpGroup): tf.Tensor1D {
  return tf.tidy(
    () =>
      tf.addN([
        tf.sum(tf.abs(tf.mul(w.gate, g.gate)), 0),
        tf.sum(tf.abs(tf.mul(w.up, g.up)), 0),
        tf.sum(tf.abs(tf.mul(w.down, g.down)), 1),
      ]) as tf.Tensor1D,
  );
}

/** LLM-Pruner vectorize: |Σ_k W⊙G| per module, modules summed. */
export function llmPrunerVectorChannel(w: MlpGroup, g: MlpGroup): tf.Tensor1D {
  return tf.tidy(
    () =>
      tf.addN([
        tf.abs(tf.sum(tf.mul(w.gate, g.gate), 0)),
        tf.abs(tf.sum(tf.mul(w.up, g.up), 0)),
        tf.abs(tf.sum(tf.mul(w.down, g.down), 1)),
      ]) as tf.Tensor1D,
  );
}

/** Σ|W| over the group. */
export function magnitudeChannel(w: MlpGroup): tf.Tensor1D {
  return tf.tidy(() => tf.addN([tf.sum(tf.abs(w.gate), 0), tf.sum(tf.abs(w.up), 0), tf.sum(tf.abs(w.down), 1)]) as tf.Tensor1D);
}

/**
 * Wanda over the group: Σ_k |W_g[k,i]|·‖x_k‖ + Σ_k |W_u[k,i]|·‖x_k‖ + Σ_k |W_d[i,k]|·‖a_i‖, with x the
 * post-norm MLP input (per hidden k) and a the intermediate activation (per channel i), norms over all
 * calibration tokens. `xNorm` [H], `aNorm` [I].
 */
export function wandaChannel(w: MlpGroup, xNorm: Float32Array, aNorm: Float32Array): tf.Tensor1D {
  return tf.tidy(() => {
    const H = w.gate.shape[0];
    const I = w.gate.shape[1];
    const xs = tf.tensor2d(xNorm, [H, 1]);
    const gu = tf.sum(tf.mul(tf.add(tf.abs(w.gate), tf.abs(w.up)), xs), 0);
    const d = tf.mul(tf.sum(tf.abs(w.down), 1), tf.tensor1d(aNorm));
    if (gu.shape[0] !== I) throw new Error("wanda: shape mismatch");
    return tf.add(gu, d) as tf.Tensor1D;
  });
}

/** Read a [I] tensor into a new float64 array and dispose it. */
export function take64(t: tf.Tensor): Float64Array {
  const d = t.dataSync();
  t.dispose();
  return Float64Array.from(d);
}
