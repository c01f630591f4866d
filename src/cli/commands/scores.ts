import * as fs from "node:fs";
import * as path from "node:path";
import { UsageError } from "../../errors";
import { parseShard, type ShardSpec } from "../../data/windows";
import type { BackendName } from "../../engine";
import { isAdditive, mergeScoreFiles, writeScoresFile } from "../../importance";
import { scoreWithWorkers, workerCheckpoint } from "../../score-workers";
import { criterionNeeds, Session, type CalibrateOptions } from "../../session";
import { checkOutputFile } from "../../io/atomic";
import { describeEstimate, type JobEstimate } from "../../resources";
import type { Command } from "../command";
import { BACKEND_FLAG, OFFLOAD_FLAGS, offloadFromFlags, bool, CALIBRATION_FLAGS, CRITERION_FLAG, MODEL_FLAG, SD_TAYLOR_FLAGS, backendFlag, calibrationFromFlags, calibrationUsage, criterionFlag, flagHelp, intFlag, numFlag, parseFlags, requireFlags, str } from "../flags";
import { interruptSignal, stderrProgress, gpuMemoryLine } from "../progress";

const FLAGS = {
  ...MODEL_FLAG,
  ...CRITERION_FLAG,
  ...SD_TAYLOR_FLAGS,
  out: str("FILE.json", "output file (written atomically)"),
  "save-windows": str("FILE", "also write the calibration windows (of this shard)"),
  ...BACKEND_FLAG,
  ...OFFLOAD_FLAGS,
} as const;

const SPLIT_FLAGS = {
  shard: str(
    "i/N|auto",
    "i/N: draw the same windows as one run and score the contiguous slice i of N (0-based):\nwindows [floor(i*n/N), floor((i+1)*n/N)) of the n drawn;\nauto: i and N from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (sbatch --array=0-(N-1)) or\nJOB_COMPLETION_INDEX/SDMPRUNE_SHARD_COUNT (Kubernetes Indexed Job; set the count to\nthe Job's completions)",
  ),
  workers: str("N", "score in N worker threads (wasm/cpu backends), each with its own backend and model copy"),
  checkpoint: str("FILE", "write the running scores to FILE every K windows and on Ctrl-C/SIGTERM\n(with --workers: FILE.worker-k-of-N per worker)"),
  "checkpoint-every": str("K", "windows between checkpoints (default 8)"),
  resume: bool("continue from --checkpoint FILE (start afresh when it does not exist yet); the result\nequals an uninterrupted run"),
} as const;

const USAGE = `Usage: sdmprune scores --model PATH (--windows FILE.json | --text FILE --samples N --seq-len L --seed S)
                       --criterion NAME [--alpha A --temperature T] [--topk K|full] --out FILE.json
                       [--shard i/N|auto] [--workers N] [--checkpoint FILE [--resume] [--checkpoint-every K]]
       sdmprune scores merge A.json B.json ... --out M.json

Accumulate MLP channel importance over calibration windows and write a scores file (format:
docs/scores-format.md): scores[layer][channel], exact sums, settings, model fingerprint and the digest of every
window summed. Files on disjoint windows (same model, criterion and settings) merge exactly; prune --scores uses
the result.

${flagHelp(FLAGS, 21)}
${calibrationUsage()}

Splitting the work (sd-taylor, ce-taylor; the merged sums are exact, so every split gives one run's bits):
${flagHelp(SPLIT_FLAGS, 21)}

merge: sums score files exactly; refuses a file given twice, other criteria, settings or models, and windows
counted twice (naming the first shared window).`;

