import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ensureBuilt } from "./support/build";
// `sdm` runs the built binary. Every process picks the same backend (the best that loads, or SDMPRUNE_BACKEND), so saved and reloaded
// models are compared on one backend.
import { type CliResult, spawnCli as sdm } from "./support/cli";
import { writeLlamaCppGemma3 } from "./support/gemma3-llamacpp";

/**
 * Every model family through the real binary (`node bin/sdmprune.js`, which runs dist/), the way a user would:
 * info → scores → prune → ppl → save (convert to HF, and to GGUF where llama.cpp runs the family), on the
 * trained tiny fixtures of test/fixtures/families/. The text is each fixture's held-out perplexity text, so the
 * dense perplexity the CLI prints must be transformers' own (reference.json, same protocol).
 */
const FIXTURES = path.join(__dirname, "fixtures", "families");
const FAMILIES: [family: string, modelType: string, gguf: boolean][] = [
  // Gemma 3 in the shape llama.cpp computes (built from the fixture in before(); test/support/gemma3-llamacpp.ts)
  ["gemma3-llamacpp", "gemma3_text", true],
  ["llama", "llama", true],
  ["mistral", "mistral", true],
  ["qwen2", "qwen2", true],
  ["qwen3", "qwen3", true],
  ["phi3", "phi3", true],
  ["gemma3", "gemma3_text", false],
];

interface Reference {
  perplexity: { text: string; seq_len: number; ppl: number };
}

