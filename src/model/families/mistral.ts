import { COMMON, used, type Family } from "../family";
import { decoderLayer, decoderLayerVjp } from "./llama";

/**
 * Mistral 7B (modeling_mistral): Llama's layer without biases. With `sliding_window` W every layer is a
 * sliding_attention layer (config.ts sets layer_types), whose query at position i attends to keys
 * i−W < j ≤ i; the mask is the model's, so the layer is Llama's, unchanged.
 */
export const mistral: Family = {
  architecture: "MistralForCausalLM",
  fields: {
    ...COMMON,
    head_dim: used,
    sliding_window: used,
  },
  configJson: (c) => ({ sliding_window: c.sliding_window }),
  decoderLayer,
  decoderLayerVjp,
};
