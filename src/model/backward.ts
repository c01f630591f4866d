import * as tf from "@tensorflow/tfjs";
import type { ModelConfig } from "./config";
import { NORM_SAVED, type NormSlot } from "./blocks";
import { flagsAreFast, groupedAttentionVjp, matMulAT, matMulBT } from "./kernels";
import type { LayerActivations, LayerWeights, CausalLM } from "./causal-lm";

/**
 * Hand-written vector–Jacobian products of the blocks (blocks.ts, same order and names), from the
 * activations `CausalLM.layerSaved` records; each family's decoderLayerVjp composes them as its
 * decoderLayer composes the blocks. Written out rather than taped because autograd replays every forward
 * op as several small kernels: for a small model the per-kernel dispatch, not the arithmetic, dominated
 * the importance pass (bench/NOTES.md). Only what Taylor importance needs is produced: gradients of the
 * MLP weights and of the hidden states; no attention weight gradients. Attention biases need no term of
 * their own (they are inside the saved q, k, v).
 * test/importance.test.ts checks the result against a float64 plain-loop backward, and
 * test/memory-path.test.ts and test/families-random.test.ts against autograd.
 */

/**
 * One sequence's MLP weight gradients, all [H, I]: down_proj's transposed (it is [I, H]), so that the
 * per-channel reduce pairs the three without a weight-sized transpose per window (bench/NOTES.md).
 */
export interface MlpGrads {
  gate: tf.Tensor2D; // [H, I]
  up: tf.Tensor2D; // [H, I]
  downT: tf.Tensor2D; // [H, I] = (∂L/∂W_d)ᵀ
}

/** What a family's decoderLayerVjp works from: the layer, its saved activations and the model's constants. */
export interface LayerVjpContext {
  readonly c: ModelConfig;
  readonly l: number;
  readonly B: number;
  readonly T: number;
  readonly w: LayerWeights;
  readonly a: LayerActivations;
  /** Whether ∂L/∂(layer input) is wanted; without it the MLP weight gradients are all that is computed. */
  readonly inputGrad: boolean;
  /** down_proj transposed ([H, I]) where the caller holds it: the down input gradient is then a plain product. */
  readonly downT?: tf.Tensor2D;
  /** Receives sequence b's MLP weight gradients (freed after the call). */
  onGrads(b: number, grads: MlpGrads): void;
  /** The factor a norm weight w multiplies by (w, or 1 + w). */
  normWeight(w: tf.Tensor1D): tf.Tensor1D;
  /** cos and sign-folded sin [T, hd] of this layer's RoPE at positions 0..T−1, and the half swap [hd, hd]. */
  rope(): { cos: tf.Tensor2D; sin: tf.Tensor2D; swap: tf.Tensor2D };
  /** The attention scale the forward used. */
  readonly scale: number;
}

/**
 * VJP of y = (x·r)⊙w with r = (mean x² + eps)^(−1/2), given x̂ = x·r and r:
 *     dx = r ⊙ (dx̂ − x̂ · mean(dx̂ ⊙ x̂)),   dx̂ = dy ⊙ w.
 */
export function rmsNormVjp(xhat: tf.Tensor2D, r: tf.Tensor2D, weight: tf.Tensor1D, dy: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const dxhat = tf.mul(dy, weight);
    const c = tf.mean(tf.mul(dxhat, xhat), -1, true);
    return tf.mul(tf.sub(dxhat, tf.mul(xhat, c)), r) as tf.Tensor2D;
  });
}

/** VJP of LayerContext.norm(x, w, slot), from what the forward saved in that slot. */
export function normVjp(V: LayerVjpContext, dy: tf.Tensor2D, w: tf.Tensor1D, slot: NormSlot): tf.Tensor2D {
  const [xhat, r] = NORM_SAVED[slot];
  return rmsNormVjp(V.a[xhat] as tf.Tensor2D, V.a[r] as tf.Tensor2D, V.normWeight(w), dy);
}

/**
 * VJP of gatedMlp: out = act·W_d, act = f(gate)·up, gate = xn·W_g, up = xn·W_u (the forward saved f(gate)
 * and f'(gate)). Each sequence's W_g, W_u, W_d gradients go to onGrads; returns ∂L/∂xn, or null when no
 * input gradient is wanted.
 */
export function gatedMlpVjp(V: LayerVjpContext, dOut: tf.Tensor2D): tf.Tensor2D | null {
  const { a, w, B, T } = V;
  // libtensorflow ran dOut·W_dᵀ as a transposed operand at 62 GFLOP/s, the plain product of that size at 106 (bench/NOTES.md)
  const dAct = V.downT ? (tf.matMul(dOut, V.downT) as tf.Tensor2D) : matMulBT(dOut, w.down_proj);
  const dUp = tf.mul(dAct, a.g) as tf.Tensor2D;
  const dGate = tf.mul(tf.mul(dAct, a.up), a.dg) as tf.Tensor2D;
  for (let b = 0; b < B; b++) {
    tf.tidy(() => {
      const rows = (x: tf.Tensor2D): tf.Tensor2D => (B === 1 ? x : tf.slice(x, [b * T, 0], [T, -1]));
      const xn = rows(a.xn2);
      const xnT = flagsAreFast() ? null : tf.transpose(xn);
      const gate = xnT ? (tf.matMul(xnT, rows(dGate)) as tf.Tensor2D) : matMulAT(xn, rows(dGate));
      const up = xnT ? (tf.matMul(xnT, rows(dUp)) as tf.Tensor2D) : matMulAT(xn, rows(dUp));
      V.onGrads(b, { gate, up, downT: matMulAT(rows(dOut), rows(a.act)) });
    });
  }
  if (!V.inputGrad) return null;
  return tf.add(matMulBT(dGate, w.gate_proj), matMulBT(dUp, w.up_proj)) as tf.Tensor2D;
}

