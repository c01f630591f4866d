import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { readSafetensors } from "../src/io/safetensors";
import { accumulate } from "../src/importance";
import { parseConfig, type ModelConfig } from "../src/model/config";
import { loadModel, saveModel } from "../src/model/load";
import { TeacherCache } from "../src/teacher";
import { relError } from "./reference/configs";
import { sliceMlpChannels } from "./support/slice";

/**
 * Parity with the real transformers (5.18) on the trained tiny fixtures of test/fixtures/families/ (made by
 * scripts/families/, format in its README): logits, per-token log-probabilities, perplexity and greedy ids
 * (Gemma 3's fixture has sliding layers with a window of 16 inside its 48-token rows and softcapped logits);
 * then the method on each family: calibrate → sd-taylor (hand-written backward, checked against autograd)
 * → prune 20 % → save HF → reload.
 */
const ROOT = path.join(__dirname, "fixtures", "families");
const FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3"];

interface Reference {
  logits: { input_ids: number[][]; max_abs: number };
  token_logprobs: number[][];
  perplexity: { seq_len: number; ids: number[]; windows: number; tokens: number; ppl: number; nll: number };
  greedy: { prompt_ids: number[]; new_ids: number[] };
}

const strip = (c: ModelConfig) => ({ ...c, original: null });

describe("model families against transformers (test/fixtures/families)", function () {
  this.timeout(300_000);
  let tmp: string;
  before(async () => {
    console.log(`      backend: ${await initEngine()}`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-families-"));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const family of FAMILIES) {
    const dir = path.join(ROOT, family);
    it(`${family}: logits, log-probabilities, perplexity and greedy ids equal transformers'`, async () => {
      const before = tf.memory().numTensors;
      const ref = JSON.parse(fs.readFileSync(path.join(dir, "reference.json"), "utf8")) as Reference;
      const want = readSafetensors(path.join(dir, "reference.safetensors")).get("logits")!;
      const { model } = await loadModel(dir);
      try {
        const ids = ref.logits.input_ids;
        const got = model.forward(ids);
        const data = got.dataSync() as Float32Array;
        got.dispose();
        let d = 0;
        for (let i = 0; i < data.length; i++) d = Math.max(d, Math.abs(data[i] - want.data[i]));
        console.log(`      ${family}: max |Δlogit| ${d.toExponential(2)} (logit scale ${ref.logits.max_abs.toFixed(2)})`);
        assert.ok(d <= 1e-4 * Math.max(1, ref.logits.max_abs), `max |Δlogit| ${d}`);

        const lps = model.tokenLogProbs(ids);
        const e = relError(lps.flatMap((r) => Array.from(r)), ref.token_logprobs.flat());
        assert.ok(e.rel <= 1e-5, `token log-probs rel ${e.rel}`);

        const { seq_len: L, ids: all } = ref.perplexity;
        const windows: number[][] = [];
        for (let s = 0; s + L <= all.length; s += L) windows.push(all.slice(s, s + L));
        assert.equal(windows.length, ref.perplexity.windows);
        let nll = 0;
        let n = 0;
        for (const lp of model.tokenLogProbs(windows)) for (const v of lp) (nll -= v), n++;
        assert.equal(n, ref.perplexity.tokens);
        const ppl = Math.exp(nll / n);
        assert.ok(Math.abs(ppl / ref.perplexity.ppl - 1) <= 1e-5, `perplexity ${ppl} vs transformers ${ref.perplexity.ppl}`);

        const greedy = model.generate(ref.greedy.prompt_ids, { maxNewTokens: ref.greedy.new_ids.length, stopAtEos: false });
        assert.deepEqual(greedy, ref.greedy.new_ids);
      } finally {
        model.dispose();
      }
      assert.equal(tf.memory().numTensors, before, "tensors left behind");
    });

    it(`${family}: sd-taylor (hand-written backward = autograd) → prune 20 % → save HF → reload gives the pruned model`, async () => {
      const before = tf.memory().numTensors;
      const ref = JSON.parse(fs.readFileSync(path.join(dir, "reference.json"), "utf8")) as Reference;
      const { model } = await loadModel(dir);
      const all = ref.perplexity.ids;
      const windows = [0, 1, 2, 3].map((w) => all.slice(w * 32, w * 32 + 32));
      const teacher = await TeacherCache.build(model, windows, { topk: "full" });
      const opts = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.5 };
      const hand = (await accumulate(model, windows, teacher, null, { ...opts, path: "layerwise" })).scores();
      const auto = (await accumulate(model, windows, teacher, null, { ...opts, path: "straightforward" })).scores();
      const e = relError(hand.flatMap((r) => Array.from(r)), auto.flatMap((r) => Array.from(r)));
      assert.ok(e.rel <= 1e-4, `hand-written vs autograd sd-taylor scores: rel ${e.rel}`);

      const kept = hand.map((s) => {
        const order = Array.from(s.keys()).sort((a, b) => s[b] - s[a] || a - b);
        return order.slice(0, Math.round(0.8 * s.length)).sort((a, b) => a - b);
      });
      const pruned = sliceMlpChannels(model, kept);
      const out = path.join(tmp, family);
      await saveModel(out, pruned, null, { format: "hf" });
      const written = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
      const original = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
      assert.deepEqual(written, { ...original, intermediate_size: kept[0].length }, "config.json written back as read, only the width changed");
      // byte for byte: transformers 5 refuses an int where its config class declares a float (10 for 10.0)
      const originalText = fs.readFileSync(path.join(dir, "config.json"), "utf8");
      assert.equal(fs.readFileSync(path.join(out, "config.json"), "utf8"), originalText.replace(/"intermediate_size": \d+/, `"intermediate_size": ${kept[0].length}`));
      const back = await loadModel(out);
      try {
        assert.deepEqual(strip(back.model.config), strip(pruned.config));
        const ids = ref.logits.input_ids;
        const d = tf.tidy(() => tf.max(tf.abs(tf.sub(back.model.forward(ids), pruned.forward(ids)))).dataSync()[0]);
        assert.ok(d <= 1e-5, `reloaded vs in-memory pruned: max |Δlogit| ${d}`);
      } finally {
        for (const m of [model, pruned, back.model]) m.dispose();
      }
      assert.equal(tf.memory().numTensors, before, "tensors left behind");
    });
  }

  for (const family of FAMILIES) {
    it(`${family}: config.t4.json (transformers 4 layout) parses to the same model as config.json (transformers 5)`, () => {
      const t5 = JSON.parse(fs.readFileSync(path.join(ROOT, family, "config.json"), "utf8"));
      const t4 = JSON.parse(fs.readFileSync(path.join(ROOT, family, "config.t4.json"), "utf8"));
      assert.deepEqual(strip(parseConfig(t4)), strip(parseConfig(t5)));
    });
  }
});
