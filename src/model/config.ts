import { ConfigError } from "../errors";
import type { FieldRole } from "./family";
import { FAMILIES, MODEL_TYPES, type ModelType } from "./registry";

/**
 * Model configuration with Hugging Face `config.json` field names, parsed strictly: every field that changes
 * the computed function is either honoured or refused with a ConfigError naming the field, its value and what
 * is supported (docs/model-families.md). Both layouts transformers writes are read: transformers 4 keeps
 * `rope_theta` and `rope_scaling` at the top level, transformers 5 nests them in `rope_parameters`.
 */

/** The families sdmprune computes (src/model/registry.ts); each is a LLaMA-style decoder, the fields below say how it differs. */
export { MODEL_TYPES, type ModelType } from "./registry";
export type { FieldRole } from "./family";

/** Families transformers knows that sdmprune refuses (a clear error instead of a wrong model). */
const NOT_YET: Record<string, string> = {
  gemma3: "the multimodal Gemma 3 checkpoint (Gemma3ForConditionalGeneration) is not read; use a text-only one (gemma3_text)",
  gemma2: "Gemma 2 is not implemented",
  gemma: "Gemma is not implemented",
  mixtral: "mixture-of-experts MLPs cannot be pruned channel-wise by sdmprune",
  qwen2_moe: "mixture-of-experts MLPs cannot be pruned channel-wise by sdmprune",
  qwen3_moe: "mixture-of-experts MLPs cannot be pruned channel-wise by sdmprune",
};

