import * as fs from "node:fs";
import { DataError, UsageError } from "../../errors";
import { PPL_BATCH_BUDGET_BYTES, PPL_BATCH_WINDOWS, PPL_BATCH_WINDOWS_NATIVE } from "../../eval/ppl-batch";
import { PPL_PROTOCOLS, Session } from "../../session";
import type { Command } from "../command";
import { BACKEND_FLAG, OFFLOAD_FLAGS, offloadFromFlags, JSON_FLAG, MODEL_FLAG, PPL_TEXT_FLAGS, SKIP_MEMORY_FLAG, backendFlag, bool, enumFlag, flagHelp, intFlag, parseFlags, requireFlags, str } from "../flags";
import { interruptSignal, stderrProgress, gpuMemoryLine } from "../progress";

const FLAGS = {
  ...MODEL_FLAG,
  text: str("FILE", "text file: made into one token stream (one BOS at the start) by --protocol, cut\ninto non-overlapping windows of --seq-len tokens (remainder dropped)"),
  ...PPL_TEXT_FLAGS,
  ...SKIP_MEMORY_FLAG,
  wikitext: bool("same as --protocol wikitext"),
  windows: str("FILE", 'JSON {"windows": [[ids]...]} of equal-length windows (seq len = their length)'),
  "seq-len": { ...PPL_TEXT_FLAGS["seq-len"], help: "window length in tokens (default 128 with --text; checked against --windows)" },
  "batch-size": str(
    "N",
    `windows per forward batch (default ${PPL_BATCH_WINDOWS_NATIVE} on the native backend, ${PPL_BATCH_WINDOWS} on the others;\n` +
      `fewer where one batch would need over ${PPL_BATCH_BUDGET_BYTES / 2 ** 20} MiB; the result does not depend on it)`,
  ),
  ...BACKEND_FLAG,
  ...OFFLOAD_FLAGS,
  ...JSON_FLAG,
} as const;

const USAGE = `Usage: sdmprune ppl --model PATH (--text FILE | --windows FILE.json) [--seq-len N] [options]

Perplexity = exp(mean next-token NLL over all predicted tokens of all windows) (LLM-Pruner protocol), the
same computation as \`sdmprune eval --ppl\` and the REPL's \`eval ppl\` (docs/method.md, "Perplexity").

${flagHelp(FLAGS, 20)}

The protocol and seq len are printed with every perplexity: the value depends strongly on both.`;

export const pplCommand: Command = {
  name: "ppl",
  summary: "perplexity of a model on a text file (e.g. WikiText-2) or on saved token windows",
  usage: USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, USAGE);
    requireFlags(values, ["model"], USAGE);
    if ((values.text === undefined) === (values.windows === undefined)) throw new UsageError(`give exactly one of --text FILE or --windows FILE.json\n\n${USAGE}`);
    if (values.wikitext && values.protocol !== undefined && values.protocol !== "wikitext") throw new UsageError(`--wikitext contradicts --protocol ${values.protocol}`);
    let protocol = enumFlag("protocol", values.protocol, PPL_PROTOCOLS);
    if (values.wikitext) protocol = "wikitext";
    if (!values.text && (protocol !== undefined || values.stories !== undefined)) throw new UsageError("--protocol, --wikitext and --stories apply to --text only");
    const seqLen = intFlag("seq-len", values["seq-len"], 2);
    const batchSize = intFlag("batch-size", values["batch-size"], 1);

    // A bad path fails before the model loads.
    if (values.text !== undefined && !fs.existsSync(values.text)) throw new DataError(`text file ${values.text} does not exist`);
    if (values.windows !== undefined && !fs.existsSync(values.windows)) throw new DataError(`windows file ${values.windows} does not exist`);
    const session = await Session.load(values.model, { backend: backendFlag(values.backend), skipMemoryCheck: values["skip-memory-check"] === true, ...offloadFromFlags(values) });
    const intr = interruptSignal();
    const progress = stderrProgress(!values.json || !!process.stderr.isTTY);
    try {
      const r = await session.perplexity(
        values.text !== undefined
          ? { file: values.text, seqLen: seqLen ?? 128, stories: values.stories, protocol, batchSize, allowLonger: values["allow-longer"], skipMemoryCheck: values["skip-memory-check"] }
          : { windows: values.windows as string, seqLen, batchSize, allowLonger: values["allow-longer"], skipMemoryCheck: values["skip-memory-check"] },
        { onProgress: progress.onProgress, signal: intr.signal },
      );
      progress.end();
      const source = values.text ?? (values.windows as string);
      if (values.json) {
        process.stdout.write(JSON.stringify({ model: session.path, backend: session.backend, ...r, source }) + "\n");
      } else {
        const lines = [
          `ppl:      ${r.ppl.toFixed(4)}`,
          `nll:      ${r.nll.toFixed(6)} nats/token`,
          `seq len:  ${r.seqLen}`,
          `tokens:   ${r.tokens} predicted${r.textTokens !== undefined ? ` (text ${r.textTokens} tokens, ${r.droppedTokens} dropped)` : ""}`,
          `windows:  ${r.windows}`,
          `protocol: ${r.protocol}`,
          `backend:  ${session.backend}`,
          `model:    ${session.path}`,
          `source:   ${source}`,
        ];
        process.stdout.write(lines.join("\n") + "\n");
      }
      process.stderr.write(gpuMemoryLine());
      return 0;
    } finally {
      progress.end();
      intr.release();
      session.dispose();
    }
  },
};
