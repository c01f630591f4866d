import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  ARTIFACT_DIR,
  KERNEL_PATH,
  ROOT,
  cellsWithOutputs,
  checkExecuted,
  chromiumCommand,
  executeNotebook,
  exportHtml,
  jupyterCommand,
  jupyterEnv,
  listNotebooks,
  readNotebook,
  renderDom,
  screenshot,
  type RunResult,
} from "../scripts/notebooks";
import { requireShared } from "./support/shared";

/**
 * Notebook surface end to end: kernelspec, every notebook executed headlessly by Jupyter with the sdmprune
 * kernel, Plotly outputs present, and one notebook rendered in headless Chromium with the plots drawn.
 * Without jupyter or chromium these tests skip loudly on a developer machine and fail under CI (.ci/run
 * installs both from Debian).
 */
function requireTool(ctx: Mocha.Context, name: string, found: string | null, install: string): string {
  if (found) return found;
  if (process.env.CI) throw new Error(`${name} is required under CI but is not on PATH (${install})`);
  console.warn(`\n  !!! SKIPPING: ${name} not found (${install}) !!!\n`);
  ctx.skip();
  throw new Error("unreachable");
}
const JUPYTER_INSTALL = "apt-get install -y --no-install-recommends jupyter-nbconvert jupyter-client";
const CHROMIUM_INSTALL = "apt-get install -y --no-install-recommends chromium";