export const scoresCommand: Command = {
  name: "scores",
  summary: "compute importance scores of MLP channels (sd-taylor, ce-taylor, llm-pruner, wanda, ...); merge score files",
  usage: USAGE,
  async run(argv) {
    if (argv[0] === "merge") return mergeCommand(argv.slice(1));
    const { values } = parseFlags(argv, { ...FLAGS, ...SPLIT_FLAGS, ...CALIBRATION_FLAGS }, USAGE);
    requireFlags(values, ["model", "out"], USAGE);
    const criterion = criterionFlag(values.criterion) ?? "sd-taylor";
    const alpha = numFlag("alpha", values.alpha);
    const temperature = numFlag("temperature", values.temperature);
    if (criterion !== "sd-taylor" && (alpha !== undefined || temperature !== undefined)) throw new UsageError("--alpha/--temperature apply to --criterion sd-taylor only");
    const cal = calibrationFromFlags(values);
    const needs = criterionNeeds(criterion, alpha);
    if (!cal && needs.windows) throw new UsageError(`criterion ${criterion} needs calibration data: give --windows FILE.json or --text FILE\n\n${USAGE}`);
    checkOutputFile(values.out);
    const split = values.shard !== undefined || values.workers !== undefined || values.checkpoint !== undefined;
    if (split && !isAdditive(criterion)) throw new UsageError(`--shard, --workers and --checkpoint apply to sd-taylor and ce-taylor (sums over windows); ${criterion} is computed in one call`);
    if (values.resume && values.checkpoint === undefined) throw new UsageError("--resume needs --checkpoint FILE");
    if (values["checkpoint-every"] !== undefined && values.checkpoint === undefined) throw new UsageError("--checkpoint-every needs --checkpoint FILE");
    let shard: (ShardSpec & { source: string }) | undefined;
    try {
      shard = values.shard === undefined ? undefined : parseShard(values.shard);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const workers = values.workers === undefined ? undefined : intFlag("workers", values.workers, 1);
    const every = values["checkpoint-every"] === undefined ? undefined : intFlag("checkpoint-every", values["checkpoint-every"], 1);
    const ckFile = values.checkpoint;
    if (ckFile !== undefined && !values.resume) {
      const existing = workers ? Array.from({ length: workers }, (_, k) => workerCheckpoint(ckFile, k, workers)).filter((f) => fs.existsSync(f)) : fs.existsSync(ckFile) ? [ckFile] : [];
      if (existing.length) throw new UsageError(`checkpoint ${existing[0]} exists: give --resume to continue it, or remove it`);
    }
    if (ckFile !== undefined && values.resume) checkResumeLayout(ckFile, workers);
    if (shard) process.stderr.write(`scores: shard ${shard.index}/${shard.count} (${shard.source})\n`);

    const progress = stderrProgress();
    const intr = interruptSignal();
    const run = { onProgress: progress.onProgress, signal: intr.signal };
    if (workers !== undefined) {
      if (values["save-windows"]) throw new UsageError("--save-windows is not available with --workers (each worker holds a part)");
      try {
        const backend = backendFlag(values.backend) ?? (process.env.SDMPRUNE_BACKEND as BackendName | undefined);
        const scores = await scoreWithWorkers({
          model: values.model as string,
          backend,
          workers,
          calibrate: { ...(cal as CalibrateOptions), teacher: needs.teacher, shard },
          score: { criterion, alpha, temperature, seed: cal?.seed },
          checkpoint: ckFile ? { file: ckFile, everyWindows: every, resume: !!values.resume } : undefined,
          ...run,
        });
        progress.end();
        await writeScoresFile(values.out as string, scores);
        process.stdout.write(`${criterion}: ${scores.samples} windows scored by ${workers} workers\nwrote ${values.out} (${fs.statSync(values.out as string).size} bytes)\n`);
        return 0;
      } finally {
        progress.end();
        intr.release();
      }
    }

    const session = await Session.load(values.model as string, { backend: backendFlag(values.backend), skipMemoryCheck: values["skip-memory-check"] === true, ...offloadFromFlags(values) });
    try {
      if (cal) {
        const estimate = { score: isAdditive(criterion), report: (e: JobEstimate) => process.stderr.write(`${describeEstimate(e, session.backend)}\n`) };
        await session.calibrate({ ...cal, ...run, teacher: needs.teacher, shard, estimate });
        if (values["save-windows"]) await session.saveWindows(values["save-windows"]);
      }
      let resume = false;
      if (ckFile !== undefined && values.resume) {
        if (fs.existsSync(ckFile)) {
          await session.loadScores(ckFile);
          resume = true;
          const c = session.info().raw.calibration;
          process.stderr.write(`scores: resuming from ${ckFile} (${c ? c.cursor : 0} of ${c ? c.windows : 0} windows done)\n`);
        } else process.stderr.write(`scores: no checkpoint at ${ckFile} yet, starting from the first window\n`);
      }
      const c = session.info().raw.calibration;
      const done = resume && c !== null && c.cursor === c.windows;
      if (!done) {
        const r = await session.score({ criterion, alpha, temperature, seed: cal?.seed, resume, checkpoint: ckFile ? { file: ckFile, everyWindows: every } : undefined, ...run });
        progress.end();
        process.stdout.write(`${r.table().toText()}\n`);
      }
      await session.saveScores(values.out as string);
      process.stdout.write(`wrote ${values.out} (${fs.statSync(values.out as string).size} bytes)\n`);
      process.stderr.write(gpuMemoryLine());
      return 0;
    } finally {
      progress.end();
      intr.release();
      session.dispose();
    }
  },
};

const MERGE_FLAGS = { out: str("M.json", "the merged scores file") } as const;
const MERGE_USAGE = `Usage: sdmprune scores merge A.json B.json ... --out M.json\n\n${flagHelp(MERGE_FLAGS)}`;

async function mergeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, MERGE_FLAGS, MERGE_USAGE, { positionals: true });
  requireFlags(values, ["out"], MERGE_USAGE);
  if (positionals.length === 0) throw new UsageError(`scores merge: give the score files to merge\n\n${MERGE_USAGE}`);
  if (positionals.includes(values.out as string)) throw new UsageError(`scores merge: --out ${values.out} is also an input; write the merge to a new file`);
  const m = mergeScoreFiles(positionals);
  await writeScoresFile(values.out as string, m);
  const draws = m.windowGroups() ?? [];
  const desc = draws.map((g) => `${g.indices.length} of ${g.total} windows of draw ${g.draw}${g.seed !== null ? ` (seed ${g.seed})` : ""}`).join("; ");
  process.stdout.write(`merged ${positionals.length} files: ${m.criterion}, ${m.samples} samples (${desc})\nwrote ${values.out} (${fs.statSync(values.out as string).size} bytes)\n`);
  return 0;
}

/**
 * --resume continues the checkpoints of the same layout: one FILE, or FILE.worker-k-of-N for --workers N.
 * Checkpoints of another layout would be ignored and the work redone silently, so they are refused.
 */
function checkResumeLayout(file: string, workers: number | undefined): void {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const prefix = `${base}.worker-`;
  const counts = new Set(
    names
      .filter((n) => n.startsWith(prefix))
      .map((n) => /^(\d+)-of-(\d+)$/.exec(n.slice(prefix.length)))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[2])),
  );
  const other = [...counts].filter((n) => n !== workers);
  if (workers === undefined && other.length) throw new UsageError(`--resume: ${file} was checkpointed by --workers ${other[0]} (${base}.worker-*-of-${other[0]}); resume with --workers ${other[0]}`);
  if (workers !== undefined && fs.existsSync(file)) throw new UsageError(`--resume: ${file} is a one-process checkpoint; resume it without --workers`);
  if (workers !== undefined && other.length && !counts.has(workers)) throw new UsageError(`--resume: the checkpoints are of --workers ${other[0]}, not ${workers}; resume with --workers ${other[0]}`);
}
