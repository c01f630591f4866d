import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, FormatError } from "../errors";
import { type ModelConfig, type ModelType, parseConfig } from "../model/config";
import { fusePhi3, splitPhi3 } from "../model/families/phi3";
import { readSafetensorsDir, writeSafetensors } from "./safetensors";
import { TensorMap } from "./tensors";
import { HfTokenizer, readTokenizerDir } from "./tokenizer";
import type { TextTokenizer } from "../types";

/**
 * Hugging Face checkpoint directories: config.json + model.safetensors (or shards with an index) + tokenizer.json.
 *
 * config.json written here: `intermediate_size` is a number when all layers have the same width, so stock
 * `LlamaForCausalLM.from_pretrained` loads SDMPrune output (uniform K); when widths differ (per-layer pruning) it
 * is a per-layer list, which sdmprune reads but stock transformers does not (it needs a patched LlamaMLP).
 * No generation_config.json is written (decoding settings are not part of the model).
 */

export interface HfRead {
  config: ModelConfig;
  rawConfig: Record<string, unknown>;
  tensors: TensorMap;
  tokenizer: HfTokenizer | null;
  files: string[];
}

export function readHfDir(dir: string): HfRead {
  const cfgFile = path.join(dir, "config.json");
  if (!fs.existsSync(cfgFile)) throw new FormatError(`${dir}: no config.json (expected a Hugging Face model directory or a .gguf file)`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
  } catch (err) {
    throw new FormatError(`${cfgFile}: not valid JSON: ${(err as Error).message}`);
  }
  const config = parseConfig(raw, cfgFile, { requireModelType: true, keepOriginal: true });
  const read = readSafetensorsDir(dir);
  const files = read.files;
  // a family's on-disk names → the shared layout (Phi-3 fuses q/k/v and gate/up)
  const tensors = config.model_type === "phi3" ? splitPhi3(config, read.tensors, dir) : read.tensors;
  // transformers ignores a saved lm_head when the head is tied; so do we.
  if (config.tie_word_embeddings) tensors.delete("lm_head.weight");
  const eos = Array.isArray(config.eos_token_id) ? config.eos_token_id[0] : config.eos_token_id;
  const tokenizer = readTokenizerDir(dir, { bosTokenId: config.bos_token_id, eosTokenId: eos });
  return { config, rawConfig: raw, tensors, tokenizer, files: [cfgFile, ...files] };
}

const ARCHITECTURES: Record<ModelType, string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
  phi3: "Phi3ForCausalLM",
  gemma3_text: "Gemma3ForCausalLM",
};

/**
 * config.json for `c`. A config read from a config.json is written back as it was read (same layout, same
 * fields, transformers 4 or 5) with only `intermediate_size` and the stored dtype changed; one built in
 * code or from GGUF metadata is written in the transformers 4 layout, which transformers 5 also reads.
 */
export function hfConfigJson(c: ModelConfig, dtype: "f32" | "f16"): Record<string, unknown> {
  const widths = Array.isArray(c.intermediate_size) ? c.intermediate_size.slice() : c.intermediate_size;
  const torchDtype = dtype === "f16" ? "float16" : "float32";
  if (c.original) {
    const out: Record<string, unknown> = { ...structuredClone(c.original), intermediate_size: widths };
    if ("dtype" in out) out.dtype = torchDtype;
    else out.torch_dtype = torchDtype;
    return out;
  }
  const out: Record<string, unknown> = {
    architectures: [ARCHITECTURES[c.model_type]],
    model_type: c.model_type,
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    intermediate_size: widths,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    head_dim: c.head_dim,
    hidden_act: "silu",
    rms_norm_eps: c.rms_norm_eps,
    rope_theta: c.rope_theta,
    rope_scaling: c.rope_scaling,
    tie_word_embeddings: c.tie_word_embeddings,
    max_position_embeddings: c.max_position_embeddings,
    bos_token_id: c.bos_token_id,
    eos_token_id: c.eos_token_id,
    torch_dtype: torchDtype,
  };
  if (c.model_type === "llama") Object.assign(out, { attention_bias: c.o_bias, mlp_bias: false });
  if (c.model_type === "qwen3") out.attention_bias = c.o_bias;
  if (c.model_type === "mistral" || c.model_type === "phi3") out.sliding_window = c.sliding_window;
  if (c.model_type === "qwen2") {
    delete out.head_dim; // Qwen2Config has none: transformers derives it from hidden_size / heads
    out.use_sliding_window = false;
  }
  if (c.model_type === "qwen2" || c.model_type === "qwen3") out.use_sliding_window = false;
  if (c.model_type === "gemma3_text") {
    delete out.hidden_act;
    Object.assign(out, {
      hidden_activation: c.hidden_act,
      attention_bias: c.o_bias,
      query_pre_attn_scalar: c.query_pre_attn_scalar,
      sliding_window: c.sliding_window,
      layer_types: c.layer_types.slice(),
      rope_local_base_freq: c.rope_local_theta,
      final_logit_softcapping: c.final_logit_softcapping,
      attn_logit_softcapping: null,
    });
  }
  return out;
}

/** Fill `dir` (an empty temporary directory; the caller renames it into place). Returns the files written. */
export function writeHfDir(dir: string, config: ModelConfig, tensors: TensorMap, tokenizer: TextTokenizer | null, dtype: "f32" | "f16"): string[] {
  if (config.tie_word_embeddings && tensors.has("lm_head.weight")) {
    throw new ConfigError(`HF writer: config says tie_word_embeddings but tensors include lm_head.weight`);
  }
  const written: string[] = [];
  const put = (name: string, content: string) => {
    fs.writeFileSync(path.join(dir, name), content);
    written.push(name);
  };
  put("config.json", JSON.stringify(hfConfigJson(config, dtype), null, 2) + "\n");
  writeSafetensors(path.join(dir, "model.safetensors"), config.model_type === "phi3" ? fusePhi3(config, tensors) : tensors, dtype, { format: "pt" });
  written.push("model.safetensors");
  if (tokenizer) {
    const json = tokenizer.toJSON();
    put("tokenizer.json", JSON.stringify(json));
    const model = (json as { model?: { unk_token?: string } }).model;
    const t = tokenizer instanceof HfTokenizer ? tokenizer : null;
    const name = (id: number | null) => (id === null ? null : t ? (t as HfTokenizer).idToToken(id) : null);
    put(
      "tokenizer_config.json",
      JSON.stringify(
        {
          tokenizer_class: "PreTrainedTokenizerFast",
          bos_token: name(tokenizer.bosTokenId),
          eos_token: name(tokenizer.eosTokenId),
          unk_token: model?.unk_token ?? null,
          add_bos_token: tokenizer.bosTokenId !== null,
          add_eos_token: false,
          clean_up_tokenization_spaces: false,
          model_max_length: config.max_position_embeddings,
        },
        null,
        2,
      ) + "\n",
    );
  }
  return written;
}
