import { parseArgs } from "node:util";
import { DataError, UsageError } from "../../errors";
import { initEngine } from "../../engine";
import { loadModel } from "../../model/load";
import { readText, wikitextText } from "../../data/text";
import { loadWindows } from "../../data/windows";
import { perplexity, pplFromText, type PerplexityResult } from "../../eval/perplexity";
import { readModelConfig } from "../../io/files";
import { checkContext, checkModelLoad, checkPassMemory, weightBytes } from "../../resources";
import type { Command } from "../command";
import { backendFlag, intFlag, requireFlags } from "../flags";
import { interruptSignal, stderrProgress } from "../progress";

const USAGE = `Usage: sdmprune ppl --model PATH (--text FILE | --windows FILE.json) --seq-len N [options]

Perplexity = exp(mean next-token NLL over all predicted tokens of all windows) (LLM-Pruner protocol).

  --model PATH        .gguf file or Hugging Face model directory
  --text FILE         text file: tokenized once with one BOS at the start, cut into non-overlapping
                      windows of --seq-len tokens (remainder dropped); the file is one document
  --wikitext          with --text: apply the WikiText row protocol to a .raw file (lines are rows,
                      blank lines become "", rows joined with "\\n\\n"), e.g. ../shared/data/wikitext-2-raw/wiki.test.raw
  --windows FILE      JSON {"windows": [[ids]...]} of equal-length windows (seq len = their length)
  --seq-len N         window length in tokens (required with --text; checked against --windows)
  --batch-size N      windows per forward batch (default 4)
  --allow-longer      accept windows longer than the model's context (max_position_embeddings); refused otherwise
  --skip-memory-check run even when the model or one batch is estimated not to fit (host memory; on the wasm
                      backend its 4 GiB heap); refused otherwise, with the figures and what would fit
  --backend NAME      tensorflow | wasm | cpu (default: best that loads, or SDMPRUNE_BACKEND)
  --json              print one JSON object instead of text

Always quote seq len with a perplexity: the value depends strongly on it.`;

export const pplCommand: Command = {
  name: "ppl",
  summary: "perplexity of a model on a text file (e.g. WikiText-2) or on saved token windows",
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        text: { type: "string" },
        windows: { type: "string" },
        "seq-len": { type: "string" },
        "batch-size": { type: "string" },
        backend: { type: "string" },
        wikitext: { type: "boolean", default: false },
        "allow-longer": { type: "boolean", default: false },
        "skip-memory-check": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
      },
      strict: true,
    });
    requireFlags(values, ["model"], USAGE);
    if ((values.text === undefined) === (values.windows === undefined)) throw new UsageError(`give exactly one of --text FILE or --windows FILE.json\n\n${USAGE}`);
    if (values.wikitext && !values.text) throw new UsageError("--wikitext applies to --text only");
    const seqLen = intFlag("seq-len", values["seq-len"], 2);
    const batchSize = intFlag("batch-size", values["batch-size"], 1) ?? 4;
    if (values.text && seqLen === undefined) throw new UsageError(`--seq-len N is required with --text\n\n${USAGE}`);

    // Read the input before loading the model so a bad path fails fast.
    const text = values.text ? (values.wikitext ? wikitextText(values.text) : readText(values.text)) : null;
    const backend = await initEngine(backendFlag(values.backend));
    // Estimates from the headers before any weight is read: the model, and one batch when its length is known.
    const mem = { skipMemoryCheck: values["skip-memory-check"] };
    const config = readModelConfig(values.model);
    checkModelLoad(config, backend, values.model, mem);
    // Token windows are read (and checked against the vocabulary) from the config too, so every check is done
    // before the weights are.
    const windows = values.windows !== undefined ? loadWindows(values.windows, { vocabSize: config.vocab_size }).windows : null;
    if (windows && seqLen !== undefined && windows[0].length !== seqLen) {
      throw new UsageError(`--seq-len ${seqLen} does not match the windows in ${values.windows} (${windows[0].length} tokens each)`);
    }
    const T = windows ? windows[0].length : (seqLen as number);
    checkContext(T, config.max_position_embeddings, "perplexity", { allowLonger: values["allow-longer"] });
    checkPassMemory(config, "forward", windows ? Math.min(batchSize, windows.length) : batchSize, T, "perplexity", mem, backend, weightBytes(config));
    const { model, tokenizer, files } = await loadModel(values.model);
    const intr = interruptSignal();
    const progress = stderrProgress(!values.json || !!process.stderr.isTTY);
    try {
      const scorer = (seqs: number[][]) => model.tokenLogProbs(seqs);
      const opts = { batchSize, onProgress: progress.onProgress, signal: intr.signal };
      let r: PerplexityResult & { textTokens?: number; droppedTokens?: number };
      if (text !== null) {
        if (!tokenizer) throw new DataError(`${files.path} has no tokenizer, so --text cannot be tokenized; use --windows with token ids`);
        r = await pplFromText(scorer, tokenizer, text, seqLen as number, opts);
      } else {
        r = await perplexity(scorer, windows!, opts);
      }
      progress.end();
      const source = values.text ? `${values.text}${values.wikitext ? " (WikiText rows)" : ""}` : (values.windows as string);
      if (values.json) {
        process.stdout.write(JSON.stringify({ model: files.path, source, backend, ...r }) + "\n");
      } else {
        const lines = [
          `ppl:      ${r.ppl.toFixed(4)}`,
          `nll:      ${r.nll.toFixed(6)} nats/token`,
          `seq len:  ${r.seqLen}`,
          `tokens:   ${r.tokens} predicted${r.textTokens !== undefined ? ` (text ${r.textTokens} tokens, ${r.droppedTokens} dropped)` : ""}`,
          `windows:  ${r.windows}`,
          `backend:  ${backend}`,
          `model:    ${files.path}`,
          `source:   ${source}`,
        ];
        process.stdout.write(lines.join("\n") + "\n");
      }
      return 0;
    } finally {
      progress.end();
      intr.release();
      model.dispose();
    }
  },
};
