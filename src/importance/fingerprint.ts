import * as tf from "@tensorflow/tfjs";
import { intermediateSizes } from "../model/config";
import type { LlamaModel } from "../model/llama";

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

/** The first `n` values of a stored weight (raw bits are backend-independent). */
function headData(t: tf.Tensor, n: number): Float32Array {
  const s = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), 0, Math.min(n, t.size)));
  const d = s.dataSync() as Float32Array;
  s.dispose();
  return d;
}

export function modelFingerprint(model: LlamaModel): ModelFingerprint {
  const c = model.config;
  const w = model.weights;
  let h = 0x811c9dc5;
  const take = (t: tf.Tensor, n: number) => {
    const d = headData(t, n);
    h = fnv(h, new Uint32Array(d.buffer, d.byteOffset, d.length));
  };
  take(w.embed_tokens, 256);
  take(w.norm, 64);
  for (const lw of w.layers) {
    take(lw.input_layernorm, 16);
    take(lw.post_attention_layernorm, 16);
    take(lw.q_proj, 32);
    take(lw.k_proj, 16);
    take(lw.v_proj, 16);
    take(lw.o_proj, 16);
  }
  if (w.lm_head) take(w.lm_head, 64);
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
