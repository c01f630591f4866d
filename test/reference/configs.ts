import * as tf from "@tensorflow/tfjs";
import { parseConfig, type LlamaConfig } from "../../src/model/config";

/**
 * Tiny configurations covering the architecture variants the model must handle. The llama3 band edges
 * (original context 64, factors 1/4) put head_dim 8's four frequencies (wavelengths 6.3, 63, 628, 6283)
 * into the keep, smooth and scaled bands, so every branch of the scaling rule is exercised.
 */
export const TINY_CONFIGS: Record<string, LlamaConfig> = {
  "gqa+llama3+tied": parseConfig({
    vocab_size: 61,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    tie_word_embeddings: true,
  }),
  "mqa+untied+head_dim16+per-layer-I": parseConfig({
    vocab_size: 53,
    hidden_size: 48,
    intermediate_size: [40, 24, 56],
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 16,
    rms_norm_eps: 1e-6,
    rope_theta: 500000,
    tie_word_embeddings: false,
  }),
  "mha+linear-rope+untied": parseConfig({
    vocab_size: 40,
    hidden_size: 24,
    intermediate_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 3,
    rope_theta: 10000,
    rope_scaling: { type: "linear", factor: 2 },
    tie_word_embeddings: false,
  }),
};

/**
 * One tiny random-weight configuration per family beyond plain Llama, as the families' config.json files
 * name their fields (so the family rules of parseConfig apply): Qwen2's q/k/v biases, Qwen3's q/k norms with
 * an explicit head_dim and attention_bias, Llama with attention_bias (o_proj bias too), Mistral with a window
 * shorter than the test sequences, Phi-3, Gemma 3.
 */
export const FAMILY_CONFIGS: Record<string, LlamaConfig> = {
  qwen2: parseConfig({
    model_type: "qwen2", vocab_size: 57, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true, use_sliding_window: false, sliding_window: 32768,
  }),
  qwen3: parseConfig({
    model_type: "qwen3", vocab_size: 59, hidden_size: 32, intermediate_size: [40, 56], num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 1, head_dim: 16, attention_bias: true, rms_norm_eps: 1e-6, rope_parameters: { rope_type: "default", rope_theta: 1000000 },
    tie_word_embeddings: false,
  }),
  "llama+attention_bias": parseConfig({
    model_type: "llama", vocab_size: 47, hidden_size: 24, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 3,
    attention_bias: true, rope_parameters: { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    tie_word_embeddings: true,
  }),
  mistral: parseConfig({
    model_type: "mistral", vocab_size: 51, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, head_dim: 8, rms_norm_eps: 1e-5, rope_theta: 1000000, sliding_window: 24, tie_word_embeddings: false,
  }),
  // fused qkv_proj / gate_up_proj on disk: exercised by the HF save and reload
  phi3: parseConfig({
    model_type: "phi3", vocab_size: 45, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000, sliding_window: null, tie_word_embeddings: false, pad_token_id: 44,
  }),
  // sliding (window 5) and global layers with their own RoPE bases, q/k norms, query_pre_attn_scalar ≠ head_dim, softcapping
  gemma3: parseConfig({
    model_type: "gemma3_text", vocab_size: 49, hidden_size: 32, intermediate_size: [40, 48, 40], num_hidden_layers: 3, num_attention_heads: 4,
    num_key_value_heads: 2, head_dim: 8, rms_norm_eps: 1e-6, query_pre_attn_scalar: 12, sliding_window: 5,
    layer_types: ["sliding_attention", "full_attention", "sliding_attention"], final_logit_softcapping: 3,
    rope_parameters: { full_attention: { rope_type: "default", rope_theta: 1000000 }, sliding_attention: { rope_type: "default", rope_theta: 10000 } },
  }),
};

/** max|a−b| / max|b| over all entries, plus the largest elementwise |a−b|/|b| over entries with |b| ≥ 1% of max|b|. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): { rel: number; elementwise: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  let el = 0;
  for (let i = 0; i < a.length; i++) {
    if (Math.abs(b[i]) >= 0.01 * scale) el = Math.max(el, Math.abs(a[i] - b[i]) / Math.abs(b[i]));
  }
  return { rel: diff / scale, elementwise: el };
}

export function randomIds(n: number, vocab: number, seed: number): number[] {
  let s = seed * 7919 + 17;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out.push(s % vocab);
  }
  return out;
}

/** Mean next-token cross-entropy over positions 0..T−2 (targets are constants: no gradient through oneHot). */
export function nextTokenCE(ids: number[][], V: number): (logits: tf.Tensor3D) => tf.Scalar {
  return (logits) => {
    const [B, T] = logits.shape;
    const lp = tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, V]));
    const targets = tf.oneHot(tf.tensor2d(ids.map((s) => s.slice(1)), [B, T - 1], "int32"), V);
    return tf.neg(tf.div(tf.sum(tf.mul(lp, targets)), B * (T - 1))) as tf.Scalar;
  };
}
