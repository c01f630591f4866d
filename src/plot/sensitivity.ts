/**
 * Per-layer sensitivity: how much the loss (or ppl) rises when one layer's MLP or attention block is switched
 * off (residual only). The paper's motivation: MLPs matter less per parameter than attention, so prune MLPs.
 */
import { UsageError } from "../errors";
import { Figure, axis } from "./figure";

export interface LayerSensitivity {
  /** 0-based layer index. */
  layer: number;
  /** Metric increase with this layer's MLP switched off (e.g. loss − baseline loss). */
  mlp: number;
  /** Metric increase with this layer's attention switched off. */
  attention: number;
}

/** What Session.sensitivity() returns in `.raw` (src/sensitivity.ts): increases indexed by layer. */
export interface SensitivityIncreases {
  mlpIncrease: readonly number[];
  attentionIncrease: readonly number[];
}

export interface SensitivityFigureOptions {
  /** y-axis label (default "loss increase"). */
  metric?: string;
  title?: string;
}

/** Grouped bars per layer. Accepts rows, or the session's sensitivity result (`(await session.sensitivity()).raw`). */
export function sensitivityFigure(input: readonly LayerSensitivity[] | SensitivityIncreases, opts: SensitivityFigureOptions = {}): Figure {
  const rows = Array.isArray(input) ? (input as readonly LayerSensitivity[]) : fromIncreases(input as SensitivityIncreases);
  if (rows.length === 0) throw new UsageError("sensitivityFigure: expected at least one layer, got none");
  for (const r of rows) {
    if (!Number.isInteger(r.layer) || r.layer < 0) throw new UsageError(`sensitivityFigure: layer must be an integer ≥ 0, got ${r.layer}`);
  }
  const layers = rows.map((r) => r.layer);
  const bar = (name: string, color: string, ys: number[]) => ({
    type: "bar",
    name,
    x: layers,
    y: ys.map((v) => (Number.isFinite(v) ? v : null)),
    marker: { color },
    hovertemplate: `layer %{x}<br>${name}: %{y:.4g}<extra></extra>`,
  });
  return new Figure(
    [bar("MLP off", "#1f77b4", rows.map((r) => r.mlp)), bar("attention off", "#d62728", rows.map((r) => r.attention))],
    {
      title: { text: opts.title ?? "Per-layer sensitivity: MLP vs attention switched off" },
      barmode: "group",
      xaxis: axis("layer", { tickmode: "array", tickvals: layers }),
      yaxis: axis(opts.metric ?? "loss increase"),
      // outside the plotting area, right of it: inside, the legend covered the first layers' bars
      legend: { x: 1.02, xanchor: "left", y: 1, yanchor: "top" },
    },
  );
}

function fromIncreases(r: SensitivityIncreases): LayerSensitivity[] {
  if (!Array.isArray(r.mlpIncrease) || !Array.isArray(r.attentionIncrease) || r.mlpIncrease.length !== r.attentionIncrease.length) {
    throw new UsageError(
      `sensitivityFigure: expected mlpIncrease and attentionIncrease arrays of equal length, got ${describe(r.mlpIncrease)} and ${describe(r.attentionIncrease)}`,
    );
  }
  return r.mlpIncrease.map((mlp, layer) => ({ layer, mlp, attention: r.attentionIncrease[layer] }));
}

function describe(v: unknown): string {
  return Array.isArray(v) ? `${v.length} values` : typeof v;
}
