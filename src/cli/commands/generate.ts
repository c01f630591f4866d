import { UsageError } from "../../errors";
import { initEngine } from "../../engine";
import { loadModel } from "../../model/load";
import { readModelConfig } from "../../io/files";
import { checkModelLoad } from "../../resources";
import type { Command } from "../command";
import { BACKEND_FLAG, MODEL_FLAG, backendFlag, flagHelp, intFlag, numFlag, parseFlags, requireFlags, str } from "../flags";

const FLAGS = {
  model: { ...MODEL_FLAG.model, help: `${MODEL_FLAG.model.help} (with a tokenizer)` },
  prompt: str("TEXT", "the prompt (BOS is prepended)"),
  "max-new-tokens": str("N", "tokens to generate (default 64)", "64"),
  temperature: str("T", "0 (default) = greedy; > 0 samples", "0"),
  seed: str("S", "sampling seed (default 0)", "0"),
  ...BACKEND_FLAG,
} as const;

const USAGE = `Usage: sdmprune generate --model PATH --prompt TEXT [--max-new-tokens N] [--temperature T] [--seed S]
                         [--backend NAME]

Continue a prompt and print prompt + continuation.
${flagHelp(FLAGS, 22)}`;

export const generateCommand: Command = {
  name: "generate",
  summary: "generate text from a prompt (greedy or sampled)",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, USAGE);
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
      // BOS as Session.generate and the REPL prepend it, whatever the tokenizer's own default
      const prompt = tokenizer.encode(values.prompt, { addBos: true });
      const out = model.generate(prompt, { maxNewTokens, temperature, seed });
      process.stdout.write(tokenizer.decode([...prompt, ...out], { skipSpecialTokens: true }) + "\n");
    } finally {
      model.dispose();
    }
    return 0;
  },
};