/** RoPE frequency scaling. `llama3` rescales by wavelength band, `linear` divides every frequency by `factor`. */
export interface RopeScaling {
  rope_type: "llama3" | "default" | "linear";
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/**
 * A decoder configuration. `intermediate_size` is a number for uniform models and a per-layer array for
 * pruned models with non-uniform widths.
 */
export interface ModelConfig {
  model_type: ModelType;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number | number[];
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  /** Biases on q_proj, k_proj and v_proj (Qwen2 always; Llama and Qwen3 with `attention_bias`). */
  qkv_bias: boolean;
  /** Bias on o_proj (Llama and Qwen3 with `attention_bias`; never Qwen2). */
  o_bias: boolean;
  /** RMSNorm over each head of q and k before RoPE (`q_norm`, `k_norm`: Qwen3). */
  qk_norm: boolean;
  /** Keys a query in a sliding-attention layer sees, itself included (`sliding_window`); null: no window. */
  sliding_window: number | null;
  /** Per layer: full causal attention or a sliding window (Mistral/Phi-3 with a window: all; Gemma 3: its pattern). */
  layer_types: ("full_attention" | "sliding_attention")[];
  /** RoPE base of the sliding-attention layers when it differs from rope_theta (Gemma 3's local base); no scaling there. */
  rope_local_theta: number | null;
  /** The gated MLP's activation: silu (SwiGLU) or gelu_pytorch_tanh (Gemma's GeGLU). */
  hidden_act: "silu" | "gelu_pytorch_tanh";
  /** Gemma: RMSNorm multiplies by (1 + w), embeddings are scaled by sqrt(hidden_size), and norms sandwich each block. */
  gemma_norms: boolean;
  /** Attention scale 1/sqrt(query_pre_attn_scalar) instead of 1/sqrt(head_dim) (Gemma); null: head_dim. */
  query_pre_attn_scalar: number | null;
  /** logits = c·tanh(logits / c) (Gemma's final_logit_softcapping); null: none. */
  final_logit_softcapping: number | null;
  tie_word_embeddings: boolean;
  max_position_embeddings: number;
  bos_token_id: number;
  eos_token_id: number | number[];
  /**
   * The config.json text as it was read (null when the config was built in code or from GGUF metadata).
   * Saving as HF writes it back with only the MLP widths and the dtype changed, so the file keeps the
   * layout, the fields and the number spelling (10.0 stays 10.0) of the transformers version that wrote it.
   */
  original: string | null;
}

/** The name the rest of the code base grew up with; every family shares this shape. */
export type LlamaConfig = ModelConfig;

/** Known fields per family: used, ignored (with the reason) or refused unless harmless (from each family file). */
export const CONFIG_FIELDS = Object.fromEntries(MODEL_TYPES.map((t) => [t, FAMILIES[t].fields])) as Record<ModelType, Record<string, FieldRole>>;

/**
 * Fields that change the math in families sdmprune does not compute; named here so that a config which
 * carries one (e.g. a Llama config with MoE fields added by a fine-tuning tool) is refused, not ignored.
 */
const REFUSED_ANYWHERE: Record<string, string> = {
  num_experts: "mixture-of-experts layers are not supported",
  num_local_experts: "mixture-of-experts layers are not supported",
  num_experts_per_tok: "mixture-of-experts layers are not supported",
  moe_intermediate_size: "mixture-of-experts layers are not supported",
  partial_rotary_factor: "RoPE over part of each head is not supported",
  rotary_pct: "RoPE over part of each head is not supported",
  attn_logit_softcapping: "attention logit softcapping is not implemented",
  final_logit_softcapping: "final logit softcapping is not implemented",
  query_pre_attn_scalar: "a query scale other than 1/sqrt(head_dim) is not implemented",
  logits_scaling: "scaled logits are not implemented",
  embedding_multiplier: "scaled embeddings are not implemented",
  residual_multiplier: "scaled residuals are not implemented",
  attention_multiplier: "a query scale other than 1/sqrt(head_dim) is not implemented",
};

function fail(source: string, field: string, value: unknown, expected: string): never {
  throw new ConfigError(`${source}: field "${field}" = ${JSON.stringify(value)} is not supported; ${expected}`);
}

function need(raw: Record<string, unknown>, field: string, source: string): number {
  const v = raw[field];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ConfigError(`${source}: field "${field}" must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function positiveInt(v: number, field: string, source: string): number {
  if (!Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`${source}: field "${field}" must be a positive integer, got ${v}`);
  }
  return v;
}

function isHarmless(v: unknown, allowed: readonly unknown[]): boolean {
  if (v === undefined) return true;
  return allowed.some((a) => (a !== null && typeof a === "object" ? v !== null && typeof v === "object" && Object.keys(v as object).length === 0 : a === v));
}

/** Keys of a RoPE block (top-level rope_scaling, or transformers 5 rope_parameters) per rope type. */
const ROPE_KEYS: Record<RopeScaling["rope_type"], readonly string[]> = {
  default: [],
  linear: ["factor"],
  llama3: ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"],
};
const ROPE_SUPPORTED = "supported rope types: default, linear, llama3";

/**
 * RoPE base and scaling from either layout. transformers 5: `rope_parameters` holds rope_type, rope_theta and
 * the scaling keys (or, for models with per-layer-type RoPE, one such block per layer type). transformers 4:
 * top-level rope_theta and rope_scaling (rope_type, or the older key `type`).
 */
function parseRope(r: Record<string, unknown>, source: string, defaultTheta = 10000): { theta: number; scaling: RopeScaling | null } {
  let theta = r.rope_theta === undefined || r.rope_theta === null ? undefined : need(r, "rope_theta", source);
  let block: Record<string, unknown> | null = null;
  let blockName = "";
  const rp = r.rope_parameters;
  const rs = r.rope_scaling;
  if (rp !== undefined && rp !== null) {
    if (typeof rp !== "object" || Array.isArray(rp)) fail(source, "rope_parameters", rp, "expected an object");
    const p = rp as Record<string, unknown>;
    if ("full_attention" in p || "sliding_attention" in p) {
      fail(source, "rope_parameters", Object.keys(p), "per-layer-type RoPE (full_attention/sliding_attention) is not implemented");
    }
    block = p;
    blockName = "rope_parameters";
    if (p.rope_theta !== undefined) {
      const t = need(p, "rope_theta", `${source} rope_parameters`);
      if (theta !== undefined && theta !== t) {
        throw new ConfigError(`${source}: rope_theta ${theta} and rope_parameters.rope_theta ${t} disagree`);
      }
      theta = t;
    }
    if (rs !== undefined && rs !== null && JSON.stringify(rs) !== JSON.stringify(rp)) {
      // transformers 5 may keep a legacy alias of the same block; two different ones would be ambiguous
      const a = rs as Record<string, unknown>;
      const sameType = (a.rope_type ?? a.type) === (p.rope_type ?? p.type);
      if (!sameType || ROPE_KEYS.llama3.some((k) => a[k] !== undefined && a[k] !== p[k])) {
        throw new ConfigError(`${source}: rope_scaling ${JSON.stringify(rs)} and rope_parameters ${JSON.stringify(rp)} disagree`);
      }
    }
  } else if (rs !== undefined && rs !== null) {
    if (typeof rs !== "object" || Array.isArray(rs)) fail(source, "rope_scaling", rs, "expected an object or null");
    block = rs as Record<string, unknown>;
    blockName = "rope_scaling";
  }
  if (theta === undefined) theta = defaultTheta;
  if (!(theta > 0)) fail(source, "rope_theta", theta, "must be positive");
  if (!block) return { theta, scaling: null };

  const typeRaw = block.rope_type ?? block.type ?? "default";
  if (typeRaw !== "default" && typeRaw !== "linear" && typeRaw !== "llama3") fail(source, `${blockName}.rope_type`, typeRaw, ROPE_SUPPORTED);
  const type = typeRaw as RopeScaling["rope_type"];
  const known = new Set(["rope_type", "type", "rope_theta", ...ROPE_KEYS[type]]);
  for (const [k, v] of Object.entries(block)) {
    if (known.has(k)) continue;
    if (k === "partial_rotary_factor" && v === 1) continue;
    // A key another rope type reads (attention_factor, beta_fast, short_factor, mrope_section, ...) would be
    // honoured by transformers' own code for some type: refuse rather than guess.
    fail(source, `${blockName}.${k}`, v, `rope_type ${type} reads only ${[...known].join(", ")}`);
  }
  if (type === "default") return { theta, scaling: null };
  const scaling: RopeScaling = { rope_type: type };
  for (const k of ROPE_KEYS[type] as (keyof RopeScaling)[]) {
    if (block[k] === undefined) throw new ConfigError(`${source}: ${blockName} (${type}) needs "${k}"`);
    (scaling as unknown as Record<string, number>)[k] = need(block, k, `${source} ${blockName}`);
  }
  if (!(scaling.factor! > 0)) fail(source, `${blockName}.factor`, scaling.factor, "must be positive");
  if (type === "llama3" && !(scaling.high_freq_factor! > scaling.low_freq_factor!)) {
    fail(source, `${blockName}.high_freq_factor`, scaling.high_freq_factor, "must exceed low_freq_factor");
  }
  return { theta, scaling };
}

export interface ParseOptions {
  /** A config.json from disk must name its model_type (transformers needs it too); configs built in code default to llama. */
  requireModelType?: boolean;
  /** The config.json text the object was parsed from, kept as `original` (for writing it back). */
  originalText?: string;
}

/**
 * Validate a raw `config.json` object (or the equivalent built from GGUF metadata or in code) and fill the
 * defaults transformers uses: `num_key_value_heads = num_attention_heads`, `head_dim = hidden/heads`,
 * `rope_theta = 10000`, `rms_norm_eps = 1e-6`, untied head unless `tie_word_embeddings` is true.
 */
export function parseConfig(raw: unknown, source = "config.json", opts: ParseOptions = {}): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${source}: expected a JSON object`);
  }
  const r = raw as Record<string, unknown>;
  let model_type: ModelType;
  if (r.model_type === undefined || r.model_type === null) {
    if (opts.requireModelType) throw new ConfigError(`${source}: field "model_type" is missing; supported: ${MODEL_TYPES.join(", ")}`);
    model_type = "llama";
  } else if ((MODEL_TYPES as readonly unknown[]).includes(r.model_type)) {
    model_type = r.model_type as ModelType;
  } else {
    const why = NOT_YET[String(r.model_type)];
    fail(source, "model_type", r.model_type, `${why ? why + "; " : ""}supported: ${MODEL_TYPES.join(", ")}`);
  }
  const fields = CONFIG_FIELDS[model_type];

