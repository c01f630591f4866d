/**
 * Float64 forward AND hand-written backward of a LLaMA network in plain loops (no tfjs, no autograd),
 * for checking importance scores. Weights are read in Hugging Face layout ([out, in]) from a TensorMap.
 * Backward covers: lm head (tied or not), final RMSNorm, per layer the SwiGLU MLP, the post-attention
 * RMSNorm, causal softmax attention with GQA (query head h reads kv head floor(h / (nH/nKV))),
 * rotate-half RoPE, and the input RMSNorm; residual paths add. Only the gradients of the MLP weights
 * (and the hidden states on the way) are produced.
 */
import type { LlamaConfig } from "../../src/model/config";
import type { TensorMap } from "../../src/io/tensors";
import { intermediateSizes } from "../../src/model/config";
import { refInvFreq } from "./llama-ref";

type Vec = Float64Array;

interface W {
  data: Float64Array;
  out: number;
  inp: number;
}

function get(tensors: TensorMap, name: string): W {
  const t = tensors.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  const [out, inp] = t.shape.length === 2 ? t.shape : [t.shape[0], 1];
  return { data: Float64Array.from(t.data), out, inp };
}

/** Y[n, out] = X[n, in] · Wᵀ  (W stored [out, in]). */
function linear(X: Vec, n: number, w: W): Vec {
  const Y = new Float64Array(n * w.out);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < w.out; o++) {
      let s = 0;
      const wb = o * w.inp;
      const xb = r * w.inp;
      for (let i = 0; i < w.inp; i++) s += X[xb + i] * w.data[wb + i];
      Y[r * w.out + o] = s;
    }
  }
  return Y;
}

/** dX[n, in] = dY[n, out] · W. */
function linearBackX(dY: Vec, n: number, w: W): Vec {
  const dX = new Float64Array(n * w.inp);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < w.out; o++) {
      const g = dY[r * w.out + o];
      if (g === 0) continue;
      const wb = o * w.inp;
      const xb = r * w.inp;
      for (let i = 0; i < w.inp; i++) dX[xb + i] += g * w.data[wb + i];
    }
  }
  return dX;
}

/** dW[out, in] = dYᵀ · X. */
function linearBackW(dY: Vec, X: Vec, n: number, w: W): Vec {
  const dW = new Float64Array(w.out * w.inp);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < w.out; o++) {
      const g = dY[r * w.out + o];
      if (g === 0) continue;
      const wb = o * w.inp;
      const xb = r * w.inp;
      for (let i = 0; i < w.inp; i++) dW[wb + i] += g * X[xb + i];
    }
  }
  return dW;
}

function rmsnorm(X: Vec, n: number, H: number, w: Vec, eps: number): { Y: Vec; r: Vec } {
  const Y = new Float64Array(n * H);
  const r = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    let ss = 0;
    for (let k = 0; k < H; k++) ss += X[t * H + k] ** 2;
    r[t] = 1 / Math.sqrt(ss / H + eps);
    for (let k = 0; k < H; k++) Y[t * H + k] = X[t * H + k] * r[t] * w[k];
  }
  return { Y, r };
}

/** y_j = w_j x_j r, r = (mean x² + eps)^(−1/2):  dx_j = r w_j dy_j − (r³/H) x_j Σ_k dy_k w_k x_k. */
function rmsnormBack(dY: Vec, X: Vec, r: Vec, n: number, H: number, w: Vec): Vec {
  const dX = new Float64Array(n * H);
  for (let t = 0; t < n; t++) {
    let dot = 0;
    for (let k = 0; k < H; k++) dot += dY[t * H + k] * w[k] * X[t * H + k];
    const rt = r[t];
    const c = (rt * rt * rt * dot) / H;
    for (let k = 0; k < H; k++) dX[t * H + k] = rt * w[k] * dY[t * H + k] - c * X[t * H + k];
  }
  return dX;
}

/** In place rotate-half RoPE on every head of rows [T, heads·d]; `sign` −1 applies the inverse (backward). */
function rope(X: Vec, T: number, heads: number, d: number, inv: Float64Array, sign: 1 | -1): void {
  const half = d / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const off = t * heads * d + h * d;
      for (let j = 0; j < half; j++) {
        const a = t * inv[j];
        const c = Math.cos(a);
        const s = sign * Math.sin(a);
        const x1 = X[off + j];
        const x2 = X[off + j + half];
        X[off + j] = x1 * c - x2 * s;
        X[off + j + half] = x2 * c + x1 * s;
      }
    }
  }
}

interface LayerCache {
  xIn: Vec;
  a: Vec;
  r1: Vec;
  q: Vec; // post-RoPE [T, nH·d]
  k: Vec; // post-RoPE [T, nKV·d]
  v: Vec;
  P: Vec[]; // per query head [T, T]
  O: Vec; // [T, nH·d]
  xMid: Vec;
  b: Vec;
  r2: Vec;
  g: Vec;
  u: Vec;
  s: Vec; // silu(g)
  m: Vec; // s·u
}

