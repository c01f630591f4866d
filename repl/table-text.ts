/**
 * Library Tables as terminal text that fits the width. The last column, when it holds text (the value of a
 * field/value table, a message), wraps onto continuation lines and is never cut, so a sentence such as
 * "started a new accumulator (criterion changed ...)" is read whole. Other long text cells are shortened,
 * then columns that still do not fit are left out (and named in a note).
 */
import type { Cell, Table } from "../src/table";

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

export function tableText(t: Table, width: number): string {
  const numeric = t.columns.map((_, i) => t.rows.every((r) => typeof r[i] === "number" || r[i] === null || r[i] === undefined));
  const last = t.columns.length - 1;
  const wrapLast = last > 0 && !numeric[last];
  const cut = (s: string, i: number) => (wrapLast && i === last ? s : shorten(s, MAX_CELL));
  const cells: string[][] = [t.columns.map((c) => shorten(c, MAX_CELL)), ...t.rows.map((r) => t.columns.map((_, i) => cut(t.format((r[i] ?? null) as Cell), i)))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const total = () => widths.reduce((a, w) => a + w, 0) + 2 * (widths.length - 1);
  if (wrapLast && total() > width) widths[last] = Math.max(MIN_CELL, Math.min(widths[last], width - (total() - widths[last])));
  for (let guard = 0; total() > width && guard < widths.length; guard++) {
    const textCols = widths.map((w, i) => (numeric[i] || (wrapLast && i === last) ? -1 : w));
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
  const one = (r: string[]) => shown.map((i) => (numeric[i] ? r[i].padStart(widths[i]) : r[i].padEnd(widths[i]))).join("  ").trimEnd();
  // A wrapped last cell continues on lines whose other columns are blank.
  const line = (r: string[]): string => {
    if (!(wrapLast && shown.includes(last)) || r[last].length <= widths[last]) return one(r);
    const parts = wrap(r[last], widths[last]).map((p, k) => (k === 0 ? p : p.trimStart()));
    return parts.map((p, k) => one(r.map((c, i) => (i === last ? p : k === 0 ? c : "")))).join("\n");
  };
  const out: string[] = [];
  if (t.title) out.push(t.title);
  out.push(one(cells[0]));
  out.push(shown.map((i) => "-".repeat(widths[i])).join("  "));
  for (const r of cells.slice(1)) out.push(line(r));
  for (const n of t.notes) out.push(...wrap(n, width));
  if (hidden.length) out.push(...wrap(`(not shown at ${width} columns: ${hidden.join(", ")})`, width));
  return out.join("\n");
}

function records(t: Table, width: number): string {
  const out: string[] = [];
  if (t.title) out.push(t.title);
  const kw = Math.min(28, Math.max(...t.columns.map((c) => c.length)));
  t.rows.forEach((r, ri) => {
    if (ri > 0) out.push("");
    t.columns.forEach((c, i) => {
      const v = t.format((r[i] ?? null) as Cell);
      out.push(...wrap(`${shorten(c, kw).padEnd(kw)}  ${v}`, width));
    });
  });
  for (const n of t.notes) out.push(...wrap(n, width));
  return out.join("\n");
}
