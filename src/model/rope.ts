import type { LlamaConfig } from "./config";

/**
 * Rotary-embedding inverse frequencies θ^(−2j/d), j < d/2, with the rope_scaling rules transformers
 * applies: `llama3` rescales by wavelength band (docs/method.md, "LLaMA-3 RoPE scaling"), `linear` divides by the factor.
 */
export function inverseFrequencies(config: LlamaConfig): Float64Array {
  const d = config.head_dim;
  const half = d / 2;
  const inv = new Float64Array(half);
  for (let j = 0; j < half; j++) inv[j] = 1 / Math.pow(config.rope_theta, (2 * j) / d);
  const rs = config.rope_scaling;
  if (!rs || rs.rope_type === "default") return inv;
  if (rs.rope_type === "linear") {
    for (let j = 0; j < half; j++) inv[j] /= rs.factor as number;
    return inv;
  }
  const factor = rs.factor as number;
  const low = rs.low_freq_factor as number;
  const high = rs.high_freq_factor as number;
  const oldCtx = rs.original_max_position_embeddings as number;
  const lowWavelen = oldCtx / low;
  const highWavelen = oldCtx / high;
  for (let j = 0; j < half; j++) {
    const f = inv[j];
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) continue;
    if (wavelen > lowWavelen) {
      inv[j] = f / factor;
    } else {
      const s = (oldCtx / wavelen - low) / (high - low);
      inv[j] = (1 - s) * (f / factor) + s * f;
    }
  }
  return inv;
}

/**
 * cos/sin tables [T, head_dim] for positions offset..offset+T−1 in the rotate-half layout: column c uses
 * frequency c mod d/2 (HF `emb = cat(freqs, freqs)`). Angles are computed in float64 and rounded once.
 */
export function ropeTables(config: LlamaConfig, T: number, offset = 0): { cos: Float32Array; sin: Float32Array } {
  const d = config.head_dim;
  const half = d / 2;
  const inv = inverseFrequencies(config);
  const cos = new Float32Array(T * d);
  const sin = new Float32Array(T * d);
  for (let t = 0; t < T; t++) {
    const pos = t + offset;
    for (let j = 0; j < half; j++) {
      // transformers computes the angle in float32 (inv_freq float32 × position); rounding inv first
      // keeps long-position angles within float32 agreement of HF.
      const a = pos * Math.fround(inv[j]);
      const c = Math.cos(a);
      const s = Math.sin(a);
      cos[t * d + j] = c;
      cos[t * d + j + half] = c;
      sin[t * d + j] = s;
      sin[t * d + j + half] = s;
    }
  }
  return { cos, sin };
}
