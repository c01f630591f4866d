import * as tf from "@tensorflow/tfjs";

/**
 * The building blocks every family is made of, once. Rows are b·T + t; linear weights are held [in, out].
 * The model (llama.ts) composes them per the parsed config; the hand-written backward (backward.ts) uses
 * their saved pieces.
 */

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
