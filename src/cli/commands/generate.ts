import { parseArgs } from "node:util";
import { UsageError } from "../../errors";
import { initEngine } from "../../engine";
import { loadModel } from "../../model/load";
import type { Command } from "../command";

const USAGE = `Usage: sdmprune generate --model PATH --prompt TEXT [--max-new-tokens N] [--temperature T] [--seed S]

Continue a prompt and print prompt + continuation.
  --model PATH          .gguf file or Hugging Face model directory (with a tokenizer)
  --prompt TEXT         the prompt (BOS is prepended)
  --max-new-tokens N    tokens to generate (default 64)
  --temperature T       0 (default) = greedy; > 0 samples
  --seed S              sampling seed (default 0)`;

function num(v: string, flag: string, integer: boolean): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < 0) {
    throw new UsageError(`${flag} must be a non-negative ${integer ? "integer" : "number"}, got "${v}"`);
  }
  return n;
}

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
      },
      strict: true,
    });
    if (!values.model || values.prompt === undefined) throw new UsageError(`--model and --prompt are required\n\n${USAGE}`);
    const maxNewTokens = num(values["max-new-tokens"]!, "--max-new-tokens", true);
    const temperature = num(values.temperature!, "--temperature", false);
    const seed = num(values.seed!, "--seed", true);
    const backend = await initEngine();
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
