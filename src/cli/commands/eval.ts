import * as fs from "node:fs";
import * as path from "node:path";
import { UsageError } from "../../errors";
import { paramCounts } from "../../model/config";
import { PPL_PROTOCOLS, Session } from "../../session";
import type { Command } from "../command";
import { interruptSignal, stderrProgress } from "../progress";
import { BACKEND_FLAG, OFFLOAD_FLAGS, offloadFromFlags, JSON_FLAG, MODEL_FLAG, PPL_TEXT_FLAGS, SKIP_MEMORY_FLAG, TASK_FLAGS, backendFlag, enumFlag, flagHelp, intFlag, parseFlags, requireFlags, str } from "../flags";
import { writeContentAtomic } from "../../io/atomic";

const FLAGS = {
  ...MODEL_FLAG,
  ppl: str("FILE", "text for perplexity (e.g. ../shared/data/wikitext-2-raw/wiki.test.raw)"),
  ...PPL_TEXT_FLAGS,
  ...SKIP_MEMORY_FLAG,
  ...TASK_FLAGS,
  bos: str("on|off", "prepend BOS to every request (lm-eval add_bos_token; default on, as SDMPrune ran it)"),
  "log-samples": str(
    "FILE",
    "write one JSON line per item (request texts, token ids, each choice's log-likelihood\nand is_greedy, prediction, gold); scripts/lm-eval/reference.py writes lm-eval's\n--log_samples in the same form",
  ),
  json: { ...JSON_FLAG.json, help: "print one JSON object (metrics, averages with their tasks, settings, notes)" },
  ...BACKEND_FLAG,
  ...OFFLOAD_FLAGS,
} as const;

const USAGE = `Usage: sdmprune eval --model PATH [--ppl FILE --seq-len N] [--tasks a,b,c --data-dir DIR --limit N]
                    [--bos on|off] [--log-samples FILE] [--json]

Perplexity (non-overlapping windows of --seq-len tokens, one BOS at the start of the text; WikiText .raw
files use the row protocol, TinyStories dumps are joined story by story) and zero-shot tasks scored as
lm-evaluation-harness 0.4 scores them with the hf model (same prompts, token ids, left truncation at the
model's max_position_embeddings, acc and acc_norm by character length; see docs/evaluation.md).

${flagHelp(FLAGS, 20)}

The table shows each task's metrics (headline first: acc_norm where lm-eval reports it, else acc),
"average (paper)": SDMPrune's Avg column (acc_norm where present, else acc; hellaswag and lambada_openai
left out) and "average (acc)": mean acc of every task evaluated; the notes say which tasks each covers.
A warning is printed when the --ppl text overlaps the calibration recorded in the model's pruning.json
(same file by SHA-256; the calibration windows are drawn again from it and compared).`;

export const evalCommand: Command = {
  name: "eval",
  summary: "perplexity and zero-shot task accuracy of a (pruned) model",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, USAGE);
    requireFlags(values, ["model"], USAGE);
    if (!values.ppl && !values.tasks) throw new UsageError(`give --ppl FILE and/or --tasks LIST\n\n${USAGE}`);
    if (values.stories && !values.ppl) throw new UsageError("--stories applies to --ppl");
    const protocol = enumFlag("protocol", values.protocol, PPL_PROTOCOLS);
    if (protocol && !values.ppl) throw new UsageError("--protocol applies to --ppl");
    const seqLen = intFlag("seq-len", values["seq-len"], 2);
    if (seqLen !== undefined && !values.ppl) throw new UsageError("--seq-len applies to --ppl");
    const limit = intFlag("limit", values.limit, 1);
    const tasks = values.tasks ? values.tasks.split(",").map((t) => t.trim()).filter((t) => t) : undefined;
    if (tasks && tasks.length === 0) throw new UsageError("--tasks is empty");
    const bos = enumFlag("bos", values.bos, ["on", "off"] as const);
    for (const f of ["bos", "log-samples", "limit", "data-dir"] as const) {
      if (values[f] !== undefined && !tasks) throw new UsageError(`--${f} applies to --tasks`);
    }
    const samplesFile = values["log-samples"] ? path.resolve(values["log-samples"]) : undefined;
    if (samplesFile && !fs.existsSync(path.dirname(samplesFile))) throw new UsageError(`--log-samples: folder ${path.dirname(samplesFile)} does not exist`);

    const session = await Session.load(values.model, { backend: backendFlag(values.backend), skipMemoryCheck: values["skip-memory-check"], ...offloadFromFlags(values) });
    const progress = stderrProgress(!values.json || !!process.stderr.isTTY);
    const intr = interruptSignal();
    try {
      const t = await session.evaluate({
        ppl: values.ppl ? { file: values.ppl, seqLen: seqLen ?? 128, stories: values.stories, protocol, allowLonger: values["allow-longer"], skipMemoryCheck: values["skip-memory-check"] } : undefined,
        tasks,
        limit,
        dataDir: values["data-dir"],
        bos: bos === undefined ? undefined : bos === "on",
        logSamples: !!samplesFile,
        onProgress: progress.onProgress,
        signal: intr.signal,
      });
      progress.end();
      const zs = t.raw.tasks;
      if (samplesFile && zs) {
        const lines = zs.tasks.flatMap((r) => (r.samples ?? []).map((x) => JSON.stringify(x)));
        await writeContentAtomic(samplesFile, lines.join("\n") + "\n");
      }
      for (const w of session.warnings) process.stderr.write(`warning: ${w}\n`);
      if (values.json) {
        const ppl = t.raw.ppl;
        const obj = {
          model: session.path,
          backend: session.backend,
          params: paramCounts(session.config).total,
          ppl: ppl ? { ppl: ppl.ppl, nll: ppl.nll, seqLen: ppl.seqLen, tokens: ppl.tokens, windows: ppl.windows, source: ppl.source, protocol: ppl.protocol } : null,
          tasks: zs ? zs.tasks.map((r) => ({ task: r.task, n: r.n, headline: r.headline, metrics: r.metrics, stderr: r.stderr, truncated_requests: r.truncatedRequests })) : null,
          average: zs ? zs.average : null,
          averages: zs ? zs.averages : null,
          settings: zs ? { ...zs.settings, log_samples: samplesFile ?? null } : null,
          notes: t.notes,
          warnings: session.warnings,
        };
        process.stdout.write(JSON.stringify(obj) + "\n");
      } else {
        process.stdout.write(`${t.toText()}\nmodel: ${session.path} (${session.backend})\n`);
        if (samplesFile) process.stdout.write(`samples: ${samplesFile}\n`);
      }
      return 0;
    } finally {
      progress.end();
      intr.release();
      session.dispose();
    }
  },
};
