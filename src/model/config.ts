import { ConfigError } from "../errors";

/** `rope_scaling` as Hugging Face writes it. Only `llama3` changes frequencies; `default`/null leaves them. */
export interface RopeScaling {
  rope_type: "llama3" | "default" | "linear";
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/**
 * A LLaMA-family configuration with Hugging Face `config.json` field names. `intermediate_size` is a
 * number for uniform models and a per-layer array for pruned models with non-uniform widths.
 */
export interface LlamaConfig {
  model_type: "llama";
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
  tie_word_embeddings: boolean;
  max_position_embeddings: number;
  bos_token_id: number;
  eos_token_id: number | number[];
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

/**
 * Validate a raw `config.json` object (or the equivalent built from GGUF metadata) and fill the defaults
 * transformers uses: `num_key_value_heads = num_attention_heads`, `head_dim = hidden/heads`,
 * `rope_theta = 10000`, `rms_norm_eps = 1e-6`, untied head unless `tie_word_embeddings` is true.
 */
export function parseConfig(raw: unknown, source = "config.json"): LlamaConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${source}: expected a JSON object`);
  }
  const r = raw as Record<string, unknown>;
  if (r.model_type !== undefined && r.model_type !== "llama") {
    throw new ConfigError(`${source}: field "model_type" must be "llama", got ${JSON.stringify(r.model_type)}`);
  }
  const hidden_size = positiveInt(need(r, "hidden_size", source), "hidden_size", source);
  const num_hidden_layers = positiveInt(need(r, "num_hidden_layers", source), "num_hidden_layers", source);
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
  if (r.head_dim === undefined || r.head_dim === null) {
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

  let rope_scaling: RopeScaling | null = null;
  if (r.rope_scaling !== undefined && r.rope_scaling !== null) {
    const rs = r.rope_scaling as Record<string, unknown>;
    const type = (rs.rope_type ?? rs.type) as string;
    if (type !== "llama3" && type !== "default" && type !== "linear") {
      throw new ConfigError(`${source}: rope_scaling.rope_type "${type}" is not supported (llama3, linear, default)`);
    }
    rope_scaling = { rope_type: type };
    for (const k of ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"] as const) {
      if (rs[k] !== undefined) rope_scaling[k] = need(rs, k, `${source} rope_scaling`);
    }
    if (type === "llama3") {
      for (const k of ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"] as const) {
        if (rope_scaling[k] === undefined) throw new ConfigError(`${source}: rope_scaling (llama3) needs "${k}"`);
      }
    }
    if (type === "linear" && rope_scaling.factor === undefined) throw new ConfigError(`${source}: rope_scaling (linear) needs "factor"`);
  }

  const eos = r.eos_token_id;
  return {
    model_type: "llama",
    vocab_size: positiveInt(need(r, "vocab_size", source), "vocab_size", source),
    hidden_size,
    intermediate_size,
    num_hidden_layers,
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    rms_norm_eps: r.rms_norm_eps === undefined ? 1e-6 : need(r, "rms_norm_eps", source),
    rope_theta: r.rope_theta === undefined ? 10000 : need(r, "rope_theta", source),
    rope_scaling,
    tie_word_embeddings: r.tie_word_embeddings === true,
    max_position_embeddings: r.max_position_embeddings === undefined ? 2048 : need(r, "max_position_embeddings", source),
    bos_token_id: r.bos_token_id === undefined || r.bos_token_id === null ? 1 : need(r, "bos_token_id", source),
    eos_token_id: Array.isArray(eos) ? (eos as number[]) : eos === undefined || eos === null ? 2 : need(r, "eos_token_id", source),
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
  const attnPerLayer = H * q + 2 * H * kv + q * H;
  const mlpPerLayer = intermediateSizes(c).map((I) => 3 * H * I);
  const embeddings = c.vocab_size * H;
  const lm_head = c.tie_word_embeddings ? 0 : c.vocab_size * H;
  const attention = attnPerLayer * c.num_hidden_layers;
  const mlp = mlpPerLayer.reduce((a, b) => a + b, 0);
  const norms = (2 * c.num_hidden_layers + 1) * H;
  return { total: embeddings + lm_head + attention + mlp + norms, embeddings, lm_head, attention, mlp, norms, mlpPerLayer };
}
