import { backendInfo, initEngine } from "../../engine";
import { readModelFiles } from "../../io/files";
import { intermediateSizes, paramCounts } from "../../model/config";
import { familyNotes } from "../../report";
import { describeWeightsIn, formatBytes, weightBytes } from "../../resources";
import type { Command } from "../command";
import { BACKEND_FLAG, MODEL_FLAG, backendFlag, flagHelp, parseFlags, requireFlags } from "../flags";

const FLAGS = { ...MODEL_FLAG, ...BACKEND_FLAG } as const;

const USAGE = `Usage: sdmprune info --model PATH [--backend NAME]

Show a model's configuration, parameter counts (total, embeddings, attention, MLP) and the tensor backend.
PATH is a .gguf file or a Hugging Face model directory (config.json + safetensors + tokenizer.json).
${flagHelp(FLAGS, 17)}`;

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

export const infoCommand: Command = {
  name: "info",
  summary: "show a model's config, parameter counts and the tensor backend",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, USAGE);
    requireFlags(values, ["model"], USAGE);
    await initEngine(backendFlag(values.backend));
    const backend = backendInfo().summary;
    const f = await readModelFiles(values.model);
    const c = f.config;
    const p = paramCounts(c);
    const sizes = intermediateSizes(c);
    const uniform = sizes.every((s) => s === sizes[0]);
    const pct = (n: number) => `${((100 * n) / p.total).toFixed(1)}%`;
    const lines = [
      `model:        ${f.path} (${f.format})`,
      `backend:      ${backend}`,
      `model_type:   ${c.model_type}${familyNotes(c) ? ` (${familyNotes(c)})` : ""}`,
      `hidden_size:  ${c.hidden_size}`,
      `layers:       ${c.num_hidden_layers}`,
      `heads:        ${c.num_attention_heads} (kv ${c.num_key_value_heads}, head_dim ${c.head_dim})`,
      `intermediate: ${uniform ? sizes[0] : `per layer [${sizes.join(", ")}]`}`,
      `vocab_size:   ${c.vocab_size}`,
      `tied head:    ${c.tie_word_embeddings ? "yes" : "no"}`,
      `rope_theta:   ${c.rope_theta}${c.rope_scaling ? ` (scaling ${c.rope_scaling.rope_type})` : ""}${c.rope_local_theta !== null ? `; sliding layers ${c.rope_local_theta}` : ""}`,
      `rms_norm_eps: ${c.rms_norm_eps}`,
      `context:      ${c.max_position_embeddings}`,
      `bos/eos:      ${c.bos_token_id} / ${JSON.stringify(c.eos_token_id)}`,
      `tokenizer:    ${f.tokenizer ? `${f.tokenizer.vocabSize} tokens` : "none"}`,
      `parameters:   ${fmt(p.total)} total`,
      `  embeddings: ${fmt(p.embeddings)} (${pct(p.embeddings)})`,
      ...(p.lm_head ? [`  lm_head:    ${fmt(p.lm_head)} (${pct(p.lm_head)})`] : []),
      `  attention:  ${fmt(p.attention)} (${pct(p.attention)})`,
      `  mlp:        ${fmt(p.mlp)} (${pct(p.mlp)})`,
      `  norms:      ${fmt(p.norms)} (${pct(p.norms)})`,
    ];
    lines.push(`weights:      ${formatBytes(weightBytes(c))} as float32; ${describeWeightsIn(c, backendInfo().name)}`);
    if (typeof f.metadata["sdmprune.warning"] === "string") lines.push(`warning:      ${f.metadata["sdmprune.warning"]}`);
    process.stdout.write(lines.join("\n") + "\n");
    return 0;
  },
};
