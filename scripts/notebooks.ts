/**
 * Execute, check and render the notebooks in notebooks/ (`npm run notebooks`).
 *
 *   npx tsx scripts/notebooks.ts [names...]      execute into artifacts/notebooks/, check outputs, export HTML
 *     --screenshot                                also render each HTML in headless Chromium, check the Plotly
 *                                                 SVG and keep a PNG next to it
 *     --strip                                     remove outputs from notebooks/*.ipynb in place, then exit
 *     --check-clean                               fail if a committed notebook holds outputs, then exit
 *
 * Executed copies go to artifacts/ (git-ignored); the committed notebooks stay without outputs. The kernel is
 * the committed kernelspec kernel/jupyter/kernels/sdmprune, found through JUPYTER_PATH (nothing is installed).
 * A notebook fails when a cell errors, when a cell tagged "figure" has no `application/vnd.plotly.v1+json`
 * output, or when an HTML figure output lacks that mime type.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const ROOT = path.resolve(__dirname, "..");
export const NOTEBOOK_DIR = path.join(ROOT, "notebooks");
export const ARTIFACT_DIR = path.join(ROOT, "artifacts", "notebooks");
export const KERNEL_PATH = path.join(ROOT, "kernel", "jupyter");
const PLOTLY_MIME = "application/vnd.plotly.v1+json";

// ---------------------------------------------------------------- notebook JSON

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  metadata: { tags?: string[]; [k: string]: unknown };
  outputs?: Output[];
  execution_count?: number | null;
}
export interface Notebook {
  cells: Cell[];
  metadata: Record<string, unknown>;
  nbformat: number;
  nbformat_minor: number;
}

const joinText = (t: string | string[] | undefined): string => (Array.isArray(t) ? t.join("") : t ?? "");

export function readNotebook(file: string): Notebook {
  const nb = JSON.parse(fs.readFileSync(file, "utf8")) as Notebook;
  if (!Array.isArray(nb.cells)) throw new Error(`${file}: not a notebook (no "cells" array)`);
  return nb;
}

/** The committed notebooks, in order. */
export function listNotebooks(dir = NOTEBOOK_DIR): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".ipynb") && !f.includes(".out."))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Code cells that carry outputs or execution counts (a committed notebook should have none). */
export function cellsWithOutputs(nb: Notebook): number[] {
  const out: number[] = [];
  nb.cells.forEach((c, i) => {
    if (c.cell_type === "code" && ((c.outputs && c.outputs.length > 0) || (c.execution_count ?? null) !== null)) out.push(i);
  });
  return out;
}

/** Remove outputs and execution counts in place (and nbclient's timing metadata). Returns whether it changed. */
export function stripOutputs(file: string): boolean {
  const before = fs.readFileSync(file, "utf8");
  const nb = JSON.parse(before) as Notebook;
  for (const c of nb.cells) {
    if (c.cell_type !== "code") continue;
    c.outputs = [];
    c.execution_count = null;
    delete c.metadata.execution;
  }
  const after = JSON.stringify(nb, null, 1) + "\n";
  if (after === before) return false;
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, after);
  fs.renameSync(tmp, file);
  return true;
}

export interface CheckResult {
  problems: string[];
  /** Outputs carrying the Plotly mime type. */
  figures: number;
  /** Cells tagged "figure". */
  figureCells: number;
}

/**
 * Check an executed notebook: error outputs, figure cells without a Plotly output, HTML figures without the
 * Plotly mime type. (tslab reports errors as a stderr stream, not as an `error` output; nbconvert catches those
 * through the execute reply, see executeNotebook.)
 */
