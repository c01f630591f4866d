import { ConfigError, FormatError } from "../errors";
import { LlamaConfig, intermediateSizes, parseConfig } from "../model/config";
import { GgufHeader, GgufType, GgufValue, GgufWriteTensor, gv } from "./gguf";
import { isLazy, lazyTensor } from "./tensor-file";
import { fusePhi3 } from "../model/families/phi3";
import { HostTensor, TensorMap } from "./tensors";
import { ByteLevelBpeVocab, HfTokenizer, SentencePieceVocab } from "./tokenizer";

/**
 * llama.cpp's `llama`, `qwen2`, `qwen3`, `phi3` and `gemma3` architectures in GGUF ↔ sdmprune's Hugging Face view: tensor
 * names, config from/to `<arch>.*` metadata, tokenizer from/to `tokenizer.ggml.*` (SentencePiece or byte-level
 * BPE), and the Q/K row order of the `llama` arch.
 *
 * RoPE: GGUF (like llama2.c) rotates adjacent pairs (2j, 2j+1) of each head; sdmprune uses the HF rotate-half
 * pairing (j, j + head_dim/2). llama.cpp's convert_hf_to_gguf permutes HF q/k rows with
 * `w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2)`; we apply the inverse when reading and the same permutation when
 * writing, so a GGUF produced here runs unchanged in llama.cpp and a converted HF checkpoint loads in transformers.
 *
 * Per-layer MLP widths: `llama.feed_forward_length` is written as an array of u32 (one per block) when widths
 * differ; uniform widths stay a scalar. llama.cpp parses the key as a scalar or per-layer array (as for OpenELM),
 * and sdmprune reads such files back, but llama.cpp's `llama` architecture still sizes every ffn tensor with
 * layer 0's width, so it refuses a non-uniform file (checked with node-llama-cpp 3.22.1: "check_tensor_dims:
 * tensor 'blk.1.ffn_gate.weight' has wrong shape"). Uniform (SDMPrune) output runs in llama.cpp unchanged.
 * `padMlp` writes such a model for llama.cpp anyway: every layer is padded to the widest with zero gate/up rows
 * and zero down columns (silu(0)·0 = 0, so outputs are identical), at the cost of the pruned layers' savings.
 */

const LAYER_NAMES: [string, string][] = [
  ["attn_norm", "input_layernorm"],
  ["attn_q", "self_attn.q_proj"],
  ["attn_k", "self_attn.k_proj"],
  ["attn_v", "self_attn.v_proj"],
  ["attn_output", "self_attn.o_proj"],
  ["ffn_norm", "post_attention_layernorm"],
  ["ffn_gate", "mlp.gate_proj"],
  ["ffn_up", "mlp.up_proj"],
  ["ffn_down", "mlp.down_proj"],
];
/** Tensors beyond the llama set that the qwen2 (q/k/v biases) and qwen3 (q/k norms) architectures carry. */
const EXTRA_LAYER_NAMES: [string, string][] = [
  ["attn_q.bias", "self_attn.q_proj.bias"],
  ["attn_k.bias", "self_attn.k_proj.bias"],
  ["attn_v.bias", "self_attn.v_proj.bias"],
  ["attn_q_norm.weight", "self_attn.q_norm.weight"],
  ["attn_k_norm.weight", "self_attn.k_norm.weight"],
];
const GLOBAL_NAMES: [string, string][] = [
  ["token_embd.weight", "model.embed_tokens.weight"],
  ["output_norm.weight", "model.norm.weight"],
  ["output.weight", "lm_head.weight"],
];

export function ggufToHfName(name: string): string | null {
  for (const [g, h] of GLOBAL_NAMES) if (name === g) return h;
  const x = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (x) for (const [g, h] of EXTRA_LAYER_NAMES) if (x[2] === g) return `model.layers.${x[1]}.${h}`;
  const m = /^blk\.(\d+)\.([a-z_]+)\.weight$/.exec(name);
  if (m) for (const [g, h] of LAYER_NAMES) if (m[2] === g) return `model.layers.${m[1]}.${h}.weight`;
  return null;
}

export function hfToGgufName(name: string): string | null {
  for (const [g, h] of GLOBAL_NAMES) if (name === h) return g;
  const x = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (x) for (const [g, h] of EXTRA_LAYER_NAMES) if (x[2] === h) return `blk.${x[1]}.${g}`;
  const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(name);
  if (m) for (const [g, h] of LAYER_NAMES) if (m[2] === h) return `blk.${m[1]}.${g}.weight`;
  return null;
}

