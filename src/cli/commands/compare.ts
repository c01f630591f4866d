import { UsageError } from "../../errors";
import type { Criterion } from "../../importance";
import { Session } from "../../session";
import type { Command } from "../command";
import { BACKEND_FLAG, OFFLOAD_FLAGS, offloadFromFlags, CALIBRATION_FLAGS, HELDOUT_FLAGS, JSON_FLAG, MODEL_FLAG, ROUND_TO_FLAG, SD_TAYLOR_FLAGS, TASK_FLAGS, backendFlag, calibrationFromFlags, calibrationUsage, criterionFlag, flagHelp, intFlag, numFlag, parseFlags, requireFlags, str } from "../flags";
import { interruptSignal, stderrProgress } from "../progress";

const FLAGS = {
  ...MODEL_FLAG,
  criteria: str("LIST", "comma-separated criteria (sd-taylor, ce-taylor, llm-pruner, wanda, magnitude, random, ...)"),
  ratios: str("LIST", "fractions of each layer's MLP channels to remove, e.g. 0.2,0.3,0.4"),
  seeds: str("LIST", "calibration seeds, e.g. 0,1,2"),
  ...SD_TAYLOR_FLAGS,
  ...ROUND_TO_FLAG,
  ...HELDOUT_FLAGS,
  ...TASK_FLAGS,
  tasks: { ...TASK_FLAGS.tasks, help: "also zero-shot tasks (headline accuracy; average over averaged tasks):\n" + TASK_FLAGS.tasks.help },
  ...JSON_FLAG,
  json: { ...JSON_FLAG.json, help: "print one JSON object (baseline, every run, summary) instead of the table" },
  ...BACKEND_FLAG,
  ...OFFLOAD_FLAGS,
} as const;

/** Calibration without --seed: the seeds are --seeds LIST. */
const { seed: _seed, ...CALIBRATION } = CALIBRATION_FLAGS;

const USAGE = `Usage: sdmprune compare --model PATH --criteria A,B,... --ratios R1,R2,... --seeds S1,S2,...
                        (--text FILE | --windows FILE.json) [calibration options]
                        --eval-text FILE [--eval-stories A-B] [--eval-seq-len N] [--tasks LIST] [--json]

Prune the model with every criterion at every ratio, once per calibration seed, and print held-out
perplexity (and task accuracy with --tasks) as mean ± sample standard deviation over the seeds, with the
kept-set agreement across seeds (mean over seed pairs of the share of kept channels both keep).
Each seed calibrates once (teacher cache only when a criterion needs it), each criterion scores once per
seed, and each ratio is prune + evaluate + undo. With --windows the seeds only change the random criterion.

${flagHelp(FLAGS, 21)}
${calibrationUsage(CALIBRATION)}

A warning is printed when calibration windows overlap the evaluation text.`;

function list(name: string, v: string): string[] {
  const items = v.split(",").map((x) => x.trim()).filter((x) => x !== "");
  if (items.length === 0) throw new UsageError(`--${name} is empty`);
  return items;
}

export const compareCommand: Command = {
  name: "compare",
  summary: "criteria × ratios over calibration seeds: perplexity mean ± std and kept-set agreement",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, { ...FLAGS, ...CALIBRATION }, USAGE);
    requireFlags(values, ["model", "criteria", "ratios", "seeds", "eval-text"], USAGE);
    const criteria = list("criteria", values.criteria).map((c) => criterionFlag(c) as Criterion);
    const ratios = list("ratios", values.ratios).map((r) => numFlag("ratios", r)!);
    for (const r of ratios) if (!(r > 0 && r < 1)) throw new UsageError(`--ratios: each ratio must satisfy 0 < ratio < 1, got ${r}`);
    const seeds = list("seeds", values.seeds).map((s) => intFlag("seeds", s, 0)!);
    const alpha = numFlag("alpha", values.alpha);
    const temperature = numFlag("temperature", values.temperature);
    if (!criteria.includes("sd-taylor") && (alpha !== undefined || temperature !== undefined)) throw new UsageError("--alpha/--temperature apply to the sd-taylor criterion, which is not in --criteria");
    const roundTo = intFlag("round-to", values["round-to"], 1);
    const seqLen = intFlag("eval-seq-len", values["eval-seq-len"], 2) ?? 128;
    const limit = intFlag("limit", values.limit, 1);
    const tasks = values.tasks ? list("tasks", values.tasks) : undefined;
    if ((values.limit || values["data-dir"]) && !tasks) throw new UsageError("--limit/--data-dir apply to --tasks");
    const cal = calibrationFromFlags(values);
    if (!cal) throw new UsageError(`compare needs calibration data: --text FILE or --windows FILE.json\n\n${USAGE}`);
    const { seed: _calSeed, ...calibration } = cal;

    const session = await Session.load(values.model, { backend: backendFlag(values.backend), ...offloadFromFlags(values) });
    const progress = stderrProgress(!values.json || !!process.stderr.isTTY);
    const intr = interruptSignal();
    try {
      const t = await session.compare({
        criteria,
        ratios,
        seeds,
        calibration,
        ppl: { file: values["eval-text"], stories: values["eval-stories"], seqLen },
        tasks,
        limit,
        dataDir: values["data-dir"],
        alpha,
        temperature,
        roundTo,
        onProgress: progress.onProgress,
        signal: intr.signal,
      });
      progress.end();
      for (const w of t.raw.warnings) process.stderr.write(`warning: ${w}\n`);
      if (values.json) {
        const raw = t.raw;
        process.stdout.write(JSON.stringify({ model: session.path, backend: session.backend, criteria, ratios, seeds, ...raw, runs: raw.runs.map(({ kept: _k, ...r }) => r) }) + "\n");
      } else {
        process.stdout.write(`${t.toText()}\nmodel: ${session.path} (${session.backend})\n`);
      }
      return 0;
    } finally {
      progress.end();
      intr.release();
      session.dispose();
    }
  },
};
