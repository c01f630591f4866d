/**
 * Horizontal bar charts as plain text lines, scaled to the terminal width (the REPL's only plotting:
 * it has to read the same at 80 columns over SSH as in a wide terminal).
 */
export interface Bar {
  label: string;
  value: number;
  /** Short text after the bar (defaults to the formatted value). */
  note?: string;
}

const BLOCKS = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

/** Numbers as the library's Tables print them (src/table.ts), so a chart's value reads like the table above it. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return Math.abs(v) >= 1e5 ? v.toLocaleString("en-US") : String(v);
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e7) return v.toExponential(3);
  return v.toFixed(4);
}

/** A bar of `cells` character cells (fractional cells drawn with eighth blocks); ASCII "#" when `ascii`. */
export function bar(fraction: number, cells: number, ascii = false): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  if (ascii) return "#".repeat(Math.round(f * cells));
  const eighths = Math.round(f * cells * 8);
  return "█".repeat(Math.floor(eighths / 8)) + BLOCKS[eighths % 8];
}

/**
 * One line per bar: label, bar, value. Bars are scaled to `opts.max` when given (a fixed full scale, e.g. 1
 * for fractions of the original width), else to the largest |value| (negative values are drawn by
 * magnitude and marked with "-" in the note), so the whole line fits in `width` columns.
 */
export function barChart(bars: Bar[], width: number, opts: { title?: string; ascii?: boolean; max?: number } = {}): string[] {
  const lines: string[] = [];
  if (opts.title) lines.push(opts.title);
  if (bars.length === 0) return lines;
  const labelW = Math.max(...bars.map((b) => b.label.length));
  const notes = bars.map((b) => b.note ?? formatNumber(b.value));
  const noteW = Math.max(...notes.map((n) => n.length));
  const max = opts.max ?? Math.max(...bars.map((b) => (Number.isFinite(b.value) ? Math.abs(b.value) : 0)));
  const cells = Math.max(4, width - labelW - noteW - 4);
  bars.forEach((b, i) => {
    const fr = max > 0 ? Math.abs(b.value) / max : 0;
    const drawn = bar(fr, cells, opts.ascii).padEnd(cells);
    lines.push(`${b.label.padStart(labelW)} │${drawn} ${notes[i].padStart(noteW)}`.slice(0, Math.max(width, 1)));
  });
  return lines;
}
