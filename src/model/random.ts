import { Rng } from "../rng";
import type { TensorMap, HostTensor } from "../io/tensors";
import { intermediateSizes, type LlamaConfig } from "./config";

/**
 * Random weights in Hugging Face layout for tests and demos. Each tensor draws from its own stream
 * derived from (seed, name), so a seed fixes every value regardless of iteration order. Linear and
 * embedding weights ~ N(0, scale²); norm weights = 1 + scale·N(0, 1) so that RMSNorm scaling is exercised.
 */
export function randomTensors(config: LlamaConfig, seed: number, scale = 0.02): TensorMap {
  const H = config.hidden_size;
  const q = config.num_attention_heads * config.head_dim;
  const kv = config.num_key_value_heads * config.head_dim;
  const V = config.vocab_size;
  const map: TensorMap = new Map();
  const fill = (name: string, shape: number[], norm = false): void => {
    const rng = Rng.derive(seed, name);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = norm ? 1 + scale * rng.normal() : scale * rng.normal();
    const t: HostTensor = { shape, data };
    map.set(name, t);
  };
  fill("model.embed_tokens.weight", [V, H]);
  const sizes = intermediateSizes(config);
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    fill(p + "input_layernorm.weight", [H], true);
    fill(p + "self_attn.q_proj.weight", [q, H]);
    fill(p + "self_attn.k_proj.weight", [kv, H]);
    fill(p + "self_attn.v_proj.weight", [kv, H]);
    fill(p + "self_attn.o_proj.weight", [H, q]);
    fill(p + "post_attention_layernorm.weight", [H], true);
    fill(p + "mlp.gate_proj.weight", [sizes[l], H]);
    fill(p + "mlp.up_proj.weight", [sizes[l], H]);
    fill(p + "mlp.down_proj.weight", [H, sizes[l]]);
  }
  fill("model.norm.weight", [H], true);
  if (!config.tie_word_embeddings) fill("lm_head.weight", [V, H]);
  return map;
}
