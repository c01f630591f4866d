import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { UsageError } from "../../errors";
import { CRITERIA } from "../../importance";
import { criterionNeeds, Session, type CalibrateOptions } from "../../session";
import { checkOutputFile } from "../../io/atomic";
import type { Command } from "../command";
import { backendFlag, criterionFlag, intFlag, numFlag, requireFlags, topkFlag } from "../flags";
import { interruptSignal, stderrProgress } from "../progress";

/** Flags shared by `scores` and `prune` for drawing calibration windows. */
export const CALIBRATION_FLAGS = {
  windows: { type: "string" },
  text: { type: "string" },
  stories: { type: "string" },
  samples: { type: "string" },
  "seq-len": { type: "string" },
  seed: { type: "string" },
  topk: { type: "string" },
  "allow-longer": { type: "boolean" },
  "skip-memory-check": { type: "boolean" },
} as const;

export const CALIBRATION_USAGE = `Calibration (give --windows or --text):
  --windows FILE.json  token windows {"windows": [[ids]...]} (e.g. written by a previous run)
  --text FILE          text file; TinyStories dumps are split into stories, one window per story
  --stories A-B        with --text: 1-based inclusive story range, e.g. 1-200
  --samples N          windows to draw (default 32)
  --seq-len L          tokens per window (default 128)
  --seed S             seed of the window draw (default 0)
  --topk K|full        teacher cache entries per position (default: full for vocab <= 4096, else 64; clamped
                       to the vocabulary)
  --allow-longer       accept --seq-len above the model's context (max_position_embeddings); refused otherwise
  --skip-memory-check  run even when the estimated memory exceeds what is available: host memory for the
                       windows and teacher cache (windows × seq len × teacher top-k) and the model, and on
                       the wasm backend its 4 GiB heap (weights + one pass); refused otherwise, with the
                       figures and what would fit`;

/** Calibration options from flags; null when neither --windows nor --text is given. */
export function calibrationFromFlags(values: Record<string, string | boolean | undefined>): CalibrateOptions | null {
  const windows = values.windows as string | undefined;
  const text = values.text as string | undefined;
  if (windows !== undefined && text !== undefined) throw new UsageError("give --windows or --text, not both");
  if (windows === undefined && text === undefined) {
    for (const f of ["stories", "samples", "seq-len", "seed"]) if (values[f] !== undefined) throw new UsageError(`--${f} needs --text FILE`);
    return null;
  }
  const common = {
    topk: topkFlag(values.topk as string | undefined),
    allowLonger: values["allow-longer"] === true,
    skipMemoryCheck: values["skip-memory-check"] === true,
  };
  if (windows !== undefined) {
    for (const f of ["stories", "seq-len", "seed"]) if (values[f] !== undefined) throw new UsageError(`--${f} applies to --text, not --windows`);
    return { windows, samples: intFlag("samples", values.samples as string | undefined, 1), ...common };
  }
  return {
    files: text as string,
    stories: values.stories as string | undefined,
    samples: intFlag("samples", values.samples as string | undefined, 1),
    seqLen: intFlag("seq-len", values["seq-len"] as string | undefined, 2),
    seed: intFlag("seed", values.seed as string | undefined, 0),
    ...common,
  };
}

const USAGE = `Usage: sdmprune scores --model PATH (--windows FILE.json | --text FILE --samples N --seq-len L --seed S)
                       --criterion NAME [--alpha A --temperature T] [--topk K|full] --out FILE.json

Accumulate MLP channel importance over calibration windows and write
{"criterion", "samples", "settings", "scores": number[layer][channel], "sums", "modelFingerprint", ...}.
Files from runs on different windows (same model, criterion and settings) can be merged (Session.mergeScores).

  --model PATH         .gguf file or Hugging Face model directory
  --criterion NAME     ${CRITERIA.join(" | ")} (default sd-taylor)
  --alpha A            sd-taylor KD weight (default 0.4)
  --temperature T      sd-taylor teacher temperature (default 0.2)
  --out FILE.json      output file (written atomically)
  --save-windows FILE  also write the calibration windows
  --backend NAME       tensorflow | wasm | cpu
${CALIBRATION_USAGE}`;

export const scoresCommand: Command = {
  name: "scores",
  summary: "compute importance scores of MLP channels (sd-taylor, ce-taylor, llm-pruner, wanda, ...)",
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        criterion: { type: "string" },
        alpha: { type: "string" },
        temperature: { type: "string" },
        out: { type: "string" },
        "save-windows": { type: "string" },
        backend: { type: "string" },
        ...CALIBRATION_FLAGS,
      },
      strict: true,
    });
    requireFlags(values, ["model", "out"], USAGE);
    const criterion = criterionFlag(values.criterion) ?? "sd-taylor";
    const alpha = numFlag("alpha", values.alpha);
    const temperature = numFlag("temperature", values.temperature);
    if (criterion !== "sd-taylor" && (alpha !== undefined || temperature !== undefined)) throw new UsageError("--alpha/--temperature apply to --criterion sd-taylor only");
    const cal = calibrationFromFlags(values);
    const needs = criterionNeeds(criterion, alpha);
    if (!cal && needs.windows) throw new UsageError(`criterion ${criterion} needs calibration data: give --windows FILE.json or --text FILE\n\n${USAGE}`);
    checkOutputFile(values.out);

    const session = await Session.load(values.model, { backend: backendFlag(values.backend), skipMemoryCheck: values["skip-memory-check"] === true });
    const progress = stderrProgress();
    const intr = interruptSignal();
    const run = { onProgress: progress.onProgress, signal: intr.signal };
    try {
      if (cal) {
        await session.calibrate({ ...cal, ...run, teacher: needs.teacher });
        if (values["save-windows"]) await session.saveWindows(values["save-windows"]);
      }
      const r = await session.score({ criterion, alpha, temperature, seed: cal?.seed, ...run });
      progress.end();
      await session.saveScores(values.out);
      process.stdout.write(`${r.table().toText()}\nwrote ${values.out} (${fs.statSync(values.out).size} bytes)\n`);
      return 0;
    } finally {
      progress.end();
      intr.release();
      session.dispose();
    }
  },
};
