import { COMMON, ign, only, used, type Family } from "../family";

/**
 * Qwen3 dense (modeling_qwen3): Llama's layer with an RMSNorm over each head of q and k before RoPE
 * (q_norm, k_norm: [hd] weights), an explicit head_dim, and q/k/v/o biases with attention_bias.
 *
 *   q = rope(RMSNorm_hd(xn·q_proj)·q_norm)   per head, [B·T, nH, hd]
 */
export const qwen3: Family = {
  architecture: "Qwen3ForCausalLM",
  fields: {
    ...COMMON,
    head_dim: used,
    attention_bias: used,
    use_sliding_window: only([false, null], "sliding-window layers are not implemented"),
    sliding_window: ign("read only when use_sliding_window is true, which is refused"),
    max_window_layers: ign("read only when use_sliding_window is true, which is refused"),
    layer_types: used,
  },
  configJson: (c) => ({ attention_bias: c.o_bias, use_sliding_window: false }),
};
