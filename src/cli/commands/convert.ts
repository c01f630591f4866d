import { parseArgs } from "node:util";
import { initEngine } from "../../engine";
import { padMlpWidths } from "../../io/gguf-llama";
import { intermediateSizes } from "../../model/config";
import { readModelFiles, writeModelFiles } from "../../io/files";
import { checkOutputDir } from "../../io/atomic";
import { PROVENANCE_FILE, provenanceFile, readLineage } from "../../provenance";
import type { Command } from "../command";
import { backendFlag, enumFlag, requireFlags } from "../flags";

const USAGE = `Usage: sdmprune convert --model PATH --out DIR --format hf|gguf [--dtype f32|f16] [--pad-mlp] [--force]

Convert between GGUF and Hugging Face formats (either direction, or re-save in the same format).
  --model PATH    .gguf file or Hugging Face model directory
  --out DIR       output directory (hf: config.json, model.safetensors, tokenizer files; gguf: DIR/model.gguf)
  --format F      hf or gguf
  --dtype D       f32 (default) or f16
  --pad-mlp       pad per-layer MLP widths to the widest with zero channels (same outputs), for both formats, so
                  llama.cpp and stock transformers, which need one width for all layers, load a non-uniformly
                  pruned model
  --force         replace DIR if it holds only an earlier sdmprune output (listed in its .sdmprune-manifest.json);
                  a folder with any other file is refused
  --backend NAME  tensorflow | webgpu | wasm | cpu: accepted like everywhere; converting copies tensors without
                  computing, so the backend only has to load
The output is written to a temporary directory beside DIR and renamed into place, so a failure leaves no partial output.`;

export const convertCommand: Command = {
  name: "convert",
  summary: "convert a model between GGUF and Hugging Face safetensors",
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        out: { type: "string" },
        format: { type: "string" },
        dtype: { type: "string", default: "f32" },
        force: { type: "boolean", default: false },
        "pad-mlp": { type: "boolean", default: false },
        backend: { type: "string" },
      },
      strict: true,
    });
    requireFlags(values, ["model", "out", "format"], USAGE);
    const format = enumFlag("format", values.format, ["hf", "gguf"] as const)!;
    const dtype = enumFlag("dtype", values.dtype, ["f32", "f16"] as const)!;
    checkOutputDir(values.out!, values.force ?? false);
    if (values.backend !== undefined) await initEngine(backendFlag(values.backend));
    const f = await readModelFiles(values.model);
    // Padded here for both formats (the GGUF writer alone used to honour --pad-mlp).
    const source = values["pad-mlp"] ? { ...f, ...padMlpWidths(f.config, f.tensors) } : f;
    const written = await writeModelFiles(values.out, source, {
      format,
      dtype,
      force: values.force,
      // the chain back to the original model travels with every copy
      extraFiles: { [PROVENANCE_FILE]: provenanceFile(values.out, { kind: "convert", record: { from: f.path, fromFormat: f.format, format, dtype, padMlp: values["pad-mlp"], intermediate_sizes: intermediateSizes(source.config) } }, readLineage(values.model)) },
    });
    process.stdout.write(`converted ${f.path} (${f.format}) → ${format} ${dtype}\n${written.map((w) => `  ${w}`).join("\n")}\n`);
    return 0;
  },
};
