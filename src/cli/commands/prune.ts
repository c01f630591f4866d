import * as fs from "node:fs";
import * as path from "node:path";
import { UsageError } from "../../errors";
import { paramCounts } from "../../model/config";
import { criterionNeeds, Session } from "../../session";
import { Table, type Cell } from "../../table";
import { checkOutputDir } from "../../io/atomic";
import { isAdditive } from "../../importance";
import { describeEstimate, type JobEstimate } from "../../resources";
import type { Command } from "../command";
import { BACKEND_FLAG, OFFLOAD_FLAGS, offloadFromFlags, bool, CALIBRATION_FLAGS, CRITERION_FLAG, HELDOUT_FLAGS, MODEL_FLAG, OUTPUT_FLAGS, ROUND_TO_FLAG, SD_TAYLOR_FLAGS, backendFlag, calibrationFromFlags, calibrationUsage, criterionFlag, enumFlag, flagHelp, intFlag, numFlag, parseFlags, requireFlags, str } from "../flags";
import { interruptSignal, stderrProgress, gpuMemoryLine } from "../progress";

const AMOUNT_FLAGS = {
  target: str("R", "share of ALL parameters to remove (tied embedding counted once), e.g. 0.2;\nconverted to the same K for every layer (nearest achievable share)"),
  keep: str("K", "channels to keep per layer"),
  ratio: str("R", "fraction of each layer's MLP channels to remove (K = floor(width·(1−R)))"),
  "mlp-ratio": str("M", "K = floor(hidden·M), the SDMPrune scripts' mlp_ratio"),
  ...ROUND_TO_FLAG,
} as const;

const METHOD_FLAGS = {
  "two-stage": bool(
    "the SDMPrune recipe: stage 1 ce-taylor keeping floor(0.975·width), stage 2 sd-taylor\nwith the original model as teacher on fresh windows (α/τ from the paper's table\nunless --alpha/--temperature); needs --text",
  ),
  criterion: { ...CRITERION_FLAG.criterion, help: "one-shot pruning with this criterion (default sd-taylor)" },
  scores: str("FILE", "use precomputed scores (from sdmprune scores, or scores merge of shards) instead of computing them"),
  ...SD_TAYLOR_FLAGS,
  layers: str("S:E", "prune only layers S..E-1 (default all)"),
  allocation: str("uniform|global", "per-layer top-K (default) or one ranking across layers"),
} as const;

const OUT_FLAGS = {
  ...OUTPUT_FLAGS,
  format: { ...OUTPUT_FLAGS.format, default: "hf", help: "hf (default) or gguf" },
  "pad-mlp": { ...OUTPUT_FLAGS["pad-mlp"], help: `${OUTPUT_FLAGS["pad-mlp"].help} (--allocation global, --layers)` },
  ...HELDOUT_FLAGS,
  "eval-text": { ...HELDOUT_FLAGS["eval-text"], help: "report perplexity before and after (WikiText .raw files use the row protocol)" },
  ...BACKEND_FLAG,
  ...OFFLOAD_FLAGS,
} as const;

const FLAGS = { ...MODEL_FLAG, ...AMOUNT_FLAGS, ...METHOD_FLAGS, ...OUT_FLAGS, ...CALIBRATION_FLAGS } as const;

const USAGE = `Usage: sdmprune prune --model PATH (--target R | --keep K | --ratio R | --mlp-ratio M)
                      [--criterion NAME | --two-stage] [calibration options] --out DIR
                      [--round-to N] [--format hf|gguf] [--eval-text FILE] [--force]

Prune MLP intermediate channels and save the model with a pruning.json beside the weights.

${flagHelp(MODEL_FLAG, 18)}
Amount (one of):
${flagHelp(AMOUNT_FLAGS, 18)}
Method:
${flagHelp(METHOD_FLAGS, 18)}
Output:
${flagHelp(OUT_FLAGS, 18)}
${calibrationUsage()}`;

function layersFlag(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+):(\d+)$/.exec(v.trim());
  if (!m) throw new UsageError(`--layers must be START:END (end exclusive), got ${JSON.stringify(v)}`);
  return [Number(m[1]), Number(m[2])];
}

