import { parseArgs } from "node:util";
import { UsageError } from "../../errors";
import { initEngine } from "../../engine";
import { loadModel } from "../../model/load";
import { readModelConfig } from "../../io/files";
import { checkModelLoad } from "../../resources";
import type { Command } from "../command";
import { backendFlag, intFlag, numFlag, requireFlags } from "../flags";

const USAGE = `Usage: sdmprune generate --model PATH --prompt TEXT [--max-new-tokens N] [--temperature T] [--seed S]
                         [--backend NAME]

Continue a prompt and print prompt + continuation.
  --model PATH          .gguf file or Hugging Face model directory (with a tokenizer)
  --prompt TEXT         the prompt (BOS is prepended)
  --max-new-tokens N    tokens to generate (default 64)
  --temperature T       0 (default) = greedy; > 0 samples
  --seed S              sampling seed (default 0)
  --backend NAME        tensorflow | webgpu | wasm | cpu (default: best that loads, or SDMPRUNE_BACKEND)`;

export const generateCommand: Command = {
  name: "generate",
  summary: "generate text from a prompt (greedy or sampled)",
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        prompt: { type: "string" },
        "max-new-tokens": { type: "string", default: "64" },
        temperature: { type: "string", default: "0" },
        seed: { type: "string", default: "0" },
        backend: { type: "string" },
      },
      strict: true,
    });
    // An empty prompt is allowed: generation then starts from BOS alone.
    requireFlags(values, values.prompt === "" ? ["model"] : ["model", "prompt"], USAGE);
    const maxNewTokens = intFlag("max-new-tokens", values["max-new-tokens"], 0)!;
    const temperature = numFlag("temperature", values.temperature, 0)!;
    const seed = intFlag("seed", values.seed, 0)!;
    const backend = await initEngine(backendFlag(values.backend));
    checkModelLoad(readModelConfig(values.model), backend, values.model);
    const { model, tokenizer } = await loadModel(values.model);
    try {
      if (!tokenizer) throw new UsageError(`${values.model}: the model has no tokenizer (tokenizer.json or GGUF vocabulary); cannot encode the prompt`);
      process.stderr.write(`backend: ${backend}\n`);
      const prompt = tokenizer.encode(values.prompt);
      const out = model.generate(prompt, { maxNewTokens, temperature, seed });
      process.stdout.write(tokenizer.decode([...prompt, ...out], { skipSpecialTokens: true }) + "\n");
    } finally {
      model.dispose();
    }
    return 0;
  },
};
