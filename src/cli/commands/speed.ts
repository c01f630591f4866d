import { parseArgs } from "node:util";
import { UsageError } from "../../errors";
import { compareSpeed } from "../../speed";
import type { Command } from "../command";
import { enumFlag, intFlag, requireFlags } from "../flags";

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

  --model FILE      the (pruned) .gguf model
  --baseline FILE   the original .gguf model to compare with (measured first)
  --prefill N       prompt tokens (default 256)
  --decode N        generated tokens (default 64)
  --repeats N       timed passes (default 3)
  --threads N       CPU threads (default: llama.cpp's math cores; on a busy machine or a tiny model use 1:
                    llama.cpp's threads spin while waiting for each other)
  --gpu cpu|auto    cpu (default) or let llama.cpp use a GPU it finds
  --json            print one JSON object`;

export const speedCommand: Command = {
  name: "speed",
  summary: "measured llama.cpp speed of GGUF models (prefill/decode tokens/s, load, memory), before/after",
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        baseline: { type: "string" },
        prefill: { type: "string" },
        decode: { type: "string" },
        repeats: { type: "string" },
        threads: { type: "string" },
        gpu: { type: "string" },
        json: { type: "boolean", default: false },
      },
      strict: true,
    });
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
