import { initEngine } from "../../engine";
import { padMlpWidths } from "../../io/gguf-llama";
import { intermediateSizes } from "../../model/config";
import { readModelFiles, writeModelFiles } from "../../io/files";
import { checkOutputDir } from "../../io/atomic";
import { PROVENANCE_FILE, provenanceFile, readLineage } from "../../provenance";
import type { Command } from "../command";
import { BACKEND_FLAG, MODEL_FLAG, OUTPUT_FLAGS, backendFlag, enumFlag, flagHelp, parseFlags, requireFlags } from "../flags";

const FLAGS = {
  ...MODEL_FLAG,
  ...OUTPUT_FLAGS,
  backend: { ...BACKEND_FLAG.backend, help: "tensorflow | webgpu | wasm | cpu: accepted like everywhere; converting copies tensors without\ncomputing, so the backend only has to load" },
} as const;

const USAGE = `Usage: sdmprune convert --model PATH --out DIR --format hf|gguf [--dtype f32|f16] [--pad-mlp] [--force]

Convert between GGUF and Hugging Face formats (either direction, or re-save in the same format).
${flagHelp(FLAGS, 16)}`;

export const convertCommand: Command = {
  name: "convert",
  summary: "convert a model between GGUF and Hugging Face safetensors",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, USAGE);
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