export function checkExecuted(nb: Notebook): CheckResult {
  const problems: string[] = [];
  let figures = 0;
  let figureCells = 0;
  nb.cells.forEach((c, i) => {
    if (c.cell_type !== "code") return;
    const outs = c.outputs ?? [];
    const first = joinText(c.source).split("\n")[0].slice(0, 60);
    if (c.execution_count === null || c.execution_count === undefined) problems.push(`cell ${i} (${first}): no execution count`);
    for (const o of outs) {
      if (o.output_type === "error") problems.push(`cell ${i} (${first}): ${o.ename}: ${o.evalue}`);
      const data = o.data ?? {};
      if (data[PLOTLY_MIME]) {
        figures++;
        const fig = data[PLOTLY_MIME] as { data?: unknown };
        if (!Array.isArray(fig.data) || fig.data.length === 0) problems.push(`cell ${i} (${first}): Plotly output has no traces`);
      }
      const html = joinText(data["text/html"] as string | string[] | undefined);
      if (html.includes('class="sdmprune-plot"') && !data[PLOTLY_MIME]) problems.push(`cell ${i} (${first}): HTML figure without ${PLOTLY_MIME}`);
    }
    if (c.metadata.tags?.includes("figure")) {
      figureCells++;
      if (!outs.some((o) => o.data && o.data[PLOTLY_MIME])) problems.push(`cell ${i} (${first}) is tagged "figure" but has no ${PLOTLY_MIME} output`);
    }
  });
  return { problems, figures, figureCells };
}

// ---------------------------------------------------------------- tools

/** Absolute path of an executable on PATH, or null. */
export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

export function jupyterCommand(): string | null {
  return which("jupyter");
}

export function chromiumCommand(): string | null {
  return process.env.CHROMIUM || which("chromium") || which("chromium-browser") || which("google-chrome");
}

/** Environment for Jupyter: the committed kernelspec first on JUPYTER_PATH. */
export function jupyterEnv(): NodeJS.ProcessEnv {
  const prev = process.env.JUPYTER_PATH;
  return { ...process.env, JUPYTER_PATH: prev ? `${KERNEL_PATH}${path.delimiter}${prev}` : KERNEL_PATH };
}

// ---------------------------------------------------------------- execute / export / render

export interface RunResult {
  name: string;
  input: string;
  output: string;
  seconds: number;
  /** CPU seconds of Jupyter and the kernel together (Linux; null elsewhere): comparable across loaded machines. */
  cpuSeconds: number | null;
  ok: boolean;
  problems: string[];
  figures: number;
  figureCells: number;
  html?: string;
  screenshot?: string;
  svgs?: number;
}

/** CPU time of this process's finished children (/proc/self/stat cutime + cstime, in USER_HZ = 100 ticks/s). */
function childCpuSeconds(): number | null {
  try {
    const stat = fs.readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return null;
  }
}

function tail(s: string, n = 3000): string {
  return s.length > n ? "…" + s.slice(-n) : s;
}

/**
 * Execute one notebook with `jupyter nbconvert --to notebook --execute` into outDir/<name>.ipynb and check it.
 * When a cell fails nbconvert writes nothing; the report quotes its message (the failing cell and its error).
 */