  if (Array.isArray(r.architectures)) {
    for (const a of r.architectures) {
      if (typeof a !== "string" || !a.endsWith("ForCausalLM")) {
        fail(source, "architectures", r.architectures, "a causal LM (…ForCausalLM); other heads are not supported");
      }
    }
  }
  for (const [k, v] of Object.entries(r)) {
    const role = fields[k];
    if (role?.role === "refused-unless" && !isHarmless(v, role.allowed)) {
      fail(source, k, v, `${role.why} (accepted: ${role.allowed.map((a) => JSON.stringify(a)).join(", ")})`);
    }
    if (!role && REFUSED_ANYWHERE[k] !== undefined && v !== null && v !== undefined && !(k === "partial_rotary_factor" && v === 1)) {
      fail(source, k, v, REFUSED_ANYWHERE[k]);
    }
    // Fields neither listed nor refused are not read by transformers' modeling code for these families
    // either (a config object stores unknown keys as plain attributes), so they cannot change its output.
  }

  const hidden_size = positiveInt(need(r, "hidden_size", source), "hidden_size", source);
  const num_hidden_layers = positiveInt(need(r, "num_hidden_layers", source), "num_hidden_layers", source);
  // per-layer lists are built from it before any weight is seen: an absurd count must fail here, typed
  if (num_hidden_layers > 65536) throw new ConfigError(`${source}: field "num_hidden_layers" is ${num_hidden_layers}, above 65536 (no real model has that many layers)`);
  const num_attention_heads = positiveInt(need(r, "num_attention_heads", source), "num_attention_heads", source);
  const num_key_value_heads = positiveInt(
    r.num_key_value_heads === undefined || r.num_key_value_heads === null
      ? num_attention_heads
      : need(r, "num_key_value_heads", source),
    "num_key_value_heads",
    source,
  );
  if (num_attention_heads % num_key_value_heads !== 0) {
    throw new ConfigError(
      `${source}: num_attention_heads (${num_attention_heads}) must be a multiple of num_key_value_heads (${num_key_value_heads})`,
    );
  }
  let head_dim: number;
  // Qwen2's config has no head_dim (transformers derives it); the others may set it explicitly.
  const hdRaw = fields.head_dim ? r.head_dim : undefined;
  if ((hdRaw === undefined || hdRaw === null) && model_type === "gemma3_text") {
    head_dim = 256; // Gemma3TextConfig's default, not hidden/heads
  } else if (hdRaw === undefined || hdRaw === null) {
    if (hidden_size % num_attention_heads !== 0) {
      throw new ConfigError(`${source}: hidden_size ${hidden_size} is not divisible by num_attention_heads ${num_attention_heads}; set head_dim`);
    }
    head_dim = hidden_size / num_attention_heads;
  } else {
    head_dim = positiveInt(need(r, "head_dim", source), "head_dim", source);
  }
  if (head_dim % 2 !== 0) throw new ConfigError(`${source}: head_dim must be even for RoPE, got ${head_dim}`);

