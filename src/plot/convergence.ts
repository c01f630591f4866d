/**
 * Calibration convergence: how many calibration samples it takes for the kept channel set to settle.
 * The agreement helpers compare a score estimate from n samples with a reference (usually all samples);
 * the kept set is the per-layer top-k by score, ties broken by lower channel index.
 */
import { UsageError } from "../errors";
import { Figure, axis } from "./figure";

export { keptSetAgreement, spearman } from "../stats";

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
