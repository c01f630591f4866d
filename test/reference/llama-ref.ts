/**
 * Independent float64 LLaMA forward in plain loops (no tfjs), used as ground truth in tests. It reads
 * tensors in Hugging Face layout ([out, in]) straight from the TensorMap and follows transformers'
 * modeling_llama: RMSNorm, rotate-half RoPE with the llama3/linear frequency rules, repeat_kv GQA,
 * causal softmax attention, SwiGLU MLP, tied or untied head; Qwen2/Qwen3/Llama attention biases when the
 * tensors hold them, and Qwen3's per-head q/k RMSNorm before RoPE (modeling_qwen3); sliding-window layers
 * (keys t−W < s ≤ t); Gemma 3 (modeling_gemma3): (1+w) norms, embeddings × sqrt(H), norms on the attention
 * and MLP outputs, pre_feedforward_layernorm, gelu_pytorch_tanh, query_pre_attn_scalar, the local RoPE base
 * of sliding layers, final logit softcapping. Deliberately shares no code with src/model.
 */
import type { LlamaConfig } from "../../src/model/config";
import type { TensorMap } from "../../src/io/tensors";

export interface RefOptions {
  /** Override individual weights (HF name → float64 data in HF layout), e.g. for finite differences. */
  override?: Map<string, Float64Array>;
  /** Per-layer multiplicative masks on the MLP intermediate activation. */
  mlpMask?: (Float64Array | null)[];
}

type Vec = Float64Array;

function weight(tensors: TensorMap, name: string, opts?: RefOptions): { data: ArrayLike<number>; shape: number[] } {
  const o = opts?.override?.get(name);
  const t = tensors.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return { data: o ?? t.data, shape: t.shape };
}

/** y = W x for W stored [out, in]. */
function linear(W: { data: ArrayLike<number>; shape: number[] }, x: Vec): Vec {
  const [out, inp] = W.shape;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    const base = o * inp;
    for (let i = 0; i < inp; i++) s += W.data[base + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rmsnorm(x: Vec, w: ArrayLike<number>, eps: number): Vec {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const r = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] * r * w[i];
  return y;
}

/** transformers _compute_llama3_parameters / linear scaling, written out per frequency. */
export function refInvFreq(c: LlamaConfig): Float64Array {
  const d = c.head_dim;
  const out = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) {
    const base = Math.pow(c.rope_theta, -(2 * i) / d);
    const rs = c.rope_scaling;
    if (!rs || rs.rope_type === "default") {
      out[i] = base;
    } else if (rs.rope_type === "linear") {
      out[i] = base / rs.factor!;
    } else {
      const wl = (2 * Math.PI) / base;
      const lowWl = rs.original_max_position_embeddings! / rs.low_freq_factor!;
      const highWl = rs.original_max_position_embeddings! / rs.high_freq_factor!;
      const scaled = wl > lowWl ? base / rs.factor! : base;
      const smooth = (rs.original_max_position_embeddings! / wl - rs.low_freq_factor!) / (rs.high_freq_factor! - rs.low_freq_factor!);
      const smoothed = (1 - smooth) * (scaled / rs.factor!) + smooth * scaled;
      const isMedium = !(wl < highWl) && !(wl > lowWl);
      out[i] = isMedium ? smoothed : scaled;
    }
  }
  return out;
}

/** In place: HF apply_rotary_pos_emb on one head vector at position pos (pairs i, i + d/2). */
function rope(v: Vec, off: number, d: number, pos: number, inv: Float64Array): void {
  const half = d / 2;
  for (let i = 0; i < half; i++) {
    const a = pos * inv[i];
    const c = Math.cos(a);
    const s = Math.sin(a);
    const x1 = v[off + i];
    const x2 = v[off + i + half];
    v[off + i] = x1 * c - x2 * s;
    v[off + i + half] = x2 * c + x1 * s;
  }
}

