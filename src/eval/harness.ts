import { DataError, UsageError } from "../errors";
import { Table, type Cell } from "../table";
import type { RunOptions, TextTokenizer } from "../types";
import { loglikelihoods } from "./loglikelihood";
import { meanStderr, scoreChoice, type ChoiceItemResult, type TargetItemResult } from "./metrics";
import { Progress } from "../progress";
import { asScorer, type ScorerLike } from "./scorer";
import { DEFAULT_TASKS, getTask, resolveDataDir, type ChoiceDoc, type MetricName, type TargetDoc, type TaskDoc, type TaskSpec } from "./tasks";

export { encodePair, loglikelihoods, type LoglikelihoodRequest, type LoglikelihoodResult } from "./loglikelihood";

/**
 * Zero-shot evaluation scored like lm-evaluation-harness (METHOD.md §10): loglikelihood requests per choice,
 * acc / acc_norm for multiple choice, greedy accuracy and target perplexity for LAMBADA.
 */

export interface EvaluateOptions extends RunOptions {
  /** Task names (default DEFAULT_TASKS: SDMPrune's tasks with offline data). */
  tasks?: string[];
  /** First `limit` items of each task (lm-eval --limit); all when undefined. */
  limit?: number;
  /** Data folder (default env SDMPRUNE_DATA, else ../shared/data from the current directory). */
  dataDir?: string;
  /** Sequences per scorer call (default 8). */
  batchSize?: number;
  /** Model context length; longer requests are cut from the left like lm-eval. */
  maxLength?: number;
}

export interface TaskResult {
  task: string;
  n: number;
  metrics: Partial<Record<MetricName, number | null>>;
  stderr: Partial<Record<MetricName, number | null>>;
  headline: MetricName;
  items: ChoiceItemResult[] | TargetItemResult[];
  note?: string;
}

export interface EvaluationResult {
  /** Columns task, metric, value, n, stderr; the headline metric is each task's first row. */
  table: Table;
  tasks: TaskResult[];
  /** Mean of the headline metrics of the averaged tasks present (SDMPrune's Avg column; HellaSwag excluded). */
  average: number | null;
  averagedTasks: string[];
}

function requestCount(doc: TaskDoc): number {
  return doc.kind === "choice" ? doc.requests.length : 1;
}

async function runChoiceTask(spec: TaskSpec, docs: ChoiceDoc[], run: (reqs: { context: string; continuation: string }[], greedy: boolean) => ReturnType<typeof loglikelihoods>): Promise<TaskResult> {
  const res = await run(docs.flatMap((d) => d.requests), false);
  let at = 0;
  const items = docs.map((d) => {
    const lls = res.slice(at, at + d.requests.length).map((r) => r.loglik);
    at += d.requests.length;
    return scoreChoice(d, lls);
  });
  const metrics: TaskResult["metrics"] = {};
  const stderr: TaskResult["stderr"] = {};
  for (const m of spec.metrics) {
    const hits = items.map((it) => ((m === "acc_norm" ? it.predNorm : it.pred) === it.gold ? 1 : 0));
    const s = meanStderr(hits);
    metrics[m] = s.mean;
    stderr[m] = s.stderr;
  }
  return { task: spec.name, n: docs.length, metrics, stderr, headline: spec.headline, items, note: spec.note };
}

