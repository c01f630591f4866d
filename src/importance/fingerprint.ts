import { intermediateSizes } from "../model/config";
import { layerParamName, type CausalLM } from "../model/causal-lm";

/**
 * Identifies the model that scores (or a teacher cache) were computed on, so they are never applied to
 * another model. Shape fields + per-layer MLP widths + a hash of weights that MLP pruning leaves alone
 * (embedding rows, norms, attention projections). Because MLP weights are excluded, `reindex` can carry
 * scores over to the pruned model by updating the widths only; any fine-tuning of attention/embeddings
 * (LoRA recovery) changes the hash.
 */
export interface ModelFingerprint {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  intermediate_sizes: number[];
  /** FNV-1a (32 bit, hex) of the raw float32 bits of a few weights. */
  weightHash: string;
}

function fnv(h: number, bits: Uint32Array): number {
  for (let i = 0; i < bits.length; i++) {
    let x = bits[i];
    for (let b = 0; b < 4; b++) {
      h ^= x & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
      x >>>= 8;
    }
  }
  return h;
}

export function modelFingerprint(model: CausalLM): ModelFingerprint {
  const c = model.config;
  let h = 0x811c9dc5;
  // the first values of each weight, read without uploading a streamed layer (same values resident or streamed)
  const take = (name: string, n: number) => {
    const d = model.parameterPrefix(name, n);
    h = fnv(h, new Uint32Array(d.buffer, d.byteOffset, d.length));
  };
  take("model.embed_tokens.weight", 256);
  take("model.norm.weight", 64);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const [k, n] of [["input_layernorm", 16], ["post_attention_layernorm", 16], ["q_proj", 32], ["k_proj", 16], ["v_proj", 16], ["o_proj", 16]] as const) {
      take(layerParamName(l, k), n);
    }
  }
  if (!c.tie_word_embeddings) take("lm_head.weight", 64);
  return {
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    head_dim: c.head_dim,
    intermediate_sizes: intermediateSizes(c),
    weightHash: h.toString(16).padStart(8, "0"),
  };
}

/** Why two fingerprints differ (first difference), or null when they are the same. */
export function fingerprintMismatch(a: ModelFingerprint, b: ModelFingerprint): string | null {
  for (const k of ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "weightHash"] as const) {
    if (a[k] !== b[k]) return `${k}: ${a[k]} vs ${b[k]}`;
  }
  const wa = a.intermediate_sizes.join(",");
  const wb = b.intermediate_sizes.join(",");
  if (wa !== wb) return `intermediate_sizes: [${wa}] vs [${wb}]`;
  return null;
}