  let intermediate_size: number | number[];
  const im = r.intermediate_size;
  if (Array.isArray(im)) {
    if (im.length !== num_hidden_layers) {
      throw new ConfigError(
        `${source}: per-layer "intermediate_size" has ${im.length} entries, expected num_hidden_layers = ${num_hidden_layers}`,
      );
    }
    intermediate_size = im.map((v, i) => {
      if (typeof v !== "number") throw new ConfigError(`${source}: intermediate_size[${i}] must be a number, got ${JSON.stringify(v)}`);
      return positiveInt(v, `intermediate_size[${i}]`, source);
    });
    // A list whose entries are all equal is still a uniform model: keep it a number so stock loaders work.
    if ((intermediate_size as number[]).every((v) => v === (intermediate_size as number[])[0])) {
      intermediate_size = (intermediate_size as number[])[0];
    }
  } else {
    intermediate_size = positiveInt(need(r, "intermediate_size", source), "intermediate_size", source);
  }

  const gemma = model_type === "gemma3_text";
  let rope_theta: number;
  let rope_scaling: RopeScaling | null;
  let rope_local_theta: number | null = null;
  const rp = r.rope_parameters as Record<string, unknown> | null | undefined;
  if (gemma && rp && typeof rp === "object" && ("full_attention" in rp || "sliding_attention" in rp)) {
    // transformers 5: one RoPE block per layer type
    for (const k of Object.keys(rp)) if (k !== "full_attention" && k !== "sliding_attention") fail(source, `rope_parameters.${k}`, rp[k], "Gemma 3 has full_attention and sliding_attention blocks");
    ({ theta: rope_theta, scaling: rope_scaling } = parseRope({ rope_parameters: rp.full_attention }, `${source} rope_parameters.full_attention`, 1e6));
    const local = parseRope({ rope_parameters: rp.sliding_attention }, `${source} rope_parameters.sliding_attention`, 10000);
    if (local.scaling) fail(source, "rope_parameters.sliding_attention.rope_type", local.scaling.rope_type, "the sliding layers' RoPE must be default");
    rope_local_theta = local.theta;
  } else {
    ({ theta: rope_theta, scaling: rope_scaling } = parseRope(r, source, gemma ? 1e6 : 10000));
    if (gemma) rope_local_theta = r.rope_local_base_freq === undefined || r.rope_local_base_freq === null ? 10000 : need(r, "rope_local_base_freq", source);
  }

