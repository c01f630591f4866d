import * as tf from "@tensorflow/tfjs";
import { NumericError, UsageError } from "./errors";
import { paramCounts, type LlamaConfig } from "./model/config";
import type { LayerWeights } from "./model/causal-lm";

/**
 * Channel selection, slicing and parameter accounting for MLP intermediate channels (docs/method.md, "Channel selection and slicing").
 * Stateless: the Session decides what to prune and records it; these functions only compute.
 *
 * Counting conventions (documented once, used everywhere):
 * - `ratio` is the fraction of each layer's channels removed relative to the layer's ORIGINAL width, so
 *   `prune({ratio: 0.2})` then `prune({ratio: 0.4})` ends at the same widths as one `prune({ratio: 0.4})`
 *   (LLM-Pruner's `cur − int(init · (1 − ratio))`). Kept K = floor(original · (1 − ratio)).
 * - `mlpRatio` is relative to the HIDDEN size, as in the SDMPrune scripts: K = floor(hidden · mlpRatio).
 * - `keep` is K itself.
 * floor() is applied after adding 1e-9 so that decimal ratios whose binary product lands a hair below an
 * integer (e.g. 100 · 0.29 = 28.999999999999996) give the integer a person computes by hand.
 */

export type Allocation = "uniform" | "global";

export interface PruneSpec {
  /** Fraction of each layer's original MLP channels to remove, 0 < ratio < 1. */
  ratio?: number;
  /** Channels to keep per layer (K), or one K per model layer (entries outside `layers` are ignored). */
  keep?: number | number[];
  /** K = floor(hidden_size · mlpRatio), the SDMPrune scripts' `mlp_ratio`. */
  mlpRatio?: number;
  /** Half-open layer range [start, end); default all layers. */
  layers?: [number, number];
  /**
   * "uniform" (default, the paper): every selected layer keeps its own top-K.
   * "global": the same total number of channels is kept, chosen by one ranking across the selected layers
   * (raw scores compared across layers; each layer keeps at least one channel).
   */
  allocation?: Allocation;
  /**
   * Keep a multiple of N channels in every pruned layer (8, 64, 128: tensor-core tiles, GGML blocks). See
   * roundKeep for the rule. Not combined with "global" allocation, whose per-layer counts come from a ranking.
   */
  roundTo?: number;
}

/**
 * K rounded to a multiple of `n`: the nearest multiple (halves round up), at least n, and at most the largest
 * multiple of n that fits in `width` (the layer cannot grow). Throws when width < n (no multiple fits).
 */
export function roundKeep(k: number, n: number, width: number): number {
  if (!isInt(n) || n < 1) throw new UsageError(`roundTo must be a positive integer, got ${n}`);
  const max = Math.floor(width / n) * n;
  if (max < n) throw new UsageError(`roundTo ${n}: a layer of width ${width} cannot keep a multiple of ${n} channels`);
  return Math.min(max, Math.max(n, Math.round(k / n) * n));
}

export interface ResolvedPrune {
  layers: [number, number];
  allocation: Allocation;
  /** Per layer: target K (uniform) or null for layers outside the range. */
  keep: (number | null)[];
  /** Human description, e.g. "ratio 0.2 (K = floor(172·0.8) = 137)". */
  rule: string;
  /** The roundTo that was applied (null: none). */
  roundTo: number | null;
}

/** floor with a 1e-9 guard against binary representation error (see the module comment). */
export function floorCount(x: number): number {
  return Math.floor(x + 1e-9);
}

function isInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v);
}

/** Validate a layer range against a model with `numLayers` layers. */
export function resolveLayerRange(layers: [number, number] | undefined, numLayers: number): [number, number] {
  if (layers === undefined) return [0, numLayers];
  if (!Array.isArray(layers) || layers.length !== 2 || !isInt(layers[0]) || !isInt(layers[1])) {
    throw new UsageError(`layers: expected [start, end) as two integers, got ${JSON.stringify(layers)}`);
  }
  const [s, e] = layers;
  if (s < 0 || e > numLayers || s >= e) {
    throw new UsageError(`layers: range [${s}, ${e}) is outside the model's layers [0, ${numLayers}) or empty`);
  }
  return [s, e];
}

/**
 * Turn a prune request into per-layer K. `original`/`current` are per-layer widths of the original and the
 * current model. Throws UsageError for ratio ∉ (0, 1), K ∉ [1, current width], no rule or several rules,
 * or a request that removes nothing.
 */
