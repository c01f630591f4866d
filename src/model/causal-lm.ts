import * as tf from "@tensorflow/tfjs";
import { ownedData, uploadedOnPush } from "../engine/upload";
import { ConfigError, DataError, NumericError, UsageError } from "../errors";
import { isLazy, lazyTensor } from "../io/tensor-file";
import { numel, type TensorMap } from "../io/tensors";
import { Rng } from "../rng";
import { expectedShapes, withIntermediateSizes, type LlamaConfig } from "./config";
import { causalMask, halfSwap, linear, normScale, NORM_SAVED, rmsNorm, slidingWindow as windowOf, softcap, type KV, type LayerContext, type NormRecord, type NormSlot } from "./blocks";
import type { Family } from "./family";
import { pickToken } from "./generate";
import { matMulBT, targetLogProbs, transposeHost, vocabMajorHead } from "./kernels";
import { cachingHooks, checkHooks, combineHooks, hookPoints, runHook, type Hooks } from "./hooks";
import { FAMILIES } from "./registry";
import { ropeTables } from "./rope";
import { disposeHostLayer, HostWeight, materialiseLayer, type HostFloat, type HostLayer, type HostModelWeights, type WeightsIn } from "./weight-store";

/** Kept importable from here for existing callers; they live with the other backend-specific products. */
export { targetLogProbs, vocabMajorHead };

export interface LayerWeights {
  input_layernorm: tf.Tensor1D; // [H]
  q_proj: tf.Tensor2D; // [H, nH*hd]
  k_proj: tf.Tensor2D; // [H, nKV*hd]
  v_proj: tf.Tensor2D; // [H, nKV*hd]
  o_proj: tf.Tensor2D; // [nH*hd, H]
  post_attention_layernorm: tf.Tensor1D; // [H]
  gate_proj: tf.Tensor2D; // [H, I_l]
  up_proj: tf.Tensor2D; // [H, I_l]
  down_proj: tf.Tensor2D; // [I_l, H]
  /** Present as the config says (qkv_bias, o_bias: Qwen2, Qwen3/Llama with attention_bias). */
  q_bias?: tf.Tensor1D; // [nH*hd]
  k_bias?: tf.Tensor1D; // [nKV*hd]
  v_bias?: tf.Tensor1D; // [nKV*hd]
  o_bias?: tf.Tensor1D; // [H]
  /** RMSNorm weights over each head of q and k, before RoPE (qk_norm: Qwen3). */
  q_norm?: tf.Tensor1D; // [hd]
  k_norm?: tf.Tensor1D; // [hd]
  /**
   * Gemma's sandwich norms: the MLP input norm is pre_feedforward_layernorm, post_feedforward_layernorm
   * norms the MLP output, and post_attention_layernorm norms the attention output (in Llama it is the MLP
   * input norm).
   */
  pre_feedforward_layernorm?: tf.Tensor1D; // [H]
  post_feedforward_layernorm?: tf.Tensor1D; // [H]
}

export interface ModelWeights {
  embed_tokens: tf.Tensor2D; // [V, H]
  layers: LayerWeights[];
  norm: tf.Tensor1D; // [H]
  lm_head: tf.Tensor2D | null; // [H, V]; null = tied to embed_tokens
}

export interface LayerOptions {
  /** Named hook points (src/model/hooks.ts): read or replace layers.N.attn.out, mlp.in, mlp.act, mlp.out, resid.N. */
  hooks?: Hooks;
  /**
   * LoRA branches on the projections: y = x·W (+ b) + scale·(drop(x)·A)·B, where drop multiplies x by the
   * given inverted-dropout mask. Every projection goes through this one seam, so recovery trains the same
   * layer code that scoring and evaluation run.
   */
  lora?: LoraOptions;
}

export type Projection = "q_proj" | "k_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj";

export interface LoraBranch {
  A: tf.Tensor2D; // [in, r]
  B: tf.Tensor2D; // [r, out]
}

export interface LoraOptions {
  branches: Partial<Record<Projection, LoraBranch>>;
  scale: number;
  /** Inverted-dropout masks per projection ([N, in], values 0 or 1/(1−p)); absent = no dropout. */
  masks?: Partial<Record<Projection, tf.Tensor2D>>;
}

export interface ForwardOptions {
  /** Named hook points over the whole forward (src/model/hooks.ts). */
  hooks?: Hooks;
}

export interface TokenLogProbsOptions extends ForwardOptions {
  /** Rows per head chunk (default: about 4M logits per chunk). */
  logitRows?: number;
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  topK?: number;
  seed?: number;
  /** Stop after an end-of-sequence token (which is not returned). Default true. */
  stopAtEos?: boolean;
  /** Called with each new token as soon as it is chosen (streaming output). */
  onToken?: (id: number) => void;
}

const ATTN: Projection[] = ["q_proj", "k_proj", "v_proj", "o_proj"];

/** Logit rows per head chunk: keeps a [rows, V] block near 16 MB whatever the vocabulary. */
const LOGIT_CHUNK_FLOATS = 1 << 22;
/** Float32 weights per head chunk of a streamed model (64 MiB). */
const HEAD_CHUNK_WEIGHT_FLOATS = 1 << 24;

/**
 * Rows of the vocabulary per head chunk of a streamed model: about 64 MiB of float32 weights per chunk, so a chunk,
 * its transposed copy and XNNPACK's packed copy stay small next to a layer (memory estimates use it too).
 */
export function headChunkRows(config: LlamaConfig): number {
  return Math.min(config.vocab_size, Math.max(256, Math.floor(HEAD_CHUNK_WEIGHT_FLOATS / config.hidden_size)));
}
/**
 * Head chunk rows for vocabulary V: about LOGIT_CHUNK_FLOATS logits, rounded down to a multiple of 32 rows
 * where that many fit (the native backend's product is ~10 % faster per row at 128 rows than at 131).
 */
function logitChunkRows(V: number): number {
  const rows = Math.max(1, Math.floor(LOGIT_CHUNK_FLOATS / V));
  return rows >= 32 ? rows - (rows % 32) : rows;
}
/** Rows (B·T) per trunk batch in tokenLogProbs. */
const MAX_BATCH_ROWS = 2048;
const MASKED = -1e9;
/** Cached causal masks beyond this count are dropped at the next public call (varied lengths in evals). */
const MAX_CACHED_MASKS = 32;

/**
 * What the hand-written backward of one decoder layer (src/model/backward.ts) needs from its forward
 * pass, recorded by `layerSaved` (B sequences of length T, no key/value cache). Holding these instead
 * of recomputing the layer in the backward sweep saves a forward pass and most of the small kernels.
 * Rows are b·T + t; "heads" batches are b·nKV + kv.
 */
export interface LayerActivations {
  B: number;
  T: number;
  /** Input RMSNorm: x·r (before the weight) and r = 1/rms, [B·T, H] and [B·T, 1]. */
  xhat1: tf.Tensor2D;
  r1: tf.Tensor2D;
  /** Roped queries times 1/√hd, grouped per kv head: [B·nKV, g·T, hd] (row j·T + t is query head kv·g + j). */
  qq: tf.Tensor3D;
  /** Roped keys and the values, [B·nKV, T, hd]. */
  kk: tf.Tensor3D;
  vv: tf.Tensor3D;
  /** qk_norm only: per-head x·r and r of q and k before their norm weights, [B·T·heads, hd] and [B·T·heads, 1]. */
  qhat?: tf.Tensor2D;
  rq?: tf.Tensor2D;
  khat?: tf.Tensor2D;
  rk?: tf.Tensor2D;
  /** Attention probabilities, [B·nKV, g·T, T] (exact zeros above the diagonal). */
  probs: tf.Tensor3D;
  /** Post-attention RMSNorm: x·r, r and the normed MLP input, [B·T, H], [B·T, 1], [B·T, H]. */
  xhat2: tf.Tensor2D;
  r2: tf.Tensor2D;
  xn2: tf.Tensor2D;
  /** Gemma only: x·r and r of the attention output's and the MLP output's norms, [B·T, H] and [B·T, 1]. */
  xhatPa?: tf.Tensor2D;
  rPa?: tf.Tensor2D;
  xhatPf?: tf.Tensor2D;
  rPf?: tf.Tensor2D;
  /** f(gate), f'(gate) for the activation f (silu or gelu_pytorch_tanh), up, and act = f(gate)·up: [B·T, I] each. */
  g: tf.Tensor2D;
  dg: tf.Tensor2D;
  up: tf.Tensor2D;
  act: tf.Tensor2D;
}

