import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { initEngine } from "../src/engine";
import { ensureBuilt } from "./support/build";
import { requireTmux, tmuxPane } from "./support/tmux";
import { pplFromText } from "../src/eval/perplexity";
import { intermediateSizes } from "../src/model/config";
import { loadModel } from "../src/model/load";

/**
 * The REPL on non-llama families: the real binary (`node bin/sdmprune.js repl`) in a tmux pane, driven as in
 * test/repl-e2e.test.ts, on the trained Gemma 3 and Qwen2 fixtures (test/fixtures/families/; no shared data):
 * load → calibrate on the fixture's held-out text → score sd-taylor → prune → eval ppl → save → exit, then the
 * saved directory is loaded by the library and gives the perplexity the REPL showed. The dense perplexity the REPL
 * shows is transformers' (reference.json, same protocol).
 */
const ROOT = path.resolve(__dirname, "..");
const FIXTURES = path.join(__dirname, "fixtures", "families");
const SESSION = `sdmprune-fam-${process.pid}`;
const { tmux, visible, waitFor, send, run } = tmuxPane(SESSION);

describe("repl on non-llama families under tmux (test/fixtures/families)", function () {
  this.timeout(600000);
  let tmp: string;

  before(async function () {
    await initEngine();
    requireTmux(this);
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-repl-fam-"));
  });
  afterEach(() => spawnSync("tmux", ["kill-session", "-t", SESSION]));
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

  for (const [family, modelType] of [["gemma3", "gemma3_text"], ["qwen2", "qwen2"]]) {
    it(`${family}: load, calibrate, score, prune, eval ppl, save; the saved model has the widths and perplexity shown`, async () => {
      const model = path.join(FIXTURES, family);
      const ref = JSON.parse(fs.readFileSync(path.join(model, "reference.json"), "utf8")) as { perplexity: { text: string; seq_len: number; ppl: number } };
      const text = path.join(tmp, `${family}.txt`);
      fs.writeFileSync(text, ref.perplexity.text);
      const outDir = path.join(tmp, `${family}-pruned`);
      const config = path.join(tmp, `${family}-config`);
      const seqLen = ref.perplexity.seq_len;
      const cmd = `cd ${JSON.stringify(ROOT)} && env XDG_CONFIG_HOME=${JSON.stringify(config)} node bin/sdmprune.js repl; echo "REPL-EXITED-$?"; sleep 600`;
      tmux("new-session", "-d", "-s", SESSION, "-x", "100", "-y", "40", cmd);
      await waitFor((s) => /^sdmprune>/m.test(s), "first prompt", 60000, visible);

      const raw = JSON.parse(fs.readFileSync(path.join(model, "config.json"), "utf8")) as { num_hidden_layers: number; intermediate_size: number };
      const original: number[] = Array(raw.num_hidden_layers).fill(raw.intermediate_size);
      let s = await run(`load ${model}`, "MLP widths original");
      assert.ok(s.includes(`MLP widths original        ${original.join(", ")}`), `load shows the widths:\n${s}`);
      s = await run("info", "model_type");
      assert.match(s, new RegExp(`model_type\\s+${modelType}\\b`), s);

      s = await run(`eval ppl ${text} --seq-len ${seqLen}`, `ppl@${seqLen}`);
      const dense = Number(new RegExp(`ppl@${seqLen}\\s+([\\d.]+)`).exec(s)![1]);
      assert.ok(Math.abs(dense - ref.perplexity.ppl) <= 1e-3 * ref.perplexity.ppl, `dense ppl shown ${dense} vs transformers ${ref.perplexity.ppl}`);

      s = await run(`calibrate --text ${text} --samples 4 --seq-len 32`, "teacher seconds");
      assert.match(s, /windows\s+4\n/);
      s = await run("score sd-taylor", "Importance scores");
      assert.match(s, /samples \(total\)\s+4\n/);
      s = await run("prune 0.25", "Pruning step 1");
      const expected = original.map((w) => Math.floor(w * 0.75 + 1e-9));
      assert.ok(s.includes(`widths after: ${expected.join(", ")}`), `prune shows the new widths:\n${s}`);
      s = await run(`eval ppl ${text} --seq-len ${seqLen}`, `ppl@${seqLen}`);
      const pruned = Number(new RegExp(`ppl@${seqLen}\\s+([\\d.]+)`).exec(s)![1]);
      assert.ok(pruned > 1 && pruned !== dense, `pruned ppl shown ${pruned}`);
      console.log(`      ${family}: REPL ppl@${seqLen} dense ${dense} (transformers ${ref.perplexity.ppl.toFixed(4)}) → pruned ${pruned}`);
      s = await run(`save ${outDir}`, "saved");
      assert.ok(s.includes(path.join(outDir, "config.json")), s);
      await send("exit");
      await waitFor((v) => v.includes("REPL-EXITED-0"), "exit", 30000, visible);

      const saved = await loadModel(outDir);
      try {
        assert.equal(saved.model.config.model_type, modelType);
        assert.deepEqual(intermediateSizes(saved.model.config), expected);
        const r = await pplFromText((seqs) => saved.model.tokenLogProbs(seqs), saved.tokenizer!, ref.perplexity.text, seqLen);
        assert.ok(Math.abs(r.ppl - pruned) <= 1e-3 * pruned, `saved model ppl ${r.ppl} vs shown ${pruned}`);
      } finally {
        saved.model.dispose();
      }
      const record = JSON.parse(fs.readFileSync(path.join(outDir, "pruning.json"), "utf8")) as { keptChannels: number[][] };
      assert.deepEqual(record.keptChannels.map((k) => k.length), expected);
    });
  }
});
