import * as tf from "@tensorflow/tfjs";
import { UsageError } from "../errors";

/**
 * Named points inside the forward pass, after TransformerLens's hook points. A hook sees the tensor at its
 * point ([B·T, ·] rows, b·T + t) and may return a replacement; returning nothing leaves the forward
 * unchanged. The tensor is only valid during the call (copy what you keep: `runWithCache` does).
 *
 *   layers.N.attn.out   attention output (after o_proj), before it is added to the residual stream   [B·T, H]
 *   layers.N.mlp.in     the MLP input after post_attention_layernorm                                 [B·T, H]
 *   layers.N.mlp.act    the gated activation act(gate)·up, the input of down_proj                     [B·T, I_N]
 *   layers.N.mlp.out    the MLP output (after down_proj), before it is added to the residual stream   [B·T, H]
 *   resid.N             the residual stream after layer N                                             [B·T, H]
 *
 * Switching a block off is a hook that returns zeros (`zeroAblate`); a channel mask is a hook on
 * `mlp.act` (`maskChannels`); Wanda's input norms read `mlp.in` and `mlp.act`.
 */
export type Hook = (x: tf.Tensor2D, name: string) => tf.Tensor2D | void;
export type Hooks = Record<string, Hook>;

const POINT = /^(layers\.(\d+)\.(attn\.out|mlp\.in|mlp\.act|mlp\.out)|resid\.(\d+))$/;

/** All hook point names of a model with `numLayers` layers, in forward order. */
export function hookPoints(numLayers: number): string[] {
  const out: string[] = [];
  for (let l = 0; l < numLayers; l++) out.push(`layers.${l}.attn.out`, `layers.${l}.mlp.in`, `layers.${l}.mlp.act`, `layers.${l}.mlp.out`, `resid.${l}`);
  return out;
}

/** Refuse names that are no hook point (a typo would otherwise silently never fire). */
export function checkHooks(hooks: Hooks | undefined, numLayers: number): void {
  if (!hooks) return;
  for (const name of Object.keys(hooks)) {
    const m = POINT.exec(name);
    const l = m ? Number(m[2] ?? m[4]) : -1;
    if (!m || l >= numLayers) throw new UsageError(`unknown hook point "${name}"; points are layers.N.{attn.out,mlp.in,mlp.act,mlp.out} and resid.N for N < ${numLayers}`);
  }
}

/** x, or what the hook at `name` returns for it (shape-checked). */
export function runHook(hooks: Hooks | undefined, name: string, x: tf.Tensor2D): tf.Tensor2D {
  const h = hooks?.[name];
  if (!h) return x;
  const y = h(x, name);
  if (!y) return x;
  if (y.shape.length !== 2 || y.shape[0] !== x.shape[0] || y.shape[1] !== x.shape[1]) {
    throw new UsageError(`hook ${name} returned shape [${y.shape}], expected [${x.shape}]`);
  }
  return y;
}

/** A hook that replaces its point by zeros: at attn.out / mlp.out it switches the block off (residual only). */
export const zeroAblate: Hook = (x) => tf.zerosLike(x);

/** A hook for `layers.N.mlp.act` multiplying channel i by mask[i] (0 removes the channel). */
export function maskChannels(mask: tf.Tensor1D): Hook {
  return (x, name) => {
    if (mask.shape[0] !== x.shape[1]) throw new UsageError(`${name}: channel mask has ${mask.shape[0]} entries, the layer has ${x.shape[1]} channels`);
    return tf.mul(x, mask) as tf.Tensor2D;
  };
}

/** Hooks for several purposes at once: at a shared point they run in order, each on the previous result. */
export function combineHooks(...all: (Hooks | undefined)[]): Hooks {
  const out: Hooks = {};
  for (const hs of all) {
    if (!hs) continue;
    for (const [name, h] of Object.entries(hs)) {
      const prev = out[name];
      // the cast keeps the expression typed under TypeScript 5.0 (tslab), which does not narrow `void ?? x`
      out[name] = prev ? (x, n) => { const y = (prev(x, n) ?? x) as tf.Tensor2D; return h(y, n) ?? y; } : h;
    }
  }
  return out;
}

/**
 * Hooks that copy the tensors at `names` into `cache` (kept outside any tidy; the caller disposes them).
 * With several batches the rows are concatenated in call order.
 */
export function cachingHooks(names: string[], cache: Map<string, tf.Tensor2D>): Hooks {
  const hooks: Hooks = {};
  for (const name of names) {
    hooks[name] = (x) => {
      const prev = cache.get(name);
      const kept = tf.keep(prev ? (tf.concat([prev, x], 0) as tf.Tensor2D) : tf.clone(x));
      prev?.dispose();
      cache.set(name, kept);
    };
  }
  return hooks;
}
