import { parseArgs } from "node:util";
import { UsageError } from "../../errors";
import { paramCounts } from "../../model/config";
import { Session } from "../../session";
import type { Command } from "../command";
import { interruptSignal, stderrProgress } from "../progress";
import { backendFlag, intFlag, requireFlags } from "../flags";

const USAGE = `Usage: sdmprune eval --model PATH [--ppl FILE --seq-len N] [--tasks a,b,c --data-dir DIR --limit N] [--json]

Perplexity (non-overlapping windows of --seq-len tokens, one BOS at the start of the text; WikiText .raw
files use the row protocol, TinyStories dumps are joined story by story) and zero-shot multiple-choice
tasks scored like lm-evaluation-harness (acc, acc_norm by character length).

  --model PATH     .gguf file or Hugging Face model directory
  --ppl FILE       text for perplexity (e.g. ../shared/data/wikitext-2-raw/wiki.test.raw)
  --stories A-B    with a TinyStories --ppl file: 1-based inclusive story range
  --seq-len N      perplexity window length (default 128; always reported)
  --tasks LIST     comma-separated: arc_challenge, arc_easy, boolq, hellaswag, lambada, openbookqa, piqa, winogrande
  --data-dir DIR   task data folder (default SDMPRUNE_DATA or ../shared/data)
  --limit N        first N items per task
  --json           print one JSON object
  --backend NAME   tensorflow | wasm | cpu

A warning is printed when the --ppl text overlaps the calibration recorded in the model's pruning.json
(same file by SHA-256; the calibration windows are drawn again from it and compared).`;

export const evalCommand: Command = {
  name: "eval",
  summary: "perplexity and zero-shot task accuracy of a (pruned) model",
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        ppl: { type: "string" },
        stories: { type: "string" },
        "seq-len": { type: "string" },
        tasks: { type: "string" },
        "data-dir": { type: "string" },
        limit: { type: "string" },
        json: { type: "boolean", default: false },
        backend: { type: "string" },
      },
      strict: true,
    });
    requireFlags(values, ["model"], USAGE);
    if (!values.ppl && !values.tasks) throw new UsageError(`give --ppl FILE and/or --tasks LIST\n\n${USAGE}`);
    if (values.stories && !values.ppl) throw new UsageError("--stories applies to --ppl");
    const seqLen = intFlag("seq-len", values["seq-len"], 2);
    if (seqLen !== undefined && !values.ppl) throw new UsageError("--seq-len applies to --ppl");
    const limit = intFlag("limit", values.limit, 1);
    const tasks = values.tasks ? values.tasks.split(",").map((t) => t.trim()).filter((t) => t) : undefined;
    if (tasks && tasks.length === 0) throw new UsageError("--tasks is empty");

    const session = await Session.load(values.model, { backend: backendFlag(values.backend) });
    const progress = stderrProgress(!values.json || !!process.stderr.isTTY);
    const intr = interruptSignal();
    try {
      const t = await session.evaluate({
        ppl: values.ppl ? { file: values.ppl, seqLen: seqLen ?? 128, stories: values.stories } : undefined,
        tasks,
        limit,
        dataDir: values["data-dir"],
        onProgress: progress.onProgress,
        signal: intr.signal,
      });
      progress.end();
      for (const w of session.warnings) process.stderr.write(`warning: ${w}\n`);
      if (values.json) {
        const ppl = t.raw.ppl;
        const obj = {
          model: session.path,
          backend: session.backend,
          params: paramCounts(session.config).total,
          ppl: ppl ? { ppl: ppl.ppl, nll: ppl.nll, seqLen: ppl.seqLen, tokens: ppl.tokens, windows: ppl.windows, source: ppl.source } : null,
          tasks: t.raw.tasks ? t.raw.tasks.tasks.map((r) => ({ task: r.task, n: r.n, headline: r.headline, metrics: r.metrics, stderr: r.stderr })) : null,
          average: t.raw.tasks ? t.raw.tasks.average : null,
          warnings: session.warnings,
        };
        process.stdout.write(JSON.stringify(obj) + "\n");
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