/** Float32 values held by one layer's LayerActivations for one sequence of length T (for memory budgets). */
export function layerActivationFloats(config: LlamaConfig, l: number, T: number): number {
  const H = config.hidden_size;
  const I = Array.isArray(config.intermediate_size) ? config.intermediate_size[l] : config.intermediate_size;
  const nH = config.num_attention_heads;
  const hd = config.head_dim;
  const qkNorm = config.qk_norm ? T * (nH + config.num_key_value_heads) * (hd + 1) : 0;
  // Gemma's extra norms around attention and MLP save their normalised inputs and 1/rms too
  const gemmaNorms = config.gemma_norms ? T * (2 * H + 2) : 0;
  return T * (4 * H + 2) + T * hd * (nH + 2 * config.num_key_value_heads) + nH * T * T + 4 * T * I + qkNorm + gemmaNorms;
}

const BIAS_OF: Partial<Record<keyof LayerWeights, string>> = { q_bias: "q_proj", k_bias: "k_proj", v_bias: "v_proj", o_bias: "o_proj" };

/** The Hugging Face name of a layer tensor, e.g. `model.layers.3.self_attn.q_proj.bias` for ("q_bias", 3). */
export function layerParamName(l: number, key: keyof LayerWeights): string {
  if (key === "input_layernorm" || key === "post_attention_layernorm" || key === "pre_feedforward_layernorm" || key === "post_feedforward_layernorm") {
    return `model.layers.${l}.${key}.weight`;
  }
  const bias = BIAS_OF[key];
  if (bias) return `model.layers.${l}.self_attn.${bias}.bias`;
  if ((ATTN as string[]).includes(key) || key === "q_norm" || key === "k_norm") return `model.layers.${l}.self_attn.${key}.weight`;
  return `model.layers.${l}.mlp.${key}.weight`;
}


const BASE_KEYS: (keyof LayerWeights)[] = [
  "input_layernorm",
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "post_attention_layernorm",
  "gate_proj",
  "up_proj",
  "down_proj",
];

/** The per-layer tensors a config implies, in HF order. */
export function layerKeys(c: LlamaConfig): (keyof LayerWeights)[] {
  const keys = BASE_KEYS.slice();
  if (c.qkv_bias) keys.push("q_bias", "k_bias", "v_bias");
  if (c.o_bias) keys.push("o_bias");
  if (c.qk_norm) keys.push("q_norm", "k_norm");
  if (c.gemma_norms) keys.push("pre_feedforward_layernorm", "post_feedforward_layernorm");
  return keys;
}

function isHosted(w: ModelWeights | HostModelWeights): w is HostModelWeights {
  return (w as HostModelWeights).weightsIn !== undefined;
}

/** How `CausalLM.fromTensors` holds the weights (see src/model/weight-store.ts). */
export interface WeightStorage {
  /** "heap" (default): tensors on the backend; "host"/"disk": streamed one layer at a time. */
  weightsIn?: WeightsIn;
  /**
   * Storage type of the weights (default float32); float16 halves them. With "host"/"disk" it is the host copy;
   * with "heap" (webgpu only) the weights are held on the GPU as packed halves and each decoder layer is unpacked
   * to float32 for its step (src/model/weight-store.ts). Either way the model computes with the rounded values.
   */
  hostFloat?: HostFloat;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function checkWeights(config: LlamaConfig, w: ModelWeights, source: string): void {
  const hf = expectedShapes(config);
  const check = (name: string, t: tf.Tensor | null | undefined): void => {
    // internal layout: linears are [in, out], i.e. the HF [out, in] shape reversed; the embedding keeps [V, H]
    const s = hf.get(name)!;
    const want = s.length === 2 && name !== "model.embed_tokens.weight" ? [s[1], s[0]] : s;
    if (!t) throw new ConfigError(`${source}: weight ${name} is missing`);
    if (t.isDisposed) throw new ConfigError(`${source}: weight ${name} has been disposed`);
    if (!sameShape(t.shape, want)) {
      throw new ConfigError(`${source}: weight ${name} has shape [${t.shape}] (internal [in, out] layout), expected [${want}]`);
    }
  };
  if (w.layers.length !== config.num_hidden_layers) {
    throw new ConfigError(`${source}: ${w.layers.length} layers, config says num_hidden_layers = ${config.num_hidden_layers}`);
  }
  check("model.embed_tokens.weight", w.embed_tokens);
  check("model.norm.weight", w.norm);
  if (config.tie_word_embeddings) {
    if (w.lm_head) throw new ConfigError(`${source}: lm_head given but config has tie_word_embeddings = true`);
  } else {
    check("lm_head.weight", w.lm_head);
  }
  w.layers.forEach((lw, l) => {
    for (const k of layerKeys(config)) check(layerParamName(l, k), lw[k]);
    for (const k of Object.keys(lw) as (keyof LayerWeights)[]) {
      if (lw[k] && !layerKeys(config).includes(k)) throw new ConfigError(`${source}: layer ${l} holds ${k}, which the config does not use`);
    }
  });
}

/**
 * A decoder of any registered family in TensorFlow.js: this class holds the weights, positions, caches,
 * embedding and head; each layer's math is the family's decoderLayer (families/*.ts). Linear weights are held
 * as [in, out] so every product is a plain x·W on flattened [B·T, ·] rows: the wasm backend is 15–20× slower
 * on transposed or broadcast batched products (environment.md).
 */
export class CausalLM {
  readonly config: LlamaConfig;
  /** Every weight as a tensor on the backend (null for a streamed model). */
  private readonly resident: ModelWeights | null;
  /** A streamed model's weights, outside the backend (null for a resident model). */
  private readonly hosted: HostModelWeights | null;
  private readonly consts = new Map<string, tf.Tensor>();
  private tiedHead: tf.Tensor2D | null = null;
  private tiedHeadBackend = "";

  private constructor(config: LlamaConfig, weights: ModelWeights | HostModelWeights) {
    this.config = config;
    this.resident = isHosted(weights) ? null : weights;
    this.hosted = isHosted(weights) ? weights : null;
  }

  /**
   * Every weight as a backend tensor. Only a resident model has them: a streamed one (weightsIn "host" or "disk")
   * brings one layer at a time onto the backend (withLayer), and code that needs all weights at once (LoRA, the
   * taped gradients of the straightforward path) is refused there.
   */
  get weights(): ModelWeights {
    if (!this.resident) {
      if (this.hosted!.weightsIn === "heap") {
        throw new UsageError(
          `this model streams its weights (weightsIn "heap" as float16: packed halves on the GPU, one layer at a time unpacked to float32); ` +
            `this operation needs every weight resident as float32: load it without float16 storage (hostFloat "float32", no --offload-dtype f16)`,
        );
      }
      throw new UsageError(
        `this model streams its weights (weightsIn "${this.hosted!.weightsIn}": held outside the tensor backend, one layer at a time on it); ` +
          `this operation needs every weight resident: load it with weightsIn "heap" (--offload heap), on the native backend for models beyond the wasm heap`,
      );
    }
    return this.resident;
  }

  /** Where the weights live: "heap" (tensors on the backend), "host" or "disk" (streamed layer by layer). */
  get weightsIn(): WeightsIn {
    return this.hosted ? this.hosted.weightsIn : "heap";
  }

  /**
   * True when the weights are not float32 tensors on the backend but come onto it as float32 one layer at a time:
   * uploaded from host memory or disk, or (weightsIn "heap" as float16) unpacked from packed halves.
   */
  get streamed(): boolean {
    return this.hosted !== null;
  }

