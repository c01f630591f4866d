import { COMMON, only, used, type Family } from "../family";

/**
 * Llama 2 / 3 / 3.1 / 3.2, TinyLlama, SmolLM (modeling_llama). Per layer, rows b·T + t of h [B·T, H]:
 *
 *   xn = RMSNorm(h)·input_layernorm                                     [B·T, H]
 *   q, k, v = xn·q_proj (+ b), xn·k_proj (+ b), xn·v_proj (+ b)          [B·T, nH·hd], [B·T, nKV·hd] ×2
 *   q, k = rope(q), rope(k)   (rotate-half; default / linear / llama3 frequencies)
 *   h = h + softmax(q·kᵀ/√hd + causal)·v · o_proj (+ b)                 (query head i reads kv head i/(nH/nKV))
 *   h = h + down_proj(silu(gate_proj(xn2)) · up_proj(xn2)),  xn2 = RMSNorm(h)·post_attention_layernorm
 *
 * then logits = RMSNorm(h)·norm · lm_head (or embed_tokensᵀ when tied). Biases only with attention_bias.
 */
export const llama: Family = {
  architecture: "LlamaForCausalLM",
  fields: {
    ...COMMON,
    head_dim: used,
    attention_bias: used,
    mlp_bias: only([false, null], "biases on gate/up/down are not implemented"),
  },
  configJson: (c) => ({ attention_bias: c.o_bias, mlp_bias: false }),
};
