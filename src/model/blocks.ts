import * as tf from "@tensorflow/tfjs";
import { UsageError } from "../errors";
import type { ModelConfig } from "./config";
import { groupedAttention } from "./kernels";
import type { LayerActivations, LayerWeights, Projection } from "./causal-lm";

/**
 * The building blocks every family is made of, once. Rows are b·T + t; linear weights are held [in, out].
 * A family's decoderLayer (families/*.ts) composes them; their VJPs, in the same order, are in backward.ts.
 */

/** The decoding cache of one layer: keys (RoPE applied) and values of every position so far, [B·nKV, Tk, hd] each. */
export interface KV {
  k: tf.Tensor3D;
  v: tf.Tensor3D;
}

/** The hook points of one layer (hooks.ts); "resid" is the residual stream after it. */
export type LayerPoint = "attn.out" | "mlp.in" | "mlp.act" | "mlp.out" | "resid";

/**
 * Where a norm's x·r and r are saved for the backward: around attention's input and output, the MLP's
 * input and output, and per head of q and k.
 */
export type NormSlot = "attn_in" | "attn_out" | "mlp_in" | "mlp_out" | "q" | "k";

export const NORM_SAVED: Record<NormSlot, readonly [keyof LayerActivations, keyof LayerActivations]> = {
  attn_in: ["xhat1", "r1"],
  mlp_in: ["xhat2", "r2"],
  attn_out: ["xhatPa", "rPa"],
  mlp_out: ["xhatPf", "rPf"],
  q: ["qhat", "rq"],
  k: ["khat", "rk"],
};

/**
 * What the model hands a family's decoder layer: the layer's weights and shapes, its constants (built and
 * cached by the model, which knows positions and backends) and the three seams every block goes through:
 * projections (LoRA), norms (w or 1 + w, saved for the backward) and hook points.
 */
export interface LayerContext {
  readonly c: ModelConfig;
  readonly l: number;
  readonly B: number;
  readonly T: number;
  readonly w: LayerWeights;
  /** Cached keys/values of earlier positions, or null; `kv` receives this layer's (for the next step). */
  readonly past: KV | null;
  kv: KV | null;
  /** Set when the backward will run: the blocks save what it needs here. */
  readonly rec: LayerActivations | null;
  /** cos and sign-folded sin [1, T, 1, hd] at this call's positions (this layer's RoPE base), and the half swap [hd, hd]. */
  readonly rope: { cos: tf.Tensor4D; sin: tf.Tensor4D; swap: tf.Tensor2D };
  /** Scores are q·kᵀ times this. */
  readonly scale: number;
  /** The additive causal (and sliding-window) mask [Tq, past + Tq], or null where it hides nothing. */
  mask(Tq: number, past: number): tf.Tensor2D | null;
  /** xn·W (+ b) (+ LoRA branch) for one of the layer's projections. */
  proj(x: tf.Tensor2D, p: Projection): tf.Tensor2D;
  /** RMSNorm with the family's scale (w or 1 + w); with a slot, saved there for the backward. */
  norm(x: tf.Tensor2D, w: tf.Tensor1D, slot?: NormSlot): tf.Tensor2D;
  /** The hook at layers.l.<point> (resid.l), or x. */
  hook(point: LayerPoint, x: tf.Tensor2D): tf.Tensor2D;
}

/** Keys a query of layer l sees (itself included), or null for full causal attention. */
export function slidingWindow(c: ModelConfig, l: number): number | null {
  return c.layer_types[l] === "sliding_attention" ? c.sliding_window : null;
}

/** q_norm and k_norm: RMSNorm over each head of q and k, before RoPE (Qwen3, Gemma 3). */
export interface QkNorm {
  q_norm: tf.Tensor1D; // [hd]
  k_norm: tf.Tensor1D; // [hd]
}

/**
 * Causal self-attention with grouped keys/values (GQA), rows xn [B·T, H] → [B·T, H]:
 *   q, k, v = xn·q_proj (+ b), xn·k_proj (+ b), xn·v_proj (+ b)         [B, T, nH | nKV, hd]
 *   q, k = rope(qk_norm(q)), rope(qk_norm(k))                           (qk_norm only when given)
 *   o_proj(softmax(scale·q·kᵀ + mask)·v)                                 (query head i reads kv head ⌊i/(nH/nKV)⌋)
 * with the keys/values of earlier positions (L.past) in front; this call's go to L.kv.
 */
