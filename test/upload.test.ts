import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initEngine, type BackendName } from "../src/engine";
import { ownedData, uploadedOnPush } from "../src/engine/upload";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { TINY_CONFIGS } from "./reference/configs";

/** Whether the native backend loads here (the benchmarks' bench/.tfjs-node through NODE_PATH, or an install). */
async function nativeLoads(): Promise<boolean> {
  try {
    await initEngine("tensorflow");
    return true;
  } catch {
    return false;
  }
}

/** tfjs-node's record of a tensor: `values` is the JavaScript array it still holds (null once in TensorFlow). */
function nativeValues(t: tf.Tensor): unknown {
  const map = (tf.backend() as unknown as { tensorMap: { get(id: object): { values: unknown } } }).tensorMap;
  return map.get(t.dataId).values;
}

describe("weights handed to the backend as they are built (src/engine/upload.ts)", () => {
  const backends: BackendName[] = ["cpu", "wasm", "tensorflow"];
  for (const backend of backends) {
    it(`${backend}: ownedData is a copy the caller may change; a model loaded and saved through them keeps its values`, async function () {
      if (backend === "tensorflow" && !(await nativeLoads())) {
        // the native backend installs only where npm can download libtensorflow (not in an offline CI)
        console.warn("\n  !!! SKIPPING: @tensorflow/tfjs-node does not load here (bash bench/setup-tensorflow.sh, then NODE_PATH=bench/.tfjs-node/node_modules) !!!\n");
        this.skip();
      }
      await initEngine(backend);
      const before = tf.memory().numTensors;
      const t = tf.tensor1d([1, 2, 3], "float32");
      const list = uploadedOnPush();
      list.push(t);
      assert.equal(list.length, 1);
      assert.equal(list[0], t);
      if (backend === "tensorflow") assert.equal(nativeValues(t), null, "the JavaScript values were not handed to TensorFlow");
      const d = ownedData(t);
      d[0] = 99;
      assert.deepEqual(Array.from(t.dataSync()), [1, 2, 3]);
      t.dispose();

      // the model's own load and save paths: values survive the upload and come back unchanged
      const config = Object.values(TINY_CONFIGS)[0];
      const tensors = randomTensors(config, 5, 0.2);
      const model = CausalLM.fromTensors(config, tensors, "tiny");
      try {
        if (backend === "tensorflow") assert.equal(nativeValues(model.weights.embed_tokens), null);
        const back = model.toTensors({ lazy: true });
        for (const [name, src] of tensors) {
          if (!back.has(name)) continue;
          assert.deepEqual(Array.from(back.get(name)!.data), Array.from(src.data), name);
        }
      } finally {
        model.dispose();
      }
      assert.equal(tf.memory().numTensors, before);
    });
  }
});
