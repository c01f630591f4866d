/**
 * Calibration convergence: how many calibration samples it takes for the kept channel set to settle.
 * The agreement helpers compare a score estimate from n samples with a reference (usually all samples);
 * the kept set is the per-layer top-k by score, ties broken by lower channel index.
 */
import { UsageError } from "../errors";
import { Figure, axis } from "./figure";

/** Indices of the k largest scores (descending score, ties → lower index first). */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  if (!Number.isInteger(k) || k < 0 || k > scores.length) throw new UsageError(`topK: k must be an integer in [0, ${scores.length}], got ${k}`);
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  const key = (i: number) => (Number.isNaN(scores[i]) ? -Infinity : scores[i]);
  idx.sort((a, b) => key(b) - key(a) || a - b);
  return idx.slice(0, k);
}

/**
 * Fraction of kept channels two score sets agree on, over all layers: Σ_l |top_k(a_l) ∩ top_k(b_l)| / Σ_l k_l,
 * with k_l = round(keepRatio · channels_l). 1 means the same channels would be kept.
 */
export function keptSetAgreement(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[], keepRatio: number): number {
  if (a.length !== b.length) throw new UsageError(`keptSetAgreement: ${a.length} layers vs ${b.length} layers`);
  if (!(keepRatio > 0 && keepRatio <= 1)) throw new UsageError(`keptSetAgreement: keepRatio must be in (0, 1], got ${keepRatio}`);
  let shared = 0;
  let total = 0;
  for (let l = 0; l < a.length; l++) {
    if (a[l].length !== b[l].length) throw new UsageError(`keptSetAgreement: layer ${l} has ${a[l].length} vs ${b[l].length} channels`);
    const k = Math.round(keepRatio * a[l].length);
    const ka = new Set(topK(a[l], k));
    for (const i of topK(b[l], k)) if (ka.has(i)) shared++;
    total += k;
  }
  return total === 0 ? 1 : shared / total;
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

export interface ConvergencePoint {
  /** Number of calibration samples the estimate used. */
  samples: number;
  /** Agreement with the reference (kept-set overlap or rank correlation), ideally in [0, 1]. */
  agreement: number;
  /** Line name (criterion, keep ratio, "top-k cache" vs "exact"…); default "agreement". */
  series?: string;
}

export interface ConvergenceFigureOptions {
  /** y-axis label (default "kept-set agreement with all samples"). */
  metric?: string;
  title?: string;
}

export function convergenceFigure(points: readonly ConvergencePoint[], opts: ConvergenceFigureOptions = {}): Figure {
  if (points.length === 0) throw new UsageError("convergenceFigure: expected at least one point, got none");
  for (const p of points) {
    if (!Number.isInteger(p.samples) || p.samples < 1) throw new UsageError(`convergenceFigure: samples must be a positive integer, got ${p.samples}`);
  }
  const names = [...new Set(points.map((p) => p.series ?? "agreement"))];
  const traces = names.map((name) => {
    const ps = points.filter((p) => (p.series ?? "agreement") === name).sort((a, b) => a.samples - b.samples);
    return {
      type: "scatter",
      mode: "lines+markers",
      name,
      x: ps.map((p) => p.samples),
      y: ps.map((p) => (Number.isFinite(p.agreement) ? p.agreement : null)),
      hovertemplate: `${name}<br>%{x} samples: %{y:.4f}<extra></extra>`,
    };
  });
  const xs = points.map((p) => p.samples);
  const logX = Math.max(...xs) / Math.min(...xs) >= 8;
  return new Figure(traces, {
    title: { text: opts.title ?? "Calibration convergence" },
    xaxis: axis("calibration samples", logX ? { type: "log", tickvals: [...new Set(xs)].sort((a, b) => a - b) } : {}),
    yaxis: axis(opts.metric ?? "kept-set agreement with all samples", { rangemode: "tozero" }),
    showlegend: names.length > 1,
  });
}
