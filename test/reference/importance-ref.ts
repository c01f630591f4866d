/**
 * Float64 reference of the SDMPrune per-sample importance (docs/method.md, "Loss" to "Importance"), written from the formulas
 * with plain loops: loss (1−α)·CE + α·KL(softmax(z_t/τ) ‖ softmax(z_s)), its gradient w.r.t. the student
 * logits, the hand-written backward of test/reference/llama-backward.ts, and the channel score
 * mean_k |W_g⊙G_g + W_u⊙G_u + W_d⊙G_d| in Hugging Face layout (gate/up [I, H], down [H, I]).
 */
import type { LlamaConfig } from "../../src/model/config";
import type { TensorMap } from "../../src/io/tensors";
import { intermediateSizes } from "../../src/model/config";
import { ReferenceLlama } from "./llama-backward";

export interface RefImportance {
  /** Per layer, per channel score of this one window. */
  scores: Float64Array[];
  loss: number;
  ce: number;
  kd: number;
  /** MLP weight gradients (HF layout), for finer checks. */
  grads: { gate: Float64Array[]; up: Float64Array[]; down: Float64Array[] };
}

function logSoftmaxRow(z: Float64Array, off: number, V: number, scale = 1): Float64Array {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, z[off + v] * scale);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(z[off + v] * scale - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = z[off + v] * scale - lse;
  return out;
}

/**
 * Importance of one window. `teacher` defaults to the student itself (self-distillation against the
 * same, unpruned network, as in the key test).
 */
export function referenceImportance(
  config: LlamaConfig,
  tensors: TensorMap,
  window: number[],
  opts: { alpha: number; temperature: number; teacher?: { config: LlamaConfig; tensors: TensorMap } },
): RefImportance {
  const net = new ReferenceLlama(config, tensors);
  const fw = net.forward(window);
  const T = window.length;
  const V = config.vocab_size;
  const { alpha, temperature } = opts;
  const zt = alpha > 0 ? (opts.teacher ? new ReferenceLlama(opts.teacher.config, opts.teacher.tensors).forward(window).logits : fw.logits) : null;
  const dZ = new Float64Array(T * V);
  let ce = 0;
  let kd = 0;
  for (let t = 0; t < T; t++) {
    const logq = logSoftmaxRow(fw.logits, t * V, V);
    if (t < T - 1) {
      const y = window[t + 1];
      ce -= logq[y] / (T - 1);
      const wce = (1 - alpha) / (T - 1);
      for (let v = 0; v < V; v++) dZ[t * V + v] += wce * (Math.exp(logq[v]) - (v === y ? 1 : 0));
    }
    if (zt) {
      const logp = logSoftmaxRow(zt, t * V, V, 1 / temperature);
      const wkd = alpha / T;
      for (let v = 0; v < V; v++) {
        const p = Math.exp(logp[v]);
        kd += (p * (logp[v] - logq[v])) / T;
        dZ[t * V + v] += wkd * (Math.exp(logq[v]) - p);
      }
    }
  }
  const grads = net.backward(fw, dZ);
  const sizes = intermediateSizes(config);
  const H = config.hidden_size;
  const scores = sizes.map((I, l) => {
    const Wg = tensors.get(`model.layers.${l}.mlp.gate_proj.weight`)!.data;
    const Wu = tensors.get(`model.layers.${l}.mlp.up_proj.weight`)!.data;
    const Wd = tensors.get(`model.layers.${l}.mlp.down_proj.weight`)!.data;
    const out = new Float64Array(I);
    for (let i = 0; i < I; i++) {
      let s = 0;
      for (let k = 0; k < H; k++) {
        const x = Wg[i * H + k] * grads.gate[l][i * H + k] + Wu[i * H + k] * grads.up[l][i * H + k] + Wd[k * I + i] * grads.down[l][k * I + i];
        s += Math.abs(x);
      }
      out[i] = s / H;
    }
    return out;
  });
  return { scores, loss: (1 - alpha) * ce + alpha * kd, ce, kd, grads };
}
