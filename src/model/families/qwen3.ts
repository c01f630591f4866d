import * as tf from "@tensorflow/tfjs";
import { gatedMlp, selfAttention, type LayerContext } from "../blocks";
import { COMMON, ign, only, used, type Family } from "../family";
import * as llama from "./llama";

/**
 * Qwen3 dense (modeling_qwen3): Llama's layer with an RMSNorm over each head of q and k before RoPE, an
 * explicit head_dim, and q/k/v/o biases with attention_bias:
 *
 *   q_norm, k_norm   [hd]
 *   q = rope(RMSNorm_hd(xn·q_proj)·q_norm)   per head, [B, T, nH, hd]; k likewise with k_norm
 */
export function decoderLayer(L: LayerContext, h: tf.Tensor2D): tf.Tensor2D {
  const w = L.w;
  const attn = selfAttention(L, L.norm(h, w.input_layernorm, "attn_in"), { q_norm: w.q_norm!, k_norm: w.k_norm! });
  h = tf.add(h, L.hook("attn.out", attn));
  const x = L.hook("mlp.in", L.norm(h, w.post_attention_layernorm, "mlp_in"));
  h = tf.add(h, L.hook("mlp.out", gatedMlp(L, x, L.c.hidden_act)));
  return L.hook("resid", h);
}

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
  decoderLayer,
  // Llama's backward: selfAttentionVjp undoes the q/k norms it finds saved
  decoderLayerVjp: llama.decoderLayerVjp,
};
