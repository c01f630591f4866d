import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { initEngine } from "../src/engine";
import { ResourceError } from "../src/errors";
import { readGgufHeader } from "../src/io/gguf";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { calibrationBytes, checkMemory, describeEstimate, estimateCalibration, flopsPerToken } from "../src/resources";
import { Rng } from "../src/rng";
import { Session } from "../src/session";
import { cli } from "./support/cli";
import { requireShared, STORIES260K } from "./support/shared";

// A 16-token context makes "longer than the context" cheap to test.
const CFG = parseConfig({
  hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  vocab_size: 48, tie_word_embeddings: true, max_position_embeddings: 16,
});
const README = path.resolve(__dirname, "../README.md");

function windows(n: number, T: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: T }, () => rng.int(0, CFG.vocab_size - 1)));
}

function isResource(re: RegExp) {
  return (e: Error) => {
    assert.ok(e instanceof ResourceError, `expected ResourceError, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  };
}

describe("resources: context length, memory and top-k checked before the work", function () {
  this.timeout(60_000);
  before(async () => {
    await initEngine();
  });

  it("windows longer than the context are refused (calibrate, ppl) unless allowLonger", async () => {
    const s = Session.fromModel(CausalLM.fromTensors(CFG, randomTensors(CFG, 1, 0.2)));
    try {
      const long = windows(2, 24, 1);
      await assert.rejects(s.calibrate({ windows: long }), isResource(/sequence length 24 exceeds the model's context of 16 tokens.*--allow-longer/));
      await assert.rejects(s.evaluate({ ppl: { windows: long } }), isResource(/perplexity: sequence length 24 exceeds/));
      const r = await s.evaluate({ ppl: { windows: long, allowLonger: true } });
      assert.ok(Number.isFinite((r.raw as { ppl: { ppl: number } }).ppl.ppl));
      await s.calibrate({ windows: long, allowLonger: true, teacher: false });
      await s.calibrate({ windows: windows(2, 16, 2) });
    } finally {
      s.dispose();
    }
  });

  it("a top-k above the vocabulary is clamped to it: finite sd-taylor scores, as with top-k = vocabulary", async () => {
    const w = windows(4, 8, 3);
    const scores: number[][][] = [];
    for (const topk of [CFG.vocab_size, 513]) {
      const s = Session.fromModel(CausalLM.fromTensors(CFG, randomTensors(CFG, 2, 0.2)));
      try {
        await s.calibrate({ windows: w, topk });
        const r = await s.score({ criterion: "sd-taylor" });
        void r;
        scores.push(s.scores!.scores());
      } finally {
        s.dispose();
      }
    }
    assert.ok(scores[1].flat().every(Number.isFinite), "finite scores");
    assert.deepEqual(scores[1], scores[0]);
  });

  it("memory: the estimate is refused with both figures above what is available, unless skipped", () => {
    const need = calibrationBytes(1_000_000, 128, 512, true);
    assert.equal(need, 1_000_000 * 128 * (8 + 512 * 4 + 8));
    assert.throws(() => checkMemory(need, "calibration", {}, 8 * 2 ** 30), isResource(new RegExp(`calibration would need about ${(need / 2 ** 30).toFixed(1)} GiB of memory but about 8\\.0 GiB is available.*--skip-memory-check`)));
    checkMemory(need, "calibration", { skipMemoryCheck: true }, 8 * 2 ** 30);
    checkMemory(2 ** 20, "calibration", {}, 8 * 2 ** 30);
  });

  it("CLI: recover --seq-len past the demo model's context is refused before training", async () => {
    const demo = path.resolve(__dirname, "../models/demo");
    const out = path.join(os.tmpdir(), `sdmprune-never-${process.pid}`);
    const r = await cli(["recover", "--model", demo, "--data", path.join(demo, "heldout.txt"), "--steps", "1", "--seq-len", "1024", "--out", out]);
    assert.equal(r.code, 2, r.err);
    const ctx = JSON.parse(fs.readFileSync(path.join(demo, "config.json"), "utf8")).max_position_embeddings as number;
    assert.ok(ctx < 1024);
    assert.match(r.err, new RegExp(`recover: sequence length 1024 exceeds the model's context of ${ctx} tokens`));
  });

  it("CLI: scores --samples 100000000 and ppl --seq-len past the context fail at once with the figures", async function () {
    requireShared(this);
    const m = readGgufHeader(STORIES260K()).metadata;
    const [ctx, vocab] = [m["llama.context_length"] as number, (m["tokenizer.ggml.tokens"] as string[]).length];
    assert.ok(ctx < 4096);
    const t0 = Date.now();
    let r = await cli(["scores", "--model", STORIES260K(), "--text", README, "--samples", "100000000", "--seq-len", "128", "--criterion", "sd-taylor", "--out", path.join(os.tmpdir(), `sdmprune-never-${process.pid}.json`)]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`windows × 128 tokens, teacher top-k ${vocab}\\) would need about \\d+\\.\\d GiB of memory but about [\\d.]+ [GM]iB is available`));
    r = await cli(["ppl", "--model", STORIES260K(), "--text", README, "--seq-len", "4096"]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`sequence length 4096 exceeds the model's context of ${ctx} tokens`));
    assert.ok(Date.now() - t0 < 20_000);
  });
});

describe("resources: the estimate printed before a long job", () => {
  it("counts memory and FLOPs that scale with the windows, and times only backends with a measured rate", () => {
    const a = estimateCalibration(CFG, 8, 16, "full", "wasm", true);
    const b = estimateCalibration(CFG, 16, 16, "full", "wasm", true);
    assert.equal(b.flops, 2 * a.flops);
    assert.equal(b.calibrationBytes, 2 * a.calibrationBytes);
    assert.equal(a.calibrationBytes, calibrationBytes(8, 16, CFG.vocab_size, true));
    const f = flopsPerToken(CFG, 16);
    assert.equal(a.flops, 8 * 16 * (f.forward + f.importance));
    assert.equal(estimateCalibration(CFG, 8, 16, null, "wasm", false).flops, 0, "no teacher and no scoring: nothing to compute");
    assert.ok(a.seconds !== null && a.seconds > 0);
    assert.equal(estimateCalibration(CFG, 8, 16, "full", "webgpu", true).seconds, null);
    assert.match(describeEstimate(a, "wasm"), /^estimate: weights .*teacher cache .*GFLOP, about \d+ s at the wasm rate/);
  });

  it("sdmprune scores prints it before the teacher pass", async function () {
    requireShared(this);
    const out = path.join(os.tmpdir(), `sdmprune-estimate-${process.pid}.json`);
    const r = await cli(["scores", "--model", STORIES260K(), "--text", README, "--samples", "2", "--seq-len", "32", "--criterion", "sd-taylor", "--out", out]);
    fs.rmSync(out, { force: true });
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /estimate: weights [\d.]+ MiB, windows and teacher cache [\d.]+ MiB, one pass [\d.]+ MiB; [\d.]+ GFLOP/);
  });
});
