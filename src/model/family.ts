import type * as tf from "@tensorflow/tfjs";
import type { TensorMap } from "../io/tensors";
import type { LayerVjpContext } from "./backward";
import type { LayerContext } from "./blocks";
import type { ModelConfig, RopeScaling } from "./config";

/**
 * A model family: one file in families/ plus a line in registry.ts. It holds the decoder layer as math
 * (composed from blocks.ts) and its backward (composed from backward.ts), the family's constants, its
 * config.json contract, the transformers class and how its weights are named on disk. The model
 * (causal-lm.ts) owns weights, positions, caches and the head, and calls the family per layer.
 */
export interface Family {
  /** transformers class written into `architectures` of a config built in code. */
  architecture: string;
  /** Every config.json field the family's transformers config class knows: used, ignored (why) or refused. */
  fields: Record<string, FieldRole>;
  /** On-disk tensors → the shared layout (q/k/v_proj, gate/up/down_proj), e.g. Phi-3 splits fused matrices. */
  fromDisk?(c: ModelConfig, tensors: TensorMap, source: string): TensorMap;
  /** The inverse of fromDisk, for writing. */
  toDisk?(c: ModelConfig, tensors: TensorMap): TensorMap;
  /** Family fields of a config.json written from a config built in code or from GGUF (transformers 4 layout). */
  configJson(c: ModelConfig): Record<string, unknown>;

  /** One decoder layer: the residual stream h [B·T, H] → h′ [B·T, H]. */
  decoderLayer(L: LayerContext, h: tf.Tensor2D): tf.Tensor2D;
  /**
   * Its backward from the activations decoderLayer saved: ∂L/∂h′ → ∂L/∂h (null when V.inputGrad is false),
   * the MLP weight gradients going to V.onGrads.
   */
  decoderLayerVjp(V: LayerVjpContext, dOut: tf.Tensor2D): tf.Tensor2D | null;
  /** RMSNorm multiplies by (1 + w) instead of w. Default false. */
  normOnePlus?: boolean;
  /** Attention scores are q·kᵀ times this. Default 1/sqrt(head_dim). */
  attentionScale?(c: ModelConfig): number;
  /** Layer l's RoPE base and scaling when it is not the config's rope_theta / rope_scaling. Default: never. */
  layerRope?(c: ModelConfig, l: number): { rope_theta: number; rope_scaling: RopeScaling | null } | null;
  /** logits = c·tanh(logits / c) with this c. Default: none. */
  logitSoftcap?(c: ModelConfig): number | null;
  /** Factor the token embeddings are multiplied by (Gemma: sqrt(hidden_size), rounded to float32); default 1. */
  embedScale?(c: ModelConfig): number;
}

/** What a config field does to the computed model (the contract test/config-fields.test.ts walks). */
export type FieldRole =
  | { role: "used" }
  | { role: "ignored"; why: string }
  /** Accepted only with the listed harmless values; anything else is refused. */
  | { role: "refused-unless"; allowed: readonly unknown[]; why: string };

export const used: FieldRole = { role: "used" };
export const ign = (why: string): FieldRole => ({ role: "ignored", why });
export const only = (allowed: readonly unknown[], why: string): FieldRole => ({ role: "refused-unless", allowed, why });

/** Fields every PretrainedConfig may carry. */
export const COMMON: Record<string, FieldRole> = {
  model_type: used,
  architectures: used,
  vocab_size: used,
  hidden_size: used,
  intermediate_size: used,
  num_hidden_layers: used,
  num_attention_heads: used,
  num_key_value_heads: used,
  rms_norm_eps: used,
  max_position_embeddings: used,
  tie_word_embeddings: used,
  bos_token_id: used,
  eos_token_id: used,
  rope_theta: used,
  rope_scaling: used,
  rope_parameters: used,
  hidden_act: only(["silu"], "the gated MLP is computed with silu"),
  attention_dropout: only([0, 0.0], "sdmprune computes attention without dropout (also in recovery training)"),
  quantization_config: only([null], "quantized checkpoints are not read; load the float weights"),
  pruned_heads: only([null, {}], "pruned attention heads are not supported"),
  is_encoder_decoder: only([false, null], "decoder-only models only"),
  add_cross_attention: only([false, null], "decoder-only models only"),
  torch_dtype: ign("weights are computed in float32 whatever they were stored in (as transformers does with dtype=float32)"),
  dtype: ign("weights are computed in float32 whatever they were stored in (as transformers does with dtype=float32)"),
  pad_token_id: ign("padding never enters sdmprune's computations (windows have equal length)"),
  initializer_range: ign("initialisation of new weights only"),
  use_cache: ign("decoding speed only; outputs are the same"),
  transformers_version: ign("provenance"),
  _name_or_path: ign("provenance"),
  _commit_hash: ign("provenance"),
  _attn_implementation_autoset: ign("kernel choice; eager, sdpa and flash compute the same function"),
  attn_implementation: ign("kernel choice; eager, sdpa and flash compute the same function"),
  pretraining_tp: ign("transformers 4 split products into tp slices that sum to the same product"),
  output_attentions: ign("what transformers returns, not what it computes"),
  output_hidden_states: ign("what transformers returns, not what it computes"),
  return_dict: ign("what transformers returns, not what it computes"),
  torchscript: ign("export setting"),
  id2label: ign("classification heads only"),
  label2id: ign("classification heads only"),
  problem_type: ign("classification heads only"),
  tokenizer_class: ign("the tokenizer is read from tokenizer.json"),
  chunk_size_feed_forward: ign("memory setting; same outputs"),
  cache_implementation: ign("decoding cache choice; outputs are the same"),
  auto_map: ign("remote-code classes; transformers runs its built-in class for this model_type unless trust_remote_code"),
  // transformers 4 wrote generation defaults into config.json; they decode, they do not change logits
  max_length: ign("generation default"),
  min_length: ign("generation default"),
  do_sample: ign("generation default"),
  temperature: ign("generation default"),
  top_k: ign("generation default"),
  top_p: ign("generation default"),
  num_beams: ign("generation default"),
  repetition_penalty: ign("generation default"),
  length_penalty: ign("generation default"),
  no_repeat_ngram_size: ign("generation default"),
  early_stopping: ign("generation default"),
};
