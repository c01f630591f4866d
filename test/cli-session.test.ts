import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cli } from "./support/cli";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

describe("CLI: scores, prune, eval on stories260K", function () {
  this.timeout(120000);
  let dir: string;
  let model: string;
  let text: string;
  const cal = () => ["--text", text, "--stories", "1-200", "--samples", "8", "--seq-len", "64", "--seed", "0"];

  before(function () {
    requireShared(this);
    model = STORIES260K();
    text = sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-cli-"));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it("scores writes {criterion, samples, settings, scores[layer][channel]} and the windows", async () => {
    const out = path.join(dir, "scores.json");
    const win = path.join(dir, "windows.json");
    const r = await cli(["scores", "--model", model, ...cal(), "--criterion", "sd-taylor", "--alpha", "0.4", "--temperature", "0.2", "--out", out, "--save-windows", win]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(fs.readFileSync(out, "utf8"));
    assert.equal(j.criterion, "sd-taylor");
    assert.equal(j.samples, 8);
    assert.deepEqual([j.settings.alpha, j.settings.temperature, j.settings.seqLen, j.settings.seed, j.settings.topk], [0.4, 0.2, 64, null, "full"]);
    assert.equal(j.windows[0].seed, 0); // the seed belongs to the draw (scores format version 2)
    assert.equal(j.scores.length, 5);
    assert.ok(j.scores.every((row: number[]) => row.length === 172 && row.every((v) => v > 0 && Number.isFinite(v))));
    const w = JSON.parse(fs.readFileSync(win, "utf8"));
    assert.equal(w.windows.length, 8);
    assert.equal(w.windows[0].length, 64);
    assert.match(r.out, /samples \(total\)\s+8/);

    // the same windows from the file give the same scores (teacher cache and accumulation are deterministic)
    const out2 = path.join(dir, "scores2.json");
    const r2 = await cli(["scores", "--model", model, "--windows", win, "--criterion", "sd-taylor", "--out", out2]);
    assert.equal(r2.code, 0, r2.err);
    const j2 = JSON.parse(fs.readFileSync(out2, "utf8"));
    assert.deepEqual(j2.scores, j.scores);
  });

  it("prune --two-stage --target writes the model + pruning.json and prints a before/after table", async () => {
    const out = path.join(dir, "pruned");
    const r = await cli(["prune", "--model", model, "--two-stage", "--target", "0.2", ...cal(), "--out", out, "--eval-text", text, "--eval-stories", "500-505", "--eval-seq-len", "64"]);
    assert.equal(r.code, 0, r.err);
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    const rec = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8"));
    assert.equal(config.intermediate_size, rec.current.intermediate_sizes[0]);
    assert.equal(rec.history.length, 2);
    assert.equal(rec.keptChannels[0].length, config.intermediate_size);
    assert.equal(rec.evaluations.length, 2); // before and after
    const share = 1 - rec.current.params.total / rec.original.params.total;
    assert.ok(Math.abs(share - 0.2) < 0.01, `removed share ${share}`);
    assert.match(r.out, /Before \/ after/);
    assert.match(r.out, new RegExp(`params \\(total\\)\\s+260,032\\s+${rec.current.params.total.toLocaleString("en-US")}`));
    assert.match(r.out, /ppl@64/);

    // eval on the saved model, JSON output
    const e = await cli(["eval", "--model", out, "--ppl", text, "--stories", "500-505", "--seq-len", "64", "--json"]);
    assert.equal(e.code, 0, e.err);
    const j = JSON.parse(e.out);
    assert.equal(j.ppl.seqLen, 64);
    assert.ok(j.ppl.ppl > 1 && Number.isFinite(j.ppl.ppl));
    assert.equal(j.params, rec.current.params.total);
    // evaluation after pruning recorded in pruning.json matches the fresh evaluation of the saved model
    assert.ok(Math.abs(rec.evaluations[1].ppl.ppl - j.ppl.ppl) / j.ppl.ppl < 1e-4);
  });

  it("prune with one criterion and --keep, using precomputed scores; refuses an occupied --out", async () => {
    const out = path.join(dir, "pruned-keep");
    const r = await cli(["prune", "--model", model, "--keep", "100", "--scores", path.join(dir, "scores.json"), "--out", out, "--format", "gguf"]);
    assert.equal(r.code, 0, r.err);
    assert.ok(fs.existsSync(path.join(out, "model.gguf")));
    const rec = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8"));
    assert.deepEqual(rec.current.intermediate_sizes, [100, 100, 100, 100, 100]);
    assert.equal(rec.criterion, "sd-taylor");
    const again = await cli(["prune", "--model", model, "--keep", "100", "--scores", path.join(dir, "scores.json"), "--out", out]);
    assert.equal(again.code, 2);
    assert.match(again.err, /already exists and is not empty/);
  });

  it("eval runs tasks on a limit subset; bad flags exit 2 with a message", async () => {
    const e = await cli(["eval", "--model", model, "--tasks", "arc_easy,piqa", "--limit", "3", "--data-dir", sharedPath("data")]);
    assert.equal(e.code, 0, e.err);
    assert.match(e.out, /arc_easy\s+acc_norm/);
    assert.match(e.out, /piqa\s+acc_norm/);
    for (const [args, re] of [
      [["prune", "--model", model, "--ratio", "1.5", "--criterion", "magnitude", "--out", path.join(dir, "x")], /0 < ratio < 1/],
      [["prune", "--model", model, "--out", path.join(dir, "x")], /exactly one of --target, --keep, --ratio/],
      [["scores", "--model", model, "--criterion", "nope", "--out", path.join(dir, "y.json")], /--criterion must be one of/],
      [["scores", "--model", model, "--criterion", "sd-taylor", "--out", path.join(dir, "y.json")], /needs calibration data/],
      [["eval", "--model", model], /--ppl FILE and\/or --tasks/],
    ] as [string[], RegExp][]) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, re);
    }
    assert.ok(!fs.existsSync(path.join(dir, "x")));
    assert.ok(!fs.existsSync(path.join(dir, "y.json")));
  });
});
