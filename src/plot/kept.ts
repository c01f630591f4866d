/**
 * Which MLP channels survived pruning, per layer, in the ORIGINAL model's channel numbering (the session's
 * history maps current indices back). Wide layers are binned: a cell then shows the fraction kept in its bin.
 */
import { UsageError } from "../errors";
import { Figure, axis } from "./figure";

export interface KeptChannelOptions {
  /** Most heatmap columns before channels are binned (default 256). */
  maxColumns?: number;
  title?: string;
}

/** Fraction kept per bin for one layer: `kept` are original indices in [0, size). */
export function keptFractions(kept: readonly number[], size: number, columns: number, layer = 0): number[] {
  const mark = new Uint8Array(size);
  for (const i of kept) {
    if (!Number.isInteger(i) || i < 0 || i >= size) {
      throw new UsageError(`keptChannelFigure: layer ${layer} kept index must be an integer in [0, ${size}), got ${i}`);
    }
    if (mark[i]) throw new UsageError(`keptChannelFigure: layer ${layer} lists channel ${i} twice`);
    mark[i] = 1;
  }
  const binWidth = size / columns;
  const out: number[] = [];
  for (let c = 0; c < columns; c++) {
    const from = Math.round(c * binWidth);
    const to = Math.round((c + 1) * binWidth);
    let k = 0;
    for (let i = from; i < to; i++) k += mark[i];
    out.push(to > from ? k / (to - from) : 0);
  }
  return out;
}

/**
 * Heatmap with one row per layer. `kept[l]` lists layer l's surviving channels as original indices;
 * `originalSizes` is the original intermediate_size (one number, or one per layer).
 */
export function keptChannelFigure(
  kept: readonly (readonly number[])[],
  originalSizes: number | readonly number[],
  opts: KeptChannelOptions = {},
): Figure {
  const L = kept.length;
  if (L === 0) throw new UsageError("keptChannelFigure: expected at least one layer, got none");
  const sizes = typeof originalSizes === "number" ? new Array<number>(L).fill(originalSizes) : [...originalSizes];
  if (sizes.length !== L) throw new UsageError(`keptChannelFigure: ${L} layers of kept channels but ${sizes.length} original sizes`);
  for (const [l, s] of sizes.entries()) {
    if (!Number.isInteger(s) || s <= 0) throw new UsageError(`keptChannelFigure: original size of layer ${l} must be a positive integer, got ${s}`);
  }
  const width = Math.max(...sizes);
  const maxColumns = opts.maxColumns ?? 256;
  if (!Number.isInteger(maxColumns) || maxColumns < 1) throw new UsageError(`keptChannelFigure: maxColumns must be a positive integer, got ${maxColumns}`);
  const columns = Math.min(width, maxColumns);
  const binned = columns < width;
  // Layers narrower than the widest get proportionally fewer columns and null (blank) padding.
  const z = kept.map((k, l) => {
    const cols = Math.max(1, Math.round((columns * sizes[l]) / width));
    const row: (number | null)[] = keptFractions(k, sizes[l], cols, l);
    while (row.length < columns) row.push(null);
    return row;
  });
  const x = Array.from({ length: columns }, (_, c) => Math.round((c * width) / columns));
  const layers = kept.map((_, l) => l);
  const keptTotal = kept.reduce((a, k) => a + k.length, 0);
  const sizeTotal = sizes.reduce((a, b) => a + b, 0);
  return new Figure(
    [
      {
        type: "heatmap",
        name: binned ? "fraction kept" : "kept",
        x,
        y: layers,
        z,
        zmin: 0,
        zmax: 1,
        colorscale: [
          [0, "#f4d6d6"],
          [1, "#1f4e9c"],
        ],
        colorbar: { title: { text: binned ? "fraction kept" : "kept" }, tickvals: binned ? undefined : [0, 1], ticktext: binned ? undefined : ["removed", "kept"] },
        hovertemplate: binned
          ? "layer %{y}<br>channels from %{x}: %{z:.0%} kept<extra></extra>"
          : "layer %{y}<br>channel %{x}: %{z}<extra></extra>",
        xgap: 0,
        ygap: 1,
      },
    ],
    {
      title: { text: opts.title ?? `Kept MLP channels per layer (original numbering, ${((100 * keptTotal) / sizeTotal).toFixed(1)}% kept)` },
      xaxis: axis(binned ? `original channel (bins of ~${Math.round(width / columns)})` : "original channel", { showgrid: false }),
      yaxis: axis("layer", { autorange: "reversed", tickmode: "array", tickvals: layers, showgrid: false }),
      height: Math.max(260, 60 + 28 * L + 80),
    },
  );
}