export function resolvePrune(spec: PruneSpec, hidden: number, original: number[], current: number[]): ResolvedPrune {
  const given = (["ratio", "keep", "mlpRatio"] as const).filter((k) => spec[k] !== undefined);
  if (given.length !== 1) {
    throw new UsageError(`prune: give exactly one of ratio, keep, mlpRatio (got ${given.length ? given.join(", ") : "none"})`);
  }
  const allocation = spec.allocation ?? "uniform";
  if (allocation !== "uniform" && allocation !== "global") {
    throw new UsageError(`prune: allocation must be "uniform" or "global", got ${JSON.stringify(allocation)}`);
  }
  const range = resolveLayerRange(spec.layers, current.length);
  const keep: (number | null)[] = current.map(() => null);
  let rule: string;
  if (spec.ratio !== undefined) {
    const r = spec.ratio;
    if (typeof r !== "number" || !Number.isFinite(r) || r <= 0 || r >= 1) {
      throw new UsageError(`prune: ratio must be a number with 0 < ratio < 1 (fraction of MLP channels removed), got ${r}`);
    }
    for (let l = range[0]; l < range[1]; l++) keep[l] = floorCount(original[l] * (1 - r));
    const ex = keep[range[0]]!;
    rule = `ratio ${r} of original width (layer ${range[0]}: K = floor(${original[range[0]]}·${+(1 - r).toFixed(12)}) = ${ex})`;
  } else if (spec.keep !== undefined) {
    const k = spec.keep;
    if (Array.isArray(k)) {
      if (k.length !== current.length) throw new UsageError(`prune: keep lists ${k.length} values, the model has ${current.length} layers`);
      for (let l = range[0]; l < range[1]; l++) {
        if (!isInt(k[l]) || k[l] < 1) throw new UsageError(`prune: keep[${l}] must be a positive integer, got ${k[l]}`);
        keep[l] = k[l];
      }
      const sel = k.slice(range[0], range[1]);
      rule = sel.every((v) => v === sel[0]) ? `keep ${sel[0]}` : `keep per layer [${sel.join(", ")}]`;
    } else {
      if (!isInt(k) || k < 1) throw new UsageError(`prune: keep must be a positive integer, got ${k}`);
      for (let l = range[0]; l < range[1]; l++) keep[l] = k;
      rule = `keep ${k}`;
    }
  } else {
    const m = spec.mlpRatio!;
    if (typeof m !== "number" || !Number.isFinite(m) || m <= 0) throw new UsageError(`prune: mlpRatio must be a positive number, got ${m}`);
    const k = floorCount(hidden * m);
    if (k < 1) throw new UsageError(`prune: mlpRatio ${m} gives K = floor(${hidden}·${m}) = ${k}, expected at least 1`);
    for (let l = range[0]; l < range[1]; l++) keep[l] = k;
    rule = `mlpRatio ${m} (K = floor(${hidden}·${m}) = ${k})`;
  }
  if (spec.roundTo !== undefined) {
    if (allocation === "global") throw new UsageError(`prune: roundTo applies to uniform allocation only (global allocation picks per-layer counts by one ranking)`);
    const n = spec.roundTo;
    if (!isInt(n) || n < 1) throw new UsageError(`prune: roundTo must be a positive integer, got ${n}`);
    // Check the requested K first so a bad request is reported as asked, not as rounded.
    for (let l = range[0]; l < range[1]; l++) {
      if (keep[l]! < 1 || keep[l]! > current[l]) break;
      keep[l] = roundKeep(keep[l]!, n, current[l]);
    }
    const sel = keep.slice(range[0], range[1]);
    rule += `, rounded to a multiple of ${n} (K ${sel.every((v) => v === sel[0]) ? `= ${sel[0]}` : `per layer [${sel.join(", ")}]`})`;
  }
  for (let l = range[0]; l < range[1]; l++) {
    const k = keep[l]!;
    if (k < 1) throw new UsageError(`prune: layer ${l} would keep ${k} channels (${rule}); at least 1 is required`);
    if (k > current[l]) {
      throw new UsageError(`prune: layer ${l} would keep ${k} channels but its current width is ${current[l]} (${rule}); K must not exceed the width`);
    }
  }
  if (allocation === "global") {
    // One ranking across the layers decides each layer's width; only the total follows from the rule.
    const total = keep.reduce((a: number, k) => a + (k ?? 0), 0);
    rule = `global: ${total} channels kept across layers [${range[0]}, ${range[1]}) by one ranking (the total of ${rule}; per-layer widths differ)`;
  }
  const removes = keep.some((k, l) => k !== null && k < current[l]);
  if (!removes) throw new UsageError(`prune: ${rule} removes no channels from layers [${range[0]}, ${range[1]}) (current widths ${current.slice(range[0], range[1]).join(", ")})`);
  return { layers: range, allocation, keep, rule, roundTo: spec.roundTo ?? null };
}

/**
 * Indices of the K largest scores, ties broken by lower index, returned in ascending index order
 * (docs/method.md, "Channel selection and slicing": top-K, then sort so kept channels keep their original order).
 */