export function executeNotebook(input: string, outDir = ARTIFACT_DIR, timeoutS = 600): RunResult {
  const jupyter = jupyterCommand();
  if (!jupyter) throw new Error("jupyter is not on PATH (apt-get install jupyter-nbconvert jupyter-client)");
  fs.mkdirSync(outDir, { recursive: true });
  const name = path.basename(input, ".ipynb");
  const output = path.join(outDir, `${name}.ipynb`);
  fs.rmSync(output, { force: true });
  const args = [
    "nbconvert",
    "--to",
    "notebook",
    "--execute",
    `--ExecutePreprocessor.timeout=${timeoutS}`,
    "--ExecutePreprocessor.kernel_name=sdmprune",
    // the first figure output carries plotly.js (4.8 MB); on a busy machine it can take longer than the
    // default 4 s to arrive after the cell's reply
    "--ExecutePreprocessor.iopub_timeout=60",
    "--output-dir",
    outDir,
    "--output",
    name,
    input,
  ];
  const t0 = Date.now();
  const cpu0 = childCpuSeconds();
  // cwd = the notebook's folder, as Jupyter would start it; the launcher moves the kernel to the project root.
  const r = spawnSync(jupyter, args, { cwd: path.dirname(input), env: jupyterEnv(), encoding: "utf8", timeout: (timeoutS + 120) * 1000 });
  const seconds = (Date.now() - t0) / 1000;
  const cpu1 = childCpuSeconds();
  const cpuSeconds = cpu0 !== null && cpu1 !== null ? Math.round((cpu1 - cpu0) * 10) / 10 : null;
  const result: RunResult = { name, input, output, seconds, cpuSeconds, ok: false, problems: [], figures: 0, figureCells: 0 };
  if (r.status !== 0 || !fs.existsSync(output)) {
    // kernel/launcher.cjs puts the cell's error text into the execute reply, so nbconvert's message names it
    const err = r.stderr ?? "";
    const at = err.indexOf("An error occurred while executing the following cell");
    result.problems.push(`nbconvert exited with ${r.status ?? r.signal}${r.error ? ` (${r.error.message})` : ""}: ${tail(at >= 0 ? err.slice(at) : err)}`);
    return result;
  }
  numberCells(output);
  const check = checkExecuted(readNotebook(output));
  result.problems.push(...check.problems);
  result.figures = check.figures;
  result.figureCells = check.figureCells;
  result.ok = result.problems.length === 0;
  return result;
}

/**
 * tslab leaves every `execution_count` null (it sends no execute_input), so exports show `In [ ]:` for every
 * cell. nbconvert runs the code cells once, top to bottom, so their counts are 1, 2, 3, … in order.
 */
export function numberCells(file: string): void {
  const nb = readNotebook(file);
  let n = 0;
  for (const c of nb.cells) {
    if (c.cell_type !== "code") continue;
    c.execution_count = ++n;
    for (const o of c.outputs ?? []) if (o.output_type === "execute_result") (o as { execution_count?: number }).execution_count = n;
  }
  fs.writeFileSync(file, JSON.stringify(nb, null, 1) + "\n");
}

/** Export an executed notebook to HTML next to it; returns the HTML path. */
export function exportHtml(executed: string): string {
  const jupyter = jupyterCommand();
  if (!jupyter) throw new Error("jupyter is not on PATH");
  const dir = path.dirname(executed);
  const name = path.basename(executed, ".ipynb");
  const r = spawnSync(jupyter, ["nbconvert", "--to", "html", "--output-dir", dir, "--output", name, executed], { env: jupyterEnv(), encoding: "utf8" });
  const html = path.join(dir, `${name}.html`);
  if (r.status !== 0 || !fs.existsSync(html)) throw new Error(`nbconvert --to html ${executed} failed (${r.status}): ${tail(r.stderr ?? "")}`);
  return html;
}

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--hide-scrollbars",
  // virtual time lets the figure scripts (which poll for window.Plotly) finish before the DOM is taken
  "--virtual-time-budget=15000",
];