  let sliding_window: number | null = null;
  // the family's field contract says whether its attention reads a window (qwen's is refused, llama has none)
  const windowed = fields.sliding_window?.role === "used";
  if (windowed && r.sliding_window !== undefined && r.sliding_window !== null) {
    sliding_window = positiveInt(need(r, "sliding_window", source), "sliding_window", source);
  } else if (gemma && r.sliding_window === undefined) {
    sliding_window = 4096; // Gemma3TextConfig's default
  }
  let layer_types: ModelConfig["layer_types"];
  if (r.layer_types !== undefined && r.layer_types !== null) {
    const lt = r.layer_types;
    if (!Array.isArray(lt)) fail(source, "layer_types", lt, "expected a list");
    if (lt.length !== num_hidden_layers) {
      throw new ConfigError(`${source}: "layer_types" has ${lt.length} entries, num_hidden_layers is ${num_hidden_layers}`);
    }
    const allowed = gemma ? ["full_attention", "sliding_attention"] : ["full_attention"];
    const bad = lt.find((t) => !allowed.includes(t as string));
    if (bad !== undefined) fail(source, "layer_types", lt, `entries must be ${allowed.map((a) => `"${a}"`).join(" or ")} (got ${JSON.stringify(bad)})`);
    layer_types = lt as ModelConfig["layer_types"];
    if (gemma && sliding_window === null && layer_types.includes("sliding_attention")) fail(source, "sliding_window", null, "sliding_attention layers need a window");
  } else if (gemma) {
    // transformers 4 layout: every sliding_window_pattern-th layer is global
    const pattern = r.sliding_window_pattern === undefined || r.sliding_window_pattern === null ? 6 : positiveInt(need(r, "sliding_window_pattern", source), "sliding_window_pattern", source);
    layer_types = Array.from({ length: num_hidden_layers }, (_, i) => ((i + 1) % pattern === 0 ? "full_attention" : "sliding_attention"));
  } else {
    layer_types = new Array(num_hidden_layers).fill(sliding_window === null ? "full_attention" : "sliding_attention");
  }
  const positive = (k: string): number | null => {
    const v = r[k];
    if (v === undefined || v === null) return null;
    const n = need(r, k, source);
    if (!(n > 0)) fail(source, k, v, "must be positive");
    return n;
  };
  const flag = (k: string): boolean => {
    const v = r[k];
    if (v === undefined || v === null) return false;
    if (typeof v !== "boolean") fail(source, k, v, "expected true or false");
    return v;
  };
  const attentionBias = fields.attention_bias ? flag("attention_bias") : false;
  // Gemma3TextConfig ties by default, the others do not
  const tied = r.tie_word_embeddings === undefined || r.tie_word_embeddings === null ? model_type === "gemma3_text" : flag("tie_word_embeddings");

  const eos = r.eos_token_id;
  return {
    model_type,
    vocab_size: positiveInt(need(r, "vocab_size", source), "vocab_size", source),
    hidden_size,
    intermediate_size,
    num_hidden_layers,
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    rms_norm_eps: r.rms_norm_eps === undefined ? 1e-6 : need(r, "rms_norm_eps", source),
    rope_theta,
    rope_scaling,
    qkv_bias: model_type === "qwen2" || attentionBias,
    o_bias: attentionBias,
    qk_norm: model_type === "qwen3" || gemma,
    sliding_window,
    layer_types,
    rope_local_theta,
    hidden_act: gemma ? "gelu_pytorch_tanh" : "silu",
    gemma_norms: gemma,
    query_pre_attn_scalar: gemma ? (positive("query_pre_attn_scalar") ?? 256) : null,
    final_logit_softcapping: gemma ? positive("final_logit_softcapping") : null,
    tie_word_embeddings: tied,
    max_position_embeddings: r.max_position_embeddings === undefined ? 2048 : need(r, "max_position_embeddings", source),
    bos_token_id: r.bos_token_id === undefined || r.bos_token_id === null ? 1 : need(r, "bos_token_id", source),
    eos_token_id: Array.isArray(eos) ? (eos as number[]) : eos === undefined || eos === null ? 2 : need(r, "eos_token_id", source),
    original: opts.originalText ?? null,
  };
}

