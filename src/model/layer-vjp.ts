import * as tf from "@tensorflow/tfjs";
import type { LayerActivations, LlamaModel } from "./llama";

/**
 * Hand-written vector–Jacobian products of the decoder (the importance pass's backward), from the
 * activations `LlamaModel.layerSaved` records. Written out rather than taped because autograd replays
 * every forward op as several small kernels: for a small model the per-kernel dispatch, not the
 * arithmetic, dominated the importance pass (bench/NOTES.md). Only what Taylor importance needs is
 * produced: gradients of the MLP weights and of the hidden states; no attention weight gradients.
 * test/importance.test.ts checks the result against a float64 plain-loop backward, and
 * test/memory-path.test.ts against autograd.
 */

export interface MlpGrads {
  gate: tf.Tensor2D; // [H, I]
  up: tf.Tensor2D; // [H, I]
  down: tf.Tensor2D; // [I, H]
}

/** Transposed products without transpose flags on wasm, where flagged products are 15–20× slower (ENGINES.md §4). */
function flagsAreFast(): boolean {
  return tf.getBackend() !== "wasm";
}

/** a·bᵀ. On wasm through whichever explicit transpose moves fewer values: bᵀ, or aᵀ plus the result's. */
export function matMulBT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (flagsAreFast()) return tf.matMul(a, b, false, true);
  const [n, k] = a.shape;
  const m = b.shape[0];
  if (m * k <= n * k + n * m) return tf.matMul(a, tf.transpose(b));
  return tf.transpose(tf.matMul(b, tf.transpose(a))) as tf.Tensor2D;
}

/** aᵀ·b (a holds activations: its transpose is small). */
export function matMulAT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return flagsAreFast() ? tf.matMul(a, b, true, false) : tf.matMul(tf.transpose(a), b);
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

/**
 * Backward of decoder layer `l` for upstream dOut = ∂L/∂(layer output) [T, H]: the MLP weight gradients
 * (internal [in, out] layout) and, when `inputGrad`, ∂L/∂(layer input). Layer 0 needs no input gradient,
 * which skips its whole attention backward. The caller disposes the returned tensors.
 */