/**
 * llama.cpp's phi3 keeps Phi-3's fused projections: `attn_qkv` (q, k, v rows) and `ffn_up` holding the gate rows
 * then the up rows (its SwiGLU splits the product in halves), as HF's `qkv_proj` and `gate_up_proj` do.
 */
const PHI3_NAMES: [string, string][] = [
  ["attn_qkv.weight", "self_attn.qkv_proj.weight"],
  ["ffn_up.weight", "mlp.gate_up_proj.weight"],
];

/**
 * llama.cpp's gemma3 (src/models/gemma3.cpp) names Gemma's four norms per layer: `attn_norm` (input),
 * `post_attention_norm` (on the attention output), `ffn_norm` (pre_feedforward) and `post_ffw_norm`; the
 * llama arch's `ffn_norm` = `post_attention_layernorm` does not apply.
 */
const GEMMA3_NAMES: [string, string][] = [
  ["post_attention_norm.weight", "post_attention_layernorm.weight"],
  ["ffn_norm.weight", "pre_feedforward_layernorm.weight"],
  ["post_ffw_norm.weight", "post_feedforward_layernorm.weight"],
];

function ggufToHfNameFor(arch: string, name: string): string | null {
  const x = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (arch === "phi3" && x) for (const [g, h] of PHI3_NAMES) if (x[2] === g) return `model.layers.${x[1]}.${h}`;
  if (arch === "gemma3" && x) for (const [g, h] of GEMMA3_NAMES) if (x[2] === g) return `model.layers.${x[1]}.${h}`;
  return ggufToHfName(name);
}

function hfToGgufNameFor(arch: string, name: string): string | null {
  const x = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (arch === "phi3" && x) for (const [g, h] of PHI3_NAMES) if (x[2] === h) return `blk.${x[1]}.${g}`;
  if (arch === "gemma3" && x) for (const [g, h] of GEMMA3_NAMES) if (x[2] === h) return `blk.${x[1]}.${g}`;
  return hfToGgufName(name);
}

/** Gemma's RMSNorm multiplies by (1 + w); llama.cpp's by w, so its converter stores w + 1 (Gemma3Model.norm_shift). */
const isGemmaNorm = (hfName: string): boolean => hfName.endsWith("norm.weight");
function shifted(t: HostTensor, by: number): HostTensor {
  const src = t.data;
  const data = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) data[i] = src[i] + by;
  return { shape: t.shape.slice(), data };
}

/**
 * Reorder the rows of a q/k weight [nHeads*hd, in]. `toGguf` true: HF rotate-half → GGUF adjacent pairs
 * (llama.cpp `permute`); false: the inverse.
 */
export function permuteQK(t: HostTensor, nHeads: number, toGguf: boolean): HostTensor {
  const [rows, cols] = t.shape;
  if (rows % nHeads !== 0 || (rows / nHeads) % 2 !== 0) {
    throw new ConfigError(`q/k weight with ${rows} rows cannot be split into ${nHeads} heads of even size`);
  }
  const hd = rows / nHeads;
  const half = hd / 2;
  const data = t.data; // once: a lazy tensor reads its file on every access
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < half; j++) {
        const hfRow = h * hd + i * half + j;
        const ggRow = h * hd + 2 * j + i;
        const [src, dst] = toGguf ? [hfRow, ggRow] : [ggRow, hfRow];
        out.set(data.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return { shape: t.shape.slice(), data: out };
}

/**
 * permuteQK(t, nHeads, true)'s values [start, start + into.length) read row by row from `t.readInto`: output row
 * h·hd + 2j + i is input row h·hd + i·hd/2 + j.
 */
function permutedRange(t: HostTensor, nHeads: number): (start: number, into: Float32Array) => void {
  const [rows, cols] = t.shape;
  if (rows % nHeads !== 0 || (rows / nHeads) % 2 !== 0) {
    throw new ConfigError(`q/k weight with ${rows} rows cannot be split into ${nHeads} heads of even size`);
  }
  const hd = rows / nHeads;
  const half = hd / 2;
  const read = t.readInto!;
  return (start, into) => {
    for (let at = 0; at < into.length; ) {
      const e = start + at;
      const row = Math.floor(e / cols);
      const col = e - row * cols;
      const m = Math.min(cols - col, into.length - at);
      const h = Math.floor(row / hd);
      const w = row - h * hd;
      const src = h * hd + (w % 2) * half + Math.floor(w / 2);
      read(src * cols + col, into.subarray(at, at + m));
      at += m;
    }
  };
}

function num(meta: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = meta[key];
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(`${file}: GGUF metadata "${key}" is missing`);
  }
  if (typeof v !== "number") throw new ConfigError(`${file}: GGUF metadata "${key}" must be a number, got ${JSON.stringify(typeof v === "bigint" ? String(v) : v)}`);
  return v;
}

