import { COMMON, ign, only, used, type Family } from "../family";
import { decoderLayer, decoderLayerVjp } from "./llama";

/**
 * Qwen2 / Qwen2.5 (modeling_qwen2): Llama's layer with biases on q_proj, k_proj and v_proj (always; none on
 * o_proj: config.ts sets qkv_bias), which the projections add; head_dim is hidden_size / num_attention_heads
 * (the config has no head_dim).
 */
export const qwen2: Family = {
  architecture: "Qwen2ForCausalLM",
  fields: {
    ...COMMON,
    use_sliding_window: only([false, null], "sliding-window layers are not implemented"),
    sliding_window: ign("read only when use_sliding_window is true, which is refused"),
    max_window_layers: ign("read only when use_sliding_window is true, which is refused"),
    layer_types: used,
    use_mrope: only([false, null], "multimodal RoPE is not implemented"),
  },
  configJson: () => ({ head_dim: undefined, use_sliding_window: false }),
  decoderLayer,
  decoderLayerVjp,
};
