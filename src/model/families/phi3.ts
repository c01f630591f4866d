import { ConfigError } from "../../errors";
import { lazyTensor } from "../../io/tensor-file";
import { numel, type TensorMap } from "../../io/tensors";
import type { ModelConfig } from "../config";
import { COMMON, ign, only, used, type Family } from "../family";
import { decoderLayer, decoderLayerVjp } from "./llama";

/**
 * Phi-3 on disk. The layer is Llama's (RMSNorm, rotate-half RoPE, GQA, SwiGLU); only the checkpoint fuses
 * projections (modeling_phi3):
 *
 *   self_attn.qkv_proj.weight  [nH·hd + 2·nKV·hd, H]  rows: q (nH·hd), then k (nKV·hd), then v (nKV·hd)
 *   mlp.gate_up_proj.weight    [2·I, H]               rows: gate (I), then up (I): `gate, up = chunk(2)`
 *
 * They are split into Llama's q/k/v_proj and gate/up_proj when read, and fused again when written, so the
 * model, pruning and importance see one gated-MLP shape: MLP channel i is gate row i and up row i (row I + i
 * of the fused matrix) and down_proj column i. Pruning a channel removes both rows of the fused matrix.
 */

function rows(data: Float32Array, cols: number, from: number, count: number): Float32Array {
  return data.slice(from * cols, (from + count) * cols);
}

/** Fused Phi-3 tensors → q/k/v_proj and gate/up_proj (other tensors pass through). */
export function splitPhi3(c: ModelConfig, tensors: TensorMap, source: string): TensorMap {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const widths = Array.isArray(c.intermediate_size) ? c.intermediate_size : new Array(c.num_hidden_layers).fill(c.intermediate_size);
  const out: TensorMap = new Map(tensors);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const qkv = tensors.get(p + "self_attn.qkv_proj.weight");
    const gu = tensors.get(p + "mlp.gate_up_proj.weight");
    if (!qkv) throw new ConfigError(`${source}: tensor "${p}self_attn.qkv_proj.weight" is missing (expected shape [${q + 2 * kv}, ${H}])`);
    if (!gu) throw new ConfigError(`${source}: tensor "${p}mlp.gate_up_proj.weight" is missing (expected shape [${2 * widths[l]}, ${H}])`);
    if (qkv.shape.length !== 2 || qkv.shape[0] !== q + 2 * kv || qkv.shape[1] !== H) {
      throw new ConfigError(`${source}: tensor "${p}self_attn.qkv_proj.weight" has shape [${qkv.shape}], config.json implies [${q + 2 * kv}, ${H}]`);
    }
    const I = widths[l];
    if (gu.shape.length !== 2 || gu.shape[0] !== 2 * I || gu.shape[1] !== H) {
      throw new ConfigError(`${source}: tensor "${p}mlp.gate_up_proj.weight" has shape [${gu.shape}], config.json implies [${2 * I}, ${H}]`);
    }
    out.delete(p + "self_attn.qkv_proj.weight");
    out.delete(p + "mlp.gate_up_proj.weight");
    // Lazy parts, so the loader holds one tensor at a time; the fused data is read once for all its parts
    // (kept until the last part has taken its rows; a part read again reads the file again, still correctly).
    const qkvData = sharedRead(() => qkv.data, 3);
    const guData = sharedRead(() => gu.data, 2);
    out.set(p + "self_attn.q_proj.weight", lazyTensor([q, H], () => rows(qkvData(), H, 0, q)));
    out.set(p + "self_attn.k_proj.weight", lazyTensor([kv, H], () => rows(qkvData(), H, q, kv)));
    out.set(p + "self_attn.v_proj.weight", lazyTensor([kv, H], () => rows(qkvData(), H, q + kv, kv)));
    out.set(p + "mlp.gate_proj.weight", lazyTensor([I, H], () => rows(guData(), H, 0, I)));
    out.set(p + "mlp.up_proj.weight", lazyTensor([I, H], () => rows(guData(), H, I, I)));
  }
  return out;
}

/** A read shared by `parts` readers: the data is fetched once and dropped after the last of them. */
function sharedRead(read: () => Float32Array, parts: number): () => Float32Array {
  let data: Float32Array | null = null;
  let left = parts;
  return () => {
    const d = data ?? read();
    data = --left > 0 ? d : null;
    return d;
  };
}

/** The inverse of splitPhi3: q/k/v_proj → qkv_proj, gate/up_proj → gate_up_proj (HF layout). */
export function fusePhi3(c: ModelConfig, tensors: TensorMap): TensorMap {
  const out: TensorMap = new Map(tensors);
  const cat = (names: string[]) => {
    const parts = names.map((n) => tensors.get(n)!);
    // Lazy like its parts (a model's toTensors({ lazy: true }) at save): each part's data is taken once, when the
    // writer reaches the fused tensor, so saving never holds the fused model.
    const concat = (): Float32Array => {
      const data = new Float32Array(parts.reduce((a, t) => a + numel(t.shape), 0));
      let o = 0;
      parts.forEach((t, i) => {
        const d = t.data;
        if (d.length !== numel(t.shape)) throw new ConfigError(`phi3 fuse: tensor ${names[i]} holds ${d.length} values, shape [${t.shape}] needs ${numel(t.shape)}`);
        data.set(d, o);
        o += d.length;
      });
      return data;
    };
    for (const n of names) out.delete(n);
    return lazyTensor([parts.reduce((a, t) => a + t.shape[0], 0), parts[0].shape[1]], concat);
  };
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    out.set(p + "self_attn.qkv_proj.weight", cat(["q_proj", "k_proj", "v_proj"].map((k) => `${p}self_attn.${k}.weight`)));
    out.set(p + "mlp.gate_up_proj.weight", cat(["gate_proj", "up_proj"].map((k) => `${p}mlp.${k}.weight`)));
  }
  return out;
}

export const phi3: Family = {
  architecture: "Phi3ForCausalLM",
  fields: {
    ...COMMON,
    head_dim: used,
    sliding_window: used,
    partial_rotary_factor: only([1, 1.0, null], "RoPE over part of each head is not supported"),
    resid_pdrop: only([0, 0.0, null], "sdmprune computes without dropout (also in recovery training)"),
    embd_pdrop: only([0, 0.0, null], "sdmprune computes without dropout (also in recovery training)"),
    original_max_position_embeddings: ign("read only by longrope scaling, which is refused"),
    attention_bias: only([false, null], "Phi-3's projections have no biases"),
  },
  fromDisk: splitPhi3,
  toDisk: fusePhi3,
  configJson: (c) => ({ sliding_window: c.sliding_window }),
  // the layer is Llama's once the fused matrices are split; a window comes in through layer_types
  decoderLayer,
  decoderLayerVjp,
};