export function topKIndices(scores: ArrayLike<number>, k: number): number[] {
  const n = scores.length;
  if (!isInt(k) || k < 0 || k > n) throw new UsageError(`topK: k must be an integer in [0, ${n}], got ${k}`);
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

function checkFinite(scores: ArrayLike<number>[], layers: [number, number]): void {
  for (let l = layers[0]; l < layers[1]; l++) {
    const s = scores[l];
    if (!s) throw new UsageError(`prune: no scores for layer ${l}`);
    for (let i = 0; i < s.length; i++) {
      if (!Number.isFinite(s[i])) throw new NumericError(`prune: score of layer ${l} channel ${i} is ${s[i]}; cannot rank channels`);
    }
  }
}

/**
 * Kept channel indices (current numbering, ascending) per layer; null for layers left untouched.
 * `scores[l]` must have the layer's current width.
 */
export function selectChannels(scores: ArrayLike<number>[], plan: ResolvedPrune, widths: number[]): (number[] | null)[] {
  const [s, e] = plan.layers;
  checkFinite(scores, plan.layers);
  for (let l = s; l < e; l++) {
    if (scores[l].length !== widths[l]) {
      throw new UsageError(`prune: scores for layer ${l} have ${scores[l].length} channels, the model's layer has ${widths[l]}`);
    }
  }
  const out: (number[] | null)[] = widths.map(() => null);
  if (plan.allocation === "uniform") {
    for (let l = s; l < e; l++) out[l] = topKIndices(scores[l], plan.keep[l]!);
    return out;
  }
  // Global: one ranking over all channels of the selected layers. Each layer's best channel is kept first so
  // no layer disappears (a zero-width MLP is not a model we can save or load).
  let total = 0;
  for (let l = s; l < e; l++) total += plan.keep[l]!;
  const kept: number[][] = [];
  const cands: [number, number, number][] = [];
  for (let l = s; l < e; l++) {
    const best = topKIndices(scores[l], 1)[0];
    kept[l] = [best];
    for (let i = 0; i < widths[l]; i++) if (i !== best) cands.push([scores[l][i], l, i]);
  }
  cands.sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2]);
  const extra = total - (e - s);
  for (let j = 0; j < extra && j < cands.length; j++) kept[cands[j][1]].push(cands[j][2]);
  for (let l = s; l < e; l++) out[l] = kept[l].sort((a, b) => a - b);
  return out;
}

/**
 * New gate/up/down tensors keeping channels `idx` (ascending). Internal layout: gate/up are [H, I] (keep
 * columns), down is [I, H] (keep rows). Plain gathers, never on a gradient tape, so values are copied
 * bit-for-bit: slicing twice equals slicing once with the composed indices.
 */
export function sliceMlp(lw: LayerWeights, idx: number[]): Pick<LayerWeights, "gate_proj" | "up_proj" | "down_proj"> {
  return tf.tidy(() => {
    const t = tf.tensor1d(idx, "int32");
    return {
      gate_proj: tf.gather(lw.gate_proj, t, 1) as tf.Tensor2D,
      up_proj: tf.gather(lw.up_proj, t, 1) as tf.Tensor2D,
      down_proj: tf.gather(lw.down_proj, t, 0) as tf.Tensor2D,
    };
  });
}

export interface PruneAccounting {
  channelsBefore: number;
  channelsAfter: number;
  channelsRemoved: number;
  paramsBefore: number;
  paramsAfter: number;
  paramsRemoved: number;
  /** Cumulative, against the ORIGINAL model (the paper's counting: tied embedding once). */
  mlpParamsRemovedShare: number;
  totalParamsRemovedShare: number;
  /** This step only, against the model before the step. */
  stepMlpShare: number;
  stepTotalShare: number;
}

/** Channels and parameters removed by going from `before` to `after`, with shares of MLP and whole model. */
export function accounting(original: LlamaConfig, before: LlamaConfig, after: LlamaConfig): PruneAccounting {
  const o = paramCounts(original);
  const b = paramCounts(before);
  const a = paramCounts(after);
  const ch = (c: LlamaConfig) => (Array.isArray(c.intermediate_size) ? c.intermediate_size.reduce((x, y) => x + y, 0) : c.intermediate_size * c.num_hidden_layers);
  return {
    channelsBefore: ch(before),
    channelsAfter: ch(after),
    channelsRemoved: ch(before) - ch(after),
    paramsBefore: b.total,
    paramsAfter: a.total,
    paramsRemoved: b.total - a.total,
    mlpParamsRemovedShare: (o.mlp - a.mlp) / o.mlp,
    totalParamsRemovedShare: (o.total - a.total) / o.total,
    stepMlpShare: (b.mlp - a.mlp) / b.mlp,
    stepTotalShare: (b.total - a.total) / b.total,
  };
}
