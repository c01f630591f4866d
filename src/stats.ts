/**
 * Small statistics shared by the session's reports, the figures, benchmarks and tests: quartiles, rank
 * correlation and kept-set agreement. Kept in one place so a number printed in the REPL and the same number
 * plotted in a notebook are computed the same way.
 */
import { DataError, UsageError } from "./errors";
import { topKIndices } from "./prune";

export interface Distribution {
  min: number;
  q1: number;
  median: number;
  q3: number;
  max: number;
  mean: number;
}

/** Quantile with linear interpolation between order statistics (numpy's default), on sorted data. */
export function quantileSorted(s: ArrayLike<number>, q: number): number {
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/** Min, quartiles, max and mean of a non-empty set. */
export function distribution(values: ArrayLike<number>): Distribution {
  const n = values.length;
  if (n === 0) throw new DataError("distribution of an empty set");
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i];
  return { min: s[0], q1: quantileSorted(s, 0.25), median: quantileSorted(s, 0.5), q3: quantileSorted(s, 0.75), max: s[n - 1], mean: sum / n };
}

/** Average ranks (ties share the mean rank), 0-based. */
function ranks(v: ArrayLike<number>): Float64Array {
  const idx = Array.from({ length: v.length }, (_, i) => i).sort((x, y) => v[x] - v[y]);
  const r = new Float64Array(v.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && v[idx[j + 1]] === v[idx[i]]) j++;
    for (let t = i; t <= j; t++) r[idx[t]] = (i + j) / 2;
    i = j + 1;
  }
  return r;
}

/** Spearman rank correlation of two equally long score vectors (NaN if either is constant). */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new UsageError(`spearman: lengths differ (${a.length} vs ${b.length})`);
  if (a.length < 2) throw new UsageError(`spearman: needs at least 2 values, got ${a.length}`);
  const ra = ranks(a);
  const rb = ranks(b);
  const n = a.length;
  const mean = (n - 1) / 2;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = ra[i] - mean, db = rb[i] - mean;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb);
}

/**
 * Fraction of kept channels two score sets agree on, over all layers: Σ_l |top_k(a_l) ∩ top_k(b_l)| / Σ_l k_l,
 * with k_l = round(keepRatio · channels_l) and ties broken by lower index (as pruning does). 1 means the same
 * channels would be kept.
 */
export function keptSetAgreement(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[], keepRatio: number): number {
  if (a.length !== b.length) throw new UsageError(`keptSetAgreement: ${a.length} layers vs ${b.length} layers`);
  if (!(keepRatio > 0 && keepRatio <= 1)) throw new UsageError(`keptSetAgreement: keepRatio must be in (0, 1], got ${keepRatio}`);
  let shared = 0;
  let total = 0;
  for (let l = 0; l < a.length; l++) {
    if (a[l].length !== b[l].length) throw new UsageError(`keptSetAgreement: layer ${l} has ${a[l].length} vs ${b[l].length} channels`);
    const k = Math.round(keepRatio * a[l].length);
    const ka = new Set(topKIndices(a[l], k));
    for (const i of topKIndices(b[l], k)) if (ka.has(i)) shared++;
    total += k;
  }
  return total === 0 ? 1 : shared / total;
}
