import * as tf from "@tensorflow/tfjs";
import { FormatError, NumericError, UsageError } from "../errors";
import type { TensorMap } from "../io/tensors";

/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay, as torch.optim.AdamW computes it:
 *
 *     p ← p − lr·wd·p
 *     m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²
 *     p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
 *
 * Parameters are tf.Variables updated in place (so models built on them see the new values without being
 * rebuilt). Moments live in variables too and can be exported/imported exactly for checkpoints.
 */
export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters get weight decay (default: all of rank ≥ 2, i.e. not norms). */
  decay?: (name: string, v: tf.Variable) => boolean;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of updates applied so far. */
  t = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly decayed = new Set<string>();

  constructor(readonly params: Map<string, tf.Variable>, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    if (!(this.beta1 >= 0 && this.beta1 < 1)) throw new UsageError(`AdamW beta1 must be in [0, 1), got ${this.beta1}`);
    if (!(this.beta2 >= 0 && this.beta2 < 1)) throw new UsageError(`AdamW beta2 must be in [0, 1), got ${this.beta2}`);
    if (!(this.eps > 0)) throw new UsageError(`AdamW eps must be > 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0) || !Number.isFinite(this.weightDecay)) throw new UsageError(`weight decay must be ≥ 0, got ${this.weightDecay}`);
    const decay = opts.decay ?? ((_n: string, p: tf.Variable) => p.rank >= 2);
    for (const [name, p] of params) {
      // tidy: a variable shares its initial value's data, so the temporary can go
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
      if (decay(name, p)) this.decayed.add(name);
    }
  }

  /** One update with learning rate `lr`; `grads` must hold a gradient for every parameter. */
  step(grads: Map<string, tf.Tensor>, lr: number): void {
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new NumericError(`AdamW: learning rate is ${lr}`);
    this.t++;
    const bc1 = 1 - Math.pow(this.beta1, this.t);
    const bc2 = 1 - Math.pow(this.beta2, this.t);
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) throw new UsageError(`AdamW: no gradient for parameter ${name}`);
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        const m1 = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
        const v1 = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        m.assign(m1);
        v.assign(v1);
        const wd = this.decayed.has(name) ? this.weightDecay : 0;
        const base = wd > 0 ? tf.mul(p, 1 - lr * wd) : p;
        const upd = tf.div(tf.div(m1, bc1), tf.add(tf.sqrt(tf.div(v1, bc2)), this.eps));
        p.assign(tf.sub(base, tf.mul(upd, lr)));
      });
    }
  }

  /** Moments as host tensors named `adam_m/NAME`, `adam_v/NAME` (for checkpoints). */
  exportState(): TensorMap {
    const out: TensorMap = new Map();
    for (const [name, m] of this.m) out.set(`adam_m/${name}`, { shape: m.shape.slice(), data: Float32Array.from(m.dataSync() as Float32Array) });
    for (const [name, v] of this.v) out.set(`adam_v/${name}`, { shape: v.shape.slice(), data: Float32Array.from(v.dataSync() as Float32Array) });
    return out;
  }

  importState(state: TensorMap, t: number, source = "checkpoint"): void {
    for (const [kind, map] of [["adam_m", this.m], ["adam_v", this.v]] as const) {
      for (const [name, target] of map) {
        const h = state.get(`${kind}/${name}`);
        if (!h) throw new FormatError(`${source}: optimizer state ${kind}/${name} is missing`);
        if (h.shape.length !== target.shape.length || h.shape.some((d, i) => d !== target.shape[i])) {
          throw new FormatError(`${source}: optimizer state ${kind}/${name} has shape [${h.shape}], expected [${target.shape}]`);
        }
        target.assign(tf.tensor(h.data, h.shape, "float32"));
      }
    }
    this.t = t;
  }

  dispose(): void {
    for (const x of this.m.values()) x.dispose();
    for (const x of this.v.values()) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Global L2 norm of a set of gradients (one host read). */
export function globalNorm(grads: Iterable<tf.Tensor>): number {
  const list = [...grads];
  if (list.length === 0) return 0;
  const s = tf.tidy(() => tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))));
  const n = s.dataSync()[0];
  s.dispose();
  return n;
}
