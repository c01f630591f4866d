import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initEngine, type BackendName } from "../src/engine";
import { accumulate } from "../src/importance";
import { parseConfig } from "../src/model/config";
import { layerActivationFloats, CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { TeacherCache } from "../src/teacher";
import { randomIds, relError } from "./reference/configs";

/**
 * The memory-saving (layerwise) sd-taylor path against the straightforward one (one taped loss, every MLP
 * gradient alive at once), on each backend that loads: same scores (≤ 1e-4 relative), and a peak of live
 * tensor bytes (tf.profile, deterministic) below what holding all MLP gradients alone would take.
 * Eight layers with a wide MLP so that all gradients dominate the activations.
 */
const cfg = parseConfig({
  vocab_size: 64,
  hidden_size: 64,
  intermediate_size: 256,
  num_hidden_layers: 8,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
});

const backends: BackendName[] = ["cpu", "wasm"];
if (process.env.SDMPRUNE_BACKEND === "tensorflow") backends.push("tensorflow");

for (const backend of backends) {
  describe(`sd-taylor memory-saving path vs straightforward (${backend})`, function () {
    this.timeout(120_000);
    const windows = [1, 2].map((s) => randomIds(8, cfg.vocab_size, s));
    let model: CausalLM;
    let teacher: TeacherCache;

    before(async () => {
      await initEngine(backend);
      model = CausalLM.fromTensors(cfg, randomTensors(cfg, 7, 0.3));
      teacher = await TeacherCache.build(model, windows, { topk: "full" });
    });
    after(() => model.dispose());

    it("gives the same scores (≤ 1e-4 relative) with a lower tensor-memory peak than all MLP gradients", async () => {
      const opts = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.2 };
      const run = async (path: "layerwise" | "straightforward") => {
        let scores: number[][] = [];
        const base = tf.memory().numBytes;
        const info = await tf.profile(async () => {
          const acc = await accumulate(model, windows, teacher, null, { ...opts, path });
          scores = acc.scores().map((r) => Array.from(r));
          return [];
        });
        return { scores, extra: info.peakBytes - base };
      };
      const lw = await run("layerwise");
      const sf = await run("straightforward");
      const e = relError(lw.scores.flat(), sf.scores.flat());
      assert.ok(e.rel <= 1e-4, `layerwise vs straightforward: rel ${e.rel}`);
      const allGradBytes = 4 * 3 * cfg.hidden_size * (cfg.intermediate_size as number) * cfg.num_hidden_layers;
      console.log(`      rel ${e.rel.toExponential(2)}; peak above weights: layerwise ${lw.extra} B, straightforward ${sf.extra} B, all MLP gradients ${allGradBytes} B`);
      assert.ok(lw.extra < allGradBytes, `layerwise peak above the weights: ${lw.extra} B, all MLP gradients: ${allGradBytes} B`);
      assert.ok(lw.extra < sf.extra, `layerwise peak ${lw.extra} B not below straightforward ${sf.extra} B`);
    });

    it("agrees with a top-k teacher, an untied head and recomputed layers (sparse loss targets, keepActivationsMiB 0 and partial)", async () => {
      const ucfg = parseConfig({ ...cfg, num_hidden_layers: 3, layer_types: null, tie_word_embeddings: false, num_key_value_heads: 1 });
      const before = tf.memory().numTensors;
      const um = CausalLM.fromTensors(ucfg, randomTensors(ucfg, 11, 0.3));
      try {
        const tk = await TeacherCache.build(um, windows, { topk: 4 });
        const opts = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.5 };
        const run = async (extra: object) => (await accumulate(um, windows, tk, null, { ...opts, ...extra })).scores().flat();
        const ref = await run({ path: "straightforward" });
        const perLayerMiB = (4 * layerActivationFloats(ucfg, 0, windows[0].length)) / 2 ** 20;
        for (const keep of [0, 1.5 * perLayerMiB, 64]) {
          const e = relError(await run({ keepActivationsMiB: keep }), ref);
          console.log(`      keepActivationsMiB ${keep.toPrecision(3)}: rel ${e.rel.toExponential(2)}`);
          assert.ok(e.rel <= 1e-4, `keepActivationsMiB ${keep}: rel ${e.rel}`);
        }
      } finally {
        um.dispose();
      }
      assert.equal(tf.memory().numTensors, before, "tensors left behind");
    });
  });
}