  /** Storage type of a streamed model's weights (float32 for a resident model; float16 for packed halves on the GPU). */
  get hostFloat(): HostFloat {
    return this.hosted ? this.hosted.dtype : "float32";
  }

  /** A streamed model's weights (for the model-state bookkeeping of pruning); null when resident. */
  get hostWeights(): HostModelWeights | null {
    return this.hosted;
  }

  /** The model's own weights, resident or streamed. */
  private get own(): ModelWeights | HostModelWeights {
    return (this.resident ?? this.hosted)!;
  }

  /**
   * Run `fn` with layer l's weights as backend tensors: the resident ones, or the streamed layer uploaded now and
   * disposed when `fn` returns (so `fn` must not return or keep them; tensors it computes from them are its own).
   */
  withLayer<T>(l: number, fn: (lw: LayerWeights) => T): T {
    return this.withLayerOf(this.own, l, fn);
  }

  private withLayerOf<T>(w: ModelWeights | HostModelWeights, l: number, fn: (lw: LayerWeights) => T): T {
    if (!isHosted(w)) return fn(w.layers[l]);
    const lw = materialiseLayer(w.layers[l]);
    try {
      return fn(lw as unknown as LayerWeights);
    } finally {
      tf.dispose(Object.values(lw));
    }
  }

  /** Shapes of layer l's weights (internal layout), without uploading a streamed layer. */
  layerShapes(l: number): Record<string, number[]> {
    const src = (this.resident ? this.resident.layers[l] : this.hosted!.layers[l]) as unknown as Record<string, { shape: number[] }>;
    return Object.fromEntries(Object.entries(src).map(([k, t]) => [k, t.shape.slice()]));
  }

  /** Build from Hugging Face names and layout ([out, in] linears). `source` names the origin in errors. */
  static fromTensors(config: LlamaConfig, tensors: TensorMap, source = "model", storage: WeightStorage = {}): CausalLM {
    const H = config.hidden_size;
    const V = config.vocab_size;
    const expected = expectedShapes(config);
    for (const [name, shape] of expected) {
      const t = tensors.get(name);
      if (!t) throw new ConfigError(`${source}: tensor "${name}" is missing (expected shape [${shape}])`);
      if (!sameShape(t.shape, shape)) {
        throw new ConfigError(`${source}: tensor "${name}" has shape [${t.shape}], config.json implies [${shape}]`);
      }
    }
    const unexpected = [...tensors.keys()].filter(
      (n) => !expected.has(n) && !n.endsWith("rotary_emb.inv_freq") && !(config.tie_word_embeddings && n === "lm_head.weight"),
    );
    if (unexpected.length > 0) {
      throw new ConfigError(
        `${source}: unexpected tensors for this config (not part of this model_type with these settings): ${unexpected.slice(0, 5).join(", ")}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ""}`,
      );
    }
    const weightsIn = storage.weightsIn ?? "heap";
    const hostFloat = storage.hostFloat ?? "float32";
    if (weightsIn === "heap" && hostFloat === "float16" && tf.getBackend() !== "webgpu") {
      throw new UsageError(
        `${source}: float16 weights on the backend (weightsIn "heap", hostFloat "float16"; --offload heap --offload-dtype f16) are packed halves that a WebGPU shader unpacks: ` +
          `they need the webgpu backend, this is ${tf.getBackend()}; for float16 storage here keep the weights in host memory (weightsIn "host", --offload host --offload-dtype f16)`,
      );
    }
    const created = uploadedOnPush(); // on tensorflow each weight goes to TensorFlow as it is built (src/engine/upload.ts)
    // The data is checked where it is converted, not up front: reading a lazy (file-backed) tensor's `data` reads
    // it from disk, so an up-front check would read the whole checkpoint a second time.
    const dataOf = (name: string): Float32Array => {
      const t = tensors.get(name)!;
      const data = t.data;
      if (data.length !== numel(t.shape)) {
        throw new ConfigError(`${source}: tensor "${name}" holds ${data.length} values, shape [${t.shape}] needs ${numel(t.shape)}`);
      }
      return data;
    };
    const vec = (name: string): tf.Tensor1D => {
      const t = tf.tensor1d(dataOf(name), "float32");
      created.push(t);
      return t;
    };
    const lin = (name: string): tf.Tensor2D => {
      const [out, inp] = tensors.get(name)!.shape;
      const w = tf.tensor2d(transposeHost(dataOf(name), out, inp), [inp, out], "float32");
      created.push(w);
      return w;
    };
    if (weightsIn !== "heap" || hostFloat === "float16") return CausalLM.hostedFromTensors(config, tensors, source, weightsIn, hostFloat, dataOf);
    try {
      const embed_tokens = tf.tensor2d(dataOf("model.embed_tokens.weight"), [V, H], "float32");
      created.push(embed_tokens);
      const layers: LayerWeights[] = [];
      for (let l = 0; l < config.num_hidden_layers; l++) {
        const lw = {} as Record<keyof LayerWeights, tf.Tensor>;
        for (const k of layerKeys(config)) {
          const name = layerParamName(l, k);
          lw[k] = tensors.get(name)!.shape.length === 1 ? vec(name) : lin(name);
        }
        layers.push(lw as unknown as LayerWeights);
      }
      const norm = vec("model.norm.weight");
      const lm_head = config.tie_word_embeddings ? null : lin("lm_head.weight");
      return new CausalLM(config, { embed_tokens, layers, norm, lm_head });
    } catch (e) {
      for (const t of created) t.dispose();
      throw e;
    }
  }

  /**
   * A streamed model: every weight converted to its internal layout on the host (or, for "disk", the decoder layers
   * left in the file when the reader gives file-backed tensors) and only the final norm uploaded. With "heap"
   * (float16 on webgpu) the converted weights are packed as halves onto the backend instead of kept on the host.
   */
  private static hostedFromTensors(
    config: LlamaConfig,
    tensors: TensorMap,
    source: string,
    weightsIn: WeightsIn,
    dtype: HostFloat,
    dataOf: (name: string) => Float32Array,
  ): CausalLM {
    const H = config.hidden_size;
    const V = config.vocab_size;
    const onBackend = weightsIn === "heap";
    const made: HostWeight[] = [];
    const keep = (w: HostWeight): HostWeight => {
      made.push(w);
      return w;
    };
    const held = (shape: number[], data: Float32Array): HostWeight => keep(onBackend ? HostWeight.onBackend(shape, data) : HostWeight.of(shape, data, dtype));
    const vecW = (name: string): HostWeight => held(tensors.get(name)!.shape.slice(), dataOf(name));
    const linW = (name: string): HostWeight => {
      const t = tensors.get(name)!;
      if (weightsIn === "disk") {
        if (!isLazy(t)) throw new UsageError(`${source}: weightsIn "disk" needs a model read from its file (tensor ${name} is in memory); use weightsIn "host"`);
        return HostWeight.onDisk(t, true, dtype);
      }
      const [out, inp] = t.shape;
      if (onBackend) return held([inp, out], transposeHost(dataOf(name), out, inp));
      // a file-backed tensor is remembered, so that host memory can be given back for weights rarely used again
      return HostWeight.of([inp, out], transposeHost(dataOf(name), out, inp), dtype, t, true);
    };
    // [V, H] as stored; host float16 from a file read in chunks (never whole as float32)
    const vocabW = (name: string): HostWeight => {
      const t = tensors.get(name)!;
      return !onBackend && dtype === "float16" && t.readInto ? keep(HostWeight.halfFrom([V, H], t)) : held([V, H], dataOf(name));
    };
    try {
      const embed_tokens = vocabW("model.embed_tokens.weight");
      const layers: HostLayer[] = [];
      for (let l = 0; l < config.num_hidden_layers; l++) {
        const lw: HostLayer = {};
        for (const k of layerKeys(config)) {
          const name = layerParamName(l, k);
          lw[k] = tensors.get(name)!.shape.length === 1 ? vecW(name) : linW(name);
        }
        layers.push(lw);
      }
      // the head stays vocabulary-major ([V, H], as stored): a chunk of the vocabulary is then a run of rows
      const lm_head = config.tie_word_embeddings ? null : vocabW("lm_head.weight");
      const norm = tf.tensor1d(dataOf("model.norm.weight"), "float32");
      return new CausalLM(config, { weightsIn, dtype, embed_tokens, layers, norm, lm_head });
    } catch (e) {
      for (const w of made) w.dispose();
      throw e;
    }
  }

