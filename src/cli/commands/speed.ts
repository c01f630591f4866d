import { UsageError } from "../../errors";
import { compareSpeed } from "../../speed";
import type { Command } from "../command";
import { JSON_FLAG, MODEL_FLAG, enumFlag, flagHelp, intFlag, parseFlags, requireFlags, str } from "../flags";

const FLAGS = {
  model: { ...MODEL_FLAG.model, arg: "FILE", help: "the (pruned) .gguf model" },
  baseline: str("FILE", "the original .gguf model to compare with (measured first)"),
  prefill: str("N", "prompt tokens (default 256)"),
  decode: str("N", "generated tokens (default 64)"),
  repeats: str("N", "timed passes (default 3)"),
  threads: str("N", "CPU threads (default: llama.cpp's math cores; on a busy machine or a tiny model use 1:\nllama.cpp's threads spin while waiting for each other)"),
  gpu: str("cpu|auto", "cpu (default) or let llama.cpp use a GPU it finds"),
  ...JSON_FLAG,
} as const;

const USAGE = `Usage: sdmprune speed --model PRUNED.gguf [--baseline ORIGINAL.gguf] [--prefill N] [--decode N]
                      [--repeats N] [--threads N] [--gpu cpu|auto] [--json]

Run GGUF models in llama.cpp (through the optional npm package node-llama-cpp, whose prebuilt binaries
ship inside npm packages) and print load time, prefill and decode tokens per second and memory; with
--baseline, both models side by side and the ratio pruned / baseline. llama.cpp needs one MLP width for
every layer: prune with --ratio, --keep or --target (uniform allocation), save with --format gguf.

Protocol: load, one untimed warm-up pass, then --repeats timed passes (median reported) of
  prefill: --prefill prompt tokens evaluated in one batch into an empty context;
  decode:  --decode tokens evaluated one forward pass each after a 16-token prompt (the fixed prompt
           text's next tokens, so both models do identical work; no sampler in the timing).

${flagHelp(FLAGS, 18)}`;

export const speedCommand: Command = {
  name: "speed",
  summary: "measured llama.cpp speed of GGUF models (prefill/decode tokens/s, load, memory), before/after",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, USAGE);
    requireFlags(values, ["model"], USAGE);
    if (values.baseline === "") throw new UsageError("--baseline is empty");
    const t = await compareSpeed(values.model, values.baseline, {
      prefill: intFlag("prefill", values.prefill, 1),
      decode: intFlag("decode", values.decode, 1),
      repeats: intFlag("repeats", values.repeats, 1),
      threads: intFlag("threads", values.threads, 1),
      gpu: enumFlag("gpu", values.gpu, ["cpu", "auto"] as const),
    });
    process.stdout.write(values.json ? JSON.stringify(t.raw) + "\n" : `${t.toText()}\n`);
    return 0;
  },
};