function chromium(args: string[]): { stdout: string; stderr: string; status: number | null } {
  const bin = chromiumCommand();
  if (!bin) throw new Error("chromium is not on PATH (apt-get install chromium)");
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-chromium-"));
  try {
    const r = spawnSync(bin, [...CHROMIUM_FLAGS, `--user-data-dir=${userDir}`, ...args], { encoding: "utf8", maxBuffer: 256 * 2 ** 20, timeout: 180_000 });
    return { stdout: r.stdout ?? "", stderr: r.stderr ?? "", status: r.status };
  } finally {
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}

/** Render an HTML file in headless Chromium: the DOM after scripts ran, and the number of Plotly SVG roots. */
export function renderDom(html: string): { dom: string; svgs: number } {
  const r = chromium(["--dump-dom", `file://${path.resolve(html)}`]);
  if (!r.stdout.includes("</html>")) throw new Error(`chromium --dump-dom ${html} returned no page (status ${r.status}): ${tail(r.stderr, 1500)}`);
  return { dom: r.stdout, svgs: (r.stdout.match(/class="main-svg"/g) ?? []).length };
}

/** Screenshot of an HTML file (PNG); returns its path. */
export function screenshot(html: string, png: string, size = "1100,2400"): string {
  fs.rmSync(png, { force: true });
  const r = chromium([`--window-size=${size}`, `--screenshot=${path.resolve(png)}`, `file://${path.resolve(html)}`]);
  if (!fs.existsSync(png)) throw new Error(`chromium --screenshot ${html} wrote nothing (status ${r.status}): ${tail(r.stderr, 1500)}`);
  return png;
}

// ---------------------------------------------------------------- CLI

function main(argv: string[]): number {
  const flags = new Set(argv.filter((a) => a.startsWith("--")));
  for (const f of flags) if (!["--strip", "--check-clean", "--screenshot"].includes(f)) throw new Error(`unknown option ${f}`);
  const names = argv.filter((a) => !a.startsWith("--"));
  const all = listNotebooks();
  const chosen = names.length
    ? names.map((n) => {
        const hit = all.find((f) => path.basename(f) === n || path.basename(f, ".ipynb") === n || path.basename(f).startsWith(n));
        if (!hit) throw new Error(`no notebook matches "${n}" in ${NOTEBOOK_DIR}`);
        return hit;
      })
    : all;
  if (flags.has("--strip")) {
    for (const f of chosen) console.log(`${stripOutputs(f) ? "stripped" : "clean   "} ${path.relative(ROOT, f)}`);
    return 0;
  }
  if (flags.has("--check-clean")) {
    let bad = 0;
    for (const f of chosen) {
      const cells = cellsWithOutputs(readNotebook(f));
      if (cells.length) {
        bad++;
        console.log(`${path.relative(ROOT, f)}: outputs in cells ${cells.join(", ")} (run: npx tsx scripts/notebooks.ts --strip)`);
      }
    }
    return bad ? 1 : 0;
  }
  const results: RunResult[] = [];
  const t0 = Date.now();
  for (const f of chosen) {
    process.stdout.write(`${path.basename(f)} … `);
    const r = executeNotebook(f);
    if (r.ok) {
      r.html = exportHtml(r.output);
      if (flags.has("--screenshot")) {
        r.svgs = renderDom(r.html).svgs;
        r.screenshot = screenshot(r.html, r.html.replace(/\.html$/, ".png"));
        if (r.svgs === 0) {
          r.ok = false;
          r.problems.push(`no Plotly SVG (class="main-svg") in ${r.html} after rendering`);
        }
      }
    }
    console.log(`${r.ok ? "ok" : "FAILED"} in ${r.seconds.toFixed(1)} s (${r.cpuSeconds ?? "?"} CPU s), ${r.figures} figure outputs${r.svgs !== undefined ? `, ${r.svgs} rendered SVGs` : ""}`);
    for (const p of r.problems) console.log(`  ${p}`);
    results.push(r);
  }
  const total = (Date.now() - t0) / 1000;
  fs.mkdirSync(ARTIFACT_DIR, { recursive: true });
  const summary = { when: new Date().toISOString(), totalSeconds: total, results: results.map((r) => ({ ...r, input: path.relative(ROOT, r.input), output: path.relative(ROOT, r.output) })) };
  fs.writeFileSync(path.join(ARTIFACT_DIR, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} of ${results.length} notebooks ok in ${total.toFixed(1)} s; executed copies in ${path.relative(ROOT, ARTIFACT_DIR)}/`);
  return failed ? 1 : 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`notebooks: ${(e as Error).message}`);
    process.exitCode = 2;
  }
}
