import type { Family } from "./family";
import { gemma3 } from "./families/gemma3";
import { llama } from "./families/llama";
import { mistral } from "./families/mistral";
import { phi3 } from "./families/phi3";
import { qwen2 } from "./families/qwen2";
import { qwen3 } from "./families/qwen3";

/** config.json `model_type` → family. Adding a family: its file in families/ and a line here. */
export const FAMILIES = {
  llama,
  mistral,
  qwen2,
  qwen3,
  phi3,
  gemma3_text: gemma3,
} satisfies Record<string, Family>;

export type ModelType = keyof typeof FAMILIES;
export const MODEL_TYPES = Object.keys(FAMILIES) as ModelType[];
