/**
 * Library Tables as terminal text that fits the width: long text cells are shortened first, then columns
 * that still do not fit are left out (and named in a note), because a wrapped table cannot be read.
 */
import type { CellLike, TableLike } from "./session-api";

/** Text cells are shortened to this at most, and further (down to MIN_CELL) when the table is too wide. */
const MAX_CELL = 60;
const MIN_CELL = 12;

function shorten(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, Math.max(1, max - 1)) + "…";
}

function wrap(line: string, width: number): string[] {
  if (line.length <= width) return [line];
  const out: string[] = [];
  let rest = line;
  while (rest.length > width) {
    let cut = rest.lastIndexOf(" ", width);
    if (cut <= width / 2) cut = width;
    out.push(rest.slice(0, cut).trimEnd());
    rest = "  " + rest.slice(cut).trimStart();
  }
  out.push(rest);
  return out;
}

export function tableText(t: TableLike, width: number): string {
  const numeric = t.columns.map((_, i) => t.rows.every((r) => typeof r[i] === "number" || r[i] === null || r[i] === undefined));
  const cells: string[][] = [t.columns.map((c) => shorten(c, MAX_CELL)), ...t.rows.map((r) => t.columns.map((_, i) => shorten(t.format((r[i] ?? null) as CellLike), MAX_CELL)))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const total = () => widths.reduce((a, w) => a + w, 0) + 2 * (widths.length - 1);
  for (let guard = 0; total() > width && guard < widths.length; guard++) {
    const textCols = widths.map((w, i) => (numeric[i] ? -1 : w));
    const i = textCols.indexOf(Math.max(...textCols));
    if (i < 0 || widths[i] <= MIN_CELL) break;
    widths[i] = Math.max(MIN_CELL, widths[i] - (total() - width));
    for (const r of cells) r[i] = shorten(r[i], widths[i]);
  }
  const shown: number[] = [];
  let used = 0;
  for (let i = 0; i < t.columns.length; i++) {
    const w = widths[i] + (shown.length ? 2 : 0);
    if (used + w > width && shown.length > 0) break;
    shown.push(i);
    used += w;
  }
  const hidden = t.columns.filter((_, i) => !shown.includes(i));
  // A short table that does not fit is clearer as "column: value" records than with columns left out.
  if (hidden.length && t.rows.length <= 4) return records(t, width);
  const line = (r: string[]) => shown.map((i) => (numeric[i] ? r[i].padStart(widths[i]) : r[i].padEnd(widths[i]))).join("  ").trimEnd();
  const out: string[] = [];
  if (t.title) out.push(t.title);
  out.push(line(cells[0]));
  out.push(shown.map((i) => "-".repeat(widths[i])).join("  "));
  for (const r of cells.slice(1)) out.push(line(r));
  for (const n of t.notes) out.push(...wrap(n, width));
  if (hidden.length) out.push(...wrap(`(not shown at ${width} columns: ${hidden.join(", ")})`, width));
  return out.join("\n");
}

function records(t: TableLike, width: number): string {
  const out: string[] = [];
  if (t.title) out.push(t.title);
  const kw = Math.min(28, Math.max(...t.columns.map((c) => c.length)));
  t.rows.forEach((r, ri) => {
    if (ri > 0) out.push("");
    t.columns.forEach((c, i) => {
      const v = t.format((r[i] ?? null) as CellLike);
      out.push(...wrap(`${shorten(c, kw).padEnd(kw)}  ${v}`, width));
    });
  });
  for (const n of t.notes) out.push(...wrap(n, width));
  return out.join("\n");
}
