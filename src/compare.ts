import { UsageError } from "./errors";
import { evaluateTasks } from "./eval/harness";
import { modelScorer } from "./eval/model-scorer";
import type { PerplexityResult } from "./eval/perplexity";
import { CRITERIA, type Criterion } from "./importance";
import { paramCounts } from "./model/config";
import type { CalibrateOptions, PplSpec, Session } from "./session";
import { Table, type Cell } from "./table";
import type { RunOptions } from "./types";

/**
 * Criteria × pruning ratios × calibration seeds, with error bars (issue: paper tables differ by less than
 * their seed noise). Per seed the session calibrates once (teacher cache built once when a criterion needs
 * it), scores each criterion once, and for each ratio prunes, evaluates and undoes; so the cost is
 * seeds × (calibration + criteria × scoring) + seeds × criteria × ratios × evaluation.
 */

export interface CompareOptions extends RunOptions {
  criteria: Criterion[];
  /** Fractions of each layer's MLP channels removed (prune({ratio})). */
  ratios: number[];
  seeds: number[];
  /** Calibration source and size (text/files/windows, stories, samples, seqLen, topk); the seed comes from `seeds`. */
  calibration: Omit<CalibrateOptions, "seed" | "teacher" | "onProgress" | "signal">;
  /** Held-out evaluation text or windows. */
  ppl: PplSpec;
  /** Zero-shot tasks (accuracy of each task's headline metric; the average over averaged tasks). */
  tasks?: string[];
  limit?: number;
  dataDir?: string;
  alpha?: number;
  temperature?: number;
  roundTo?: number;
}

export interface CompareRun {
  criterion: Criterion;
  ratio: number;
  seed: number;
  params: number;
  ppl: number;
  /** Task average (null without tasks). */
  average: number | null;
  tasks: Record<string, number | null> | null;
  /** Per layer: kept channels, original numbering. */
  kept: number[][];
}

export interface CompareSummary {
  criterion: Criterion;
  ratio: number;
  seeds: number;
  params: number;
  /** Share of all parameters removed. */
  removed: number;
  ppl: MeanStd;
  average: MeanStd | null;
  /** Mean over seed pairs of |kept_a ∩ kept_b| / |kept_a| summed over layers (null for one seed). */
  agreement: number | null;
}

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n − 1); null for one value. */
  std: number | null;
  n: number;
}

export interface CompareResult {
  baseline: { params: number; ppl: number; average: number | null };
  runs: CompareRun[];
  summary: CompareSummary[];
  evaluation: string;
  warnings: string[];
}

export type CompareTable = Table & { raw: CompareResult };

/** Mean and sample standard deviation. */
export function meanStd(values: number[]): MeanStd {
  const n = values.length;
  if (n === 0) throw new UsageError("meanStd of no values");
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: null, n };
  const v = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { mean, std: Math.sqrt(v), n };
}

/** Fraction of kept channels two runs share: Σ_l |A_l ∩ B_l| / Σ_l |A_l| (both runs keep the same counts). */
export function keptOverlap(a: number[][], b: number[][]): number {
  let shared = 0;
  let total = 0;
  a.forEach((ka, l) => {
    const sb = new Set(b[l]);
    for (const i of ka) if (sb.has(i)) shared++;
    total += ka.length;
  });
  return total === 0 ? 1 : shared / total;
}

/** Mean pairwise kept-set overlap over all pairs of runs (null for fewer than two). */
export function seedAgreement(kept: number[][][]): number | null {
  if (kept.length < 2) return null;
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < kept.length; i++) for (let j = i + 1; j < kept.length; j++) {
    sum += keptOverlap(kept[i], kept[j]);
    pairs++;
  }
  return sum / pairs;
}

export function fmtMeanStd(m: MeanStd | null, digits: number): string | null {
  if (!m) return null;
  return m.std === null ? m.mean.toFixed(digits) : `${m.mean.toFixed(digits)} ± ${m.std.toFixed(digits)}`;
}

function checkList<T>(name: string, v: T[], ok: (x: T) => boolean, what: string): void {
  if (!Array.isArray(v) || v.length === 0) throw new UsageError(`compare: ${name} must be a non-empty list`);
  for (const x of v) if (!ok(x)) throw new UsageError(`compare: ${name} must hold ${what}, got ${JSON.stringify(x)}`);
  if (new Set(v).size !== v.length) throw new UsageError(`compare: ${name} has duplicates: ${v.join(", ")}`);
}

export function validateCompare(opts: CompareOptions): void {
  checkList("criteria", opts.criteria, (c) => CRITERIA.includes(c), `criteria among ${CRITERIA.join(", ")}`);
  checkList("ratios", opts.ratios, (r) => typeof r === "number" && r > 0 && r < 1, "numbers with 0 < ratio < 1");
  checkList("seeds", opts.seeds, (s) => Number.isInteger(s) && s >= 0, "non-negative integers");
  if (!opts.ppl) throw new UsageError("compare: give ppl (held-out evaluation text or windows)");
}

/** Hooks into the Session that compare() needs beyond its public API. */
export interface CompareHooks {
  ppl(run: RunOptions): Promise<PerplexityResult & { source: string }>;
  leakage(): string | null;
}

