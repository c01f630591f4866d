import { ModelFiles, WriteModelOptions, readModelFiles, writeModelFiles } from "../io/files";
import type { TextTokenizer } from "../types";
import { CausalLM, type WeightStorage } from "./causal-lm";

/**
 * Model files ↔ CausalLM. The host tensors are handed to the model (converted to its internal layout once) and
 * then dropped, so a loaded model holds one copy of its weights.
 */
export async function loadModel(path: string, storage: WeightStorage = {}): Promise<{ model: CausalLM; tokenizer: TextTokenizer | null; files: Omit<ModelFiles, "tensors"> }> {
  const f = await readModelFiles(path);
  const model = CausalLM.fromTensors(f.config, f.tensors, f.path, storage);
  const { tensors: _dropped, ...files } = f;
  void _dropped;
  return { model, tokenizer: f.tokenizer, files };
}

export async function saveModel(dir: string, model: CausalLM, tokenizer: TextTokenizer | null, opts: WriteModelOptions): Promise<string[]> {
  return writeModelFiles(dir, { config: model.config, tensors: model.toTensors({ lazy: true }), tokenizer }, opts);
}