export interface RefGrads {
  logits: Vec; // [T, V]
  /** Per layer, HF layout: gate/up [I, H], down [H, I]. */
  gate: Vec[];
  up: Vec[];
  down: Vec[];
}

export class ReferenceLlama {
  readonly c: LlamaConfig;
  private readonly t: TensorMap;
  constructor(config: LlamaConfig, tensors: TensorMap) {
    this.c = config;
    this.t = tensors;
  }
  w(name: string): W {
    return get(this.t, name);
  }

  private headW(): W {
    return this.c.tie_word_embeddings ? this.w("model.embed_tokens.weight") : this.w("lm_head.weight");
  }

  /** Forward of one sequence; returns logits [T, V] and the caches the backward needs. */
  forward(ids: number[]): { logits: Vec; caches: LayerCache[]; xL: Vec; rF: Vec; yF: Vec } {
    const c = this.c;
    const T = ids.length;
    const H = c.hidden_size;
    const nH = c.num_attention_heads;
    const nKV = c.num_key_value_heads;
    const d = c.head_dim;
    const grp = nH / nKV;
    const inv = refInvFreq(c);
    const E = this.w("model.embed_tokens.weight");
    let x = new Float64Array(T * H);
    ids.forEach((id, t) => x.set(E.data.subarray(id * H, id * H + H), t * H));
    const caches: LayerCache[] = [];
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      const xIn = x;
      const { Y: a, r: r1 } = rmsnorm(xIn, T, H, this.w(p + "input_layernorm.weight").data, c.rms_norm_eps);
      const q = linear(a, T, this.w(p + "self_attn.q_proj.weight"));
      const k = linear(a, T, this.w(p + "self_attn.k_proj.weight"));
      const v = linear(a, T, this.w(p + "self_attn.v_proj.weight"));
      rope(q, T, nH, d, inv, 1);
      rope(k, T, nKV, d, inv, 1);
      const O = new Float64Array(T * nH * d);
      const P: Vec[] = [];
      const scale = 1 / Math.sqrt(d);
      for (let h = 0; h < nH; h++) {
        const kv = Math.floor(h / grp);
        const Ph = new Float64Array(T * T);
        for (let i = 0; i < T; i++) {
          let mx = -Infinity;
          for (let j = 0; j <= i; j++) {
            let s = 0;
            for (let e = 0; e < d; e++) s += q[i * nH * d + h * d + e] * k[j * nKV * d + kv * d + e];
            s *= scale;
            Ph[i * T + j] = s;
            if (s > mx) mx = s;
          }
          let z = 0;
          for (let j = 0; j <= i; j++) {
            Ph[i * T + j] = Math.exp(Ph[i * T + j] - mx);
            z += Ph[i * T + j];
          }
          for (let j = 0; j <= i; j++) Ph[i * T + j] /= z;
          for (let e = 0; e < d; e++) {
            let s = 0;
            for (let j = 0; j <= i; j++) s += Ph[i * T + j] * v[j * nKV * d + kv * d + e];
            O[i * nH * d + h * d + e] = s;
          }
        }
        P.push(Ph);
      }
      const attn = linear(O, T, this.w(p + "self_attn.o_proj.weight"));
      const xMid = new Float64Array(T * H);
      for (let i = 0; i < xMid.length; i++) xMid[i] = xIn[i] + attn[i];
      const { Y: b, r: r2 } = rmsnorm(xMid, T, H, this.w(p + "post_attention_layernorm.weight").data, c.rms_norm_eps);
      const g = linear(b, T, this.w(p + "mlp.gate_proj.weight"));
      const u = linear(b, T, this.w(p + "mlp.up_proj.weight"));
      const s = g.map((gv) => gv / (1 + Math.exp(-gv)));
      const m = s.map((sv, i) => sv * u[i]);
      const mlp = linear(m, T, this.w(p + "mlp.down_proj.weight"));
      x = new Float64Array(T * H);
      for (let i = 0; i < x.length; i++) x[i] = xMid[i] + mlp[i];
      caches.push({ xIn, a, r1, q, k, v, P, O, xMid, b, r2, g, u, s, m });
    }
    const { Y: yF, r: rF } = rmsnorm(x, T, H, this.w("model.norm.weight").data, c.rms_norm_eps);
    const logits = linear(yF, T, this.headW());
    return { logits, caches, xL: x, rF, yF };
  }

  /** Backward from dL/dlogits [T, V]; returns the MLP weight gradients (HF layout) per layer. */
  backward(fw: ReturnType<ReferenceLlama["forward"]>, dLogits: Vec): { gate: Vec[]; up: Vec[]; down: Vec[] } {
    const c = this.c;
    const T = dLogits.length / c.vocab_size;
    const H = c.hidden_size;
    const nH = c.num_attention_heads;
    const nKV = c.num_key_value_heads;
    const d = c.head_dim;
    const grp = nH / nKV;
    const inv = refInvFreq(c);
    const sizes = intermediateSizes(c);
    const dyF = linearBackX(dLogits, T, this.headW());
    let dx = rmsnormBack(dyF, fw.xL, fw.rF, T, H, this.w("model.norm.weight").data);
    const gate: Vec[] = new Array(c.num_hidden_layers);
    const up: Vec[] = new Array(c.num_hidden_layers);
    const down: Vec[] = new Array(c.num_hidden_layers);
    for (let l = c.num_hidden_layers - 1; l >= 0; l--) {
      const p = `model.layers.${l}.`;
      const L = fw.caches[l];
      const I = sizes[l];
      // MLP: out = (silu(g) ⊙ u) · Wdᵀ
      const Wd = this.w(p + "mlp.down_proj.weight");
      const Wg = this.w(p + "mlp.gate_proj.weight");
      const Wu = this.w(p + "mlp.up_proj.weight");
      down[l] = linearBackW(dx, L.m, T, Wd);
      const dm = linearBackX(dx, T, Wd);
      const dg = new Float64Array(T * I);
      const du = new Float64Array(T * I);
      for (let i = 0; i < T * I; i++) {
        const gv = L.g[i];
        const sg = 1 / (1 + Math.exp(-gv));
        du[i] = dm[i] * L.s[i];
        dg[i] = dm[i] * L.u[i] * sg * (1 + gv * (1 - sg));
      }
      gate[l] = linearBackW(dg, L.b, T, Wg);
      up[l] = linearBackW(du, L.b, T, Wu);
      const db = linearBackX(dg, T, Wg);
      const dbu = linearBackX(du, T, Wu);
      for (let i = 0; i < db.length; i++) db[i] += dbu[i];
      const dMidNorm = rmsnormBack(db, L.xMid, L.r2, T, H, this.w(p + "post_attention_layernorm.weight").data);
      const dMid = new Float64Array(T * H);
      for (let i = 0; i < dMid.length; i++) dMid[i] = dx[i] + dMidNorm[i];
      // attention: out = O · Woᵀ, O_h = P_h V_kv, P = softmax(q kᵀ / √d) (causal)
      const dO = linearBackX(dMid, T, this.w(p + "self_attn.o_proj.weight"));
      const dq = new Float64Array(T * nH * d);
      const dk = new Float64Array(T * nKV * d);
      const dv = new Float64Array(T * nKV * d);
      const scale = 1 / Math.sqrt(d);
      const dP = new Float64Array(T);
      for (let h = 0; h < nH; h++) {
        const kv = Math.floor(h / grp);
        const Ph = L.P[h];
        for (let i = 0; i < T; i++) {
          let rowDot = 0;
          for (let j = 0; j <= i; j++) {
            let s = 0;
            for (let e = 0; e < d; e++) s += dO[i * nH * d + h * d + e] * L.v[j * nKV * d + kv * d + e];
            dP[j] = s;
            rowDot += s * Ph[i * T + j];
            const pij = Ph[i * T + j];
            for (let e = 0; e < d; e++) dv[j * nKV * d + kv * d + e] += pij * dO[i * nH * d + h * d + e];
          }
          for (let j = 0; j <= i; j++) {
            const dS = Ph[i * T + j] * (dP[j] - rowDot) * scale;
            if (dS === 0) continue;
            for (let e = 0; e < d; e++) {
              dq[i * nH * d + h * d + e] += dS * L.k[j * nKV * d + kv * d + e];
              dk[j * nKV * d + kv * d + e] += dS * L.q[i * nH * d + h * d + e];
            }
          }
        }
      }
      // RoPE is a rotation: its transpose is the rotation by −angle
      rope(dq, T, nH, d, inv, -1);
      rope(dk, T, nKV, d, inv, -1);
      const da = linearBackX(dq, T, this.w(p + "self_attn.q_proj.weight"));
      const dak = linearBackX(dk, T, this.w(p + "self_attn.k_proj.weight"));
      const dav = linearBackX(dv, T, this.w(p + "self_attn.v_proj.weight"));
      for (let i = 0; i < da.length; i++) da[i] += dak[i] + dav[i];
      const dInNorm = rmsnormBack(da, L.xIn, L.r1, T, H, this.w(p + "input_layernorm.weight").data);
      const dIn = new Float64Array(T * H);
      for (let i = 0; i < dIn.length; i++) dIn[i] = dMid[i] + dInNorm[i];
      dx = dIn;
    }
    return { gate, up, down };
  }
}
