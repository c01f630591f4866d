/**
 * How library objects present themselves. In a tslab notebook `display(x)` sends one rich output (a Plotly figure
 * bundle or an HTML table with a text twin); anywhere else it prints the aligned-text form. The kernel only
 * transports bundles; what a figure or a table looks like is decided in src/plot and src/table.ts.
 */
import * as fs from "node:fs";
import * as util from "node:util";
import { randomBytes } from "node:crypto";
import { Figure, FigureSpec } from "./plot/figure";
import { MimeBundle, TableLike, figureBundle, tableBundle } from "./plot/bundle";
import type { ProgressEvent } from "./types";

/** A Jupyter display_data message body, as tslab's kernel sends it. */
export interface DisplayMessage {
  data: MimeBundle;
  metadata: Record<string, unknown>;
  transient: { display_id?: string };
}
export type DisplayChannel = (msg: DisplayMessage, update: boolean) => void;

const TSLAB_JUPYTER = /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/;

/**
 * The running tslab kernel's display channel, or null outside one. tslab's public API sends one mime type per
 * output; its internal `lastWriteDisplayData` (re-pointed at every execute request) sends a whole bundle. We look
 * it up in the module cache instead of importing tslab, so the library neither depends on tslab nor loads it.
 */
export function tslabChannel(): DisplayChannel | null {
  for (const key of Object.keys(require.cache)) {
    if (!TSLAB_JUPYTER.test(key)) continue;
    const mod = require.cache[key]?.exports as { lastWriteDisplayData?: DisplayChannel | null } | undefined;
    if (mod && typeof mod.lastWriteDisplayData === "function") {
      return (msg, update) => (mod.lastWriteDisplayData as DisplayChannel)(msg, update);
    }
  }
  return null;
}

/** Objects with a table form: Table itself, or results exposing `table()`. */
function asTable(x: unknown): TableLike | null {
  if (x && typeof x === "object") {
    const o = x as { toHTML?: unknown; toText?: unknown; table?: unknown };
    if (typeof o.toHTML === "function" && typeof o.toText === "function") return o as TableLike;
    if (typeof o.table === "function") {
      const t = (o.table as () => unknown).call(o);
      if (t && typeof (t as TableLike).toHTML === "function" && typeof (t as TableLike).toText === "function") return t as TableLike;
    }
  }
  return null;
}

function isFigureSpec(x: unknown): x is FigureSpec {
  return !!x && typeof x === "object" && Array.isArray((x as FigureSpec).data) && typeof (x as FigureSpec).layout === "object";
}

/** The plain-text form every surface can print. */
export function textOf(x: unknown): string {
  if (typeof x === "string") return x;
  if (x instanceof Figure) return x.toText();
  const t = asTable(x);
  if (t) return t.toText();
  if (x && typeof x === "object" && typeof (x as { toText?: unknown }).toText === "function") return (x as { toText(): string }).toText();
  return util.inspect(x, { depth: 4, colors: false });
}

function readPlotlyBundle(): string | null {
  try {
    return fs.readFileSync(require.resolve("plotly.js-dist-min/plotly.min.js"), "utf8");
  } catch {
    return null;
  }
}

/**
 * Turns objects into mime bundles and remembers whether plotly.js has already been shipped: the first figure's
 * HTML carries the library (≈4.8 MB), later ones only wait for `window.Plotly`, so a notebook holds it once.
 */
export class Displayer {
  private plotlyIncluded = false;
  private count = 0;
  private readonly prefix = `sdm-${randomBytes(3).toString("hex")}`;
  private warned = false;

  constructor(private readonly loadPlotly: () => string | null = readPlotlyBundle) {}

  bundle(x: unknown): MimeBundle {
    if (x instanceof Figure || isFigureSpec(x)) {
      let plotlyScript: string | undefined;
      if (!this.plotlyIncluded) {
        const src = this.loadPlotly();
        if (src) {
          plotlyScript = src;
          this.plotlyIncluded = true;
        } else if (!this.warned) {
          this.warned = true;
          console.warn("sdmprune display: plotly.js-dist-min not found; figures render only where the Plotly mime type is supported");
        }
      }
      return figureBundle(x, { id: `${this.prefix}-plot-${++this.count}`, plotlyScript });
    }
    const t = asTable(x);
    if (t) return tableBundle(t);
    return { "text/plain": textOf(x) };
  }

  /** Forget that plotly.js was sent (e.g. the notebook's outputs were cleared): the next figure carries it again. */
  resetPlotly(): void {
    this.plotlyIncluded = false;
  }
}

export const defaultDisplayer = new Displayer();

/** Show `x` as rich output in a tslab notebook, else print its text form. Returns nothing (so cells don't echo it). */
export function display(x: unknown, channel: DisplayChannel | null = tslabChannel()): void {
  if (channel) channel({ data: defaultDisplayer.bundle(x), metadata: {}, transient: {} }, false);
  else console.log(textOf(x));
}

/** Is this process a tslab kernel executing a cell? */
export function inNotebook(): boolean {
  return tslabChannel() !== null;
}

function progressLine(label: string, e: ProgressEvent): string {
  const pct = e.total > 0 ? ` ${((100 * e.done) / e.total).toFixed(0).padStart(3)}%` : "";
  const rate = e.tokensPerSecond ? `  ${Math.round(e.tokensPerSecond)} tok/s` : "";
  const eta = e.etaSeconds !== undefined && e.done < e.total ? `  eta ${Math.ceil(e.etaSeconds)}s` : "";
  const msg = e.message ? `  ${e.message}` : "";
  return `${label}${e.phase} ${e.done}/${e.total}${pct}${rate}${eta}${msg}`;
}

/**
 * An `onProgress` callback for long Session calls: in a notebook one output line updated in place (throttled to
 * ~4 updates/s; the final event always lands), elsewhere a carriage-return line on stderr.
 */
export function progress(label = "", channel: DisplayChannel | null = tslabChannel()): (e: ProgressEvent) => void {
  const id = `sdm-progress-${randomBytes(4).toString("hex")}`;
  let sent = false;
  let last = 0;
  const prefix = label ? `${label}: ` : "";
  return (e) => {
    const now = Date.now();
    const final = e.total > 0 && e.done >= e.total;
    if (!final && now - last < 250) return;
    last = now;
    const line = progressLine(prefix, e);
    if (channel) {
      channel({ data: { "text/plain": line }, metadata: {}, transient: { display_id: id } }, sent);
      sent = true;
    } else if (process.stderr.isTTY) {
      process.stderr.write(`\r${line}\x1b[K${final ? "\n" : ""}`);
    } else if (final) {
      process.stderr.write(line + "\n");
    }
  };
}
