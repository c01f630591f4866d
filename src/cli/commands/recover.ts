import * as path from "node:path";
import { UsageError } from "../../errors";
import { Session } from "../../session";
import { saveAdapters } from "../../train/adapters";
import { DEFAULT_LORA } from "../../train/lora";
import { DEFAULT_RECOVERY_LR } from "../../train/recover";
import { checkOutputDir } from "../../io/atomic";
import type { Command } from "../command";
import { WEIGHTS_IN } from "../../model/weight-store";
import { ALLOW_LONGER_FLAG, BACKEND_FLAG, JSON_FLAG, MODEL_FLAG, backendFlag, bool, enumFlag, flagHelp, numFlag, parseFlags, requireFlags, str } from "../flags";
import { interruptSignal, stderrProgress } from "../progress";

const FLAGS = {
  ...MODEL_FLAG,
  model: { ...MODEL_FLAG.model, help: "pruned model (.gguf or Hugging Face directory)" },
  data: str("FILE", "training text (TinyStories dumps are split into stories; see --stories)"),
  stories: str("A-B", "1-based inclusive story range of a TinyStories dump (e.g. 200-499)"),
  steps: str("N", "optimizer steps (required, > 0)"),
  out: str("DIR", "where the merged model is written (Hugging Face directory)"),
  lr: str("X", `peak learning rate (default ${DEFAULT_RECOVERY_LR.toExponential()}; > 0)`),
  batch: str("N", "windows per micro-batch (default 4)"),
  accumulate: str("N", "micro-batches per step (default 1)"),
  "seq-len": str("N", "tokens per training window (default 128)"),
  ...ALLOW_LONGER_FLAG,
  warmup: str("N", "warm-up steps (default 0)"),
  "weight-decay": str("X", "AdamW decoupled weight decay (default 0.05)"),
  clip: str("X", "max global gradient norm (default 1; 0 = off)"),
  "lora-r": str("N", `LoRA rank (default ${DEFAULT_LORA.r})`),
  "lora-alpha": str("X", `LoRA alpha (default ${DEFAULT_LORA.alpha})`),
  "lora-dropout": str("X", `LoRA dropout (default ${DEFAULT_LORA.dropout})`),
  full: bool("full fine-tuning instead of LoRA"),
  "kd-from": str("PATH", "distil from a teacher model (usually the unpruned original): its logits on the\ntraining windows are cached once; loss = (1−α)·CE + α·KD"),
  alpha: str("A", "KD weight with --kd-from (default 0.5; 1 = pure KD)"),
  temperature: str("T", "teacher temperature (default 1)"),
  seed: str("N", "data order, LoRA init and dropout (default 0)"),
  adapters: str("DIR", "also save the LoRA adapters (PEFT layout: adapter_model.safetensors + adapter_config.json)"),
  "checkpoint-dir": str("DIR", "write checkpoints there (every --checkpoint-every steps and at the end)"),
  "checkpoint-every": str("N", "checkpoint interval in steps"),
  resume: bool("continue from --checkpoint-dir/last when present (same settings required)"),
  offload: str("heap", "where the weights live: heap (on the tensor backend; the only choice for recover, which\ntrains every weight; --offload host and disk are refused)"),
  force: bool("replace an --out / --adapters directory holding an earlier sdmprune output (only its own\nfiles, listed in .sdmprune-manifest.json; anything else is refused)"),
  ...BACKEND_FLAG,
  ...JSON_FLAG,
} as const;

/** Why recover needs the weights on the backend (LoRA and full fine-tuning are not layer-streamed). */
const RESIDENT_FOR = "recovery fine-tuning trains every weight on the tensor backend (LoRA or full; training is not layer-streamed)";

const USAGE = `Usage: sdmprune recover --model PATH --data FILE --steps N --out DIR [options]

Recovery fine-tuning after pruning: LoRA adapters (default r 8, α 16, dropout 0.05 on q,k,v,o,gate,up,down,
as SDMPrune's post-training) trained with AdamW + cosine schedule, merged into the weights for saving.

${flagHelp(FLAGS, 22)}`;

