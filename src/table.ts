/**
 * A result table that knows how to look in a terminal (aligned text) and in a notebook (HTML).
 * Session results (scores, evaluations, pruning history) are returned as Tables so every surface shows
 * the same numbers; numbers are formatted here, once.
 */
export type Cell = string | number | null;

export interface TableOptions {
  title?: string;
  /** Digits after the decimal point for non-integer numbers (default 4). */
  digits?: number;
  /** Optional notes printed under the table. */
  notes?: string[];
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export class Table {
  readonly columns: string[];
  readonly rows: Cell[][];
  readonly title?: string;
  readonly notes: string[];
  private readonly digits: number;

  constructor(columns: string[], rows: Cell[][], options: TableOptions = {}) {
    this.columns = columns;
    this.rows = rows;
    this.title = options.title;
    this.notes = options.notes ?? [];
    this.digits = options.digits ?? 4;
  }

  format(c: Cell): string {
    if (c === null || c === undefined) return "–";
    if (typeof c === "number") {
      if (Number.isNaN(c)) return "NaN";
      if (Number.isInteger(c)) return Math.abs(c) >= 1e5 ? c.toLocaleString("en-US") : String(c);
      const a = Math.abs(c);
      if (a !== 0 && (a < 1e-3 || a >= 1e7)) return c.toExponential(3);
      return c.toFixed(this.digits);
    }
    return c;
  }

  /** Rows as objects keyed by column name (for JSON output and programmatic use). */
  toRecords(): Record<string, Cell>[] {
    return this.rows.map((r) => Object.fromEntries(this.columns.map((c, i) => [c, r[i] ?? null])));
  }

  toText(): string {
    const cells = [this.columns, ...this.rows.map((r) => r.map((c) => this.format(c)))];
    const widths = this.columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
    const numeric = this.columns.map((_, i) => this.rows.every((r) => typeof r[i] === "number" || r[i] === null));
    const line = (r: string[]) =>
      r.map((c, i) => (numeric[i] ? (c ?? "").padStart(widths[i]) : (c ?? "").padEnd(widths[i]))).join("  ").trimEnd();
    const out: string[] = [];
    if (this.title) out.push(this.title);
    out.push(line(cells[0]));
    out.push(widths.map((w) => "-".repeat(w)).join("  "));
    for (const r of cells.slice(1)) out.push(line(r));
    for (const n of this.notes) out.push(n);
    return out.join("\n");
  }

  toHTML(): string {
    const head = this.columns.map((c) => `<th>${esc(c)}</th>`).join("");
    const body = this.rows
      .map((r) => `<tr>${r.map((c) => `<td style="text-align:${typeof c === "number" ? "right" : "left"}">${esc(this.format(c))}</td>`).join("")}</tr>`)
      .join("\n");
    const caption = this.title ? `<caption style="text-align:left;font-weight:bold">${esc(this.title)}</caption>` : "";
    const notes = this.notes.length ? `<p style="font-size:smaller">${this.notes.map(esc).join("<br>")}</p>` : "";
    return `<table class="sdmprune-table">${caption}<thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>${notes}`;
  }

  toString(): string {
    return this.toText();
  }
}
