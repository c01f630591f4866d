import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { checkExecuted, listNotebooks, numberCells, readNotebook, type Notebook } from "../scripts/notebooks";
import { sensitivityFigure } from "../src/plot";

// What the notebooks show (issue 18, item 10), checked without running Jupyter; test/notebooks.test.ts executes them.
const source = (name: string) =>
  readNotebook(listNotebooks().find((f) => path.basename(f).startsWith(name))!)
    .cells.map((c) => [c.source].flat().join(""))
    .join("\n");

describe("notebooks: content", () => {
  it("executed copies carry execution counts 1..n in cell order, and a missing count is a problem", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-nb-"));
    try {
      const nb: Notebook = {
        cells: [
          { cell_type: "markdown", source: "# t", metadata: {} },
          { cell_type: "code", source: "1", metadata: {}, outputs: [], execution_count: null },
          { cell_type: "code", source: "2", metadata: {}, outputs: [{ output_type: "execute_result", data: { "text/plain": "2" } }], execution_count: null },
        ],
        metadata: {},
        nbformat: 4,
        nbformat_minor: 5,
      };
      assert.match(checkExecuted(nb).problems.join("\n"), /cell 1 \(1\): no execution count/);
      const file = path.join(dir, "x.ipynb");
      fs.writeFileSync(file, JSON.stringify(nb));
      numberCells(file);
      const after = readNotebook(file);
      assert.deepEqual(after.cells.map((c) => c.execution_count ?? null), [null, 1, 2]);
      assert.equal((after.cells[2].outputs![0] as { execution_count?: number }).execution_count, 2);
      assert.deepEqual(checkExecuted(after).problems, []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the sensitivity figure's legend sits outside the plotting area", () => {
    const spec = sensitivityFigure({ mlpIncrease: [1, 2], attentionIncrease: [3, 4] }).toJSON();
    const legend = spec.layout.legend as { x: number; xanchor: string };
    assert.ok(legend.x >= 1 && legend.xanchor === "left", JSON.stringify(legend));
  });

  it("01 prints generate's continuation after its prompt; 03 shows the increase over dense; 04 compares with an independent, larger run", () => {
    assert.match(source("01"), /console\.log\(`\$\{prompt\}\$\{session\.generate\(prompt,/);
    const s3 = source("03");
    assert.match(s3, /value: 100 \* \(p\.value \/ dense\.ppl - 1\)/);
    const s4 = source("04");
    const steps = JSON.parse(/const CONVERGENCE_STEPS = (\[[^\]]*\])/.exec(s4)![1]) as number[];
    const ref = Number(/const REFERENCE_SAMPLES = (\d+)/.exec(s4)![1]);
    assert.ok(ref > steps[steps.length - 1], "the reference run is larger than the curve's last point");
    assert.match(s4, /samples: REFERENCE_SAMPLES, seqLen: SEQ_LEN, seed: SEED \+ 1/);
    assert.doesNotMatch(s4, /snapshots\[snapshots\.length - 1\]\.scores/);
  });

  it("06 runs every non-llama family fixture of the repository through calibrate → sd-taylor → prune → perplexity before and after", () => {
    const s6 = source("06");
    assert.match(s6, /const FIXTURES = "test\/fixtures\/families";/);
    const families = JSON.parse(/const FAMILIES = (\[[^\]]*\])/.exec(s6)![1]) as string[];
    const root = path.join(__dirname, "fixtures", "families");
    const fixtures = fs.readdirSync(root).filter((f) => fs.existsSync(path.join(root, f, "config.json")) && f !== "llama");
    assert.deepEqual([...families].sort(), fixtures.sort());
    assert.match(s6, /Session\.load\(`\$\{FIXTURES\}\/\$\{family\}`\)/);
    assert.match(s6, /criterion: "sd-taylor"/);
    assert.match(s6, /s\.prune\(\{ ratio: RATIO \}\)/);
    assert.equal((s6.match(/s\.evaluate\(\{ ppl: evalSpec \}\)/g) ?? []).length, 2, "perplexity before and after pruning");
  });
});
