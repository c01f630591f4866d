import { identifyWindows } from "../data/windows";
import { DataError, UsageError } from "../errors";
import type { CausalLM } from "../model/causal-lm";
import type { TeacherCache } from "../teacher";
import { llmPruner } from "./llm-pruner";
import { ImportanceScores } from "./scores";
import { taylor } from "./taylor";
import { CRITERIA, isAdditive, type AccumulateOptions, type Criterion, type CriterionImpl, type ScoreSettings } from "./types";
import { magnitude, random, wanda } from "./weights";

export { ImportanceScores, SCORES_FORMAT, SCORES_VERSION, type WindowGroupJSON, type WindowRecord } from "./scores";
export { ExactSums } from "./exact-sum";
export { checkDistinctFiles, mergeScoreFiles, readScoresFile, writeScoresFile } from "./score-files";
export { modelFingerprint, fingerprintMismatch, type ModelFingerprint } from "./fingerprint";
export { CRITERIA, isAdditive, type AccumulateOptions, type Criterion, type ScoreSettings } from "./types";
export { taylorWindowLayerwise, taylorWindowStraightforward, type WindowScore } from "./taylor";

const IMPL: Record<Criterion, CriterionImpl> = {
  "sd-taylor": taylor,
  "ce-taylor": taylor,
  "llm-pruner": llmPruner,
  "llm-pruner-vector": llmPruner,
  magnitude,
  wanda,
  random,
};

/** Criteria that read only the weights (no calibration windows). */
export const DATA_FREE: readonly Criterion[] = ["magnitude", "random"];

/** The settings a call records (and merge compares). */
export function settingsFor(opts: AccumulateOptions, seqLen: number | null, teacher: TeacherCache | null): ScoreSettings {
  const c = opts.criterion;
  const dataFree = DATA_FREE.includes(c);
  if (c === "sd-taylor") {
    const alpha = opts.alpha;
    const temperature = opts.temperature;
    if (alpha === undefined || !Number.isFinite(alpha) || alpha < 0 || alpha > 1) throw new UsageError(`sd-taylor needs alpha in [0, 1], got ${alpha}`);
    if (alpha > 0 && (temperature === undefined || !(temperature > 0))) throw new UsageError(`sd-taylor needs a temperature > 0, got ${temperature}`);
    return { alpha, temperature: alpha > 0 ? (temperature as number) : null, topk: alpha > 0 && teacher ? teacher.topk : null, seqLen, seed: null };
  }
  if (c === "ce-taylor") return { alpha: 0, temperature: null, topk: null, seqLen, seed: null };
  if (c === "random") return { alpha: null, temperature: null, topk: null, seqLen: null, seed: opts.seed ?? 0 };
  return { alpha: null, temperature: null, topk: null, seqLen: dataFree ? null : seqLen, seed: dataFree ? null : opts.seed ?? null };
}

/**
 * Adds importance evidence from windows[from .. from+count) into `scores` (created when null) and
 * returns it. Additive criteria (sd-taylor, ce-taylor) add one window at a time, so a second call with
 * further windows refines the rankings, and a cancellation (CancelledError) keeps only whole samples.
 * sd-taylor reads p_τ from `teacher`, which must be built from the unpruned model over the same windows.
 */
export async function accumulate(
  model: CausalLM,
  windows: number[][],
  teacher: TeacherCache | null,
  scores: ImportanceScores | null,
  opts: AccumulateOptions,
): Promise<ImportanceScores> {
  const c = opts.criterion;
  if (!CRITERIA.includes(c)) throw new UsageError(`unknown criterion "${c}", expected one of ${CRITERIA.join(", ")}`);
  const dataFree = DATA_FREE.includes(c);
  const from = opts.from ?? 0;
  let count = 0;
  let T: number | null = null;
  if (!dataFree) {
    if (!Array.isArray(windows) || windows.length === 0) throw new UsageError(`criterion "${c}" needs calibration windows`);
    if (!Number.isInteger(from) || from < 0 || from >= windows.length) throw new UsageError(`from must be in [0, ${windows.length}), got ${from}`);
    count = opts.count ?? windows.length - from;
    if (!Number.isInteger(count) || count < 1 || from + count > windows.length) {
      throw new UsageError(`count must be in [1, ${windows.length - from}] for from = ${from}, got ${opts.count}`);
    }
    T = windows[from].length;
    const V = model.config.vocab_size;
    for (let i = from; i < from + count; i++) {
      if (windows[i].length !== T) throw new UsageError(`window ${i} has ${windows[i].length} tokens, expected ${T} (windows must have equal length)`);
      if (T < 2) throw new UsageError(`windows must hold at least 2 tokens`);
      windows[i].forEach((id, pos) => {
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new DataError(`window ${i}: token id ${id} at position ${pos} is outside [0, ${V})`);
      });
    }
  }
  const settings = settingsFor(opts, T, teacher);
  if (c === "sd-taylor" && (settings.alpha as number) > 0) {
    if (!teacher) throw new UsageError("sd-taylor with alpha > 0 needs a teacher cache (TeacherCache.build on the unpruned model)");
    if (teacher.vocabSize !== model.config.vocab_size) throw new UsageError(`teacher cache vocabulary ${teacher.vocabSize} differs from the model's ${model.config.vocab_size}`);
    teacher.checkWindows(windows, from, count);
  }
  const acc = scores ?? ImportanceScores.create(model, c, settings);
  if (scores) {
    scores.checkModel(model);
    scores.checkCompatible(c, settings);
  }
  const id = dataFree ? null : opts.identity ?? identifyWindows(windows, opts.seed ?? null);
  if (id && (id.indices.length !== windows.length || id.digests.length !== windows.length)) {
    throw new UsageError(`identity: expected ${windows.length} window indices and digests, got ${id.indices.length} and ${id.digests.length}`);
  }
  const rec = (w: number) => ({ draw: (id as NonNullable<typeof id>).draw, index: id!.indices[w], digest: id!.digests[w] });
  let added = false;
  let next = from;
  try {
    await IMPL[c].run({ model, windows, from, count, teacher, opts, settings }, (perLayer, n) => {
      // additive criteria: one call per window, in order; the others: one call for all windows
      const ws = !id ? [] : isAdditive(c) ? [rec(next++)] : Array.from({ length: count }, (_, k) => rec(from + k));
      acc.add(perLayer, n, ws);
      added = true;
    });
  } finally {
    // a cancelled additive run still counts: its whole samples are in
    if (added) acc.finishAccumulation();
  }
  return acc;
}
