/**
 * A Plotly figure as plain data. The library builds figures from plain numbers (no I/O, no DOM), so the same
 * object can be shown in a notebook (src/display.ts), saved as JSON, or summarised as text in a terminal.
 * Types are deliberately loose: Plotly's schema is huge and its own typings are for the browser bundle.
 */
export interface PlotlyTrace {
  type: string;
  name?: string;
  [key: string]: unknown;
}
export type PlotlyLayout = Record<string, unknown>;
export type PlotlyConfig = Record<string, unknown>;

/** The JSON shape of `application/vnd.plotly.v1+json` and the arguments of `Plotly.newPlot`. */
export interface FigureSpec {
  data: PlotlyTrace[];
  layout: PlotlyLayout;
  config?: PlotlyConfig;
}

const DEFAULT_LAYOUT: PlotlyLayout = {
  font: { family: "Helvetica, Arial, sans-serif", size: 13 },
  margin: { l: 70, r: 30, t: 60, b: 60 },
  height: 420,
  paper_bgcolor: "white",
  plot_bgcolor: "white",
};
const DEFAULT_CONFIG: PlotlyConfig = { responsive: true, displaylogo: false };

/** Axis style shared by all figures: light grid, visible zero line. */
export function axis(title: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { title: { text: title }, gridcolor: "#e5e5e5", zerolinecolor: "#999", automargin: true, ...extra };
}

/** Plain JSON numbers: typed arrays serialise as objects and NaN/Infinity are not JSON, so Plotly gets gaps (null). */
export function plainNumbers(values: ArrayLike<number>): (number | null)[] {
  const out = new Array<number | null>(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Number.isFinite(values[i]) ? values[i] : null;
  return out;
}

export class Figure implements FigureSpec {
  readonly data: PlotlyTrace[];
  readonly layout: PlotlyLayout;
  readonly config: PlotlyConfig;

  constructor(data: PlotlyTrace[], layout: PlotlyLayout = {}, config: PlotlyConfig = {}) {
    this.data = data;
    this.layout = { ...DEFAULT_LAYOUT, ...layout };
    // Left-aligned titles keep clear of Plotly's mode bar in the top right corner.
    const t = this.layout.title;
    if (t && typeof t === "object" && !("x" in t)) this.layout.title = { x: 0, xref: "paper", xanchor: "left", ...t };
    this.config = { ...DEFAULT_CONFIG, ...config };
  }

  get title(): string {
    const t = this.layout.title;
    if (typeof t === "string") return t;
    if (t && typeof t === "object" && typeof (t as { text?: unknown }).text === "string") return (t as { text: string }).text;
    return "";
  }

  /** The figure as a fresh plain object (for JSON files and the Plotly mime type). */
  toJSON(): FigureSpec {
    return JSON.parse(JSON.stringify({ data: this.data, layout: this.layout, config: this.config })) as FigureSpec;
  }

  /** A short text stand-in for terminals and `text/plain`: title, then one line per trace with its value range. */
  toText(): string {
    const lines = [`Figure: ${this.title || "(untitled)"}`];
    for (const t of this.data) {
      const ys = numericValues(t.type === "heatmap" ? t.z : t.type === "box" && t.median ? t.median : t.y);
      const range = ys.length ? `, ${ys.length} values in [${fmt(Math.min(...ys))}, ${fmt(Math.max(...ys))}]` : "";
      lines.push(`  ${t.type}${t.name ? ` "${t.name}"` : ""}${range}`);
    }
    return lines.join("\n");
  }

  toString(): string {
    return this.toText();
  }
}

function numericValues(v: unknown): number[] {
  const out: number[] = [];
  const walk = (x: unknown): void => {
    if (typeof x === "number" && Number.isFinite(x)) out.push(x);
    else if (Array.isArray(x)) for (const e of x) walk(e);
  };
  walk(v);
  return out;
}

function fmt(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? x.toExponential(3) : x.toPrecision(4);
}