export function selfAttention(L: LayerContext, xn: tf.Tensor2D, qk?: QkNorm): tf.Tensor2D {
  const { c, B, T, rec, rope } = L;
  const nH = c.num_attention_heads;
  const nKV = c.num_key_value_heads;
  const hd = c.head_dim;
  const g = nH / nKV;
  let q = L.proj(xn, "q_proj").reshape([B, T, nH, hd]) as tf.Tensor4D;
  let k = L.proj(xn, "k_proj").reshape([B, T, nKV, hd]) as tf.Tensor4D;
  if (qk) {
    q = headNorm(L, q, qk.q_norm, "q");
    k = headNorm(L, k, qk.k_norm, "k");
  } else if (L.w.q_norm) {
    // the weights say this config has q/k norms: a family that did not pass them would compute another model
    throw new UsageError(`layer ${L.l}: the ${c.model_type} decoder layer does not apply q_norm/k_norm, but the weights hold them`);
  }
  q = applyRope(q, rope.cos, rope.sin, rope.swap);
  k = applyRope(k, rope.cos, rope.sin, rope.swap);
  const v = L.proj(xn, "v_proj").reshape([B, T, nKV, hd]);
  // The g query heads of one kv head are grouped into the row dimension, so K/V are never repeated (HF
  // repeat_kv): [B·nKV, g·T, hd].
  const qq = tf.mul(tf.transpose(q, [0, 2, 1, 3]).reshape([B * nKV, g * T, hd]), L.scale) as tf.Tensor3D;
  let kk = tf.transpose(k, [0, 2, 1, 3]).reshape([B * nKV, T, hd]) as tf.Tensor3D;
  let vv = tf.transpose(v, [0, 2, 1, 3]).reshape([B * nKV, T, hd]) as tf.Tensor3D;
  const past = L.past;
  const pastLen = past ? past.k.shape[1] : 0;
  if (past) {
    kk = tf.concat([past.k, kk], 1);
    vv = tf.concat([past.v, vv], 1);
  }
  if (rec) Object.assign(rec, { qq, kk, vv });
  const { ctx, probs } = groupedAttention(qq, kk, vv, L.mask(T, pastLen), g, !!rec);
  if (rec) rec.probs = probs!;
  const merged = tf.transpose(ctx.reshape([B, nH, T, hd]), [0, 2, 1, 3]).reshape([B * T, nH * hd]) as tf.Tensor2D;
  L.kv = { k: kk, v: vv };
  return L.proj(merged, "o_proj");
}

/** RMSNorm over the last axis of [B, T, heads, hd] with a [hd] weight. */
function headNorm(L: LayerContext, x: tf.Tensor4D, w: tf.Tensor1D, slot: NormSlot): tf.Tensor4D {
  return L.norm(tf.reshape(x, [-1, L.c.head_dim]) as tf.Tensor2D, w, slot).reshape(x.shape) as tf.Tensor4D;
}

/**
 * The gated MLP, rows xn [B·T, H] → [B·T, H]: down_proj(f(gate_proj(xn)) · up_proj(xn)), the product
 * [B·T, I_l] being the hook point mlp.act (the channels pruning removes).
 */
export function gatedMlp(L: LayerContext, xn: tf.Tensor2D, f: ModelConfig["hidden_act"]): tf.Tensor2D {
  const gate = L.proj(xn, "gate_proj");
  const { g, dg } = activation(gate, f, !!L.rec);
  const up = L.proj(xn, "up_proj");
  const act = L.hook("mlp.act", tf.mul(g, up));
  if (L.rec) Object.assign(L.rec, { xn2: xn, g, dg, up, act });
  return L.proj(act, "down_proj");
}

/** Where an RMSNorm records x·r and r for the backward. */
export interface NormRecord {
  xhat: tf.Tensor2D;
  r: tf.Tensor2D;
}

/**
 * RMSNorm over the last axis: (x·r)·w with r = (mean x² + eps)^(−1/2); `onePlus` multiplies by (1 + w)
 * instead (Gemma). x [N, D], w [D].
 */
export function rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number, onePlus: boolean, rec?: NormRecord): tf.Tensor2D {
  const ms = tf.mean(tf.square(x), -1, true);
  const r = tf.rsqrt(tf.add(ms, eps)) as tf.Tensor2D;
  const xhat = tf.mul(x, r) as tf.Tensor2D;
  if (rec) {
    rec.xhat = xhat;
    rec.r = r;
  }
  return tf.mul(xhat, normScale(w, onePlus));
}

/** The factor an RMSNorm multiplies by: w, or (1 + w). */
export function normScale(w: tf.Tensor1D, onePlus: boolean): tf.Tensor1D {
  return onePlus ? (tf.add(w, 1) as tf.Tensor1D) : w;
}

