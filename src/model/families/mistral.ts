import { COMMON, used, type Family } from "../family";

/**
 * Mistral 7B (modeling_mistral): Llama's layer without biases; with `sliding_window` W every layer's query
 * at position i attends to keys i−W < j ≤ i.
 */
export const mistral: Family = {
  architecture: "MistralForCausalLM",
  fields: {
    ...COMMON,
    head_dim: used,
    sliding_window: used,
  },
  configJson: (c) => ({ sliding_window: c.sliding_window }),
};