/** Per-layer MLP widths, whatever form `intermediate_size` has. */
export function intermediateSizes(c: LlamaConfig): number[] {
  return Array.isArray(c.intermediate_size) ? c.intermediate_size.slice() : new Array(c.num_hidden_layers).fill(c.intermediate_size);
}

/** Config with new per-layer widths; collapses to a number when uniform (stock loaders need a number). */
export function withIntermediateSizes(c: LlamaConfig, sizes: number[]): LlamaConfig {
  if (sizes.length !== c.num_hidden_layers) throw new ConfigError(`expected ${c.num_hidden_layers} widths, got ${sizes.length}`);
  const uniform = sizes.every((s) => s === sizes[0]);
  return { ...c, intermediate_size: uniform ? sizes[0] : sizes.slice() };
}

/** Shapes every tensor must have for `config` (HF layout). */
export function expectedShapes(c: LlamaConfig): Map<string, number[]> {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [c.vocab_size, H]);
  m.set("model.norm.weight", [H]);
  if (!c.tie_word_embeddings) m.set("lm_head.weight", [c.vocab_size, H]);
  intermediateSizes(c).forEach((I, l) => {
    const p = `model.layers.${l}.`;
    m.set(p + "input_layernorm.weight", [H]);
    m.set(p + "self_attn.q_proj.weight", [q, H]);
    m.set(p + "self_attn.k_proj.weight", [kv, H]);
    m.set(p + "self_attn.v_proj.weight", [kv, H]);
    m.set(p + "self_attn.o_proj.weight", [H, q]);
    if (c.qkv_bias) {
      m.set(p + "self_attn.q_proj.bias", [q]);
      m.set(p + "self_attn.k_proj.bias", [kv]);
      m.set(p + "self_attn.v_proj.bias", [kv]);
    }
    if (c.o_bias) m.set(p + "self_attn.o_proj.bias", [H]);
    if (c.qk_norm) {
      m.set(p + "self_attn.q_norm.weight", [c.head_dim]);
      m.set(p + "self_attn.k_norm.weight", [c.head_dim]);
    }
    if (c.gemma_norms) {
      m.set(p + "pre_feedforward_layernorm.weight", [H]);
      m.set(p + "post_feedforward_layernorm.weight", [H]);
    }
    m.set(p + "post_attention_layernorm.weight", [H]);
    m.set(p + "mlp.gate_proj.weight", [I, H]);
    m.set(p + "mlp.up_proj.weight", [I, H]);
    m.set(p + "mlp.down_proj.weight", [H, I]);
  });
  return m;
}

export interface ParamCounts {
  total: number;
  embeddings: number;
  lm_head: number;
  attention: number;
  mlp: number;
  norms: number;
  mlpPerLayer: number[];
}

/**
 * Parameter counts the way the paper counts them: a tied head is counted once (inside `embeddings`),
 * an untied head separately in `lm_head`.
 */
export function paramCounts(c: LlamaConfig): ParamCounts {
  const H = c.hidden_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const attnPerLayer =
    H * q + 2 * H * kv + q * H + (c.qkv_bias ? q + 2 * kv : 0) + (c.o_bias ? H : 0) + (c.qk_norm ? 2 * c.head_dim : 0);
  const mlpPerLayer = intermediateSizes(c).map((I) => 3 * H * I);
  const embeddings = c.vocab_size * H;
  const lm_head = c.tie_word_embeddings ? 0 : c.vocab_size * H;
  const attention = attnPerLayer * c.num_hidden_layers;
  const mlp = mlpPerLayer.reduce((a, b) => a + b, 0);
  const norms = ((c.gemma_norms ? 4 : 2) * c.num_hidden_layers + 1) * H;
  return { total: embeddings + lm_head + attention + mlp + norms, embeddings, lm_head, attention, mlp, norms, mlpPerLayer };
}
