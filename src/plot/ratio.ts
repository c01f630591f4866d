/**
 * Quality vs pruning ratio, one line per criterion (the paper's main comparison: ppl at 10–50% MLP pruning).
 */
import { UsageError } from "../errors";
import { Figure, axis } from "./figure";

export interface RatioPoint {
  /** Criterion or recipe name, e.g. "sd-taylor", "wanda", "two-stage". One line per distinct name. */
  criterion: string;
  /** Fraction of MLP channels removed, in [0, 1). */
  ratio: number;
  /** Metric at that ratio (ppl, accuracy, …). */
  value: number;
}

export interface RatioFigureOptions {
  /** y-axis label (default "perplexity"). */
  metric?: string;
  /** Log y-axis (default: true when the metric label contains "ppl"/"perplexity"). */
  logY?: boolean;
  /** Unpruned model's value, drawn as a dashed horizontal line. */
  baseline?: number;
  title?: string;
}

export function ratioFigure(points: readonly RatioPoint[], opts: RatioFigureOptions = {}): Figure {
  if (points.length === 0) throw new UsageError("ratioFigure: expected at least one point, got none");
  for (const p of points) {
    if (!(p.ratio >= 0 && p.ratio < 1)) throw new UsageError(`ratioFigure: ratio of "${p.criterion}" must be in [0, 1), got ${p.ratio}`);
  }
  const metric = opts.metric ?? "perplexity";
  const logY = opts.logY ?? /ppl|perplexity/i.test(metric);
  const names = [...new Set(points.map((p) => p.criterion))];
  const traces = names.map((name) => {
    const ps = points.filter((p) => p.criterion === name).sort((a, b) => a.ratio - b.ratio);
    return {
      type: "scatter",
      mode: "lines+markers",
      name,
      x: ps.map((p) => p.ratio * 100),
      y: ps.map((p) => (Number.isFinite(p.value) ? p.value : null)),
      hovertemplate: `${name}<br>%{x:.0f}% pruned: %{y:.4g}<extra></extra>`,
    } as { type: string; name: string; [k: string]: unknown };
  });
  const shapes: unknown[] = [];
  if (opts.baseline !== undefined && Number.isFinite(opts.baseline)) {
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: opts.baseline, y1: opts.baseline, line: { dash: "dash", color: "#555", width: 1 } });
  }
  return new Figure(traces, {
    title: { text: opts.title ?? `${metric} vs MLP pruning ratio` },
    xaxis: axis("MLP channels removed (%)", { ticksuffix: "%" }),
    yaxis: axis(metric, logY ? { type: "log" } : {}),
    shapes,
    annotations:
      shapes.length > 0
        ? [{ xref: "paper", x: 0, y: logY ? Math.log10(opts.baseline as number) : opts.baseline, text: "dense", showarrow: false, yshift: 9, xanchor: "left", font: { size: 11, color: "#555" } }]
        : [],
    legend: { orientation: "v" },
  });
}
