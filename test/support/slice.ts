import * as tf from "@tensorflow/tfjs";
import type { LlamaModel } from "../../src/model/llama";

/**
 * A copy of `model` keeping only MLP channels `kept[l]` of each layer, sliced by hand (internal layout:
 * gate/up columns, down rows) so tests check the library's pruning and fingerprints against an independent cut.
 */
export function sliceMlpChannels(model: LlamaModel, kept: number[][]): LlamaModel {
  const w = model.weights;
  return model.withWeights({
    embed_tokens: tf.clone(w.embed_tokens),
    norm: tf.clone(w.norm),
    lm_head: w.lm_head ? tf.clone(w.lm_head) : null,
    layers: w.layers.map((lw, l) => {
      const idx = tf.tensor1d(kept[l], "int32");
      const out = {
        input_layernorm: tf.clone(lw.input_layernorm),
        post_attention_layernorm: tf.clone(lw.post_attention_layernorm),
        q_proj: tf.clone(lw.q_proj),
        k_proj: tf.clone(lw.k_proj),
        v_proj: tf.clone(lw.v_proj),
        o_proj: tf.clone(lw.o_proj),
        gate_proj: tf.gather(lw.gate_proj, idx, 1) as tf.Tensor2D,
        up_proj: tf.gather(lw.up_proj, idx, 1) as tf.Tensor2D,
        down_proj: tf.gather(lw.down_proj, idx, 0) as tf.Tensor2D,
      };
      idx.dispose();
      return out;
    }),
  });
}