/** A LoRA branch on a projection: + scale·(drop(x)·A)·B with an optional inverted-dropout mask on x. */
export interface LinearBranch {
  A: tf.Tensor2D; // [in, r]
  B: tf.Tensor2D; // [r, out]
  scale: number;
  mask?: tf.Tensor2D; // [N, in]
}

/** The one linear seam: x·W (+ b) (+ LoRA branch). x [N, in], W [in, out] → [N, out]. */
export function linear(x: tf.Tensor2D, W: tf.Tensor2D, b?: tf.Tensor1D, branch?: LinearBranch): tf.Tensor2D {
  let y = tf.matMul(x, W) as tf.Tensor2D;
  if (b) y = tf.add(y, b);
  if (branch) {
    const xin = branch.mask ? (tf.mul(x, branch.mask) as tf.Tensor2D) : x;
    y = tf.add(y, tf.mul(tf.matMul(tf.matMul(xin, branch.A), branch.B), branch.scale));
  }
  return y;
}

/**
 * The gated MLP's activation f(gate) and, for the backward (`withDerivative`), f'(gate):
 *   silu(x) = x·σ(x),                       silu' = σ + silu·(1 − σ)
 *   gelu_tanh(x) = x/2·(1 + tanh(u)),       u = √(2/π)·(x + 0.044715·x³)
 *   gelu_tanh' = (1 + tanh u)/2 + x/2·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²)
 */
export function activation(x: tf.Tensor2D, act: "silu" | "gelu_pytorch_tanh", withDerivative: boolean): { g: tf.Tensor2D; dg: tf.Tensor2D | undefined } {
  if (act === "silu") {
    const sig = tf.sigmoid(x) as tf.Tensor2D;
    const g = tf.mul(x, sig) as tf.Tensor2D;
    return { g, dg: withDerivative ? (tf.add(sig, tf.sub(g, tf.mul(g, sig))) as tf.Tensor2D) : undefined };
  }
  const k = Math.sqrt(2 / Math.PI);
  const x2 = tf.square(x);
  const th = tf.tanh(tf.mul(tf.mul(x, tf.add(tf.mul(x2, 0.044715), 1)), k));
  const half = tf.mul(tf.add(th, 1), 0.5);
  const g = tf.mul(x, half) as tf.Tensor2D;
  if (!withDerivative) return { g, dg: undefined };
  const dg = tf.add(half, tf.mul(tf.mul(tf.mul(x, 0.5 * k), tf.sub(1, tf.square(th))), tf.add(tf.mul(x2, 3 * 0.044715), 1))) as tf.Tensor2D;
  return { g, dg };
}

/** z, or c·tanh(z/c) (Gemma's final_logit_softcapping c). */
export function softcap(z: tf.Tensor2D, c: number | null): tf.Tensor2D {
  return c === null ? z : (tf.mul(tf.tanh(tf.div(z, c)), c) as tf.Tensor2D);
}

/**
 * x·cos + rotate_half(x)·sin for x [.., hd]. The half swap is a product with the constant 0/1 permutation
 * `swap` (exact in float32): split/concat along the last axis are strided copies that cost ~10× more on wasm.
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D, swap: tf.Tensor2D): tf.Tensor4D {
  const hd = x.shape[3];
  const swapped = tf.matMul(tf.reshape(x, [-1, hd]) as tf.Tensor2D, swap).reshape(x.shape) as tf.Tensor4D;
  return tf.add(tf.mul(x, cos), tf.mul(swapped, sin));
}

/** The [hd, hd] half-swap permutation of rotate_half (symmetric: its own transpose). */
export function halfSwap(hd: number): Float32Array {
  const half = hd / 2;
  const p = new Float32Array(hd * hd);
  for (let j = 0; j < half; j++) {
    p[(j + half) * hd + j] = 1; // output j ← input j + d/2
    p[j * hd + j + half] = 1; // output j + d/2 ← input j
  }
  return p;
}

/**
 * Additive causal mask [Tq, Tk] for queries at positions past..past+Tq−1; with a window W a query at
 * position i sees keys i−W < j ≤ i (transformers' sliding_window_overlay: kv_idx > q_idx − W).
 */
export function causalMask(Tq: number, past: number, window: number | null, masked: number): Float32Array {
  const Tk = past + Tq;
  const m = new Float32Array(Tq * Tk);
  for (let i = 0; i < Tq; i++) {
    const pos = past + i;
    for (let j = 0; j < Tk; j++) if (j > pos || (window !== null && j <= pos - window)) m[i * Tk + j] = masked;
  }
  return m;
}
