import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { zeroAblate } from "../src/model/hooks";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { TINY_CONFIGS, randomIds } from "./reference/configs";

for (const backend of ["cpu", "wasm"] as const) {
  describe(`tensor memory (${backend})`, () => {
    before(async () => {
      await initEngine(backend);
    });

    for (const name of ["gqa+llama3+tied", "mqa+untied+head_dim16+per-layer-I"]) {
      it(`forward, gradients, generate and tokenLogProbs leave no tensors behind: ${name}`, () => {
        const config = TINY_CONFIGS[name];
        const before = tf.memory().numTensors;
        const model = CausalLM.fromTensors(config, randomTensors(config, 1, 0.2));
        const ids = [randomIds(8, 40, 1), randomIds(8, 40, 2)];
        const ce = (logits: tf.Tensor3D): tf.Scalar => tf.mean(tf.logSoftmax(logits).max(-1)) as tf.Scalar;
        const work = (): void => {
          tf.dispose(model.forward(ids));
          tf.dispose(model.forward(ids, { hooks: { "layers.0.attn.out": zeroAblate, "layers.0.mlp.act": () => undefined } }));
          const g = model.gradients(ids, ce, (n) => /mlp|embed_tokens/.test(n));
          tf.dispose([...g.grads.values()]);
          model.generate([1, 2, 3], { maxNewTokens: 5, stopAtEos: false });
          model.generate([1, 2, 3], { maxNewTokens: 5, temperature: 1, topK: 3, stopAtEos: false });
          model.tokenLogProbs([ids[0], ids[1].slice(0, 5), [4]]);
          tf.dispose(tf.tidy(() => model.head(model.layer(0, model.embed(tf.tensor2d([ids[0]], [1, 8], "int32")), 1, 8))));
        };
        // the first pass builds the model's cached constants (RoPE tables, masks, transposed tied head)
        work();
        const warm = tf.memory().numTensors;
        work();
        work();
        assert.equal(tf.memory().numTensors, warm, "tensors leaked by a repeated pass");
        model.dispose();
        assert.equal(tf.memory().numTensors, before, "tensors left after dispose()");
      });
    }
  });
}