describe("notebooks", function () {
  this.timeout(15 * 60 * 1000);
  let runs: RunResult[] = [];

  it("are committed without outputs, use the sdmprune kernel and tag their figure cells", () => {
    const files = listNotebooks();
    assert.deepEqual(
      files.map((f) => path.basename(f)),
      ["01-quickstart.ipynb", "02-mlp-vs-attention-sensitivity.ipynb", "03-criteria-vs-ratio.ipynb", "04-teacher-cache-and-calibration.ipynb", "05-beyond-the-paper.ipynb", "06-model-families.ipynb"],
    );
    for (const f of files) {
      const nb = readNotebook(f);
      assert.deepEqual(cellsWithOutputs(nb), [], `${path.basename(f)} has outputs (npx tsx scripts/notebooks.ts --strip)`);
      assert.equal((nb.metadata.kernelspec as { name: string }).name, "sdmprune", path.basename(f));
      const tagged = nb.cells.filter((c) => c.metadata.tags?.includes("figure")).length;
      assert.ok(tagged > 0, `${path.basename(f)} has no cell tagged "figure"`);
      // paths come from one cell at the top: the first code cell defines the shared folder
      const first = nb.cells.find((c) => c.cell_type === "code")!;
      assert.match([first.source].flat().join(""), /const SHARED = process\.env\.SDMPRUNE_SHARED \?\? "\.\.\/shared"/, path.basename(f));
    }
  });

  it("kernel:install writes a kernelspec that points at this checkout's launcher", function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-kernel-"));
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, "kernel", "install.cjs"), "--dir", dir], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const spec = JSON.parse(fs.readFileSync(path.join(dir, "kernels", "sdmprune", "kernel.json"), "utf8"));
      assert.deepEqual(spec.argv, [process.execPath, path.join(ROOT, "kernel", "launcher.cjs"), "kernel", "--config-path", "{connection_file}"]);
      assert.equal(spec.language, "typescript");
      const jupyter = jupyterCommand();
      if (jupyter) {
        const list = spawnSync(jupyter, ["kernelspec", "list", "--json"], { env: { ...process.env, JUPYTER_PATH: dir }, encoding: "utf8" });
        const specs = JSON.parse(list.stdout).kernelspecs as Record<string, { resource_dir: string }>;
        assert.equal(specs.sdmprune?.resource_dir, path.join(dir, "kernels", "sdmprune"));
      }
      const un = spawnSync(process.execPath, [path.join(ROOT, "kernel", "install.cjs"), "--dir", dir, "--uninstall"], { encoding: "utf8" });
      assert.equal(un.status, 0, un.stderr);
      assert.ok(!fs.existsSync(path.join(dir, "kernels", "sdmprune")));
      const bad = spawnSync(process.execPath, [path.join(ROOT, "kernel", "install.cjs"), "--name", "a b"], { encoding: "utf8" });
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /kernel name must match/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the committed kernelspec is found through JUPYTER_PATH", function () {
    const jupyter = requireTool(this, "jupyter", jupyterCommand(), JUPYTER_INSTALL);
    const r = spawnSync(jupyter, ["kernelspec", "list", "--json"], { env: jupyterEnv(), encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const specs = JSON.parse(r.stdout).kernelspecs as Record<string, { resource_dir: string; spec: { argv: string[] } }>;
    assert.equal(fs.realpathSync(specs.sdmprune.resource_dir), fs.realpathSync(path.join(KERNEL_PATH, "kernels", "sdmprune")));
    assert.equal(specs.sdmprune.spec.argv[1], "{resource_dir}/../../../launcher.cjs");
  });

  it("every notebook executes without errors and each figure cell carries the Plotly mime type", function () {
    requireTool(this, "jupyter", jupyterCommand(), JUPYTER_INSTALL);
    requireShared(this);
    const t0 = Date.now();
    runs = listNotebooks().map((f) => executeNotebook(f, ARTIFACT_DIR));
    const total = (Date.now() - t0) / 1000;
    for (const r of runs) console.log(`      ${r.name}: ${r.ok ? "ok" : "FAILED"} in ${r.seconds.toFixed(1)} s (${r.cpuSeconds ?? "?"} CPU s), ${r.figures} Plotly outputs`);
    console.log(`      all notebooks: ${total.toFixed(1)} s`);
    fs.writeFileSync(path.join(ARTIFACT_DIR, "test-summary.json"), JSON.stringify({ totalSeconds: total, runs }, null, 2) + "\n");
    for (const r of runs) {
      assert.deepEqual(r.problems, [], `${r.name}:\n${r.problems.join("\n")}`);
      assert.ok(r.figureCells > 0 && r.figures >= r.figureCells, `${r.name}: ${r.figures} Plotly outputs for ${r.figureCells} figure cells`);
      // independent re-check of the written file
      const again = checkExecuted(readNotebook(r.output));
      assert.deepEqual(again.problems, []);
    }
  });

  it("an executed notebook exported to HTML draws its Plotly figures in headless Chromium", function () {
    requireTool(this, "jupyter", jupyterCommand(), JUPYTER_INSTALL);
    requireTool(this, "chromium", chromiumCommand(), CHROMIUM_INSTALL);
    let run = runs.find((r) => r.name === "01-quickstart" && r.ok && fs.existsSync(r.output));
    if (!run) {
      requireShared(this);
      run = executeNotebook(listNotebooks()[0], ARTIFACT_DIR);
      assert.deepEqual(run.problems, []);
    }
    const html = exportHtml(run.output);
    const page = fs.readFileSync(html, "utf8");
    assert.equal((page.match(/class="sdmprune-plot"/g) ?? []).length, run.figures, "one plot div per figure output");
    const { dom, svgs } = renderDom(html);
    // each drawn Plotly figure has at least one <svg class="main-svg"> root
    assert.ok(svgs >= run.figures, `${svgs} Plotly SVG roots for ${run.figures} figures`);
    // Plotly.newPlot marks each div it drew into with js-plotly-plot
    assert.equal((dom.match(/class="sdmprune-plot js-plotly-plot"/g) ?? []).length, run.figures, "every figure div was drawn by Plotly");
    const png = screenshot(html, path.join(ARTIFACT_DIR, "01-quickstart.png"));
    const head = fs.readFileSync(png).subarray(0, 8);
    assert.deepEqual([...head], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    console.log(`      ${svgs} Plotly SVG roots; screenshot ${path.relative(ROOT, png)}`);
  });
});