/** Config from GGUF metadata, validated by parseConfig. Tying is decided by the caller from the tensors. */
export function configFromGguf(h: GgufHeader, tied: boolean, vocabFallback: number): LlamaConfig {
  const m = h.metadata;
  const f = h.path;
  const arch = m["general.architecture"];
  if (arch !== "llama" && arch !== "qwen2" && arch !== "qwen3" && arch !== "phi3" && arch !== "gemma3") {
    throw new ConfigError(`${f}: general.architecture is ${JSON.stringify(arch)}; sdmprune reads "llama", "qwen2", "qwen3", "phi3" and "gemma3"`);
  }
  const ff = m[`${arch}.feed_forward_length`];
  const hidden = num(m, `${arch}.embedding_length`, f);
  const heads = num(m, `${arch}.attention.head_count`, f);
  const headDim = m[`${arch}.attention.key_length`] !== undefined ? num(m, `${arch}.attention.key_length`, f) : hidden / heads;
  const ropeDims = num(m, `${arch}.rope.dimension_count`, f, headDim);
  if (ropeDims !== headDim) throw new ConfigError(`${f}: ${arch}.rope.dimension_count ${ropeDims} differs from head_dim ${headDim} (partial RoPE is not supported)`);
  if (m[`${arch}.attention.value_length`] !== undefined && num(m, `${arch}.attention.value_length`, f) !== headDim) {
    throw new ConfigError(`${f}: ${arch}.attention.value_length differs from key_length (not supported)`);
  }
  let ropeScaling: unknown = null;
  const stype = m[`${arch}.rope.scaling.type`];
  if (typeof m["sdmprune.rope_scaling"] === "string") ropeScaling = JSON.parse(m["sdmprune.rope_scaling"] as string);
  else if (stype === "linear") ropeScaling = { rope_type: "linear", factor: num(m, `${arch}.rope.scaling.factor`, f) };
  else if (stype !== undefined && stype !== "none") throw new ConfigError(`${f}: ${arch}.rope.scaling.type ${JSON.stringify(stype)} is not supported`);
  else if (h.tensors.some((t) => t.name === "rope_freqs.weight")) {
    throw new ConfigError(`${f}: rope_freqs.weight (llama3 RoPE scaling baked into factors) is not supported in GGUF input; convert from the HF checkpoint`);
  }
  const raw = {
    model_type: arch,
    vocab_size: m[`${arch}.vocab_size`] !== undefined ? num(m, `${arch}.vocab_size`, f) : vocabFallback,
    hidden_size: hidden,
    intermediate_size: ff,
    num_hidden_layers: num(m, `${arch}.block_count`, f),
    num_attention_heads: heads,
    num_key_value_heads: num(m, `${arch}.attention.head_count_kv`, f, heads),
    head_dim: headDim,
    rms_norm_eps: num(m, `${arch}.attention.layer_norm_rms_epsilon`, f, 1e-5),
    rope_theta: num(m, `${arch}.rope.freq_base`, f, 10000),
    rope_scaling: ropeScaling,
    tie_word_embeddings: tied,
    max_position_embeddings: num(m, `${arch}.context_length`, f, 2048),
    bos_token_id: num(m, "tokenizer.ggml.bos_token_id", f, 1),
    eos_token_id: num(m, "tokenizer.ggml.eos_token_id", f, 2),
  };
  return parseConfig(arch === "gemma3" ? { ...raw, ...gemma3FromGguf(m, f, raw.num_hidden_layers, hidden, heads, headDim) } : raw, `${f} (GGUF metadata)`);
}

/** The Gemma 3 fields of a gemma3 GGUF, as llama.cpp's loader (src/models/gemma3.cpp) derives them. */
function gemma3FromGguf(m: Record<string, unknown>, f: string, layers: number, hidden: number, heads: number, headDim: number): Record<string, unknown> {
  const window = m["gemma3.attention.sliding_window"] !== undefined ? num(m, "gemma3.attention.sliding_window", f) : 0;
  let layerTypes: string[] = Array(layers).fill("full_attention");
  if (window > 0) {
    const pattern = m["gemma3.attention.sliding_window_pattern"];
    if (Array.isArray(pattern)) {
      if (pattern.length !== layers || pattern.some((x) => typeof x !== "boolean")) {
        throw new FormatError(`${f}: gemma3.attention.sliding_window_pattern must hold one boolean per layer (${layers}), got ${JSON.stringify(pattern).slice(0, 100)}`);
      }
      layerTypes = pattern.map((x) => (x ? "sliding_attention" : "full_attention"));
    } else {
      const n = pattern === undefined ? 6 : num(m, "gemma3.attention.sliding_window_pattern", f);
      // llama_hparams::set_swa_pattern(n): layer il is sliding iff il % n < n - 1 (n = 0: all sliding)
      layerTypes = layerTypes.map((_, i) => (n === 0 || i % n < n - 1 ? "sliding_attention" : "full_attention"));
    }
  }
  return {
    model_type: "gemma3_text",
    hidden_activation: "gelu_pytorch_tanh",
    // llama.cpp's scale: 1/sqrt(head_dim), except hidden/heads for the 62-layer 27B
    query_pre_attn_scalar: layers === 62 ? hidden / heads : headDim,
    sliding_window: window > 0 ? window : null,
    layer_types: layerTypes,
    rope_local_base_freq: num(m, "gemma3.rope.freq_base_swa", f, 10000),
    final_logit_softcapping: m["gemma3.final_logit_softcapping"] !== undefined ? num(m, "gemma3.final_logit_softcapping", f) : null,
    attention_bias: false,
  };
}