export const recoverCommand: Command = {
  name: "recover",
  summary: "recovery fine-tuning (LoRA or full, CE and/or distillation) of a pruned model",
  usage: USAGE,
  async run(argv) {
    const { values: v } = parseFlags(argv, FLAGS, USAGE);
    requireFlags(v, ["model", "data", "steps", "out"], USAGE);
    if (v.full && (v["lora-r"] || v["lora-alpha"] || v["lora-dropout"])) throw new UsageError("--full and --lora-* are mutually exclusive");
    if (!v["kd-from"] && (v.alpha !== undefined || v.temperature !== undefined)) throw new UsageError("--alpha / --temperature need --kd-from TEACHER_PATH");
    if (v.resume && !v["checkpoint-dir"]) throw new UsageError("--resume needs --checkpoint-dir DIR");
    if (v.full && v.adapters) throw new UsageError("--adapters needs LoRA (not --full)");
    checkOutputDir(v.out!, v.force ?? false);
    if (v.adapters) checkOutputDir(v.adapters, v.force ?? false);

    // recovery trains every weight, so the model is held on the backend: never streamed (refused if it does not fit)
    const weightsIn = enumFlag("offload", v.offload, WEIGHTS_IN);
    const session = await Session.load(v.model, { backend: backendFlag(v.backend), weightsIn, residentFor: RESIDENT_FOR });
    const backend = session.backend;
    const intr = interruptSignal();
    const progress = stderrProgress(!v.json || !!process.stderr.isTTY);
    try {
      // the Session resolves the data, checks the context, and with --kd-from caches the teacher's predictions
      const res = await session.recover({
        data: { file: v.data, stories: v.stories, seqLen: numFlag("seq-len", v["seq-len"]) },
        allowLonger: v["allow-longer"],
        teacher: v["kd-from"],
        steps: numFlag("steps", v.steps)!,
        lr: numFlag("lr", v.lr),
        batch: numFlag("batch", v.batch),
        accumulate: numFlag("accumulate", v.accumulate),
        warmup: numFlag("warmup", v.warmup),
        weightDecay: numFlag("weight-decay", v["weight-decay"]),
        clip: numFlag("clip", v.clip),
        lora: v.full ? null : { r: numFlag("lora-r", v["lora-r"]), alpha: numFlag("lora-alpha", v["lora-alpha"]), dropout: numFlag("lora-dropout", v["lora-dropout"]) },
        alpha: numFlag("alpha", v.alpha),
        temperature: numFlag("temperature", v.temperature),
        seed: numFlag("seed", v.seed),
        checkpointDir: v["checkpoint-dir"],
        checkpointEvery: numFlag("checkpoint-every", v["checkpoint-every"]),
        resume: v.resume,
        onProgress: progress.onProgress,
        signal: intr.signal,
      });
      const { source } = res;
      progress.end();
      try {
        // the Session writes recovery.json (this run), pruning.json and provenance.json (the chain back to the original)
        const written = await session.save(v.out!, { force: v.force });
        const adapterFiles = res.adapters && v.adapters ? await saveAdapters(v.adapters, res.adapters, { baseModel: path.resolve(v.model), force: v.force }) : [];
        if (v.json) {
          process.stdout.write(JSON.stringify({ backend, out: v.out, files: written, adapters: adapterFiles, steps: res.steps, losses: res.losses, seconds: res.seconds }) + "\n");
        } else {
          process.stdout.write(res.table().toText() + "\n");
          process.stdout.write(`data: ${source}, ${res.windows} windows × ${res.seqLen} tokens; backend ${backend}\n`);
          process.stdout.write(`wrote ${v.out}${adapterFiles.length ? ` and adapters in ${v.adapters}` : ""}\n`);
        }
      } finally {
        // the recovered model belongs to the session (disposed with it); the adapters to the caller
        res.adapters?.dispose();
      }
      return 0;
    } finally {
      progress.end();
      intr.release();
      session.dispose();
    }
  },
};