/**
 * VJP of selfAttention w.r.t. its input xn: back through o_proj, the grouped softmax attention
 * (kernels.groupedAttentionVjp), the scale, RoPE (y = x⊙cos + (x·P)⊙sin ⇒ dx = dy⊙cos + (dy⊙sin)·P, P the
 * symmetric half swap), the per-head q/k norms when the forward applied them, and q/k/v_proj.
 */
export function selfAttentionVjp(V: LayerVjpContext, dOut: tf.Tensor2D): tf.Tensor2D {
  const { a, w, c, B, T } = V;
  const nH = c.num_attention_heads;
  const nKV = c.num_key_value_heads;
  const hd = c.head_dim;
  const g = nH / nKV;
  const dMerged = matMulBT(dOut, w.o_proj); // [B·T, nH·hd]
  const dCtx = tf.transpose(dMerged.reshape([B, T, nH, hd]), [0, 2, 1, 3]).reshape([B * nKV, g * T, hd]) as tf.Tensor3D;
  const { dqq, dkk, dvv } = groupedAttentionVjp(dCtx, a.qq, a.kk, a.vv, a.probs);
  // undo the grouping [B·nKV, g·T, hd] → [B, T, heads, hd], then RoPE
  const { cos, sin, swap } = V.rope();
  const cs = cos.reshape([1, T, 1, hd]);
  const sn = sin.reshape([1, T, 1, hd]);
  const unrope = (d: tf.Tensor3D, heads: number): tf.Tensor2D => {
    const rows = tf.transpose(d.reshape([B, heads, T, hd]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, T, heads, hd]
    const rot = tf.matMul(tf.mul(rows, sn).reshape([B * T * heads, hd]) as tf.Tensor2D, swap).reshape([B, T, heads, hd]);
    return tf.add(tf.mul(rows, cs), rot).reshape([B * T, heads * hd]) as tf.Tensor2D;
  };
  let dQ = unrope(tf.mul(dqq, V.scale) as tf.Tensor3D, nH);
  let dK = unrope(dkk, nKV);
  if (a.qhat) {
    // per-head norms: the norm VJP over rows of one head
    const perHead = (d: tf.Tensor2D, wn: tf.Tensor1D, slot: NormSlot, heads: number): tf.Tensor2D =>
      normVjp(V, d.reshape([B * T * heads, hd]) as tf.Tensor2D, wn, slot).reshape([B * T, heads * hd]) as tf.Tensor2D;
    dQ = perHead(dQ, w.q_norm!, "q", nH);
    dK = perHead(dK, w.k_norm!, "k", nKV);
  }
  const dV = tf.transpose(dvv.reshape([B, nKV, T, hd]), [0, 2, 1, 3]).reshape([B * T, nKV * hd]) as tf.Tensor2D;
  return tf.addN([matMulBT(dQ, w.q_proj), matMulBT(dK, w.k_proj), matMulBT(dV, w.v_proj)]) as tf.Tensor2D;
}

/**
 * Backward of decoder layer `l` for upstream dOut = ∂L/∂(layer output) [B·T, H], by the model's family
 * (its decoderLayerVjp). For each sequence b the MLP weight gradients of its rows alone (internal [in, out]
 * layout) go to `onGrads(b, grads)`, which must not keep them (they are freed after the call; per-sample
 * importance needs them per sequence). Returns ∂L/∂(layer input) when `inputGrad`: layer 0 needs none,
 * which skips its whole attention backward.
 */
export function layerVjp(
  model: CausalLM,
  l: number,
  a: LayerActivations,
  dOut: tf.Tensor2D,
  inputGrad: boolean,
  onGrads: (b: number, grads: MlpGrads) => void,
  /** Layer l's weights as tensors (model.withLayer gives them; a streamed model has them only while it runs). */
  lw: LayerWeights,
  /** lw.down_proj transposed, where the caller has it (see LayerVjpContext.downT). */
  downT?: tf.Tensor2D,
): tf.Tensor2D | null {
  const V: LayerVjpContext = {
    c: model.config,
    l,
    B: a.B,
    T: a.T,
    w: lw,
    a,
    inputGrad,
    downT,
    onGrads,
    normWeight: (w) => model.normWeight(w),
    rope: () => model.ropeParts(a.T, l),
    scale: model.attentionScale(),
  };
  return tf.tidy(() => model.family.decoderLayerVjp(V, dOut) as tf.Tensor2D) ?? null;
}

/** Dispose every tensor of a LayerActivations. */
export function disposeActivations(a: LayerActivations): void {
  tf.dispose([a.xhat1, a.r1, a.qq, a.kk, a.vv, a.probs, a.xhat2, a.r2, a.xn2, a.g, a.dg, a.up, a.act]);
  if (a.xhatPa) tf.dispose([a.xhatPa, a.rPa!, a.xhatPf!, a.rPf!]);
  if (a.qhat) tf.dispose([a.qhat, a.rq!, a.khat!, a.rk!]);
}