/** Logits [T][V] (float64) for one sequence. */
export function referenceLogits(config: LlamaConfig, tensors: TensorMap, ids: number[], opts?: RefOptions): Float64Array[] {
  const c = config;
  const H = c.hidden_size;
  const nH = c.num_attention_heads;
  const nKV = c.num_key_value_heads;
  const d = c.head_dim;
  const T = ids.length;
  const gemma = c.gemma_norms;
  const nw = (w: ArrayLike<number>): ArrayLike<number> => (gemma ? Float64Array.from(w, (v) => 1 + v) : w);
  const emb = weight(tensors, "model.embed_tokens.weight", opts);
  const es = gemma ? Math.fround(Math.sqrt(H)) : 1;
  let hs: Vec[] = ids.map((id) => Float64Array.from({ length: H }, (_, i) => emb.data[id * H + i] * es));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const window = c.layer_types[l] === "sliding_attention" ? c.sliding_window : null;
    const inv = window !== null && c.rope_local_theta !== null ? refInvFreq({ ...c, rope_theta: c.rope_local_theta, rope_scaling: null }) : refInvFreq(c);
    const scale = 1 / Math.sqrt(c.query_pre_attn_scalar ?? d);
    const ln1 = nw(weight(tensors, p + "input_layernorm.weight", opts).data);
    const lnPa = nw(weight(tensors, p + "post_attention_layernorm.weight", opts).data);
    const ln2 = gemma ? nw(weight(tensors, p + "pre_feedforward_layernorm.weight", opts).data) : lnPa;
    const lnPf = gemma ? nw(weight(tensors, p + "post_feedforward_layernorm.weight", opts).data) : null;
    const Wq = weight(tensors, p + "self_attn.q_proj.weight", opts);
    const Wk = weight(tensors, p + "self_attn.k_proj.weight", opts);
    const Wv = weight(tensors, p + "self_attn.v_proj.weight", opts);
    const Wo = weight(tensors, p + "self_attn.o_proj.weight", opts);
    const Wg = weight(tensors, p + "mlp.gate_proj.weight", opts);
    const Wu = weight(tensors, p + "mlp.up_proj.weight", opts);
    const Wd = weight(tensors, p + "mlp.down_proj.weight", opts);
    const opt = (n: string) => (tensors.has(p + n) ? weight(tensors, p + n, opts).data : null);
    const bq = opt("self_attn.q_proj.bias"), bk = opt("self_attn.k_proj.bias"), bv = opt("self_attn.v_proj.bias"), bo = opt("self_attn.o_proj.bias");
    const qn0 = opt("self_attn.q_norm.weight"), kn0 = opt("self_attn.k_norm.weight");
    const qn = qn0 && nw(qn0), kn = kn0 && nw(kn0);
    const addBias = (y: Vec, b: ArrayLike<number> | null): Vec => (b ? y.map((v, i) => v + b[i]) : y);
    const headNorm = (y: Vec, heads: number, w: ArrayLike<number> | null): Vec => {
      if (!w) return y;
      for (let h = 0; h < heads; h++) y.set(rmsnorm(y.subarray(h * d, (h + 1) * d), w, c.rms_norm_eps), h * d);
      return y;
    };
    const qs: Vec[] = [];
    const ks: Vec[] = [];
    const vs: Vec[] = [];
    for (let t = 0; t < T; t++) {
      const xn = rmsnorm(hs[t], ln1, c.rms_norm_eps);
      const q = headNorm(addBias(linear(Wq, xn), bq), nH, qn);
      const k = headNorm(addBias(linear(Wk, xn), bk), nKV, kn);
      for (let h = 0; h < nH; h++) rope(q, h * d, d, t, inv);
      for (let h = 0; h < nKV; h++) rope(k, h * d, d, t, inv);
      qs.push(q);
      ks.push(k);
      vs.push(addBias(linear(Wv, xn), bv));
    }
    const next: Vec[] = [];
    for (let t = 0; t < T; t++) {
      const attnOut = new Float64Array(nH * d);
      for (let h = 0; h < nH; h++) {
        const kvh = Math.floor(h / (nH / nKV));
        const sc = new Float64Array(t + 1);
        const s0 = window === null ? 0 : Math.max(0, t - window + 1);
        let mx = -Infinity;
        for (let s = s0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += qs[t][h * d + i] * ks[s][kvh * d + i];
          sc[s] = dot * scale;
          if (sc[s] > mx) mx = sc[s];
        }
        let z = 0;
        for (let s = s0; s <= t; s++) z += (sc[s] = Math.exp(sc[s] - mx));
        for (let s = s0; s <= t; s++) {
          const w = sc[s] / z;
          for (let i = 0; i < d; i++) attnOut[h * d + i] += w * vs[s][kvh * d + i];
        }
      }
      const o0 = addBias(linear(Wo, attnOut), bo);
      const o = gemma ? rmsnorm(o0, lnPa, c.rms_norm_eps) : o0;
      const x = Float64Array.from(hs[t], (v, i) => v + o[i]);
      const xn2 = rmsnorm(x, ln2, c.rms_norm_eps);
      const g = linear(Wg, xn2);
      const u = linear(Wu, xn2);
      const mask = opts?.mlpMask?.[l];
      const f = (x: number): number =>
        c.hidden_act === "silu" ? x / (1 + Math.exp(-x)) : 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
      const a = g.map((gv, i) => f(gv) * u[i] * (mask ? mask[i] : 1));
      const dn0 = linear(Wd, a);
      const dn = lnPf ? rmsnorm(dn0, lnPf, c.rms_norm_eps) : dn0;
      next.push(Float64Array.from(x, (v, i) => v + dn[i]));
    }
    hs = next;
  }
  const fw = nw(weight(tensors, "model.norm.weight", opts).data);
  const head = c.tie_word_embeddings ? emb : weight(tensors, "lm_head.weight", opts);
  const cap = c.final_logit_softcapping;
  return hs.map((h) => {
    const z = linear(head, rmsnorm(h, fw, c.rms_norm_eps));
    return cap === null ? z : z.map((v) => cap * Math.tanh(v / cap));
  });
}

/** Mean next-token cross-entropy over positions 0..T−2 (float64). */
export function referenceLoss(config: LlamaConfig, tensors: TensorMap, ids: number[], opts?: RefOptions): number {
  const logits = referenceLogits(config, tensors, ids, opts);
  let total = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits[t];
    let mx = -Infinity;
    for (const v of row) if (v > mx) mx = v;
    let z = 0;
    for (const v of row) z += Math.exp(v - mx);
    total += Math.log(z) + mx - row[ids[t + 1]];
  }
  return total / (ids.length - 1);
}

/** Greedy continuation by full recomputation (no cache), for checking the cached generator. */
export function referenceGreedy(config: LlamaConfig, tensors: TensorMap, prompt: number[], n: number): number[] {
  const seq = prompt.slice();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const logits = referenceLogits(config, tensors, seq);
    const last = logits[logits.length - 1];
    let best = 0;
    for (let v = 1; v < last.length; v++) if (last[v] > last[best]) best = v;
    out.push(best);
    seq.push(best);
  }
  return out;
}
