import * as fs from "node:fs";
import * as path from "node:path";
import { readText } from "../../data/text";
import { evalWindows } from "../../data/windows";
import { DataError } from "../../errors";
import { paramCounts } from "../../model/config";
import { Session } from "../../session";
import { Table } from "../../table";
import { checkOutputDir } from "../../io/atomic";
import type { Command } from "../command";
import { BACKEND_FLAG, JSON_FLAG, MODEL_FLAG, backendFlag, flagHelp, intFlag, numFlag, parseFlags, str } from "../flags";
import { interruptSignal, stderrProgress } from "../progress";

/** The embedded demo model, shipped in the package (models/demo; see its README.md). */
export const DEMO_MODEL_DIR = path.resolve(__dirname, "../../../models/demo");
export const DEMO_HELDOUT = "heldout.txt";

const FLAGS = {
  model: { ...MODEL_FLAG.model, arg: "DIR", help: "model directory with a heldout.txt (default: the embedded models/demo)" },
  text: str("FILE", "calibration/evaluation text (default: DIR/heldout.txt)"),
  target: str("X", "share of parameters to remove (default 0.2)"),
  samples: str("N", "calibration windows per stage (default 16)"),
  "seq-len": str("N", "tokens per window (default 128)"),
  "eval-windows": str("N", "windows of the text used for perplexity (default 64; 0 = all)"),
  seed: str("N", "seed of the window draws (default 0)"),
  out: str("DIR", "also save the pruned model there"),
  ...BACKEND_FLAG,
  ...JSON_FLAG,
} as const;

const USAGE = `Usage: sdmprune demo [--model DIR] [options]

The main job end to end on the embedded demo model (a 0.4 M-parameter LLaMA trained on Moby-Dick that
ships in models/demo): load it, calibrate on its held-out text, prune with the two-stage SDMPrune recipe
(stage 1 ce-taylor, stage 2 sd-taylor against the original as teacher), and compare perplexity and a
greedy sample before and after.

${flagHelp(FLAGS, 17)}`;

export const demoCommand: Command = {
  name: "demo",
  summary: "prune the embedded demo model 20 % with SDMPrune and compare before/after (no downloads)",
  usage: USAGE,
  async run(argv) {
    const { values: v } = parseFlags(argv, FLAGS, USAGE);
    const dir = path.resolve(v.model ?? DEMO_MODEL_DIR);
    const textFile = v.text ?? path.join(dir, DEMO_HELDOUT);
    if (!fs.existsSync(dir)) throw new DataError(`demo model directory ${dir} does not exist${v.model ? "" : " (the package ships it in models/demo; reinstall or pass --model)"}`);
    if (!fs.existsSync(textFile)) throw new DataError(`no held-out text at ${textFile}; pass --text FILE`);
    if (v.out) checkOutputDir(v.out, false);
    const target = numFlag("target", v.target) ?? 0.2;
    const samples = intFlag("samples", v.samples) ?? 16;
    const seqLen = intFlag("seq-len", v["seq-len"]) ?? 128;
    const evalWindowCount = intFlag("eval-windows", v["eval-windows"], 0) ?? 64;
    const seed = intFlag("seed", v.seed) ?? 0;
    const text = readText(textFile);

    const t0 = Date.now();
    const session = await Session.load(dir, { backend: backendFlag(v.backend) });
    const intr = interruptSignal();
    const progress = stderrProgress(!v.json || !!process.stderr.isTTY);
    const run = { onProgress: progress.onProgress, signal: intr.signal };
    try {
      const tok = session.tokenizer!;
      // Perplexity on the first N non-overlapping windows of the held-out text (all of it with 0).
      const ids = tok.encode(text);
      if (ids.length < seqLen) throw new DataError(`${textFile}: ${ids.length} tokens, fewer than one window of ${seqLen}`);
      const all = evalWindows(ids, seqLen);
      const take = evalWindowCount === 0 ? all.length : Math.min(all.length, evalWindowCount);
      const windows = all.slice(0, take);
      const prompt = "Call me Ishmael.";
      const before = await session.evaluate({ ppl: { windows, seqLen }, ...run });
      const genBefore = session.generate(prompt, { maxNewTokens: 24 });
      const paramsBefore = paramCounts(session.config).total;
      // Calibrate on the held-out text after the evaluation windows, so pruning never sees the evaluated tokens
      // (with --eval-windows 0 the whole text is evaluated and also used for calibration).
      const rest = ids.slice(take * seqLen);
      const disjoint = rest.length >= 2 * seqLen;
      const calText = disjoint ? tok.decode(rest, { skipSpecialTokens: true }) : text;
      const report = await session.sdmprune({ target, text: calText, samples, seqLen, seed, ...run });
      const after = await session.evaluate({ ppl: { windows, seqLen }, ...run });
      const genAfter = session.generate(prompt, { maxNewTokens: 24 });
      progress.end();
      const pb = before.raw.ppl!;
      const pa = after.raw.ppl!;
      const paramsAfter = paramCounts(session.config).total;
      const seconds = (Date.now() - t0) / 1000;
      if (v.out) await session.save(v.out);
      if (v.json) {
        process.stdout.write(
          JSON.stringify({ model: dir, backend: session.backend, target, paramsBefore, paramsAfter, pplBefore: pb.ppl, pplAfter: pa.ppl, seqLen, evalTokens: pb.tokens, widths: report.stage2.widthsAfter, sampleBefore: genBefore, sampleAfter: genAfter, seconds }) + "\n",
        );
        return 0;
      }
      const table = new Table(
        ["", "before", "after"],
        [
          ["parameters", paramsBefore, paramsAfter],
          ["MLP widths", report.stage1.widthsBefore.join(","), report.stage2.widthsAfter.join(",")],
          [`held-out ppl@${seqLen}`, pb.ppl, pa.ppl],
          ["greedy sample", JSON.stringify(prompt + genBefore), JSON.stringify(prompt + genAfter)],
        ],
        {
          title: `sdmprune demo: ${path.basename(dir)} pruned ${Math.round(target * 100)} % with SDMPrune (two stages)`,
          digits: 2,
          notes: [
            `perplexity on ${pb.windows} windows × ${seqLen} tokens (${pb.tokens} predicted) of ${path.basename(textFile)}, which the model never trained on`,
            `calibration: ${samples} windows per stage drawn from ${disjoint ? `the rest of the text (${rest.length} tokens, disjoint from the evaluated ones)` : "the same text"} (seed ${seed}); backend ${session.backend}; ${seconds.toFixed(1)} s`,
            `next: recover quality with \`sdmprune recover\`; run \`sdmprune demo --help\` for options`,
          ],
        },
      );
      process.stdout.write(report.table().toText() + "\n\n" + table.toText() + "\n");
      return 0;
    } finally {
      progress.end();
      intr.release();
      session.dispose();
    }
  },
};
