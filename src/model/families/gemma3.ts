import * as tf from "@tensorflow/tfjs";
import { gatedMlpVjp, normVjp, selfAttentionVjp, type LayerVjpContext } from "../backward";
import { gatedMlp, selfAttention, slidingWindow, type LayerContext } from "../blocks";
import { COMMON, ign, only, used, type Family } from "../family";

/**
 * Gemma 3 text (Gemma3ForCausalLM, modeling_gemma3). Llama's weights plus q_norm, k_norm [hd] and
 * pre_feedforward_layernorm, post_feedforward_layernorm [H]; every RMSNorm multiplies by (1 + w), and the
 * embeddings are scaled by sqrt(hidden_size) (CausalLM.embed). Layers are `sliding_attention` (window
 * `sliding_window`, RoPE base rope_local_base_freq, no scaling) or `full_attention` (rope_theta, rope_scaling);
 * scores are scaled by 1/sqrt(query_pre_attn_scalar); logits = c·tanh(z/c) with final_logit_softcapping c.
 */
export function decoderLayer(L: LayerContext, h: tf.Tensor2D): tf.Tensor2D {
  const w = L.w;
  // h = h + post_attention_layernorm(self_attn(input_layernorm(h))), q and k normed per head before RoPE
  const attn = selfAttention(L, L.norm(h, w.input_layernorm, "attn_in"), { q_norm: w.q_norm!, k_norm: w.k_norm! });
  h = tf.add(h, L.hook("attn.out", L.norm(attn, w.post_attention_layernorm, "attn_out")));
  // h = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h))),
  // mlp(x) = down_proj(gelu_tanh(gate_proj(x)) · up_proj(x))
  const x = L.hook("mlp.in", L.norm(h, w.pre_feedforward_layernorm!, "mlp_in"));
  h = tf.add(h, L.hook("mlp.out", L.norm(gatedMlp(L, x, L.c.hidden_act), w.post_feedforward_layernorm!, "mlp_out")));
  return L.hook("resid", h);
}

/** The backward of decoderLayer: Llama's with the VJPs of the output norms in front of each block's. */
export function decoderLayerVjp(V: LayerVjpContext, dOut: tf.Tensor2D): tf.Tensor2D | null {
  const w = V.w;
  const dx = gatedMlpVjp(V, normVjp(V, dOut, w.post_feedforward_layernorm!, "mlp_out"));
  if (!dx) return null;
  const dh = tf.add(dOut, normVjp(V, dx, w.pre_feedforward_layernorm!, "mlp_in")) as tf.Tensor2D;
  const dAttn = selfAttentionVjp(V, normVjp(V, dh, w.post_attention_layernorm, "attn_out"));
  return tf.add(dh, normVjp(V, dAttn, w.input_layernorm, "attn_in")) as tf.Tensor2D;
}

export const gemma3: Family = {
  architecture: "Gemma3ForCausalLM",
  fields: {
    ...COMMON,
    head_dim: used,
    hidden_act: ign("transformers' Gemma 3 reads hidden_activation"),
    hidden_activation: only(["gelu_pytorch_tanh"], "Gemma 3's MLP is computed with gelu_pytorch_tanh"),
    attention_bias: used,
    query_pre_attn_scalar: used,
    sliding_window: used,
    layer_types: used,
    sliding_window_pattern: used,
    _sliding_window_pattern: ign("transformers 5 keeps it beside layer_types, which it derives layer_types from"),
    rope_local_base_freq: used,
    final_logit_softcapping: used,
    attn_logit_softcapping: only([null], "attention logit softcapping is not implemented"),
    use_bidirectional_attention: only([false, null], "bidirectional attention is not implemented"),
  },
  configJson: (c) => ({
    hidden_act: undefined,
    hidden_activation: c.hidden_act,
    attention_bias: c.o_bias,
    query_pre_attn_scalar: c.query_pre_attn_scalar,
    sliding_window: c.sliding_window,
    layer_types: c.layer_types.slice(),
    rope_local_base_freq: c.rope_local_theta,
    final_logit_softcapping: c.final_logit_softcapping,
    attn_logit_softcapping: null,
  }),
  decoderLayer,
  decoderLayerVjp,
  normOnePlus: true,
  attentionScale: (c) => 1 / Math.sqrt(c.query_pre_attn_scalar ?? c.head_dim),
  layerRope: (c, l) => (c.rope_local_theta !== null && slidingWindow(c, l) !== null ? { rope_theta: c.rope_local_theta, rope_scaling: null } : null),
  logitSoftcap: (c) => c.final_logit_softcapping,
  // rounded to float32 as transformers does
  embedScale: (c) => Math.fround(Math.sqrt(c.hidden_size)),
};
