import * as tf from "@tensorflow/tfjs";
import { parseConfig, type LlamaConfig } from "../src/model/config";
import { CausalLM, type LayerWeights } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { WORKLOADS } from "./workloads";

/**
 * The 1B-shaped model without a host copy of all weights: each tensor is drawn (seeded, N(0, 0.02²)) in the
 * internal layout and handed to the backend at once, so building needs ~1× the weights, not ~2–3×
 * (randomTensors + the [out,in]→[in,out] transposes of fromTensors). Values are random either way.
 */
export function leanRandomModel(config: LlamaConfig, seed: number, gc: () => void = () => {}): CausalLM {
  const H = config.hidden_size;
  const I = config.intermediate_size as number;
  const q = config.num_attention_heads * config.head_dim;
  const kv = config.num_key_value_heads * config.head_dim;
  let s = seed >>> 0 || 1;
  const fill = (n: number, norm: boolean): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      // xorshift32 + Box–Muller: fast enough for 1.2 B values; the distribution, not the stream, matters here.
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      const u1 = (s + 1) / 4294967297;
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      const u2 = s / 4294967296;
      const r = Math.sqrt(-2 * Math.log(u1));
      a[i] = (norm ? 1 : 0) + 0.02 * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) a[i + 1] = (norm ? 1 : 0) + 0.02 * r * Math.sin(2 * Math.PI * u2);
    }
    return a;
  };
  const m2 = (r: number, c: number): tf.Tensor2D => {
    const t = tf.tensor2d(fill(r * c, false), [r, c]);
    t.dataSync(); // the native backend copies on first use; do it now so the host array can be collected
    return t;
  };
  const v1 = (n: number): tf.Tensor1D => tf.tensor1d(fill(n, true));
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.num_hidden_layers; l++) {
    layers.push({
      input_layernorm: v1(H),
      q_proj: m2(H, q),
      k_proj: m2(H, kv),
      v_proj: m2(H, kv),
      o_proj: m2(q, H),
      post_attention_layernorm: v1(H),
      gate_proj: m2(H, I),
      up_proj: m2(H, I),
      down_proj: m2(I, H),
    });
    gc();
  }
  const embed_tokens = m2(config.vocab_size, H);
  const norm = v1(H);
  // A one-layer toy model only to reach withWeights (the constructor is private).
  const tinyCfg = parseConfig({ ...WORKLOADS.stories15M.config, vocab_size: 8, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 1, num_key_value_heads: 1, head_dim: 8 });
  const tiny = CausalLM.fromTensors(tinyCfg, randomTensors(tinyCfg, 0));
  const model = tiny.withWeights({ embed_tokens, layers, norm, lm_head: null }, config);
  tiny.dispose();
  gc();
  return model;
}

