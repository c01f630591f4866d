import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine, type BackendName } from "../src/engine";
import { accumulate } from "../src/importance";
import { CausalLM } from "../src/model/causal-lm";
import { loadModel, saveModel } from "../src/model/load";
import { randomTensors } from "../src/model/random";
import { TeacherCache } from "../src/teacher";
import { FAMILY_CONFIGS, randomIds, relError } from "./reference/configs";
import { referenceGreedy, referenceLogits } from "./reference/llama-ref";
import { sliceMlpChannels } from "./support/slice";

/**
 * The families beyond plain Llama (Qwen2 biases, Qwen3 q/k norms + attention_bias, Llama attention_bias,
 * Mistral, Phi-3, Gemma 3) on random weights: logits against the float64 reference,
 * the hand-written backward's Taylor scores against autograd, and prune → save HF → reload.
 */
const backends: BackendName[] = ["cpu", "wasm"];

for (const backend of backends) {
  describe(`model families on random weights (${backend})`, function () {
    this.timeout(120_000);
    let tmp: string;
    before(async () => {
      await initEngine(backend);
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-fam-"));
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    for (const [name, config] of Object.entries(FAMILY_CONFIGS)) {
      it(`${name}: logits equal the float64 reference; sd-taylor hand-written backward equals autograd; prune → HF → reload`, async () => {
        const before = tf.memory().numTensors;
        const tensors = randomTensors(config, 5, 0.3);
        const model = CausalLM.fromTensors(config, tensors);
        const ids = [randomIds(12, config.vocab_size, 1), randomIds(12, config.vocab_size, 2)];
        const got = model.forward(ids);
        const data = got.dataSync();
        got.dispose();
        const V = config.vocab_size;
        ids.forEach((seq, b) => {
          const ref = referenceLogits(config, tensors, seq).flatMap((r) => Array.from(r));
          const e = relError(data.subarray(b * 12 * V, (b + 1) * 12 * V), ref);
          assert.ok(e.rel <= 1e-4, `${name} sequence ${b}: rel ${e.rel}`);
        });

        const teacher = await TeacherCache.build(model, ids, { topk: "full" });
        const opts = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.5 };
        const hand = (await accumulate(model, ids, teacher, null, { ...opts, path: "layerwise" })).scores();
        const auto = (await accumulate(model, ids, teacher, null, { ...opts, path: "straightforward" })).scores();
        const e = relError(hand.flatMap((r) => Array.from(r)), auto.flatMap((r) => Array.from(r)));
        assert.ok(e.rel <= 1e-4, `${name}: hand-written vs autograd scores rel ${e.rel}`);
        // a top-k teacher (sparse targets; Gemma's softcap takes the dense head-loss path with them)
        const topk = await TeacherCache.build(model, ids, { topk: 4 });
        const handK = (await accumulate(model, ids, topk, null, { ...opts, path: "layerwise" })).scores();
        const autoK = (await accumulate(model, ids, topk, null, { ...opts, path: "straightforward" })).scores();
        const eK = relError(handK.flatMap((r) => Array.from(r)), autoK.flatMap((r) => Array.from(r)));
        assert.ok(eK.rel <= 1e-4, `${name}: top-k teacher, hand-written vs autograd scores rel ${eK.rel}`);

        // keep the top 80% of each layer's channels by score
        const kept = hand.map((s) => {
          const order = Array.from(s.keys()).sort((a, b) => s[b] - s[a] || a - b);
          return order.slice(0, Math.ceil(0.8 * s.length)).sort((a, b) => a - b);
        });
        const pruned = sliceMlpChannels(model, kept);
        const dir = path.join(tmp, `${name}-${backend}`);
        await saveModel(dir, pruned, null, { format: "hf" });
        const saved = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
        assert.equal(saved.model_type, config.model_type);
        const back = await loadModel(dir);
        assert.deepEqual({ ...back.model.config, original: null }, { ...pruned.config, original: null });
        const d = tf.tidy(() => tf.max(tf.abs(tf.sub(back.model.forward(ids), pruned.forward(ids)))).dataSync()[0]);
        assert.ok(d <= 1e-5, `${name}: reloaded vs in-memory pruned max |Δlogit| ${d}`);
        for (const m of [model, pruned, back.model]) m.dispose();
        assert.equal(tf.memory().numTensors, before, "tensors left behind");
      });
    }

    for (const name of ["mistral", "gemma3"]) {
      it(`${name}: sliding windows hold past the window in the forward and in cached generation`, () => {
        const config = FAMILY_CONFIGS[name];
        const tensors = randomTensors(config, 2, 0.3);
        const model = CausalLM.fromTensors(config, tensors);
        try {
          const ids = randomIds(config.sliding_window! + 9, config.vocab_size, 4);
          const got = model.forward([ids]);
          const e = relError(got.dataSync(), referenceLogits(config, tensors, ids).flatMap((r) => Array.from(r)));
          got.dispose();
          assert.ok(e.rel <= 1e-4, `rel ${e.rel}`);
          const prompt = ids.slice(0, 3);
          assert.deepEqual(model.generate(prompt, { maxNewTokens: config.sliding_window! + 4, stopAtEos: false }), referenceGreedy(config, tensors, prompt, config.sliding_window! + 4));
        } finally {
          model.dispose();
        }
      });
    }
  });
}