  /**
   * Hugging Face names and layout; `lm_head.weight` is omitted when tied. With `lazy`, each tensor's `data` is
   * read from the model (and transposed) when it is accessed and not kept, so a writer that takes one tensor at a
   * time never holds a host copy of the whole model; the model must then stay undisposed (and unchanged) until
   * the tensors have been consumed.
   */
  toTensors(opts: { lazy?: boolean } = {}): TensorMap {
    const map: TensorMap = new Map();
    const put = (name: string, shape: number[], read: () => Float32Array, readInto?: ((start: number, into: Float32Array) => void) | null): void => {
      map.set(name, opts.lazy ? lazyTensor(shape, read, readInto ?? undefined) : { shape, data: read() });
    };
    if (this.hosted) {
      const hw = this.hosted;
      // a writer (lazy) only reads the values, in ranges where it can (a model larger than memory is saved
      // without any of its tensors whole); other callers get their own copy
      const hostPut = (name: string, x: HostWeight, linear: boolean): void =>
        put(name, linear ? [x.shape[1], x.shape[0]] : x.shape.slice(), () => x.hfValues(linear, !opts.lazy), x.hfRange(linear));
      hostPut("model.embed_tokens.weight", hw.embed_tokens, false);
      hw.layers.forEach((lw, l) => {
        for (const k of layerKeys(this.config)) hostPut(layerParamName(l, k), lw[k], lw[k].shape.length === 2);
      });
      put("model.norm.weight", hw.norm.shape.slice(), () => Float32Array.from(hw.norm.dataSync() as Float32Array));
      // held vocabulary-major, which is the Hugging Face layout already
      if (hw.lm_head) hostPut("lm_head.weight", hw.lm_head, false);
      return map;
    }
    const w = this.weights;
    // a copy the caller may change, made once (src/engine/upload.ts)
    const host = (name: string, t: tf.Tensor): void => put(name, t.shape.slice(), () => ownedData(t));
    const lin = (name: string, t: tf.Tensor2D): void => {
      const [inp, out] = t.shape;
      put(name, [out, inp], () => transposeHost(t.dataSync() as Float32Array, inp, out));
    };
    host("model.embed_tokens.weight", w.embed_tokens);
    w.layers.forEach((lw, l) => {
      for (const k of layerKeys(this.config)) {
        const t = lw[k]!;
        if (t.rank === 1) host(layerParamName(l, k), t);
        else lin(layerParamName(l, k), t as tf.Tensor2D);
      }
    });
    host("model.norm.weight", w.norm);
    if (w.lm_head) lin("lm_head.weight", w.lm_head);
    return map;
  }

  /**
   * A new model object holding the given tensors (no copy). Without `config`, per-layer widths are taken
   * from the gate_proj shapes. Both models then refer to the same tensor objects: dispose() on either
   * disposes them, so pass `tf.clone`d tensors (cheap: data is shared by reference count) when both
   * models must outlive each other.
   */
  withWeights(weights: ModelWeights, config?: LlamaConfig): CausalLM {
    if (this.hosted) void this.weights; // refused with the reason
    const cfg = config ?? withIntermediateSizes(this.config, weights.layers.map((lw) => lw.gate_proj.shape[1]));
    checkWeights(cfg, weights, "withWeights");
    return new CausalLM(cfg, weights);
  }

  /**
   * A streamed model holding these host layers (shared, not copied) and this model's embedding, head and final norm
   * (the norm tensor is shared too: the model it came from keeps owning it). Widths from the gate_proj shapes.
   */
  withHostLayers(layers: HostLayer[]): CausalLM {
    const hw = this.hosted;
    if (!hw) throw new UsageError("withHostLayers: this model's weights are resident (use withWeights)");
    if (layers.length !== this.config.num_hidden_layers) throw new ConfigError(`withHostLayers: ${layers.length} layers, config says ${this.config.num_hidden_layers}`);
    const widths = layers.map((lw) => lw.gate_proj.shape[1]);
    layers.forEach((lw, l) => {
      const H = this.config.hidden_size;
      const I = widths[l];
      if (!sameShape(lw.up_proj.shape, [H, I]) || !sameShape(lw.down_proj.shape, [I, H]) || !sameShape(lw.gate_proj.shape, [H, I])) {
        throw new ConfigError(`withHostLayers: layer ${l} MLP shapes [${lw.gate_proj.shape}], [${lw.up_proj.shape}], [${lw.down_proj.shape}] do not agree`);
      }
    });
    return new CausalLM(withIntermediateSizes(this.config, widths), { ...hw, layers });
  }

  /** Independent copy (tf.clone: shares data until one side is disposed, never mutated in place). */
  clone(): CausalLM {
    const cfgCopy = { ...this.config, intermediate_size: Array.isArray(this.config.intermediate_size) ? this.config.intermediate_size.slice() : this.config.intermediate_size };
    // host weights are immutable, so sharing them is a copy; the norm and packed halves on the backend are cloned
    if (this.hosted) {
      const hw = this.hosted;
      const layers = hw.layers.map((lw) => Object.fromEntries(Object.entries(lw).map(([k, x]) => [k, x.clone()])));
      return new CausalLM(cfgCopy, { ...hw, embed_tokens: hw.embed_tokens.clone(), lm_head: hw.lm_head?.clone() ?? null, layers, norm: tf.clone(hw.norm) });
    }
    const w = this.weights;
    return new CausalLM(
      { ...this.config, intermediate_size: Array.isArray(this.config.intermediate_size) ? this.config.intermediate_size.slice() : this.config.intermediate_size },
      {
        embed_tokens: tf.clone(w.embed_tokens),
        layers: w.layers.map((lw) => {
          const c = {} as Record<keyof LayerWeights, tf.Tensor>;
          for (const k of layerKeys(this.config)) c[k] = tf.clone(lw[k]!);
          return c as unknown as LayerWeights;
        }),
        norm: tf.clone(w.norm),
        lm_head: w.lm_head ? tf.clone(w.lm_head) : null,
      },
    );
  }

  dispose(): void {
    if (this.hosted) {
      // packed halves on the backend are freed here; host and disk weights are collected
      const hw = this.hosted;
      hw.norm.dispose();
      hw.embed_tokens.dispose();
      hw.lm_head?.dispose();
      for (const lw of hw.layers) disposeHostLayer(lw);
      this.disposeCaches();
      return;
    }
    const w = this.weights;
    w.embed_tokens.dispose();
    for (const lw of w.layers) for (const k of layerKeys(this.config)) lw[k]!.dispose();
    w.norm.dispose();
    w.lm_head?.dispose();
    this.disposeCaches();
  }

  /** Called at public entry points only, so no cached tensor is disposed while a computation uses it. */
  private trimCaches(): void {
    const masks = [...this.consts.keys()].filter((k) => k.includes(":mask."));
    if (masks.length <= MAX_CACHED_MASKS) return;
    for (const k of masks) {
      this.consts.get(k)!.dispose();
      this.consts.delete(k);
    }
  }

  /** Drop cached constants (RoPE tables, masks, transposed tied head); they are rebuilt on demand. */
  disposeCaches(): void {
    for (const t of this.consts.values()) t.dispose();
    this.consts.clear();
    this.tiedHead?.dispose();
    this.tiedHead = null;
  }