async function runTargetTask(spec: TaskSpec, docs: TargetDoc[], canGreedy: boolean, run: (reqs: { context: string; continuation: string }[], greedy: boolean) => ReturnType<typeof loglikelihoods>): Promise<TaskResult> {
  const res = await run(docs.map((d) => ({ context: d.context, continuation: d.target })), canGreedy);
  const items: TargetItemResult[] = docs.map((d, i) => ({ id: d.id, loglik: res[i].loglik, tokens: res[i].tokens, greedy: res[i].greedy }));
  const metrics: TaskResult["metrics"] = {};
  const stderr: TaskResult["stderr"] = {};
  if (spec.metrics.includes("acc")) {
    if (canGreedy) {
      const s = meanStderr(items.map((it) => (it.greedy ? 1 : 0)));
      metrics.acc = s.mean;
      stderr.acc = s.stderr;
    } else {
      metrics.acc = null;
      stderr.acc = null;
    }
  }
  if (spec.metrics.includes("ppl")) {
    // lambada_openai: perplexity = exp(−mean over examples of the target's summed log-likelihood).
    metrics.ppl = Math.exp(-items.reduce((s, it) => s + it.loglik, 0) / items.length);
    stderr.ppl = null;
  }
  let note = spec.note;
  if (!canGreedy) note = `${spec.name}: acc not computed (the scorer has no greedy function; use modelScorer(model))`;
  return { task: spec.name, n: docs.length, metrics, stderr, headline: spec.headline, items, note };
}

/** Evaluate tasks; returns a Table (task, metric, value, n, stderr) and per-task raw results. */
export async function evaluateTasks(scorerLike: ScorerLike, tokenizer: TextTokenizer, opts: EvaluateOptions = {}): Promise<EvaluationResult> {
  const scorer = asScorer(scorerLike);
  const names = opts.tasks ?? [...DEFAULT_TASKS];
  if (names.length === 0) throw new UsageError("no tasks to evaluate");
  const specs = names.map(getTask);
  const dataDir = resolveDataDir(opts.dataDir);
  const loaded = specs.map((s) => ({ spec: s, docs: s.load(dataDir, opts.limit) }));
  for (const { spec, docs } of loaded) if (docs.length === 0) throw new DataError(`task ${spec.name} has no items in ${dataDir}`);
  const total = loaded.reduce((s, l) => s + l.docs.reduce((t, d) => t + requestCount(d), 0), 0);
  const progress = new Progress(opts, "eval:tasks", total);

  const results: TaskResult[] = [];
  for (const { spec, docs } of loaded) {
    const run = (reqs: { context: string; continuation: string }[], greedy: boolean) =>
      loglikelihoods(scorer, tokenizer, reqs, { ...opts, needGreedy: greedy, progress, message: spec.name });
    if (docs.every((d) => d.kind === "choice")) results.push(await runChoiceTask(spec, docs as ChoiceDoc[], run));
    else if (docs.every((d) => d.kind === "target")) results.push(await runTargetTask(spec, docs as TargetDoc[], !!scorer.greedy, run));
    else throw new DataError(`task ${spec.name} mixes item kinds`);
  }

  const rows: Cell[][] = [];
  for (const r of results) {
    const ordered = [r.headline, ...(Object.keys(r.metrics) as MetricName[]).filter((m) => m !== r.headline)];
    for (const m of ordered) rows.push([r.task, m, r.metrics[m] ?? null, r.n, r.stderr[m] ?? null]);
  }
  const averaged = results.filter((r) => getTask(r.task).averaged && typeof r.metrics[r.headline] === "number");
  const average = averaged.length ? averaged.reduce((s, r) => s + (r.metrics[r.headline] as number), 0) / averaged.length : null;
  const notes = [`headline metric first per task (METHOD.md §10); accuracies are fractions; stderr = sample std / sqrt(n)`];
  if (average !== null && averaged.length > 1) {
    rows.push(["average", "headline", average, averaged.length, null]);
    notes.push(`average = mean headline metric of ${averaged.map((r) => r.task).join(", ")} (HellaSwag and LAMBADA excluded, as in SDMPrune's table)`);
  }
  for (const r of results) if (r.note) notes.push(r.note);
  if (opts.limit !== undefined) notes.push(`limit ${opts.limit} items per task (not comparable with full-set numbers)`);
  const table = new Table(["task", "metric", "value", "n", "stderr"], rows, { title: "Zero-shot evaluation", notes });
  return { table, tasks: results, average, averagedTasks: averaged.map((r) => r.task) };
}