/**
 * GGUF tensors (row-major; held or lazy) → HF-named TensorMap, q/k rows permuted, tied head dropped. Lazy tensors
 * stay lazy: the q/k permutation is applied per tensor when it is read. `same(a, b)` decides whether two GGUF
 * tensors hold identical data (default: compare the decoded values; readers pass a chunked byte comparison).
 */
export function tensorsFromGguf(
  file: string,
  g: Map<string, HostTensor>,
  nHeads: number,
  nKvHeads: number,
  same: (a: string, b: string) => boolean = (a, b) => sameTensor(g.get(a)!, g.get(b)!),
  arch = "llama",
): { tensors: TensorMap; tied: boolean } {
  const permute = arch === "llama";
  const tensors: TensorMap = new Map();
  for (const [name, t] of g) {
    if (name === "rope_freqs.weight") continue; // derived from config on write
    const hf = ggufToHfNameFor(arch, name);
    if (hf === null) throw new FormatError(`${file}: unexpected tensor ${name} for a ${arch} GGUF`);
    // Only the llama architecture stores q/k rows in GGUF's adjacent-pair order (see ggufFromModel).
    const heads = !permute ? null : name.endsWith(".attn_q.weight") ? nHeads : name.endsWith(".attn_k.weight") ? nKvHeads : null;
    if (arch === "gemma3" && isGemmaNorm(hf)) tensors.set(hf, isLazy(t) ? lazyTensor(t.shape.slice(), () => shifted(t, -1).data) : shifted(t, -1));
    else if (heads === null) tensors.set(hf, t);
    else if (isLazy(t)) tensors.set(hf, lazyTensor(t.shape.slice(), () => permuteQK(t, heads, false).data));
    else tensors.set(hf, permuteQK(t, heads, false));
  }
  const emb = tensors.get("model.embed_tokens.weight");
  const head = tensors.get("lm_head.weight");
  let tied = head === undefined;
  // Some converters (stories260K) store the tied head as a copy; treat an identical copy as tied.
  if (emb && head && same("token_embd.weight", "output.weight")) {
    tensors.delete("lm_head.weight");
    tied = true;
  }
  return { tensors, tied };
}