export const pruneCommand: Command = {
  name: "prune",
  summary: "prune MLP channels (SDMPrune two-stage or one criterion) and save the model",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, USAGE);
    requireFlags(values, ["model", "out"], USAGE);
    const amounts = (["target", "keep", "ratio", "mlp-ratio"] as const).filter((k) => values[k] !== undefined);
    if (amounts.length !== 1) throw new UsageError(`give exactly one of --target, --keep, --ratio, --mlp-ratio (got ${amounts.length ? amounts.map((a) => "--" + a).join(", ") : "none"})\n\n${USAGE}`);
    const twoStage = values["two-stage"];
    if (twoStage && (values.criterion || values.scores)) throw new UsageError("--two-stage runs its own criteria: drop --criterion/--scores");
    if (twoStage && (values.ratio || values.layers || values.allocation)) throw new UsageError("--two-stage takes --target, --keep or --mlp-ratio (all layers, uniform)");
    const format = enumFlag("format", values.format, ["hf", "gguf"] as const);
    const dtype = enumFlag("dtype", values.dtype, ["f32", "f16"] as const);
    const allocation = enumFlag("allocation", values.allocation, ["uniform", "global"] as const);
    const criterion = criterionFlag(values.criterion) ?? "sd-taylor";
    const alpha = numFlag("alpha", values.alpha);
    const temperature = numFlag("temperature", values.temperature);
    const target = numFlag("target", values.target);
    const keep = intFlag("keep", values.keep, 1);
    const ratio = numFlag("ratio", values.ratio);
    const mlpRatio = numFlag("mlp-ratio", values["mlp-ratio"]);
    const layers = layersFlag(values.layers);
    const roundTo = intFlag("round-to", values["round-to"], 1);
    if (roundTo !== undefined && allocation === "global") throw new UsageError("--round-to applies to uniform allocation only (global allocation picks per-layer counts by one ranking)");
    // Range checks the library would also make, but before minutes of loading and scoring.
    if (ratio !== undefined && !(ratio > 0 && ratio < 1)) throw new UsageError(`--ratio must satisfy 0 < ratio < 1 (fraction of MLP channels removed), got ${ratio}`);
    if (target !== undefined && !(target > 0 && target < 1)) throw new UsageError(`--target must satisfy 0 < target < 1 (share of all parameters removed), got ${target}`);
    if (mlpRatio !== undefined && !(mlpRatio > 0)) throw new UsageError(`--mlp-ratio must be positive, got ${mlpRatio}`);
    const evalSeqLen = intFlag("eval-seq-len", values["eval-seq-len"], 2) ?? 128;
    if ((values["eval-seq-len"] || values["eval-stories"]) && !values["eval-text"]) throw new UsageError("--eval-seq-len/--eval-stories need --eval-text FILE");
    const cal = calibrationFromFlags(values);
    if (twoStage && (!cal || cal.windows !== undefined)) throw new UsageError("--two-stage draws fresh windows for each stage: give --text FILE (not --windows)");
    const needs = criterionNeeds(criterion, alpha);
    if (!twoStage && !values.scores && !cal && needs.windows) throw new UsageError(`criterion ${criterion} needs calibration data (--text or --windows) or --scores FILE`);
    // Refuse an occupied output before any work, so nothing is computed for nothing.
    const out = path.resolve(values.out);
    checkOutputDir(out, values.force ?? false);
    if (values["eval-text"] && !fs.existsSync(values["eval-text"])) throw new UsageError(`--eval-text: file ${values["eval-text"]} does not exist`);

    const session = await Session.load(values.model, { backend: backendFlag(values.backend), skipMemoryCheck: values["skip-memory-check"] === true, ...offloadFromFlags(values) });
    const progress = stderrProgress();
    const intr = interruptSignal();
    const run = { onProgress: progress.onProgress, signal: intr.signal };
    try {
      const before = paramCounts(session.config);
      const widthsBefore = session.info().raw.widths;
      const evalText = values["eval-text"];
      const ppl = async () => (evalText ? (await session.evaluate({ ppl: { file: evalText, seqLen: evalSeqLen, stories: values["eval-stories"], allowLonger: values["allow-longer"] === true }, ...run })).raw.ppl : null);
      const pplBefore = await ppl();
      let summary: Table;
      if (twoStage) {
        const r = await session.sdmprune({ target, keep, mlpRatio, roundTo, alpha, temperature, files: cal!.files, stories: cal!.stories, samples: cal!.samples, seqLen: cal!.seqLen, seed: cal!.seed, topk: cal!.topk, keepOriginal: false, ...run });
        summary = r.table();
      } else {
        if (cal) {
          const estimate = { score: !values.scores && isAdditive(criterion), report: (e: JobEstimate) => process.stderr.write(`${describeEstimate(e, session.backend)}\n`) };
          await session.calibrate({ ...cal, ...run, teacher: needs.teacher && !values.scores, estimate });
        }
        if (values.scores) {
          const loaded = await session.loadScores(values.scores);
          // A scores file fixes the criterion and its settings; a different request must not be dropped silently.
          if (values.criterion !== undefined && loaded.criterion !== criterion) throw new UsageError(`--criterion ${criterion} contradicts --scores ${values.scores}, which holds ${loaded.criterion} scores; drop --criterion or score again`);
          for (const [flag, v] of [["alpha", alpha], ["temperature", temperature]] as const) {
            if (v !== undefined && loaded.settings[flag] !== v) throw new UsageError(`--${flag} ${v} contradicts --scores ${values.scores}, computed with ${flag} ${loaded.settings[flag] ?? "unset"}`);
          }
        }
        else await session.score({ criterion, alpha, temperature, seed: cal?.seed, ...run });
        // a one-shot run never undoes: each layer's original MLP is freed as soon as its pruned copy exists
        session.releaseOriginal();
        summary = session.prune({ target, ratio, keep, mlpRatio, layers, allocation, roundTo }).table();
      }
      const pplAfter = await ppl();
      progress.end();
      for (const w of session.warnings) process.stderr.write(`warning: ${w}\n`);
      const written = await session.save(out, { format: format!, dtype: dtype!, force: values.force, padMlp: values["pad-mlp"] });
      const widthsAfter = session.info().raw.widths;
      if (widthsAfter.some((w) => w !== widthsAfter[0]) && !values["pad-mlp"]) {
        process.stderr.write(`warning: the MLP widths now differ per layer (${widthsAfter.join(", ")}): sdmprune loads this model, stock transformers and llama.cpp do not (they need one intermediate_size); prune --pad-mlp (or convert --pad-mlp) pads it with zero channels\n`);
      }
      const after = paramCounts(session.config);
      const rows: Cell[][] = [
        ["params (total)", before.total, after.total, (100 * (before.total - after.total)) / before.total],
        ["params (MLP)", before.mlp, after.mlp, (100 * (before.mlp - after.mlp)) / before.mlp],
        ["MLP width (layer 0)", widthsBefore[0], session.info().raw.widths[0], null],
      ];
      if (pplBefore && pplAfter) rows.push([`ppl@${pplAfter.seqLen} (${pplAfter.source})`, pplBefore.ppl, pplAfter.ppl, null]);
      const notes: string[] = [];
      if (target !== undefined || roundTo !== undefined) {
        const o = paramCounts(session.originalConfig).total;
        const achieved = (100 * (o - after.total)) / o;
        notes.push(`achieved: ${achieved.toFixed(2)} % of all parameters removed${target !== undefined ? ` (target ${(100 * target).toFixed(2)} %)` : ""}${roundTo !== undefined ? `, widths multiples of ${roundTo}: ${session.info().raw.widths.join(", ")}` : ""}`);
      }
      const table = new Table(["", "before", "after", "% removed"], rows, { title: "Before / after", digits: 2, notes });
      process.stdout.write(`${summary.toText()}\n\n${table.toText()}\n\nwrote ${out}\n${written.map((w) => `  ${w}`).join("\n")}\n`);
      process.stderr.write(gpuMemoryLine());
      return 0;
    } finally {
      progress.end();
      intr.release();
      session.dispose();
    }
  },
};
