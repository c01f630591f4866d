import * as tf from "@tensorflow/tfjs";
import { UsageError } from "./errors";

/**
 * The SDMPrune loss L = (1 − α)·CE + α·KD (docs/method.md, "Loss") for B windows of equal length T: its pieces,
 * weights and running totals. The analytic gradient (docs/method.md, "Gradient"), fused with the head's backward, is
 * src/importance/head-loss.ts; `mixedLoss` is the taped form it is tested against.
 *
 * - CE: next-token cross-entropy, mean over the B·(T−1) predicted positions (the last position of a
 *   window has no label).
 * - KD: forward KL(p_τ ‖ q_s) per token, mean over all B·T positions (the last one included),
 *   p_τ = softmax(z_teacher / τ): temperature on the teacher only, no τ² factor.
 *
 * Rows of a logits chunk are positions n = b·T + pos of the flattened [B·T, V] logits. All softmaxes run
 * in float32 (tfjs has no bf16); the teacher side arrives as dense probabilities built on the host in
 * float64 by the TeacherCache, together with Σ_v p log p (needed only for the logged KD value).
 */
export interface LossSpec {
  /** Mixing weight of KD; 0 = plain CE (stage 1 / "ce-taylor"). */
  alpha: number;
  /** Teacher temperature τ (> 0); unused when alpha = 0. */
  temperature: number;
  /** Windows in the batch and their common length. */
  B: number;
  T: number;
}

export function validateLossSpec(s: LossSpec): void {
  if (!Number.isFinite(s.alpha) || s.alpha < 0 || s.alpha > 1) throw new UsageError(`alpha must be in [0, 1], got ${s.alpha}`);
  if (!Number.isFinite(s.temperature) || s.temperature <= 0) throw new UsageError(`temperature must be > 0, got ${s.temperature}`);
  if (!Number.isInteger(s.B) || s.B < 1) throw new UsageError(`batch size must be a positive integer, got ${s.B}`);
  if (!Number.isInteger(s.T) || s.T < 2) throw new UsageError(`window length must be at least 2 tokens, got ${s.T}`);
}

/** Per-row weights of the two terms in ∂L/∂z: CE rows with a label get `ce`, every row gets `kd`. */
export function lossWeights(s: LossSpec): { ce: number; kd: number } {
  return { ce: (1 - s.alpha) / (s.B * (s.T - 1)), kd: s.alpha / (s.B * s.T) };
}

/** Next-token labels of flattened rows [p0, p1) of B windows: x[pos+1], or −1 at a window's last position. */
export function chunkLabels(windows: number[][], T: number, p0: number, p1: number): Int32Array {
  const out = new Int32Array(p1 - p0);
  for (let n = p0; n < p1; n++) {
    const b = Math.floor(n / T);
    const pos = n - b * T;
    out[n - p0] = pos < T - 1 ? windows[b][pos + 1] : -1;
  }
  return out;
}

/**
 * Rows per chunk so that one chunk's [n, V] float32 temporaries stay around `budget` floats (4 M floats
 * = 16 MB per temporary; a chunk creates a handful of them).
 */
export function positionChunk(V: number, total: number, budget = 1 << 22): number {
  return Math.max(1, Math.min(total, Math.floor(budget / V)));
}

/** Running totals of the logged loss over the chunks of one batch. */
export class LossMeter {
  nll = 0;
  cross = 0;
  plogp = 0;
  constructor(readonly spec: LossSpec) {}
  add(c: { nllSum: number; crossSum: number }, plogp = 0): void {
    this.nll += c.nllSum;
    this.cross += c.crossSum;
    this.plogp += plogp;
  }
  /** CE averaged over B·(T−1) predicted positions. */
  get ce(): number {
    return this.nll / (this.spec.B * (this.spec.T - 1));
  }
  /** KL(p_τ‖q_s) averaged over all B·T positions (0 when alpha = 0). */
  get kd(): number {
    return this.spec.alpha > 0 ? (this.cross + this.plogp) / (this.spec.B * this.spec.T) : 0;
  }
  get loss(): number {
    return (1 - this.spec.alpha) * this.ce + this.spec.alpha * this.kd;
  }
}

/**
 * The same loss as a differentiable scalar of the full logits [B, T, V] (taped path; used by the
 * straightforward reference path and by tests, not by the chunked scorer). `teacherProbs` [B·T·V] and
 * `plogp` = Σ p log p over all rows (a constant for the student) come from the teacher cache.
 */
export function mixedLoss(logits: tf.Tensor3D, windows: number[][], teacherProbs: tf.Tensor2D | null, plogp: number, spec: LossSpec): tf.Scalar {
  const [B, T, V] = logits.shape;
  if (B !== spec.B || T !== spec.T) throw new UsageError(`mixedLoss: logits are [${B}, ${T}] but the spec says B=${spec.B}, T=${spec.T}`);
  const labels = chunkLabels(windows, T, 0, B * T);
  const safe = new Int32Array(B * T);
  const has = new Float32Array(B * T);
  for (let i = 0; i < labels.length; i++) if (labels[i] >= 0) { safe[i] = labels[i]; has[i] = 1; }
  return tf.tidy(() => {
    const logq = tf.logSoftmax(tf.reshape(logits, [B * T, V]), -1);
    const onehot = tf.mul(tf.oneHot(tf.tensor1d(safe, "int32"), V), tf.tensor2d(has, [B * T, 1]));
    const ce = tf.div(tf.neg(tf.sum(tf.mul(onehot, logq))), B * (T - 1));
    if (spec.alpha === 0 || !teacherProbs) return ce as tf.Scalar;
    const kd = tf.div(tf.add(tf.neg(tf.sum(tf.mul(teacherProbs, logq))), plogp), B * T);
    return tf.add(tf.mul(ce, 1 - spec.alpha), tf.mul(kd, spec.alpha)) as tf.Scalar;
  });
}
