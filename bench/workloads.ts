/**
 * Benchmark workloads: random-weight (untrained) models of real shapes, and their FLOP counts.
 * Shared by the driver (bench/run.ts), the sdmprune worker (bench/worker.ts) and, as JSON, the PyTorch peer.
 */

export type WorkloadName = "stories15M" | "stories110M" | "llama1b";

export interface RawConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: Record<string, unknown> | null;
  tie_word_embeddings: boolean;
  max_position_embeddings: number;
}

function llama2c(dim: number, layers: number, heads: number, hidden: number): RawConfig {
  // llama2.c "stories" models: MHA, tied classifier, 32000-token LLaMA-2 vocabulary, context 256.
  return {
    vocab_size: 32000,
    hidden_size: dim,
    intermediate_size: hidden,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    head_dim: dim / heads,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    tie_word_embeddings: true,
    max_position_embeddings: 1024,
  };
}

export const WORKLOADS: Record<WorkloadName, { label: string; config: RawConfig }> = {
  stories15M: { label: "stories15M-like (dim 288, 6 layers, 6 heads, hidden 768, vocab 32000, tied)", config: llama2c(288, 6, 6, 768) },
  stories110M: { label: "stories110M-like (dim 768, 12 layers, 12 heads, hidden 2048, vocab 32000, tied)", config: llama2c(768, 12, 12, 2048) },
  llama1b: {
    label: "LLaMA-3.2-1B-shaped (dim 2048, 16 layers, 32/8 heads, hidden 8192, vocab 128256, tied, llama3 RoPE)",
    config: {
      vocab_size: 128256,
      hidden_size: 2048,
      intermediate_size: 8192,
      num_hidden_layers: 16,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 64,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      rope_scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      tie_word_embeddings: true,
      max_position_embeddings: 131072,
    },
  },
};

export function parseWorkloads(v: string): WorkloadName[] {
  const all = Object.keys(WORKLOADS) as WorkloadName[];
  if (v === "all") return all;
  return v.split(",").map((s) => {
    const w = s.trim() as WorkloadName;
    if (!all.includes(w)) throw new Error(`unknown workload "${s}", expected one of ${all.join(", ")} or all`);
    return w;
  });
}

/** Parameter count and bytes (float32) of a config. */
export function paramCount(c: RawConfig): number {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const perLayer = 2 * H + H * q + 2 * H * kv + q * H + 3 * H * c.intermediate_size;
  return c.vocab_size * H * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * perLayer + H;
}

/**
 * Model FLOPs per token (multiply-add = 2), the work any implementation must do, at context length T:
 * - forward: every linear (2·params, head included, embedding lookup excluded) + attention QKᵀ and P·V
 *   over the full T×T score matrix (4·T·nH·hd per layer; causal masking does not skip work in either engine);
 * - importance (sd-taylor): forward + input gradients everywhere (same as forward) + weight gradients of
 *   gate/up/down only (2·3·H·I per layer); attention backward = 2× its forward.
 * sdmprune's layer-by-layer path recomputes a layer's forward during the backward sweep only for layers whose
 * activations do not fit its budget (`recompute` = the whole trunk, an upper bound, reported separately).
 */
export function flopsPerToken(c: RawConfig, T: number): { forward: number; importance: number; recompute: number; matmulForward: number } {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const L = c.num_hidden_layers;
  const attnLin = 2 * (H * q + 2 * H * kv + q * H);
  const mlpLin = 2 * 3 * H * c.intermediate_size;
  const attnScores = 4 * T * q;
  const head = 2 * H * c.vocab_size;
  const trunk = L * (attnLin + mlpLin + attnScores);
  const forward = trunk + head;
  const importance = forward + (L * (attnLin + mlpLin + 2 * attnScores) + head) + L * mlpLin;
  return { forward, importance, recompute: trunk, matmulForward: forward };
}
