import { COMMON, ign, only, used, type Family } from "../family";

/**
 * Gemma 3 text (Gemma3ForCausalLM, modeling_gemma3). RMSNorm multiplies by (1 + w); embeddings are scaled by
 * sqrt(hidden_size); each block is sandwiched between norms:
 *
 *   h = h + post_attention_layernorm(attn(input_layernorm(h)))
 *   h = h + post_feedforward_layernorm(down_proj(gelu_tanh(gate_proj(x)) · up_proj(x))),  x = pre_feedforward_layernorm(h)
 *
 * Attention: q_norm/k_norm per head before RoPE, scores scaled by 1/sqrt(query_pre_attn_scalar); layers are
 * `sliding_attention` (window `sliding_window`, RoPE base rope_local_base_freq, no scaling) or
 * `full_attention` (rope_theta, rope_scaling); logits = c·tanh(z/c) with final_logit_softcapping c.
 */
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
};