export function layerVjp(model: LlamaModel, l: number, a: LayerActivations, dOut: tf.Tensor2D, inputGrad: boolean): { grads: MlpGrads; dh: tf.Tensor2D | null } {
  const c = model.config;
  const lw = model.weights.layers[l];
  type Out = { grads: MlpGrads; dh: tf.Tensor2D | null };
  return tf.tidy((): tf.TensorContainer => {
    // MLP: out = x + act·W_d, act = silu(gate)·up, gate = xn·W_g, up = xn·W_u
    const down = matMulAT(a.act, dOut);
    const dAct = matMulBT(dOut, lw.down_proj);
    const dUp = tf.mul(dAct, a.silu) as tf.Tensor2D;
    // silu'(g) = σ + g·σ·(1 − σ) = σ + silu − silu·σ
    const dGate = tf.mul(tf.mul(dAct, a.up), tf.add(a.sig, tf.sub(a.silu, tf.mul(a.silu, a.sig)))) as tf.Tensor2D;
    const xnT = flagsAreFast() ? null : tf.transpose(a.xn2);
    const gate = xnT ? (tf.matMul(xnT, dGate) as tf.Tensor2D) : matMulAT(a.xn2, dGate);
    const up = xnT ? (tf.matMul(xnT, dUp) as tf.Tensor2D) : matMulAT(a.xn2, dUp);
    const grads: MlpGrads = { gate, up, down };
    if (!inputGrad) return { grads, dh: null } as unknown as tf.TensorContainer;
    const dXn2 = tf.add(matMulBT(dGate, lw.gate_proj), matMulBT(dUp, lw.up_proj)) as tf.Tensor2D;
    const dX = tf.add(dOut, rmsNormVjp(a.xhat2, a.r2, lw.post_attention_layernorm, dXn2)) as tf.Tensor2D;

    // Attention: x = h + ctx·W_o; per kv head i, S = Q_i·K_iᵀ (+ causal mask), P = softmax(S), C = P·V_i
    const T = a.T;
    const nH = c.num_attention_heads;
    const nKV = c.num_key_value_heads;
    const hd = c.head_dim;
    const g = nH / nKV;
    const dMerged = matMulBT(dX, lw.o_proj); // [T, nH·hd]
    const dCtx = tf.transpose(dMerged.reshape([T, nH, hd]), [1, 0, 2]).reshape([nKV, g * T, hd]) as tf.Tensor3D;
    let dQQ: tf.Tensor3D;
    let dKK: tf.Tensor3D;
    let dVV: tf.Tensor3D;
    if (flagsAreFast()) {
      const dP = tf.matMul(dCtx, a.vv, false, true);
      const dS = tf.mul(a.probs, tf.sub(dP, tf.sum(tf.mul(dP, a.probs), -1, true))) as tf.Tensor3D;
      dVV = tf.matMul(a.probs, dCtx, true, false);
      dQQ = tf.matMul(dS, a.kk);
      dKK = tf.matMul(dS, a.qq, true, false);
    } else {
      // wasm: 2D products per kv head (its batched product runs outside XNNPACK, see LlamaModel.attention)
      const q: tf.Tensor2D[] = [];
      const k: tf.Tensor2D[] = [];
      const v: tf.Tensor2D[] = [];
      for (let i = 0; i < nKV; i++) {
        const pick = (t: tf.Tensor3D, rows: number): tf.Tensor2D => tf.reshape(tf.slice(t, [i, 0, 0], [1, rows, hd]), [rows, hd]);
        const p = tf.reshape(tf.slice(a.probs, [i, 0, 0], [1, g * T, T]), [g * T, T]) as tf.Tensor2D;
        const dC = pick(dCtx, g * T);
        const dP = tf.matMul(dC, tf.transpose(pick(a.vv, T)));
        const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))) as tf.Tensor2D;
        v.push(tf.matMul(tf.transpose(p), dC));
        q.push(tf.matMul(dS, pick(a.kk, T)));
        k.push(tf.matMul(tf.transpose(dS), pick(a.qq, g * T)));
      }
      dQQ = tf.stack(q) as tf.Tensor3D;
      dKK = tf.stack(k) as tf.Tensor3D;
      dVV = tf.stack(v) as tf.Tensor3D;
    }
    // Undo the grouping [nKV, g·T, hd] → [T, heads, hd], then RoPE: y = x⊙cos + (x·P)⊙sin ⇒ dx = dy⊙cos + (dy⊙sin)·P
    const { cos, sin, swap } = model.ropeParts(T);
    const unrope = (d: tf.Tensor3D, heads: number): tf.Tensor2D => {
      const rows = tf.transpose(d.reshape([heads, T, hd]), [1, 0, 2]) as tf.Tensor3D; // [T, heads, hd]
      const cs = cos.reshape([T, 1, hd]);
      const sn = sin.reshape([T, 1, hd]);
      const rot = tf.matMul(tf.mul(rows, sn).reshape([T * heads, hd]) as tf.Tensor2D, swap).reshape([T, heads, hd]);
      return tf.add(tf.mul(rows, cs), rot).reshape([T, heads * hd]) as tf.Tensor2D;
    };
    const dQ = unrope(tf.mul(dQQ, 1 / Math.sqrt(hd)) as tf.Tensor3D, nH);
    const dK = unrope(dKK, nKV);
    const dV = tf.transpose(dVV, [1, 0, 2]).reshape([T, nKV * hd]) as tf.Tensor2D;
    const dXn1 = tf.addN([matMulBT(dQ, lw.q_proj), matMulBT(dK, lw.k_proj), matMulBT(dV, lw.v_proj)]) as tf.Tensor2D;
    const dh = tf.add(dX, rmsNormVjp(a.xhat1, a.r1, lw.input_layernorm, dXn1)) as tf.Tensor2D;
    return { grads, dh } as unknown as tf.TensorContainer;
  }) as unknown as Out;
}

/** Dispose every tensor of a LayerActivations. */
export function disposeActivations(a: LayerActivations): void {
  tf.dispose([a.xhat1, a.r1, a.qq, a.kk, a.vv, a.probs, a.xhat2, a.r2, a.xn2, a.sig, a.silu, a.up, a.act]);
}