/** Run the sweep on `session` (must be unpruned; Session.compare has validated `opts`); the Session restores its calibration and scores afterwards. */
export async function runCompare(session: Session, opts: CompareOptions, hooks: CompareHooks): Promise<CompareTable> {
  const run: RunOptions = { onProgress: opts.onProgress, signal: opts.signal };
  const needsTeacher = opts.criteria.some((c) => c === "sd-taylor" && (opts.alpha ?? 0.4) > 0);
  const tasksOf = async () => {
    if (!opts.tasks) return null;
    if (!session.tokenizer) throw new UsageError(`${session.path} has no tokenizer; zero-shot tasks need one`);
    // lm-eval's truncation at the model's context, as Session.evaluate does
    const r = await evaluateTasks(modelScorer(session.model), session.tokenizer, { tasks: opts.tasks, limit: opts.limit, dataDir: opts.dataDir, maxLength: session.model.config.max_position_embeddings, ...run });
    const tasks = Object.fromEntries(r.tasks.map((t) => [t.task, (t.metrics as Record<string, number | null>)[t.headline] ?? null]));
    // the harness prints no average of a single task; the comparison's "task accuracy" is then that task's
    const only = r.tasks.length === 1 ? tasks[r.tasks[0].task] : null;
    return { average: r.average ?? only, tasks };
  };
  const base = await hooks.ppl(run);
  const baseTasks = await tasksOf();
  const originalParams = paramCounts(session.originalConfig).total;
  const runs: CompareRun[] = [];
  const warnings = new Set<string>();
  for (const seed of opts.seeds) {
    await session.calibrate({ ...opts.calibration, seed, teacher: needsTeacher, ...run });
    const w = hooks.leakage();
    if (w) warnings.add(`seed ${seed}: ${w}`);
    for (const criterion of opts.criteria) {
      await session.score({ criterion, alpha: criterion === "sd-taylor" ? opts.alpha : undefined, temperature: criterion === "sd-taylor" ? opts.temperature : undefined, seed, ...run });
      for (const ratio of opts.ratios) {
        session.prune({ ratio, roundTo: opts.roundTo, label: `compare ${criterion} ratio ${ratio} seed ${seed}` });
        try {
          const p = await hooks.ppl(run);
          const t = await tasksOf();
          runs.push({ criterion, ratio, seed, params: paramCounts(session.config).total, ppl: p.ppl, average: t ? t.average : null, tasks: t ? t.tasks : null, kept: session.originalIndices() });
        } finally {
          session.undo();
        }
      }
    }
  }
  const summary: CompareSummary[] = [];
  for (const criterion of opts.criteria) for (const ratio of opts.ratios) {
    const rs = runs.filter((r) => r.criterion === criterion && r.ratio === ratio);
    const avgs = rs.map((r) => r.average).filter((a): a is number => typeof a === "number");
    summary.push({
      criterion,
      ratio,
      seeds: rs.length,
      params: rs[0].params,
      removed: (originalParams - rs[0].params) / originalParams,
      ppl: meanStd(rs.map((r) => r.ppl)),
      average: avgs.length ? meanStd(avgs) : null,
      agreement: seedAgreement(rs.map((r) => r.kept)),
    });
  }
  const raw: CompareResult = {
    baseline: { params: originalParams, ppl: base.ppl, average: baseTasks ? baseTasks.average : null },
    runs,
    summary,
    evaluation: `${base.source}, ppl@${base.seqLen} (${base.tokens} predicted tokens)`,
    warnings: [...warnings],
  };
  return Object.assign(compareTable(raw, !!opts.tasks, opts), { raw });
}

function compareTable(raw: CompareResult, withTasks: boolean, opts: CompareOptions): Table {
  const columns = ["criterion", "ratio", "% params removed", "ppl (mean ± std)", ...(withTasks ? ["task avg (mean ± std)"] : []), "kept-set agreement", "seeds"];
  const rows: Cell[][] = [["(unpruned)", 0, 0, raw.baseline.ppl.toFixed(3), ...(withTasks ? [raw.baseline.average === null ? null : raw.baseline.average.toFixed(4)] : []), null, null]];
  for (const s of raw.summary) {
    rows.push([s.criterion, s.ratio, 100 * s.removed, fmtMeanStd(s.ppl, 3), ...(withTasks ? [fmtMeanStd(s.average, 4)] : []), s.agreement, s.seeds]);
  }
  const cal = opts.calibration;
  return new Table(columns, rows, {
    title: "Criteria × ratios over calibration seeds",
    digits: 3,
    notes: [
      `evaluation: ${raw.evaluation}; std is the sample standard deviation over seeds ${opts.seeds.join(", ")}`,
      `calibration per seed: ${cal.samples ?? 32} windows × ${cal.seqLen ?? 128} tokens${cal.stories ? `, stories ${cal.stories}` : ""}${opts.roundTo ? `; widths rounded to multiples of ${opts.roundTo}` : ""}`,
      "kept-set agreement: mean over seed pairs of the share of kept channels both seeds keep",
      ...raw.warnings.map((w) => `WARNING: ${w}`),
    ],
  });
}
