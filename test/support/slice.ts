import * as tf from "@tensorflow/tfjs";
import type { CausalLM } from "../../src/model/causal-lm";

/**
 * A copy of `model` keeping only MLP channels `kept[l]` of each layer, sliced by hand (internal layout:
 * gate/up columns, down rows) so tests check the library's pruning and fingerprints against an independent cut.
 */
export function sliceMlpChannels(model: CausalLM, kept: number[][]): CausalLM {
  const w = model.weights;
  return model.withWeights({
    embed_tokens: tf.clone(w.embed_tokens),
    norm: tf.clone(w.norm),
    lm_head: w.lm_head ? tf.clone(w.lm_head) : null,
    layers: w.layers.map((lw, l) => {
      const idx = tf.tensor1d(kept[l], "int32");
      // every tensor of the layer (biases and q/k norms included) is kept; only the MLP is cut
      const out = Object.fromEntries(Object.entries(lw).map(([k, t]) => [k, tf.clone(t as tf.Tensor)])) as unknown as typeof lw;
      tf.dispose([out.gate_proj, out.up_proj, out.down_proj]);
      out.gate_proj = tf.gather(lw.gate_proj, idx, 1) as tf.Tensor2D;
      out.up_proj = tf.gather(lw.up_proj, idx, 1) as tf.Tensor2D;
      out.down_proj = tf.gather(lw.down_proj, idx, 0) as tf.Tensor2D;
      idx.dispose();
      return out;
    }),
  });
}
