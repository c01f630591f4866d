import { parseArgs } from "node:util";
import { UsageError } from "../../errors";
import type { Criterion } from "../../importance";
import { Session } from "../../session";
import type { Command } from "../command";
import { backendFlag, criterionFlag, intFlag, numFlag, requireFlags } from "../flags";
import { interruptSignal, stderrProgress } from "../progress";
import { CALIBRATION_FLAGS, CALIBRATION_USAGE, calibrationFromFlags } from "./scores";

const USAGE = `Usage: sdmprune compare --model PATH --criteria A,B,... --ratios R1,R2,... --seeds S1,S2,...
                        (--text FILE | --windows FILE.json) [calibration options]
                        --eval-text FILE [--eval-stories A-B] [--eval-seq-len N] [--tasks LIST] [--json]

Prune the model with every criterion at every ratio, once per calibration seed, and print held-out
perplexity (and task accuracy with --tasks) as mean ± sample standard deviation over the seeds, with the
kept-set agreement across seeds (mean over seed pairs of the share of kept channels both keep).
Each seed calibrates once (teacher cache only when a criterion needs it), each criterion scores once per
seed, and each ratio is prune + evaluate + undo. With --windows the seeds only change the random criterion.

  --model PATH         .gguf file or Hugging Face model directory
  --criteria LIST      comma-separated criteria (sd-taylor, ce-taylor, llm-pruner, wanda, magnitude, random, ...)
  --ratios LIST        fractions of each layer's MLP channels to remove, e.g. 0.2,0.3,0.4
  --seeds LIST         calibration seeds, e.g. 0,1,2
  --alpha A, --temperature T   sd-taylor settings (default 0.4, 0.2)
  --round-to N         keep a multiple of N channels per layer (see sdmprune prune --help)
  --eval-text FILE     held-out text for perplexity (WikiText .raw files use the row protocol)
  --eval-stories A-B   with a TinyStories --eval-text: 1-based inclusive story range
  --eval-seq-len N     perplexity window length (default 128)
  --tasks LIST         also zero-shot tasks (headline accuracy; average over averaged tasks)
  --data-dir DIR       task data folder; --limit N: first N items per task
  --json               print one JSON object (baseline, every run, summary) instead of the table
  --backend NAME       tensorflow | wasm | cpu
${CALIBRATION_USAGE.replace("  --seed S             seed of the window draw (default 0)\n", "")}

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
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        criteria: { type: "string" },
        ratios: { type: "string" },
        seeds: { type: "string" },
        alpha: { type: "string" },
        temperature: { type: "string" },
        "round-to": { type: "string" },
        "eval-text": { type: "string" },
        "eval-stories": { type: "string" },
        "eval-seq-len": { type: "string" },
        tasks: { type: "string" },
        "data-dir": { type: "string" },
        limit: { type: "string" },
        json: { type: "boolean", default: false },
        backend: { type: "string" },
        ...CALIBRATION_FLAGS,
      },
      strict: true,
    });
    requireFlags(values, ["model", "criteria", "ratios", "seeds", "eval-text"], USAGE);
    if (values.seed !== undefined) throw new UsageError("compare takes --seeds LIST, not --seed");
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
    const { seed: _seed, ...calibration } = cal;

    const session = await Session.load(values.model, { backend: backendFlag(values.backend) });
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