function ok(r: CliResult, what: string): string {
  assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.out}\n${r.err}`);
  return r.out;
}

const RATIO = 0.25;

describe("CLI end to end on every model family (node bin/sdmprune.js, test/fixtures/families)", function () {
  this.timeout(300_000);
  let tmp: string;
  before(function () {
    this.timeout(600_000);
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-cli-families-"));
    writeLlamaCppGemma3(path.join(tmp, "fixtures", "gemma3-llamacpp"));
    fs.copyFileSync(path.join(FIXTURES, "gemma3", "reference.json"), path.join(tmp, "fixtures", "gemma3-llamacpp", "reference.json"));
  });
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

  for (const [family, modelType, gguf] of FAMILIES) {
    it(`${family}: info → scores → prune ${RATIO} → ppl → recover → every criterion → save HF${gguf ? " and GGUF" : ""}; the saved model reloads to the pruned perplexity`, () => {
      const model = family === "gemma3-llamacpp" ? path.join(tmp, "fixtures", family) : path.join(FIXTURES, family);
      const fromTransformers = family !== "gemma3-llamacpp"; // the built model has no transformers reference
      const ref = JSON.parse(fs.readFileSync(path.join(model, "reference.json"), "utf8")) as Reference;
      const work = path.join(tmp, family);
      fs.mkdirSync(work);
      const text = path.join(work, "heldout.txt");
      fs.writeFileSync(text, ref.perplexity.text);
      const seqLen = String(ref.perplexity.seq_len);

      const info = ok(sdm("info", "--model", model), "info");
      assert.match(info, new RegExp(`^model_type:\\s+${modelType}\\b`, "m"));
      const config = JSON.parse(fs.readFileSync(path.join(model, "config.json"), "utf8")) as { num_hidden_layers: number; intermediate_size: number };
      assert.match(info, new RegExp(`^layers:\\s+${config.num_hidden_layers}$`, "m"));

      // Dense perplexity: transformers' number on the same text and windows.
      const dense = JSON.parse(ok(sdm("ppl", "--model", model, "--text", text, "--seq-len", seqLen, "--json"), "ppl dense")) as { ppl: number };
      if (fromTransformers) assert.ok(Math.abs(dense.ppl - ref.perplexity.ppl) <= 1e-4 * ref.perplexity.ppl, `dense ppl ${dense.ppl} vs transformers ${ref.perplexity.ppl}`);

      const scoresFile = path.join(work, "scores.json");
      ok(sdm("scores", "--model", model, "--text", text, "--samples", "4", "--seq-len", "32", "--seed", "0", "--criterion", "sd-taylor", "--out", scoresFile), "scores");
      const scores = JSON.parse(fs.readFileSync(scoresFile, "utf8")) as { criterion: string; samples: number; scores: number[][] };
      assert.equal(scores.criterion, "sd-taylor");
      assert.equal(scores.samples, 4);
      assert.deepEqual(scores.scores.map((s) => s.length), Array(config.num_hidden_layers).fill(config.intermediate_size));
      assert.ok(scores.scores.flat().every((v) => Number.isFinite(v) && v >= 0) && scores.scores.flat().some((v) => v > 0), "scores finite, non-negative, not all zero");

      const pruned = path.join(work, "pruned");
      const p = ok(sdm("prune", "--model", model, "--scores", scoresFile, "--ratio", String(RATIO), "--out", pruned), "prune");
      const keep = Math.floor(config.intermediate_size * (1 - RATIO) + 1e-9);
      assert.ok(p.includes(`widths after: ${Array(config.num_hidden_layers).fill(keep).join(", ")}`), p);
      // The kept channels are each layer's top-K by the scores file.
      const record = JSON.parse(fs.readFileSync(path.join(pruned, "pruning.json"), "utf8")) as { keptChannels: number[][] };
      scores.scores.forEach((s, l) => {
        const top = s
          .map((v, i) => [v, i] as const)
          .sort((a, b) => b[0] - a[0] || a[1] - b[1])
          .slice(0, keep)
          .map(([, i]) => i)
          .sort((a, b) => a - b);
        assert.deepEqual(record.keptChannels[l], top, `layer ${l} kept channels`);
      });
      const prunedConfig = JSON.parse(fs.readFileSync(path.join(pruned, "config.json"), "utf8")) as { model_type: string; intermediate_size: number };
      assert.equal(prunedConfig.model_type, modelType);
      assert.equal(prunedConfig.intermediate_size, keep);

      const after = JSON.parse(ok(sdm("ppl", "--model", pruned, "--text", text, "--seq-len", seqLen, "--json"), "ppl pruned")) as { ppl: number };
      assert.ok(Number.isFinite(after.ppl) && after.ppl > 1 && after.ppl !== dense.ppl, `pruned ppl ${after.ppl}`);
      console.log(`      ${family}: ppl@${seqLen} dense ${dense.ppl.toFixed(4)}${fromTransformers ? ` (transformers ${ref.perplexity.ppl.toFixed(4)})` : ""} → pruned ${after.ppl.toFixed(4)}`);

      // Recovery (LoRA) on the evaluation text itself: a few steps must lower that text's perplexity.
      const recovered = path.join(work, "recovered");
      ok(sdm("recover", "--model", pruned, "--data", text, "--steps", "4", "--seq-len", "32", "--batch", "4", "--lr", "1e-3", "--out", recovered), "recover");
      const rec = JSON.parse(ok(sdm("ppl", "--model", recovered, "--text", text, "--seq-len", seqLen, "--json"), "ppl recovered")) as { ppl: number };
      assert.ok(rec.ppl < after.ppl, `recovered ppl ${rec.ppl} vs pruned ${after.ppl}`);
      console.log(`      ${family}: after 4 LoRA steps on that text ${rec.ppl.toFixed(4)}`);

      // Every other criterion scores this family (shapes; sd-taylor's values are checked in families.test.ts).
      for (const criterion of ["ce-taylor", "llm-pruner", "llm-pruner-vector", "magnitude", "wanda", "random"]) {
        const f = path.join(work, `scores-${criterion}.json`);
        ok(sdm("scores", "--model", model, "--text", text, "--samples", "2", "--seq-len", "32", "--criterion", criterion, "--out", f), `scores ${criterion}`);
        const sc = (JSON.parse(fs.readFileSync(f, "utf8")) as { scores: number[][] }).scores;
        assert.deepEqual(sc.map((x) => x.length), Array(config.num_hidden_layers).fill(config.intermediate_size), criterion);
        assert.ok(sc.flat().every(Number.isFinite), `${criterion}: finite scores`);
      }

      // Save: HF (re-saved) and GGUF; each reloads to the pruned model's perplexity.
      const formats = gguf ? ["hf", "gguf"] : ["hf"];
      for (const format of formats) {
        const out = path.join(work, `saved-${format}`);
        ok(sdm("convert", "--model", pruned, "--out", out, "--format", format), `convert --format ${format}`);
        const saved = format === "gguf" ? path.join(out, "model.gguf") : out;
        const again = JSON.parse(ok(sdm("ppl", "--model", saved, "--text", text, "--seq-len", seqLen, "--json"), `ppl ${format}`)) as { ppl: number };
        assert.ok(Math.abs(again.ppl - after.ppl) <= 1e-5 * after.ppl, `${format}: reloaded ppl ${again.ppl} vs pruned ${after.ppl}`);
        if (format === "gguf") {
          // and back from GGUF to HF (the config rebuilt from GGUF metadata)
          const hf = path.join(work, "from-gguf-hf");
          ok(sdm("convert", "--model", saved, "--out", hf, "--format", "hf"), "convert gguf → hf");
          const back = JSON.parse(ok(sdm("ppl", "--model", hf, "--text", text, "--seq-len", seqLen, "--json"), "ppl gguf → hf")) as { ppl: number };
          assert.ok(Math.abs(back.ppl - after.ppl) <= 1e-5 * after.ppl, `gguf → hf: ppl ${back.ppl} vs pruned ${after.ppl}`);
          // Mistral is written as llama.cpp's llama arch and reads back as llama (the same computation)
          assert.equal((JSON.parse(fs.readFileSync(path.join(hf, "config.json"), "utf8")) as { model_type: string }).model_type, modelType === "mistral" ? "llama" : modelType);
        }
      }
    });
  }

  it("gemma3: GGUF export of a config llama.cpp would run differently is refused, naming the field", () => {
    const work = path.join(tmp, "gemma3-refused");
    const r = sdm("convert", "--model", path.join(FIXTURES, "gemma3"), "--out", work, "--format", "gguf");
    assert.equal(r.code, 2, `${r.out}\n${r.err}`);
    assert.match(r.err, /GGUF export: query_pre_attn_scalar 24 \(llama\.cpp.s gemma3 would compute a different model/);
    assert.ok(!fs.existsSync(work), "nothing written");
  });
});
