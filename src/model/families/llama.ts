import * as tf from "@tensorflow/tfjs";
import { gatedMlpVjp, normVjp, selfAttentionVjp, type LayerVjpContext } from "../backward";
import { gatedMlp, selfAttention, type LayerContext } from "../blocks";
import { COMMON, only, used, type Family } from "../family";

/**
 * Llama 2 / 3 / 3.1 / 3.2, TinyLlama, SmolLM (modeling_llama). The residual stream h is [B·T, H], rows b·T + t;
 * weights are held [in, out]:
 *
 *   input_layernorm, post_attention_layernorm   [H]
 *   q_proj [H, nH·hd], k_proj, v_proj [H, nKV·hd], o_proj [nH·hd, H]   (+ biases with attention_bias)
 *   gate_proj, up_proj [H, I], down_proj [I, H]
 *
 * RoPE is rotate-half with default / linear / llama3 frequencies (rope.ts); scores are scaled by 1/sqrt(head_dim);
 * logits = norm(h)·lm_head, or embed_tokensᵀ when tied.
 */
export function decoderLayer(L: LayerContext, h: tf.Tensor2D): tf.Tensor2D {
  const w = L.w;
  // h = h + self_attn(input_layernorm(h))
  const attn = selfAttention(L, L.norm(h, w.input_layernorm, "attn_in"));
  h = tf.add(h, L.hook("attn.out", attn));
  // h = h + mlp(post_attention_layernorm(h)),  mlp(x) = down_proj(silu(gate_proj(x)) · up_proj(x))
  const x = L.hook("mlp.in", L.norm(h, w.post_attention_layernorm, "mlp_in"));
  h = tf.add(h, L.hook("mlp.out", gatedMlp(L, x, L.c.hidden_act)));
  return L.hook("resid", h);
}

/** The backward of decoderLayer, block by block in reverse (each residual add passes dh through unchanged). */
export function decoderLayerVjp(V: LayerVjpContext, dOut: tf.Tensor2D): tf.Tensor2D | null {
  const w = V.w;
  const dx = gatedMlpVjp(V, dOut);
  // scoring needs no ∂L/∂h below layer 0: its attention backward is skipped
  if (!dx) return null;
  const dh = tf.add(dOut, normVjp(V, dx, w.post_attention_layernorm, "mlp_in")) as tf.Tensor2D;
  return tf.add(dh, normVjp(V, selfAttentionVjp(V, dh), w.input_layernorm, "attn_in")) as tf.Tensor2D;
}

export const llama: Family = {
  architecture: "LlamaForCausalLM",
  fields: {
    ...COMMON,
    head_dim: used,
    attention_bias: used,
    mlp_bias: only([false, null], "biases on gate/up/down are not implemented"),
  },
  configJson: (c) => ({ attention_bias: c.o_bias, mlp_bias: false }),
  decoderLayer,
  decoderLayerVjp,
};
