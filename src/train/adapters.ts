import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors";
import { writeDirAtomic } from "../io/atomic";
import { readSafetensors, writeSafetensors } from "../io/safetensors";
import type { CausalLM } from "../model/causal-lm";
import { LoraAdapters, resolveLoraConfig, type LoraConfig } from "./lora";
import type { Projection } from "../model/causal-lm";
import { readJsonFile } from "../io/json";

/**
 * LoRA adapters on disk in PEFT's layout, so PEFT users recognise them: a directory with
 * `adapter_model.safetensors` (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight` [r, in],
 * `...lora_B.weight` [out, r]) and `adapter_config.json`.
 */
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
export const ADAPTER_CONFIG = "adapter_config.json";

export function adapterConfigJson(cfg: LoraConfig, baseModel: string | null): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: cfg.r,
    lora_alpha: cfg.alpha,
    lora_dropout: cfg.dropout,
    target_modules: cfg.targets.slice(),
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    use_rslora: false,
    use_dora: false,
    revision: null,
  };
}

/** Write the adapters to `dir` (temp dir + rename; an existing non-empty dir needs `force`). */
export async function saveAdapters(dir: string, adapters: LoraAdapters, opts: { baseModel?: string | null; force?: boolean } = {}): Promise<string[]> {
  const files = [ADAPTER_WEIGHTS, ADAPTER_CONFIG];
  await writeDirAtomic(dir, opts.force ?? false, async (tmp) => {
    writeSafetensors(path.join(tmp, ADAPTER_WEIGHTS), adapters.toPeft(), "f32", { format: "pt" });
    fs.writeFileSync(path.join(tmp, ADAPTER_CONFIG), JSON.stringify(adapterConfigJson(adapters.config, opts.baseModel ?? null), null, 2) + "\n");
  });
  return files.map((f) => path.join(dir, f));
}

/** Read adapters saved by saveAdapters (or by PEFT, for the same architecture) and bind them to `model`. */
export function loadAdapters(dir: string, model: CausalLM): LoraAdapters {
  const cfgFile = path.join(dir, ADAPTER_CONFIG);
  const wFile = path.join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(cfgFile)) throw new FormatError(`${dir}: no ${ADAPTER_CONFIG} (not a LoRA adapter directory)`);
  if (!fs.existsSync(wFile)) throw new FormatError(`${dir}: no ${ADAPTER_WEIGHTS}`);
  const raw = readJsonFile(cfgFile) as Record<string, unknown>;
  if (raw.peft_type !== undefined && raw.peft_type !== "LORA") throw new FormatError(`${cfgFile}: peft_type must be "LORA", got ${JSON.stringify(raw.peft_type)}`);
  if (raw.use_dora === true || raw.use_rslora === true) throw new FormatError(`${cfgFile}: DoRA / rsLoRA adapters are not supported`);
  if (raw.bias !== undefined && raw.bias !== "none") throw new FormatError(`${cfgFile}: bias must be "none", got ${JSON.stringify(raw.bias)}`);
  const targets = raw.target_modules;
  if (!Array.isArray(targets)) throw new FormatError(`${cfgFile}: target_modules must be a list of projection names`);
  const cfg = resolveLoraConfig({
    r: raw.r as number,
    alpha: raw.lora_alpha as number,
    dropout: (raw.lora_dropout as number | undefined) ?? 0,
    targets: targets as Projection[],
  });
  return LoraAdapters.fromPeft(model, cfg, readSafetensors(wFile), wFile);
}