function sameTensor(a: HostTensor, b: HostTensor): boolean {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return false;
  const x = new Uint32Array(a.data.buffer, a.data.byteOffset, a.data.length);
  const y = new Uint32Array(b.data.buffer, b.data.byteOffset, b.data.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** The SentencePiece vocabulary in GGUF metadata, or null (no tokenizer, or a kind sdmprune does not read). */
export function sentencePieceFromGguf(h: GgufHeader): SentencePieceVocab | null {
  const m = h.metadata;
  const model = m["tokenizer.ggml.model"];
  if (model === undefined) return null;
  if (model !== "llama") return null;
  const tokens = m["tokenizer.ggml.tokens"];
  if (!Array.isArray(tokens)) throw new FormatError(`${h.path}: tokenizer.ggml.tokens is missing`);
  const scores = (m["tokenizer.ggml.scores"] as number[] | undefined) ?? tokens.map(() => 0);
  const types = (m["tokenizer.ggml.token_type"] as number[] | undefined) ?? tokens.map(() => 1);
  if (scores.length !== tokens.length || types.length !== tokens.length) {
    throw new FormatError(`${h.path}: tokenizer.ggml.scores/token_type lengths (${scores.length}/${types.length}) differ from tokens (${tokens.length})`);
  }
  const id = (k: string): number | null => {
    const v = m[k];
    return typeof v === "number" && v < tokens.length ? v : null;
  };
  return {
    tokens: tokens as string[],
    scores,
    types,
    bosTokenId: id("tokenizer.ggml.bos_token_id"),
    eosTokenId: id("tokenizer.ggml.eos_token_id"),
    unkTokenId: id("tokenizer.ggml.unknown_token_id"),
    addSpacePrefix: m["tokenizer.ggml.add_space_prefix"] !== false,
  };
}

/** The byte-level BPE vocabulary (`tokenizer.ggml.model = "gpt2"`) in GGUF metadata, or null for another kind. */
export function byteLevelBpeFromGguf(h: GgufHeader): ByteLevelBpeVocab | null {
  const m = h.metadata;
  if (m["tokenizer.ggml.model"] !== "gpt2") return null;
  const tokens = m["tokenizer.ggml.tokens"];
  const merges = m["tokenizer.ggml.merges"];
  if (!Array.isArray(tokens)) throw new FormatError(`${h.path}: tokenizer.ggml.tokens is missing`);
  if (!Array.isArray(merges)) throw new FormatError(`${h.path}: tokenizer.ggml.merges is missing (a gpt2 vocabulary needs its merges)`);
  const types = (m["tokenizer.ggml.token_type"] as number[] | undefined) ?? tokens.map(() => 1);
  const pre = m["tokenizer.ggml.pre"];
  if (typeof pre !== "string") throw new FormatError(`${h.path}: tokenizer.ggml.pre is missing (which pre-tokenizer the vocabulary needs)`);
  const id = (k: string): number | null => {
    const v = m[k];
    return typeof v === "number" && v < tokens.length ? v : null;
  };
  const bos = id("tokenizer.ggml.bos_token_id");
  return {
    pre,
    tokens: tokens as string[],
    types,
    merges: merges as string[],
    bosTokenId: bos,
    eosTokenId: id("tokenizer.ggml.eos_token_id"),
    addsBos: m["tokenizer.ggml.add_bos_token"] === true && bos !== null,
  };
}

/** llama3 RoPE frequency factors as llama.cpp's converter computes them (`rope_freqs.weight`). */
function llama3RopeFactors(c: LlamaConfig): Float32Array {
  const rs = c.rope_scaling!;
  const factor = rs.factor!, lo = rs.low_freq_factor!, hi = rs.high_freq_factor!, old = rs.original_max_position_embeddings!;
  const loWave = old / lo, hiWave = old / hi;
  const out = new Float32Array(c.head_dim / 2);
  for (let j = 0; j < out.length; j++) {
    const freq = 1 / c.rope_theta ** ((2 * j) / c.head_dim);
    const wave = (2 * Math.PI) / freq;
    if (wave < hiWave) out[j] = 1;
    else if (wave > loWave) out[j] = factor;
    else {
      const s = (old / wave - lo) / (hi - lo);
      out[j] = 1 / ((1 - s) / factor + s);
    }
  }
  return out;
}

/**
 * The llama.cpp architecture a model is written as: `llama` (Mistral converts to it too, as llama.cpp's own
 * converter does), `qwen2`, `qwen3`, `phi3` or `gemma3`. Features the chosen architecture does not compute are refused.
 */
export type GgufArch = "llama" | "qwen2" | "qwen3" | "phi3" | "gemma3";

/** The sliding/global layer kinds llama.cpp's gemma3 gives a model (no pattern key: every 6th layer global). */
export function llamaCppGemma3LayerTypes(numLayers: number): ("full_attention" | "sliding_attention")[] {
  // llama_hparams::set_swa_pattern(6): layer il is sliding iff il % 6 < 5
  return Array.from({ length: numLayers }, (_, i) => (i % 6 < 5 ? "sliding_attention" : "full_attention"));
}

/**
 * Gemma 3 text as llama.cpp's gemma3 architecture computes it (src/models/gemma3.cpp, node-llama-cpp 3.22.1):
 * attention scale 1/sqrt(head_dim) (1/sqrt(hidden/heads) at 62 layers, the 27B), sliding layers per the
 * every-6th-global rule (its converter writes no pattern), the local RoPE base from `rope.freq_base_swa` without
 * scaling, final softcapping. A config that differs would run as another model there: refused, saying why.
 */
function gemma3Refusal(c: LlamaConfig): string | null {
  const why = "llama.cpp's gemma3 would compute a different model";
  const scale = c.num_hidden_layers === 62 ? c.hidden_size / c.num_attention_heads : c.head_dim;
  const q = c.query_pre_attn_scalar ?? c.head_dim;
  if (q !== scale) {
    return `query_pre_attn_scalar ${q} (${why}: it scales queries by 1/sqrt(${c.num_hidden_layers === 62 ? "hidden_size/num_attention_heads" : "head_dim"}) = 1/sqrt(${scale}))`;
  }
  const sliding = c.sliding_window !== null && c.layer_types.some((t) => t === "sliding_attention");
  if (sliding) {
    const want = llamaCppGemma3LayerTypes(c.num_hidden_layers);
    if (c.layer_types.some((t, i) => t !== want[i])) {
      return `layer_types [${c.layer_types.map((t) => (t === "sliding_attention" ? "S" : "F")).join("")}] (${why}: without a pattern key, which its converter does not write, every 6th layer is global: [${want.map((t) => (t === "sliding_attention" ? "S" : "F")).join("")}])`;
    }
  }
  if (c.rope_scaling && c.rope_scaling.rope_type !== "linear") return `RoPE scaling ${JSON.stringify(c.rope_scaling.rope_type)} in gemma3_text`;
  if (c.qkv_bias || c.o_bias) return "attention biases in gemma3_text";
  if (!c.qk_norm || !c.gemma_norms || c.hidden_act !== "gelu_pytorch_tanh") return "a gemma3_text config without q/k norms, (1+w) norms or GeGLU";
  return null;
}

function ggufArch(c: LlamaConfig): GgufArch {
  const no = (what: string): never => {
    throw new ConfigError(`GGUF export: ${what} is not supported by the GGUF writer (it writes llama.cpp's llama, qwen2, qwen3, phi3 and gemma3 architectures); save as HF instead`);
  };
  if (c.model_type === "gemma3_text") {
    const r = gemma3Refusal(c);
    return r === null ? "gemma3" : no(r);
  }
  const arch: GgufArch =
    c.model_type === "llama" || c.model_type === "mistral" ? "llama" : c.model_type === "qwen2" || c.model_type === "qwen3" || c.model_type === "phi3" ? c.model_type : no(`model_type ${JSON.stringify(c.model_type)}`);
  if (c.hidden_act !== "silu" || c.gemma_norms) no(`hidden_act ${c.hidden_act}`);
  if (c.o_bias) no("an o_proj bias (attention_bias: true)");
  if (c.qkv_bias && arch !== "qwen2") no(`q/k/v biases (attention_bias: true) in ${c.model_type}`);
  if (c.qk_norm && arch !== "qwen3") no(`q_norm/k_norm in ${c.model_type}`);
  if (arch === "qwen3" && !c.qk_norm) no("qwen3 without q_norm/k_norm");
  if (c.rope_scaling?.rope_type === "llama3" && arch !== "llama") no(`llama3 RoPE scaling in ${c.model_type}`);
  if (c.rope_scaling && arch === "phi3") no(`RoPE scaling ${JSON.stringify(c.rope_scaling.rope_type)} in phi3`);
  // llama.cpp attends over the whole context in these architectures; a window would silently be dropped.
  if (c.sliding_window !== null && c.sliding_window < c.max_position_embeddings) {
    no(`sliding_window ${c.sliding_window} (shorter than max_position_embeddings ${c.max_position_embeddings})`);
  }
  return arch;
}

/**
 * Metadata and tensors for a GGUF that llama.cpp loads. q/k rows are permuted only for `llama`: llama.cpp runs
 * qwen2/qwen3 with NEOX (rotate-half) RoPE, HF's own pairing, and its converter writes them unpermuted.
 */
export function ggufFromModel(
  config: LlamaConfig,
  tensors: TensorMap,
  tokenizer: HfTokenizer | null,
  dtype: "f32" | "f16",
  name = "sdmprune",
  padMlp = false,
): { kvs: [string, GgufValue][]; tensors: GgufWriteTensor[] } {
  const arch = ggufArch(config);
  let c = config;
  if (padMlp) ({ config: c, tensors } = padMlpWidths(config, tensors));
  const sizes = intermediateSizes(c);
  const kvs: [string, GgufValue][] = [
    ["general.architecture", gv.str(arch)],
    ["general.name", gv.str(name)],
    ["general.file_type", gv.u32(dtype === "f16" ? 1 : 0)],
    [`${arch}.vocab_size`, gv.u32(c.vocab_size)],
    [`${arch}.context_length`, gv.u32(c.max_position_embeddings)],
    [`${arch}.embedding_length`, gv.u32(c.hidden_size)],
    [`${arch}.block_count`, gv.u32(c.num_hidden_layers)],
    [`${arch}.feed_forward_length`, sizes.every((s) => s === sizes[0]) ? gv.u32(sizes[0]) : gv.arr(GgufType.UINT32, sizes)],
    [`${arch}.attention.head_count`, gv.u32(c.num_attention_heads)],
    [`${arch}.attention.head_count_kv`, gv.u32(c.num_key_value_heads)],
    [`${arch}.rope.dimension_count`, gv.u32(c.head_dim)],
    [`${arch}.rope.freq_base`, gv.f32(c.rope_theta)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gv.f32(c.rms_norm_eps)],
  ];
  if (arch === "gemma3") {
    // As convert_hf_to_gguf.py's Gemma3Model and TextModel write them.
    // always: without the key llama.cpp's sliding layers use base 10000, not rope_theta
    kvs.push(["gemma3.rope.freq_base_swa", gv.f32(c.rope_local_theta ?? c.rope_theta)]);
    if (c.final_logit_softcapping !== null) kvs.push(["gemma3.final_logit_softcapping", gv.f32(c.final_logit_softcapping)]);
    if (c.sliding_window !== null && c.layer_types.some((t) => t === "sliding_attention")) kvs.push(["gemma3.attention.sliding_window", gv.u32(c.sliding_window)]);
  }
  if (c.head_dim * c.num_attention_heads !== c.hidden_size || arch === "qwen3" || arch === "gemma3") {
    kvs.push([`${arch}.attention.key_length`, gv.u32(c.head_dim)], [`${arch}.attention.value_length`, gv.u32(c.head_dim)]);
  }
  // llama.cpp's phi3 reads this key only for longrope factors, which are refused above; written as its converter does.
  if (arch === "phi3") kvs.push(["phi3.rope.scaling.original_context_length", gv.u32(c.max_position_embeddings)]);
  if (c.rope_scaling?.rope_type === "linear") {
    kvs.push([`${arch}.rope.scaling.type`, gv.str("linear")], [`${arch}.rope.scaling.factor`, gv.f32(c.rope_scaling.factor!)]);
  } else if (c.rope_scaling?.rope_type === "llama3") {
    kvs.push(["sdmprune.rope_scaling", gv.str(JSON.stringify(c.rope_scaling))]);
  }
  // byte-level BPE (GPT-2 style) is a BPE model without byte fallback; anything else (SentencePiece BPE with
  // byte fallback, Unigram, ...) takes the SentencePiece path, which refuses what it cannot write
  const model = tokenizer === null ? null : (tokenizer.toJSON() as { model?: { type?: unknown; byte_fallback?: unknown } }).model;
  const byteLevel = model?.type === "BPE" && model.byte_fallback !== true;
  if (tokenizer && byteLevel) {
    const bl = tokenizer.toByteLevelBpe(c.vocab_size);
    kvs.push(
      ["tokenizer.ggml.model", gv.str("gpt2")],
      ["tokenizer.ggml.pre", gv.str(bl.pre)],
      ["tokenizer.ggml.tokens", gv.arr(GgufType.STRING, bl.tokens)],
      ["tokenizer.ggml.token_type", gv.arr(GgufType.INT32, bl.types)],
      ["tokenizer.ggml.merges", gv.arr(GgufType.STRING, bl.merges)],
    );
    // Without a BOS/EOS in the tokenizer the config's ids are kept (as llama.cpp's converter does), so a round
    // trip keeps config.bos_token_id, which evaluation prepends.
    const cfgEos = Array.isArray(c.eos_token_id) ? c.eos_token_id[0] : c.eos_token_id;
    const bos = bl.bosTokenId ?? c.bos_token_id;
    const eos = bl.eosTokenId ?? cfgEos;
    if (bos !== null && bos !== undefined) kvs.push(["tokenizer.ggml.bos_token_id", gv.u32(bos)]);
    if (eos !== null && eos !== undefined) kvs.push(["tokenizer.ggml.eos_token_id", gv.u32(eos)]);
    kvs.push(["tokenizer.ggml.add_bos_token", gv.bool(bl.addsBos && bl.bosTokenId !== null)], ["tokenizer.ggml.add_eos_token", gv.bool(false)]);
  } else if (tokenizer) {
    const sp = tokenizer.toSentencePiece();
    kvs.push(
      ["tokenizer.ggml.model", gv.str("llama")],
      ["tokenizer.ggml.pre", gv.str("default")],
      ["tokenizer.ggml.tokens", gv.arr(GgufType.STRING, sp.tokens)],
      ["tokenizer.ggml.scores", gv.arr(GgufType.FLOAT32, sp.scores)],
      ["tokenizer.ggml.token_type", gv.arr(GgufType.INT32, sp.types)],
    );
    if (sp.bosTokenId !== null) kvs.push(["tokenizer.ggml.bos_token_id", gv.u32(sp.bosTokenId)]);
    if (sp.eosTokenId !== null) kvs.push(["tokenizer.ggml.eos_token_id", gv.u32(sp.eosTokenId)]);
    if (sp.unkTokenId !== null) kvs.push(["tokenizer.ggml.unknown_token_id", gv.u32(sp.unkTokenId)]);
    // llama.cpp's SentencePiece tokenizer prepends "▁" unless told not to (Gemma's tokenizer does not).
    if (sp.addSpacePrefix === false) kvs.push(["tokenizer.ggml.add_space_prefix", gv.bool(false)]);
    // As the tokenizer says (Phi-3's adds none although it has a BOS): llama.cpp adds BOS when this is true.
    kvs.push(["tokenizer.ggml.add_bos_token", gv.bool(tokenizer.addsBos && sp.bosTokenId !== null)], ["tokenizer.ggml.add_eos_token", gv.bool(false)]);
  } else {
    // Keep the ids the config carries so a round trip preserves them (llama.cpp itself needs a vocabulary).
    kvs.push(["tokenizer.ggml.bos_token_id", gv.u32(c.bos_token_id)]);
    const eos = Array.isArray(c.eos_token_id) ? c.eos_token_id[0] : c.eos_token_id;
    kvs.push(["tokenizer.ggml.eos_token_id", gv.u32(eos)]);
  }

  const out: GgufWriteTensor[] = [];
  if (arch === "phi3") tensors = fusePhi3(c, tensors);
  const order = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"];
  const layerNames =
    arch === "phi3"
      ? ["input_layernorm", "self_attn.qkv_proj", "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_up_proj", "mlp.down_proj"]
      : arch === "gemma3"
        ? ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm", "pre_feedforward_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "post_feedforward_layernorm"]
        : LAYER_NAMES.map(([, h]) => h);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const h of layerNames) order.push(`model.layers.${l}.${h}.weight`);
    if (c.qkv_bias) for (const p of ["q", "k", "v"]) order.push(`model.layers.${l}.self_attn.${p}_proj.bias`);
    if (c.qk_norm) for (const p of ["q", "k"]) order.push(`model.layers.${l}.self_attn.${p}_norm.weight`);
  }
  const seen = new Set<string>();
  for (const hf of order) {
    const t = tensors.get(hf);
    if (!t) {
      if (hf === "lm_head.weight") continue; // tied: llama.cpp reuses token_embd
      throw new ConfigError(`GGUF writer: missing tensor ${hf}`);
    }
    seen.add(hf);
    const name = hfToGgufNameFor(arch, hf)!;
    const heads = arch !== "llama" ? null : hf.endsWith("q_proj.weight") ? c.num_attention_heads : hf.endsWith("k_proj.weight") ? c.num_key_value_heads : null;
    // Data is taken when the writer reaches the tensor (permuted then), so lazy tensors are read one at a time.
    const wt = { name, shape: t.shape.slice(), type: dtype } as GgufWriteTensor;
    const shift = arch === "gemma3" && isGemmaNorm(hf);
    Object.defineProperty(wt, "data", { get: () => (shift ? shifted(t, 1).data : heads === null ? t.data : permuteQK(t, heads, true).data), enumerable: true });
    // the writer streams what can be read in ranges (a shifted norm is small and read whole)
    if (t.readInto && !shift) wt.readInto = heads === null ? t.readInto : permutedRange(t, heads);
    out.push(wt);
  }
  for (const k of tensors.keys()) if (!seen.has(k)) throw new ConfigError(`GGUF writer: unexpected tensor ${k}`);
  if (c.rope_scaling?.rope_type === "llama3") out.push({ name: "rope_freqs.weight", shape: [c.head_dim / 2], data: llama3RopeFactors(c), type: "f32" });
  return { kvs, tensors: out };
}

/** Pad every layer's MLP to the widest layer with zero channels (identical outputs; uniform width). */
export function padMlpWidths(config: LlamaConfig, tensors: TensorMap): { config: LlamaConfig; tensors: TensorMap } {
  const sizes = intermediateSizes(config);
  const W = Math.max(...sizes);
  if (sizes.every((s) => s === W)) return { config, tensors };
  const H = config.hidden_size;
  const out: TensorMap = new Map(tensors);
  sizes.forEach((I, l) => {
    if (I === W) return;
    for (const n of ["gate_proj", "up_proj"]) {
      const k = `model.layers.${l}.mlp.${n}.weight`;
      const data = new Float32Array(W * H);
      data.set(tensors.get(k)!.data); // rows [I, W) stay zero
      out.set(k, { shape: [W, H], data });
    }
    const k = `model.layers.${l}.mlp.down_proj.weight`;
    const src = tensors.get(k)!.data;
    const data = new Float32Array(H * W);
    for (let r = 0; r < H; r++) data.set(src.subarray(r * I, (r + 1) * I), r * W);
    out.set(k, { shape: [H, W], data });
  });
  return { config: { ...config, intermediate_size: W }, tensors: out };
}