  /** All parameter names in Hugging Face naming, in model order. */
  parameterNames(): string[] {
    const names = ["model.embed_tokens.weight"];
    for (let l = 0; l < this.config.num_hidden_layers; l++) for (const k of layerKeys(this.config)) names.push(layerParamName(l, k));
    names.push("model.norm.weight");
    if (!this.config.tie_word_embeddings) names.push("lm_head.weight");
    return names;
  }

  /** The tensor behind a Hugging Face parameter name (internal layout). */
  parameter(name: string, w: ModelWeights = this.weights): tf.Tensor {
    if (w === this.resident && this.hosted) void this.weights;
    if (name === "model.embed_tokens.weight") return w.embed_tokens;
    if (name === "model.norm.weight") return w.norm;
    if (name === "lm_head.weight" && w.lm_head) return w.lm_head;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) {
      const l = Number(m[1]);
      const k = l < w.layers.length ? layerKeys(this.config).find((key) => layerParamName(l, key) === name) : undefined;
      if (k) return w.layers[l][k]!;
    }
    throw new UsageError(`unknown parameter "${name}"`);
  }

  // ---------------------------------------------------------------- building blocks

  /**
   * The first `n` values of a parameter (internal layout) on the host, without uploading a streamed layer
   * (fingerprints).
   */
  parameterPrefix(name: string, n: number): Float32Array {
    if (!this.hosted) {
      const t = this.parameter(name);
      const s = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), 0, Math.min(n, t.size)));
      const d = s.dataSync() as Float32Array;
      s.dispose();
      return Float32Array.from(d);
    }
    const hw = this.hosted;
    if (name === "model.norm.weight") return Float32Array.from((hw.norm.dataSync() as Float32Array).subarray(0, n));
    let x: HostWeight | undefined;
    if (name === "model.embed_tokens.weight") x = hw.embed_tokens;
    else if (name === "lm_head.weight" && hw.lm_head) {
      // the resident model holds its head [H, V]: its first values are the first row of the transpose
      const V = this.config.vocab_size;
      const k = Math.min(n, V);
      const out = new Float32Array(k);
      const cols = Math.min(V, k);
      const rows = hw.lm_head.gatherRows(Array.from({ length: cols }, (_, i) => i));
      for (let i = 0; i < k; i++) out[i] = rows[i * this.config.hidden_size];
      return out;
    } else {
      const m = /^model\.layers\.(\d+)\./.exec(name);
      if (m) {
        const l = Number(m[1]);
        const k = l < hw.layers.length ? layerKeys(this.config).find((key) => layerParamName(l, key) === name) : undefined;
        if (k) x = hw.layers[l][k];
      }
    }
    if (!x) throw new UsageError(`unknown parameter "${name}"`);
    if (x.where !== "disk" && x.shape.length === 2) return x.rows(0, Math.ceil(n / x.shape[1])).slice(0, n);
    return x.values().slice(0, n);
  }

  embed(ids: tf.Tensor2D): tf.Tensor2D {
    return this.embedWith(this.own, ids);
  }

  layer(l: number, h: tf.Tensor2D, B: number, T: number, lw?: LayerWeights, opts?: LayerOptions): tf.Tensor2D {
    checkHooks(opts?.hooks, this.config.num_hidden_layers);
    return tf.tidy(() => (lw ? this.layerImpl(l, h, B, T, lw, opts, null, 0).h : this.withLayer(l, (w) => this.layerImpl(l, h, B, T, w, opts, null, 0).h)));
  }

  head(h: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.headWith(this.own, this.rmsNorm(h, this.own.norm), false));
  }

  /** `layer(l, h, B, T)` that also returns what its backward needs (see LayerActivations). */
  layerSaved(l: number, h: tf.Tensor2D, B = 1): { h: tf.Tensor2D; saved: LayerActivations } {
    const T = h.shape[0] / B;
    if (!Number.isInteger(T)) throw new UsageError(`layerSaved: ${h.shape[0]} rows are not ${B} sequences of equal length`);
    return tf.tidy((): tf.TensorContainer => {
      const rec = { B, T } as LayerActivations;
      const out = this.withLayer(l, (lw) => this.layerImpl(l, h, B, T, lw, undefined, null, 0, rec).h);
      return { h: out, saved: rec } as unknown as tf.TensorContainer;
    }) as unknown as { h: tf.Tensor2D; saved: LayerActivations };
  }

  /** The final RMSNorm of rows h: normed rows, x·r and r (for a hand-written backward of the head). */
  finalNorm(h: tf.Tensor2D): { xn: tf.Tensor2D; xhat: tf.Tensor2D; r: tf.Tensor2D } {
    return tf.tidy(() => {
      const rec = {} as { xhat: tf.Tensor2D; r: tf.Tensor2D };
      const xn = this.rmsNorm(h, this.own.norm, rec);
      return { xn, ...rec };
    });
  }

  /** The final RMSNorm's weight (a tensor on the backend for resident and streamed models alike). */
  ownNorm(): tf.Tensor1D {
    return this.own.norm;
  }

  /** Logits of rows that are already normed by the final RMSNorm. */
  headNormed(xn: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.headWith(this.own, xn, false));
  }

  /** The same logits vocabulary-major, [V, n] = headNormed(xn)ᵀ (see vocabMajorHead). */
  headNormedT(xn: tf.Tensor2D): tf.Tensor2D {
    if (this.hosted) return tf.tidy(() => tf.transpose(this.headWith(this.own, xn, false)) as tf.Tensor2D);
    const w = this.weights;
    return tf.tidy(() => this.softcap((w.lm_head ? tf.matMul(w.lm_head, xn, true, true) : tf.matMul(w.embed_tokens, xn, false, true)) as tf.Tensor2D));
  }

  /** z, or c·tanh(z/c) with the family's logit softcap c (Gemma's final_logit_softcapping). */
  softcap(z: tf.Tensor2D): tf.Tensor2D {
    return softcap(z, this.logitSoftcap());
  }

  /** The family's final-logit softcap c, or null. */
  logitSoftcap(): number | null {
    return this.family.logitSoftcap?.(this.config) ?? null;
  }

  /** The weight an RMSNorm multiplies by: w, or (1 + w) where the family says so (Gemma). */
  normWeight(w: tf.Tensor1D): tf.Tensor1D {
    return normScale(w, this.family.normOnePlus ?? false);
  }

  /** Attention scores are q·k times this: 1/sqrt(head_dim) unless the family says otherwise (Gemma: query_pre_attn_scalar). */
  attentionScale(): number {
    return this.family.attentionScale?.(this.config) ?? 1 / Math.sqrt(this.config.head_dim);
  }

  /** Keys a query of layer l sees (itself included), or null for full causal attention. */
  slidingWindow(l: number): number | null {
    return windowOf(this.config, l);
  }

  /**
   * RoPE pieces for positions 0..T−1 as the forward uses them: cos and sign-folded sin [T, hd], and the
   * [hd, hd] half-swap permutation (symmetric, so it is also its own transpose).
   */
  ropeParts(T: number, l = 0): { cos: tf.Tensor2D; sin: tf.Tensor2D; swap: tf.Tensor2D } {
    return tf.tidy(() => {
      const { cos, sin } = this.rope(T, 0, l);
      const hd = this.config.head_dim;
      return { cos: cos.reshape([T, hd]) as tf.Tensor2D, sin: sin.reshape([T, hd]) as tf.Tensor2D, swap: tf.clone(this.swapMatrix()) };
    });
  }

  /**
   * Logits and a copy of the tensors at the named hook points (default: all of them), as TransformerLens's
   * run_with_cache. The caller disposes the logits and the cached tensors.
   */
  runWithCache(ids: number[][] | tf.Tensor2D, names?: string[], opts?: ForwardOptions): { logits: tf.Tensor3D; cache: Map<string, tf.Tensor2D> } {
    const cache = new Map<string, tf.Tensor2D>();
    const wanted = names ?? hookPoints(this.config.num_hidden_layers);
    checkHooks(Object.fromEntries(wanted.map((n) => [n, () => undefined])), this.config.num_hidden_layers);
    try {
      const logits = this.forward(ids, { hooks: combineHooks(opts?.hooks, cachingHooks(wanted, cache)) });
      // in the order asked for (hooks fire in forward order)
      const ordered = new Map(wanted.filter((n) => cache.has(n)).map((n) => [n, cache.get(n)!] as const));
      return { logits, cache: ordered };
    } catch (e) {
      for (const t of cache.values()) t.dispose();
      throw e;
    }
  }

  forward(ids: number[][] | tf.Tensor2D, opts?: ForwardOptions): tf.Tensor3D {
    this.trimCaches();
    return tf.tidy(() => this.forwardWith(this.own, ids, opts, false));
  }

  /**
   * Per sequence, log p(x[t+1] | x[..t]) for t = 0..len−2 (float32). Sequences of equal length are
   * batched; the head runs on row chunks so a [T, V] logits block is never materialised for big V.
   */
  tokenLogProbs(seqs: number[][], opts?: TokenLogProbsOptions): Float32Array[] {
    this.trimCaches();
    const out: Float32Array[] = new Array(seqs.length);
    const byLen = new Map<number, number[]>();
    seqs.forEach((s, i) => {
      this.checkIds(s, `sequence ${i}`);
      if (s.length < 2) {
        out[i] = new Float32Array(0);
        return;
      }
      const g = byLen.get(s.length) ?? [];
      g.push(i);
      byLen.set(s.length, g);
    });
    const V = this.config.vocab_size;
    const chunkRows = Math.max(1, Math.floor(opts?.logitRows ?? logitChunkRows(V)));
    for (const [T, members] of byLen) {
      const perBatch = Math.max(1, Math.floor(MAX_BATCH_ROWS / T));
      for (let b0 = 0; b0 < members.length; b0 += perBatch) {
        const idx = members.slice(b0, b0 + perBatch);
        const B = idx.length;
        const rows = idx.map((i) => seqs[i]);
        const N = B * T;
        // target for row b*T+t is x[b][t+1]; the last position of each row has none (its value is dropped)
        const flatTargets = new Int32Array(N);
        for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) flatTargets[b * T + t] = rows[b][t + 1];
        const result = new Float32Array(N);
        tf.tidy(() => {
          const ids = tf.tensor2d(rows, [B, T], "int32");
          const h = this.trunk(this.own, ids, B, T, opts);
          const hn = this.rmsNorm(h, this.own.norm);
          h.dispose();
          if (this.hosted) {
            result.set(this.streamedTargetLogProbs(hn, flatTargets));
            return;
          }
          for (let r0 = 0; r0 < N; r0 += chunkRows) {
            const c = Math.min(chunkRows, N - r0);
            // gather, not slice: wasm's Slice reads the whole source tensor on every call
            const xn = tf.tidy(() => tf.gather(hn, tf.tensor1d(Int32Array.from({ length: c }, (_, r) => r0 + r), "int32")) as tf.Tensor2D);
            // z[target] − logsumexp(z): the [c, V] log-softmax is never materialised.
            // The native backend keeps its logits vocabulary-major ([V, c], see headNormedT): no transpose.
            const vMajor = vocabMajorHead();
            const logits = vMajor ? this.headNormedT(xn) : this.headWith(this.own, xn, false);
            xn.dispose();
            const flat = new Int32Array(c);
            for (let r = 0; r < c; r++) flat[r] = vMajor ? flatTargets[r0 + r] * c + r : r * V + flatTargets[r0 + r];
            result.set(targetLogProbs(logits, flat, vMajor ? 0 : 1), r0);
          }
        });
        idx.forEach((i, b) => {
          out[i] = result.slice(b * T, b * T + T - 1);
        });
      }
    }
    return out;
  }

  /**
   * Loss and gradients w.r.t. the parameters whose Hugging Face names pass `select`, through the whole
   * network (tf.valueAndGrads). Gradient tensors are in internal layout ([in, out]); the caller disposes them.
   */
  gradients(
    ids: number[][],
    loss: (logits: tf.Tensor3D) => tf.Scalar,
    select: (name: string) => boolean,
    opts?: ForwardOptions,
  ): { loss: number; grads: Map<string, tf.Tensor> } {
    if (this.hosted) void this.weights; // refused with the reason: the taped gradients need every weight resident
    const names = this.parameterNames().filter(select);
    if (names.length === 0) throw new UsageError("gradients: the selection matches no parameter");
    ids.forEach((s, i) => this.checkIds(s, `sequence ${i}`));
    this.trimCaches();
    const xs = names.map((n) => this.parameter(n));
    const embedSelected = names.includes("model.embed_tokens.weight");
    const f = (...args: tf.Tensor[]): tf.Scalar => {
      const w = this.substitute(names, args);
      return loss(this.forwardWith(w, ids, opts, embedSelected));
    };
    const { value, grads } = tf.valueAndGrads(f)(xs);
    const lossValue = value.dataSync()[0];
    value.dispose();
    if (!Number.isFinite(lossValue)) {
      for (const g of grads) g.dispose();
      throw new NumericError(`gradients: loss is ${lossValue}`);
    }
    const map = new Map<string, tf.Tensor>();
    names.forEach((n, i) => map.set(n, grads[i]));
    return { loss: lossValue, grads: map };
  }

  /**
   * Continue `prompt` (token ids, usually starting with BOS) by up to maxNewTokens tokens, with a
   * key/value cache. Greedy when temperature is 0 (default); otherwise sampled with Rng(seed ?? 0).
   */
  generate(prompt: number[], opts: GenerateOptions): number[] {
    if (prompt.length === 0) throw new UsageError("generate: the prompt must hold at least one token (e.g. BOS)");
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) {
      throw new UsageError(`generate: maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
    }
    this.checkIds(prompt, "prompt");
    this.trimCaches();
    const temperature = opts.temperature ?? 0;
    if (!(temperature >= 0)) throw new UsageError(`generate: temperature must be ≥ 0, got ${temperature}`);
    const rng = new Rng(opts.seed ?? 0);
    const eos = new Set(Array.isArray(this.config.eos_token_id) ? this.config.eos_token_id : [this.config.eos_token_id]);
    const stopAtEos = opts.stopAtEos ?? true;
    const out: number[] = [];
    let caches: (KV | null)[] = new Array(this.config.num_hidden_layers).fill(null);
    let feed = prompt.slice();
    let offset = 0;
    try {
      while (out.length < opts.maxNewTokens) {
        const step = this.step(feed, offset, caches);
        for (const c of caches) if (c) tf.dispose([c.k, c.v]);
        caches = step.caches;
        offset += feed.length;
        const next = pickToken(step.logits, temperature, opts.topK, rng);
        if (stopAtEos && eos.has(next)) break;
        out.push(next);
        opts.onToken?.(next);
        feed = [next];
      }
    } finally {
      for (const c of caches) if (c) tf.dispose([c.k, c.v]);
    }
    return out;
  }

  // ---------------------------------------------------------------- internals

  private checkIds(ids: number[], what: string): void {
    const V = this.config.vocab_size;
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new DataError(`${what}: token id ${t} at position ${i} is outside [0, ${V})`);
    }
  }

  private substitute(names: string[], args: tf.Tensor[]): ModelWeights {
    const w = this.weights;
    const sub: ModelWeights = {
      embed_tokens: w.embed_tokens,
      layers: w.layers.map((lw) => ({ ...lw })),
      norm: w.norm,
      lm_head: w.lm_head,
    };
    names.forEach((n, i) => {
      const a = args[i];
      if (n === "model.embed_tokens.weight") sub.embed_tokens = a as tf.Tensor2D;
      else if (n === "model.norm.weight") sub.norm = a as tf.Tensor1D;
      else if (n === "lm_head.weight") sub.lm_head = a as tf.Tensor2D;
      else {
        const l = Number(/^model\.layers\.(\d+)\./.exec(n)![1]);
        const k = layerKeys(this.config).find((key) => layerParamName(l, key) === n)!;
        (sub.layers[l] as unknown as Record<string, tf.Tensor>)[k] = a;
      }
    });
    return sub;
  }

  private toIds(ids: number[][] | tf.Tensor2D): { t: tf.Tensor2D; B: number; T: number } {
    if (ids instanceof tf.Tensor) {
      const [B, T] = ids.shape;
      return { t: ids.dtype === "int32" ? ids : tf.cast(ids, "int32"), B, T };
    }
    const B = ids.length;
    if (B === 0) throw new DataError("forward: no sequences given");
    const T = ids[0].length;
    if (T === 0) throw new DataError("forward: empty sequence");
    ids.forEach((s, i) => {
      if (s.length !== T) throw new DataError(`forward: sequences must have equal length, sequence ${i} has ${s.length}, expected ${T}`);
      this.checkIds(s, `sequence ${i}`);
    });
    return { t: tf.tensor2d(ids, [B, T], "int32"), B, T };
  }

  private forwardWith(w: ModelWeights | HostModelWeights, ids: number[][] | tf.Tensor2D, opts: ForwardOptions | undefined, differentiableHead: boolean): tf.Tensor3D {
    const { t, B, T } = this.toIds(ids);
    const h = this.trunk(w, t, B, T, opts);
    return this.headWith(w, this.rmsNorm(h, w.norm), differentiableHead).reshape([B, T, this.config.vocab_size]);
  }

  private trunk(w: ModelWeights | HostModelWeights, ids: tf.Tensor2D, B: number, T: number, opts?: ForwardOptions): tf.Tensor2D {
    checkHooks(opts?.hooks, this.config.num_hidden_layers);
    let h = this.embedWith(w, ids);
    for (let l = 0; l < this.config.num_hidden_layers; l++) {
      // One tidy per layer frees its temporaries before the next layer allocates its own (reusing the
      // memory instead of growing the heap for the whole pass); a gradient tape keeps its own copies.
      const prev = h;
      // a streamed layer is uploaded for this step only (withLayerOf disposes it)
      h = tf.tidy(() => this.withLayerOf(w, l, (lw) => this.layerImpl(l, prev, B, T, lw, opts?.hooks ? { hooks: opts.hooks } : undefined, null, 0).h));
      if (l > 0) prev.dispose();
    }
    return h;
  }

  private embedWith(w: ModelWeights | HostModelWeights, ids: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      // a streamed model gathers the rows on the host and uploads [B·T, H]: the embedding never enters the backend
      // (packed halves on the backend are gathered and unpacked there)
      const e = isHosted(w) ? w.embed_tokens.gatherTensor(ids) : (tf.gather(w.embed_tokens, tf.reshape(ids, [-1])) as tf.Tensor2D);
      const scale = this.family.embedScale?.(this.config);
      return scale === undefined ? e : (tf.mul(e, scale) as tf.Tensor2D);
    });
  }

  private rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, rec?: NormRecord): tf.Tensor2D {
    return rmsNorm(x, weight, this.config.rms_norm_eps, this.family.normOnePlus ?? false, rec);
  }

  /**
   * Logits for normed rows. A tied head multiplies by embed_tokensᵀ: with the native backend through a
   * transposed product; elsewhere transposed products are slow, so a cached transposed copy is used,
   * except when the embedding itself is being differentiated (then an explicit transpose on the tape).
   */
  private headWith(w: ModelWeights | HostModelWeights, xn: tf.Tensor2D, differentiable: boolean): tf.Tensor2D {
    if (isHosted(w)) {
      // every logit asked for: the chunks' products side by side (the head itself is never on the backend whole)
      const parts: tf.Tensor2D[] = [];
      this.forEachHeadChunk((_v0, Ec) => {
        parts.push(this.softcap(matMulBT(xn, Ec)));
      });
      return parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor2D);
    }
    return this.softcap(this.headProduct(w, xn, differentiable));
  }

  /**
   * For a streamed model: upload the head ([V, H], the embedding when tied) one chunk of vocabulary rows at a
   * time and call fn(first row, chunk [Vc, H]); each chunk is disposed when fn returns.
   */
  forEachHeadChunk(fn: (v0: number, E: tf.Tensor2D) => void): void {
    const hw = this.hosted;
    if (!hw) throw new UsageError("forEachHeadChunk: the model's head is resident");
    const E = hw.lm_head ?? hw.embed_tokens;
    const V = this.config.vocab_size;
    const rows = headChunkRows(this.config);
    for (let v0 = 0; v0 < V; v0 += rows) {
      const v1 = Math.min(V, v0 + rows);
      const Ec = E.rowsTensor(v0, v1);
      try {
        fn(v0, Ec);
      } finally {
        Ec.dispose();
      }
    }
  }

  /**
   * The same rows as a new tensor [ids.length, H] on the backend: gathered and unpacked there when the head is held
   * as packed halves on the GPU (no read-back), else gathered on the host and uploaded.
   */
  headRowsTensor(ids: ArrayLike<number>): tf.Tensor2D {
    const hw = this.hosted;
    if (!hw) throw new UsageError("headRowsTensor: the model's head is resident");
    const E = hw.lm_head ?? hw.embed_tokens;
    if (E.where !== "backend") return tf.tensor2d(E.gatherRows(ids), [ids.length, this.config.hidden_size], "float32");
    return tf.tidy(() => E.gatherTensor(tf.tensor1d(Int32Array.from(ids), "int32")));
  }

  /** Rows of a streamed model's head (the embedding when tied) for the given vocabulary ids, [ids.length, H] on the host. */
  headRows(ids: ArrayLike<number>): Float32Array {
    const hw = this.hosted;
    if (!hw) throw new UsageError("headRows: the model's head is resident");
    return (hw.lm_head ?? hw.embed_tokens).gatherRows(ids);
  }

  /**
   * log p(target) per row of normed rows hn [N, H] for a streamed model: the log-sum-exp accumulated across head
   * chunks (running max m and Σ exp(z − m) rescaled when m grows), each row's target logit taken from the chunk
   * holding it. Rows whose target is irrelevant may hold any id.
   */
  private streamedTargetLogProbs(hn: tf.Tensor2D, targets: Int32Array): Float32Array {
    const N = hn.shape[0];
    const picked = new Float32Array(N);
    let m: tf.Tensor2D | null = null;
    let s: tf.Tensor2D | null = null;
    try {
      this.forEachHeadChunk((v0, Ec) => {
        const v1 = v0 + Ec.shape[0];
        const next = tf.tidy(() => {
          const z = this.softcap(matMulBT(hn, Ec)); // [N, Vc]
          const rows: number[] = [];
          const flat: number[] = [];
          for (let r = 0; r < N; r++) {
            if (targets[r] >= v0 && targets[r] < v1) {
              rows.push(r);
              flat.push(r * (v1 - v0) + targets[r] - v0);
            }
          }
          const got = rows.length ? (tf.gather(tf.reshape(z, [-1]), tf.tensor1d(flat, "int32")).dataSync() as Float32Array) : new Float32Array(0);
          rows.forEach((r, i) => (picked[r] = got[i]));
          const mc = tf.max(z, 1, true);
          const mNew = m ? tf.maximum(m, mc) : mc;
          const sc = tf.sum(tf.exp(tf.sub(z, mNew)), 1, true);
          const sNew = s && m ? tf.add(tf.mul(s, tf.exp(tf.sub(m, mNew))), sc) : sc;
          return { m: mNew as tf.Tensor2D, s: sNew as tf.Tensor2D };
        });
        m?.dispose();
        s?.dispose();
        m = next.m;
        s = next.s;
      });
      const lse = tf.tidy(() => tf.add(tf.log(s!), m!).reshape([N]));
      const l = lse.dataSync() as Float32Array;
      lse.dispose();
      const out = new Float32Array(N);
      for (let r = 0; r < N; r++) out[r] = picked[r] - l[r];
      return out;
    } finally {
      (m as tf.Tensor | null)?.dispose();
      (s as tf.Tensor | null)?.dispose();
    }
  }

  private headProduct(w: ModelWeights, xn: tf.Tensor2D, differentiable: boolean): tf.Tensor2D {
    if (w.lm_head) return tf.matMul(xn, w.lm_head);
    if (vocabMajorHead()) {
      // (E·xnᵀ)ᵀ computes the same logits at ~70 instead of ~6 GFLOP/s there
      return tf.transpose(tf.matMul(w.embed_tokens, xn, false, true)) as tf.Tensor2D;
    }
    const E = w.embed_tokens;
    // A Variable may be updated in place (training), so a cached copy could go stale.
    if (differentiable || E !== this.resident?.embed_tokens || E instanceof tf.Variable) return tf.matMul(xn, tf.transpose(E));
    if (!this.tiedHead || this.tiedHead.isDisposed || this.tiedHeadBackend !== tf.getBackend()) {
      this.tiedHead?.dispose();
      // Transposed on the device: reading E to the host and back would hold two host copies of the embedding
      // (the largest tensor of most models) at once. If the first call happens inside tf.grads the transpose is
      // recorded on that tape, which is harmless: its gradient is E's own, and the tape is dropped afterwards,
      // so for every later caller the kept head is a constant.
      this.tiedHead = tf.keep(tf.tidy(() => tf.transpose(E) as tf.Tensor2D));
      this.tiedHeadBackend = tf.getBackend();
    }
    return tf.matMul(xn, this.tiedHead);
  }

  /** A cached constant tensor (kept outside any tidy; rebuilt if it was disposed or the backend changed). */
  private constant(key: string, make: () => tf.Tensor): tf.Tensor {
    const k = `${tf.getBackend()}:${key}`;
    const hit = this.consts.get(k);
    if (hit && !hit.isDisposed) return hit;
    const t = tf.keep(make());
    this.consts.set(k, t);
    return t;
  }

  /** cos and sign-folded sin tables for positions [offset, offset+T), shaped [1, T, 1, hd]. */
  private rope(T: number, offset: number, l: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
    const hd = this.config.head_dim;
    const need = offset + T;
    let cap = 64;
    while (cap < need) cap *= 2;
    // a family may rotate some layers with another base (Gemma's sliding layers)
    const own = this.family.layerRope?.(this.config, l) ?? null;
    const rc = own ? { ...this.config, ...own } : this.config;
    const tag = own ? `${own.rope_theta}.${own.rope_scaling ? JSON.stringify(own.rope_scaling) : "none"}.` : "";
    const cos = this.constant(`rope.${tag}cos.${cap}`, () => tf.tensor2d(ropeTables(rc, cap).cos, [cap, hd]));
    const sin = this.constant(`rope.${tag}sin.${cap}`, () => {
      // rotate_half(x) = [−x2, x1]; folding the minus into the first half of sin lets us use [x2, x1]
      const s = ropeTables(rc, cap).sin;
      const half = hd / 2;
      for (let t = 0; t < cap; t++) for (let j = 0; j < half; j++) s[t * hd + j] = -s[t * hd + j];
      return tf.tensor2d(s, [cap, hd]);
    });
    return {
      cos: tf.slice(cos, [offset, 0], [T, hd]).reshape([1, T, 1, hd]),
      sin: tf.slice(sin, [offset, 0], [T, hd]).reshape([1, T, 1, hd]),
    };
  }

  private swapMatrix(): tf.Tensor2D {
    const hd = this.config.head_dim;
    return this.constant("rope.swap", () => tf.tensor2d(halfSwap(hd), [hd, hd])) as tf.Tensor2D;
  }

  private causalMask(Tq: number, past: number, window: number | null): tf.Tensor2D {
    return this.constant(`mask.${Tq}.${past}.${window ?? "full"}`, () => tf.tensor2d(causalMask(Tq, past, window, MASKED), [Tq, past + Tq])) as tf.Tensor2D;
  }

  /** A projection of layer lw through the linear seam (blocks.linear), with its bias and LoRA branch if any. */
  private linear(x: tf.Tensor2D, lw: LayerWeights, p: Projection, lora?: LoraOptions): tf.Tensor2D {
    const bias = p === "q_proj" ? lw.q_bias : p === "k_proj" ? lw.k_bias : p === "v_proj" ? lw.v_bias : p === "o_proj" ? lw.o_bias : undefined;
    const br = lora?.branches[p];
    return linear(x, lw[p], bias, br ? { A: br.A, B: br.B, scale: lora!.scale, mask: lora!.masks?.[p] } : undefined);
  }

  /** The model's family (registry.ts): its decoder layer, its backward and its constants. */
  get family(): Family {
    return FAMILIES[this.config.model_type];
  }

  /** Layer l through the family's decoderLayer; `rec` collects what the hand-written backward needs. */
  private layerImpl(
    l: number,
    h: tf.Tensor2D,
    B: number,
    T: number,
    lw: LayerWeights,
    opts: LayerOptions | undefined,
    past: KV | null,
    offset: number,
    rec: LayerActivations | null = null,
  ): { h: tf.Tensor2D; kv: KV | null } {
    if (rec && (opts || past)) throw new UsageError("layerSaved: no layer options and no key/value cache");
    const L = this.layerContext(l, B, T, lw, opts, past, offset, rec);
    return { h: this.family.decoderLayer(L, h), kv: L.kv };
  }

  /** What a family's decoderLayer is handed (blocks.LayerContext): this model's constants and seams for layer l. */
  private layerContext(l: number, B: number, T: number, lw: LayerWeights, opts: LayerOptions | undefined, past: KV | null, offset: number, rec: LayerActivations | null): LayerContext {
    const window = this.slidingWindow(l);
    const hooks = opts?.hooks;
    return {
      c: this.config,
      l,
      B,
      T,
      w: lw,
      past,
      kv: null,
      rec,
      rope: { ...this.rope(T, offset, l), swap: this.swapMatrix() },
      scale: this.attentionScale(),
      // one query (decoding) sees every key unless a window hides the oldest
      mask: (Tq, pastLen) => (Tq > 1 || (window !== null && pastLen + Tq > window) ? this.causalMask(Tq, pastLen, window) : null),
      proj: (x, p) => this.linear(x, lw, p, opts?.lora),
      norm: (x, w, slot) => this.savedNorm(x, w, rec, slot),
      hook: (point, x) => runHook(hooks, point === "resid" ? `resid.${l}` : `layers.${l}.${point}`, x),
    };
  }

  /** rmsNorm that, when recording, saves x·r and r in the slot's fields of rec. */
  private savedNorm(x: tf.Tensor2D, w: tf.Tensor1D, rec: LayerActivations | null, slot?: NormSlot): tf.Tensor2D {
    if (!rec || !slot) return this.rmsNorm(x, w);
    const saved = {} as NormRecord;
    const y = this.rmsNorm(x, w, saved);
    const [xhat, r] = NORM_SAVED[slot];
    Object.assign(rec, { [xhat]: saved.xhat, [r]: saved.r });
    return y;
  }

  /** One decoding step over `ids` at positions offset.. with caches; returns last-row logits and new caches. */
  private step(ids: number[], offset: number, caches: (KV | null)[]): { logits: Float32Array; caches: (KV | null)[] } {
    const T = ids.length;
    const res = tf.tidy(() => {
      let h = this.embedWith(this.own, tf.tensor2d([ids], [1, T], "int32"));
      const ks: tf.Tensor3D[] = [];
      const vs: tf.Tensor3D[] = [];
      for (let l = 0; l < this.config.num_hidden_layers; l++) {
        const r = this.withLayer(l, (lw) => this.layerImpl(l, h, 1, T, lw, undefined, caches[l], offset));
        h = r.h;
        ks.push(r.kv!.k);
        vs.push(r.kv!.v);
      }
      const last = tf.slice(h, [T - 1, 0], [1, -1]);
      return { logits: this.headWith(this.own, this.rmsNorm(last, this.own.norm), false), ks, vs };
    });
    const logits = res.logits.dataSync() as Float32Array;
    res.logits.dispose();
    return { logits: Float32Array.from(logits), caches: res.ks.map((k, l) => ({ k, v: res.vs[l] })) };
  }
}
