/**
 * Rich-display bundles: what a notebook front-end receives for a figure or a table. One output carries
 *   application/vnd.plotly.v1+json  the figure (JupyterLab with the Plotly extension and VS Code draw it natively),
 *   text/html                       a div + script calling Plotly.newPlot (nbconvert HTML, classic Notebook),
 *   text/plain                      a short summary.
 * The HTML entry needs `window.Plotly`; the caller passes the plotly.js source once per notebook (see
 * src/display.ts), and every figure's script waits for it, so cells may render in any order.
 */
import { Figure, FigureSpec } from "./figure";

export const PLOTLY_MIME = "application/vnd.plotly.v1+json";

export type MimeBundle = Record<string, unknown>;

/** JSON that is safe inside an HTML <script>: `<` escaped so no `</script>` or `<!--` can end the block early. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

/** Inline a JavaScript source in a <script> element; the escapes only touch text inside strings/regexes, where they mean the same. */
export function inlineScript(source: string): string {
  return `<script>${source.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--")}</script>`;
}

/** The div + script that draws `fig` into the page once `window.Plotly` exists (polls up to `waitMs`). */
export function figureHtml(fig: FigureSpec, id: string, waitMs = 20000): string {
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(id)) throw new Error(`figure id must be an HTML id ([A-Za-z][A-Za-z0-9_-]*), got ${JSON.stringify(id)}`);
  const height = typeof fig.layout.height === "number" ? fig.layout.height : 420;
  return [
    `<div id="${id}" class="sdmprune-plot" style="width:100%;min-height:${height}px"></div>`,
    "<script>(function () {",
    `  var fig = ${scriptJson(fig)}, id = ${JSON.stringify(id)}, t0 = Date.now();`,
    "  function draw() {",
    "    var el = document.getElementById(id);",
    "    if (!el) return;",
    "    if (window.Plotly) { window.Plotly.newPlot(el, fig.data, fig.layout, fig.config || {}); return; }",
    `    if (Date.now() - t0 < ${waitMs}) { setTimeout(draw, 50); return; }`,
    "    el.textContent = 'Plotly is not loaded on this page: run the first figure cell of the notebook again (it includes plotly.js).';",
    "  }",
    "  draw();",
    "})();</script>",
  ].join("\n");
}

/**
 * The three-entry bundle for a figure. `plotlyScript` (the plotly.js source) is prepended to the HTML entry when
 * given: src/display.ts passes it with the first figure a kernel shows, so the notebook carries the library once.
 */
export function figureBundle(fig: Figure | FigureSpec, opts: { id: string; plotlyScript?: string }): MimeBundle {
  const spec = fig instanceof Figure ? fig.toJSON() : (JSON.parse(JSON.stringify(fig)) as FigureSpec);
  const loader = opts.plotlyScript ? inlineScript(opts.plotlyScript) + "\n" : "";
  const text = fig instanceof Figure ? fig.toText() : new Figure(spec.data, spec.layout, spec.config).toText();
  return {
    [PLOTLY_MIME]: spec,
    "text/html": loader + figureHtml(spec, opts.id),
    "text/plain": text,
  };
}

/** Anything that renders as an HTML table and as aligned text (src/table.ts's Table and result objects). */
export interface TableLike {
  toText(): string;
  toHTML(): string;
}

export function tableBundle(t: TableLike): MimeBundle {
  return { "text/html": t.toHTML(), "text/plain": t.toText() };
}
