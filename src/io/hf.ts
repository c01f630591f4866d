import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, FormatError, ioError } from "../errors";
import { type ModelConfig, parseConfig } from "../model/config";
import { FAMILIES } from "../model/registry";
import { patchJsonText } from "./config-text";
import { readSafetensorsDir, writeSafetensors } from "./safetensors";
import { TensorMap } from "./tensors";
import { HfTokenizer, readTokenizerDir } from "./tokenizer";
import type { TextTokenizer } from "../types";
import { parseJsonText } from "./json";

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
  let text: string;
  try {
    text = fs.readFileSync(cfgFile, "utf8");
  } catch (err) {
    throw ioError(err, cfgFile, "read");
  }
  const raw = parseJsonText(text, cfgFile) as Record<string, unknown>;
  const config = parseConfig(raw, cfgFile, { requireModelType: true, originalText: text });
  const read = readSafetensorsDir(dir);
  const files = read.files;
  // a family's on-disk names → the shared layout (Phi-3 fuses q/k/v and gate/up)
  const fromDisk = FAMILIES[config.model_type].fromDisk;
  const tensors = fromDisk ? fromDisk(config, read.tensors, dir) : read.tensors;
  // transformers ignores a saved lm_head when the head is tied; so do we.
  if (config.tie_word_embeddings) tensors.delete("lm_head.weight");
  const eos = Array.isArray(config.eos_token_id) ? config.eos_token_id[0] : config.eos_token_id;
  const tokenizer = readTokenizerDir(dir, { bosTokenId: config.bos_token_id, eosTokenId: eos });
  return { config, rawConfig: raw, tensors, tokenizer, files: [cfgFile, ...files] };
}

/**
 * config.json for `c`. A config read from a config.json is written back as it was read (same layout, same
 * fields, transformers 4 or 5) with only `intermediate_size` and the stored dtype changed; one built in
 * code or from GGUF metadata is written in the transformers 4 layout, which transformers 5 also reads.
 */
export function hfConfigJson(c: ModelConfig, dtype: "f32" | "f16"): Record<string, unknown> {
  const widths = Array.isArray(c.intermediate_size) ? c.intermediate_size.slice() : c.intermediate_size;
  const torchDtype = dtype === "f16" ? "float16" : "float32";
  if (c.original) return JSON.parse(hfConfigText(c, dtype)) as Record<string, unknown>;
  const out: Record<string, unknown> = {
    architectures: [FAMILIES[c.model_type].architecture],
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
  // the family's own fields (an undefined value removes a field its transformers config does not have)
  for (const [k, v] of Object.entries(FAMILIES[c.model_type].configJson(c))) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** config.json text for `c`: the text it was read from with the widths and dtype patched in, or hfConfigJson. */
export function hfConfigText(c: ModelConfig, dtype: "f32" | "f16"): string {
  if (!c.original) return JSON.stringify(hfConfigJson(c, dtype), null, 2) + "\n";
  const widths = Array.isArray(c.intermediate_size) ? c.intermediate_size.slice() : c.intermediate_size;
  const raw = JSON.parse(c.original) as Record<string, unknown>;
  const dtypeKey = "dtype" in raw ? "dtype" : "torch_dtype";
  return patchJsonText(c.original, { intermediate_size: widths, [dtypeKey]: dtype === "f16" ? "float16" : "float32" }, "config.json");
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
  put("config.json", hfConfigText(config, dtype));
  const toDisk = FAMILIES[config.model_type].toDisk;
  writeSafetensors(path.join(dir, "model.safetensors"), toDisk ? toDisk(config, tensors) : tensors, dtype, { format: "pt" });
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
          add_bos_token: t ? t.addsBos : tokenizer.bosTokenId !== null, // as the source tokenizer adds it (Qwen adds none)
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
