import * as tf from "@tensorflow/tfjs";
import { flagsAreFast, matMulAT, matMulBT } from "./kernels";
import type { LayerActivations, LayerWeights, LlamaModel } from "./llama";

/**
 * Hand-written vector–Jacobian products of the decoder (the importance pass's backward), from the
 * activations `LlamaModel.layerSaved` records. Written out rather than taped because autograd replays
 * every forward op as several small kernels: for a small model the per-kernel dispatch, not the
 * arithmetic, dominated the importance pass (bench/NOTES.md). Only what Taylor importance needs is
 * produced: gradients of the MLP weights and of the hidden states; no attention weight gradients.
 * Attention biases need no term of their own (they are inside the saved q, k, v); Qwen3's per-head q/k
 * norms are undone after RoPE.
 * test/importance.test.ts checks the result against a float64 plain-loop backward, and
 * test/memory-path.test.ts against autograd.
 */

export interface MlpGrads {
  gate: tf.Tensor2D; // [H, I]
  up: tf.Tensor2D; // [H, I]
  down: tf.Tensor2D; // [I, H]
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
 * Backward of decoder layer `l` for upstream dOut = ∂L/∂(layer output) [B·T, H]. For each sequence b the
 * MLP weight gradients of its rows alone (internal [in, out] layout) go to `onGrads(b, grads)`, which must
 * not keep them (they are freed after the call; per-sample importance needs them per sequence). Returns
 * ∂L/∂(layer input) when `inputGrad`: layer 0 needs none, which skips its whole attention backward.
 */
export function layerVjp(
  model: LlamaModel,
  l: number,
  a: LayerActivations,
  dOut: tf.Tensor2D,
  inputGrad: boolean,
  onGrads: (b: number, grads: MlpGrads) => void,
  /** Layer l's weights as tensors (model.withLayer gives them; a streamed model has them only while it runs). */
  lw: LayerWeights,
): tf.Tensor2D | null {
  const c = model.config;
  const { B, T } = a;
  return tf.tidy(() => {
    const nw = (w: tf.Tensor1D): tf.Tensor1D => model.normWeight(w);
    const gemma = c.gemma_norms;
    // MLP: out = x + m, m = act·W_d (Gemma: m = post_feedforward_layernorm(act·W_d)), act = f(gate)·up,
    // gate = xn·W_g, up = xn·W_u; the forward saved f(gate) and f'(gate)
    const dDown = gemma ? rmsNormVjp(a.xhatPf!, a.rPf!, nw(lw.post_feedforward_layernorm!), dOut) : dOut;
    const dAct = matMulBT(dDown, lw.down_proj);
    const dUp = tf.mul(dAct, a.g) as tf.Tensor2D;
    const dGate = tf.mul(tf.mul(dAct, a.up), a.dg) as tf.Tensor2D;
    for (let b = 0; b < B; b++) {
      tf.tidy(() => {
        const rows = (x: tf.Tensor2D): tf.Tensor2D => (B === 1 ? x : tf.slice(x, [b * T, 0], [T, -1]));
        const xn = rows(a.xn2);
        const xnT = flagsAreFast() ? null : tf.transpose(xn);
        const gate = xnT ? (tf.matMul(xnT, rows(dGate)) as tf.Tensor2D) : matMulAT(xn, rows(dGate));
        const up = xnT ? (tf.matMul(xnT, rows(dUp)) as tf.Tensor2D) : matMulAT(xn, rows(dUp));
        onGrads(b, { gate, up, down: matMulAT(rows(a.act), rows(dDown)) });
      });
    }
    if (!inputGrad) return null as unknown as tf.Tensor2D;
    const dXn2 = tf.add(matMulBT(dGate, lw.gate_proj), matMulBT(dUp, lw.up_proj)) as tf.Tensor2D;
    const dX = tf.add(dOut, rmsNormVjp(a.xhat2, a.r2, nw(gemma ? lw.pre_feedforward_layernorm! : lw.post_attention_layernorm), dXn2)) as tf.Tensor2D;

    // Attention: x = h + ctx·W_o; per kv head i, S = Q_i·K_iᵀ (+ causal mask), P = softmax(S), C = P·V_i
    const nH = c.num_attention_heads;
    const nKV = c.num_key_value_heads;
    const hd = c.head_dim;
    const g = nH / nKV;
    // x = h + o (Gemma: o = post_attention_layernorm(ctx·W_o))
    const dO = gemma ? rmsNormVjp(a.xhatPa!, a.rPa!, nw(lw.post_attention_layernorm), dX) : dX;
    const dMerged = matMulBT(dO, lw.o_proj); // [B·T, nH·hd]
    const dCtx = tf.transpose(dMerged.reshape([B, T, nH, hd]), [0, 2, 1, 3]).reshape([B * nKV, g * T, hd]) as tf.Tensor3D;
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
      for (let i = 0; i < B * nKV; i++) {
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
    // Undo the grouping [B·nKV, g·T, hd] → [B, T, heads, hd], then RoPE: y = x⊙cos + (x·P)⊙sin ⇒ dx = dy⊙cos + (dy⊙sin)·P
    const { cos, sin, swap } = model.ropeParts(T, l);
    const cs = cos.reshape([1, T, 1, hd]);
    const sn = sin.reshape([1, T, 1, hd]);
    const unrope = (d: tf.Tensor3D, heads: number): tf.Tensor2D => {
      const rows = tf.transpose(d.reshape([B, heads, T, hd]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, T, heads, hd]
      const rot = tf.matMul(tf.mul(rows, sn).reshape([B * T * heads, hd]) as tf.Tensor2D, swap).reshape([B, T, heads, hd]);
      return tf.add(tf.mul(rows, cs), rot).reshape([B * T, heads * hd]) as tf.Tensor2D;
    };
    let dQ = unrope(tf.mul(dQQ, model.attentionScale()) as tf.Tensor3D, nH);
    let dK = unrope(dKK, nKV);
    if (c.qk_norm) {
      // q = RMSNorm_hd(xn·W_q + b)·w_qn per head (Qwen3): the same VJP as the layer norms, over rows of one head
      const perHead = (d: tf.Tensor2D, xhat: tf.Tensor2D, r: tf.Tensor2D, w: tf.Tensor1D, heads: number): tf.Tensor2D =>
        rmsNormVjp(xhat, r, w, d.reshape([B * T * heads, hd]) as tf.Tensor2D).reshape([B * T, heads * hd]) as tf.Tensor2D;
      dQ = perHead(dQ, a.qhat!, a.rq!, nw(lw.q_norm!), nH);
      dK = perHead(dK, a.khat!, a.rk!, nw(lw.k_norm!), nKV);
    }
    const dV = tf.transpose(dVV.reshape([B, nKV, T, hd]), [0, 2, 1, 3]).reshape([B * T, nKV * hd]) as tf.Tensor2D;
    const dXn1 = tf.addN([matMulBT(dQ, lw.q_proj), matMulBT(dK, lw.k_proj), matMulBT(dV, lw.v_proj)]) as tf.Tensor2D;
    return tf.add(dX, rmsNormVjp(a.xhat1, a.r1, nw(lw.input_layernorm), dXn1)) as tf.Tensor2D;
  });
}

/** Dispose every tensor of a LayerActivations. */
export function disposeActivations(a: LayerActivations): void {
  tf.dispose([a.xhat1, a.r1, a.qq, a.kk, a.vv, a.probs, a.xhat2, a.r2, a.xn2, a.g, a.dg, a.up, a.act]);
  if (a.xhatPa) tf.dispose([a.xhatPa, a.rPa!, a.xhatPf!, a.rPf!]);
  if (a.qhat) tf.dispose([a.qhat, a.rq!, a.khat!, a.rk!]);
}
