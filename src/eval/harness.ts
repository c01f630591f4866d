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
 * Zero-shot evaluation scored like lm-evaluation-harness 0.4 (docs/evaluation.md): loglikelihood requests per
 * choice, acc / acc_norm for multiple choice, greedy accuracy and perplexity for lambada_openai.
 */

export interface EvaluateOptions extends RunOptions {
  /** Task names, lm-eval's (`lambada` is accepted for `lambada_openai`); default DEFAULT_TASKS. */
  tasks?: string[];
  /** First `limit` items of each task (lm-eval --limit); all when undefined. */
  limit?: number;
  /** Data folder (default env SDMPRUNE_DATA, else ../shared/data from the current directory). */
  dataDir?: string;
  /** Sequences per scorer call (default 8). */
  batchSize?: number;
  /**
   * Model context length (lm-eval HFLM max_length: the config's max_position_embeddings); longer requests keep
   * their last maxLength + 1 tokens, as HFLM does. Undefined: nothing is cut.
   */
  maxLength?: number;
  /** Prepend BOS to every request (lm-eval add_bos_token=True, the SDMPrune setting; default true). */
  bos?: boolean;
  /** Keep one SampleRecord per item (request text, token ids, log-likelihoods) in TaskResult.samples. */
  logSamples?: boolean;
}

/**
 * One item as `--log-samples` writes it (one JSON line), shaped after lm-eval's `--log_samples` records:
 * doc_id is the item's index in the task's data file, `arguments` the (context, continuation) requests.
 */
export interface SampleRecord {
  task: string;
  doc_id: number;
  /** The item's id in the data file (ARC/OBQA/WinoGrande ids; task-index otherwise). */
  id: string;
  /** Gold choice index, or the target continuation (lambada_openai). */
  target: number | string;
  arguments: [string, string][];
  /** lm-eval _encode_pair token ids per request, before left truncation. */
  context_ids: number[][];
  continuation_ids: number[][];
  /** Tokens cut from the left per request (context + continuation longer than max_length + 1). */
  truncated: number[];
  loglikelihoods: number[];
  /** null when the scorer cannot tell (a bare token scorer). */
  is_greedy: (boolean | null)[];
  /** Choice tasks: argmax of loglikelihoods, and of loglikelihood / len(choice) when the task reports acc_norm. */
  pred?: number;
  pred_norm?: number;
  acc?: number | null;
  acc_norm?: number;
  /** lambada_openai: the item's contribution to perplexity (its log-likelihood, as lm-eval logs it). */
  perplexity?: number;
}

export interface TaskResult {
  task: string;
  n: number;
  metrics: Partial<Record<MetricName, number | null>>;
  stderr: Partial<Record<MetricName, number | null>>;
  headline: MetricName;
  items: ChoiceItemResult[] | TargetItemResult[];
  /** Requests cut from the left to fit maxLength. */
  truncatedRequests: number;
  samples?: SampleRecord[];
  note?: string;
}

/** A mean over tasks, with the tasks and the metric taken from each. */
export interface TaskAverage {
  /** "paper": SDMPrune's Avg column (acc_norm where present, else acc; HellaSwag and lambada_openai left out). "acc": mean acc of every evaluated task. */
  name: "paper" | "acc";
  value: number;
  tasks: string[];
  metrics: MetricName[];
}

export interface EvaluationResult {
  /** Columns task, metric, value, n, stderr; the headline metric is each task's first row. */
  table: Table;
  tasks: TaskResult[];
  /** The paper's average (SDMPrune's Avg column): averages[0] when present, else null. */
  average: number | null;
  averagedTasks: string[];
  averages: TaskAverage[];
  /** Settings that change the numbers, recorded with them. */
  settings: { bos: boolean; maxLength: number | null; limit: number | null; batchSize: number };
  /** The table's notes (task caveats, limit, averages), also for JSON output. */
  notes: string[];
}

type RunRequests = (reqs: { context: string; continuation: string }[], itemOf: number[]) => ReturnType<typeof loglikelihoods>;

function sampleBase(spec: TaskSpec, i: number, id: string, reqs: { context: string; continuation: string }[], res: Awaited<ReturnType<typeof loglikelihoods>>) {
  return {
    task: spec.name,
    doc_id: i,
    id,
    arguments: reqs.map((r) => [r.context, r.continuation] as [string, string]),
    context_ids: res.map((r) => r.contextIds ?? []),
    continuation_ids: res.map((r) => r.continuationIds ?? []),
    truncated: res.map((r) => r.truncated),
    loglikelihoods: res.map((r) => r.loglik),
    is_greedy: res.map((r) => r.greedy),
  };
}

async function runChoiceTask(spec: TaskSpec, docs: ChoiceDoc[], run: RunRequests, logSamples: boolean): Promise<TaskResult> {
  const res = await run(docs.flatMap((d) => d.requests), docs.flatMap((d, i) => d.requests.map(() => i)));
  let at = 0;
  const samples: SampleRecord[] = [];
  const items = docs.map((d, i) => {
    const part = res.slice(at, at + d.requests.length);
    at += d.requests.length;
    const it = scoreChoice(d, part.map((r) => r.loglik));
    if (logSamples) {
      const rec: SampleRecord = { ...sampleBase(spec, i, d.id, d.requests, part), target: d.gold, pred: it.pred };
      if (spec.metrics.includes("acc_norm")) rec.pred_norm = it.predNorm;
      rec.acc = it.pred === d.gold ? 1 : 0;
      if (spec.metrics.includes("acc_norm")) rec.acc_norm = it.predNorm === d.gold ? 1 : 0;
      samples.push(rec);
    }
    return it;
  });
  const metrics: TaskResult["metrics"] = {};
  const stderr: TaskResult["stderr"] = {};
  for (const m of spec.metrics) {
    const hits = items.map((it) => ((m === "acc_norm" ? it.predNorm : it.pred) === it.gold ? 1 : 0));
    const s = meanStderr(hits);
    metrics[m] = s.mean;
    stderr[m] = s.stderr;
  }
  const truncatedRequests = res.filter((r) => r.truncated > 0).length;
  return { task: spec.name, n: docs.length, metrics, stderr, headline: spec.headline, items, truncatedRequests, samples: logSamples ? samples : undefined, note: spec.note };
}

async function runTargetTask(spec: TaskSpec, docs: TargetDoc[], canGreedy: boolean, run: RunRequests, logSamples: boolean): Promise<TaskResult> {
  const reqs = docs.map((d) => ({ context: d.context, continuation: d.target }));
  const res = await run(reqs, reqs.map((_, i) => i));
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
  if (spec.metrics.includes("perplexity")) {
    // lm-eval's perplexity aggregation: exp(−mean over items of the target's summed log-likelihood).
    metrics.perplexity = Math.exp(-items.reduce((s, it) => s + it.loglik, 0) / items.length);
    stderr.perplexity = null;
  }
  let note = spec.note;
  if (!canGreedy) note = `${spec.name}: acc not computed (the scorer has no greedy function; use modelScorer(model))`;
  const samples = logSamples
    ? docs.map((d, i): SampleRecord => ({
        ...sampleBase(spec, i, d.id, [reqs[i]], [res[i]]),
        target: d.target,
        acc: res[i].greedy === null ? null : res[i].greedy ? 1 : 0,
        perplexity: res[i].loglik,
      }))
    : undefined;
  const truncatedRequests = res.filter((r) => r.truncated > 0).length;
  return { task: spec.name, n: docs.length, metrics, stderr, headline: spec.headline, items, truncatedRequests, samples, note };
}

/** Evaluate tasks; returns a Table (task, metric, value, n, stderr) and per-task raw results. */
export async function evaluateTasks(scorerLike: ScorerLike, tokenizer: TextTokenizer, opts: EvaluateOptions = {}): Promise<EvaluationResult> {
  const scorer = asScorer(scorerLike);
  const names = opts.tasks ?? [...DEFAULT_TASKS];
  if (names.length === 0) throw new UsageError("no tasks to evaluate");
  const specs = names.map(getTask);
  const dup = specs.find((s, i) => specs.findIndex((t) => t.name === s.name) !== i);
  if (dup) throw new UsageError(`task ${dup.name} is listed twice (${names.join(", ")})`);
  const bos = opts.bos ?? true;
  const dataDir = resolveDataDir(opts.dataDir);
  const loaded = specs.map((s) => ({ spec: s, docs: s.load(dataDir, opts.limit) }));
  for (const { spec, docs } of loaded) if (docs.length === 0) throw new DataError(`task ${spec.name} has no items in ${dataDir}`);
  // progress in items (documents), whatever number of requests each has
  const total = loaded.reduce((s, l) => s + l.docs.length, 0);
  const progress = new Progress(opts, "eval:tasks", total);
  const logSamples = !!opts.logSamples;

  const results: TaskResult[] = [];
  for (const { spec, docs } of loaded) {
    // is_greedy comes with every request when the scorer can tell (lm-eval logs it for every choice too).
    const run: RunRequests = (reqs, itemOf) =>
      loglikelihoods(scorer, tokenizer, reqs, { ...opts, addBos: bos, keepTokens: logSamples, needGreedy: !!scorer.greedy, progress, message: spec.name, itemOf });
    if (docs.every((d) => d.kind === "choice")) results.push(await runChoiceTask(spec, docs as ChoiceDoc[], run, logSamples));
    else if (docs.every((d) => d.kind === "target")) results.push(await runTargetTask(spec, docs as TargetDoc[], !!scorer.greedy, run, logSamples));
    else throw new DataError(`task ${spec.name} mixes item kinds`);
  }

  const rows: Cell[][] = [];
  for (const r of results) {
    const ordered = [r.headline, ...(Object.keys(r.metrics) as MetricName[]).filter((m) => m !== r.headline)];
    for (const m of ordered) rows.push([r.task, m, r.metrics[m] ?? null, r.n, r.stderr[m] ?? null]);
  }
  const averages: TaskAverage[] = [];
  const paper = results.filter((r) => getTask(r.task).averaged && typeof r.metrics[r.headline] === "number");
  if (paper.length > 1) {
    averages.push({ name: "paper", value: paper.reduce((s, r) => s + (r.metrics[r.headline] as number), 0) / paper.length, tasks: paper.map((r) => r.task), metrics: paper.map((r) => r.headline) });
  }
  const withAcc = results.filter((r) => typeof r.metrics.acc === "number");
  if (withAcc.length > 1) {
    averages.push({ name: "acc", value: withAcc.reduce((s, r) => s + (r.metrics.acc as number), 0) / withAcc.length, tasks: withAcc.map((r) => r.task), metrics: withAcc.map(() => "acc") });
  }
  const notes = [`headline metric first per task (acc_norm where lm-eval reports it, else acc); accuracies are fractions; stderr = sample std / sqrt(n)`];
  notes.push(`requests: ${bos ? "BOS prepended (lm-eval add_bos_token=True)" : "no BOS (lm-eval add_bos_token=False)"}; ` +
    (opts.maxLength !== undefined ? `max_length ${opts.maxLength}, longer requests keep their last ${opts.maxLength + 1} tokens` : "no max_length, nothing truncated"));
  for (const a of averages) {
    rows.push([`average (${a.name})`, a.name === "paper" ? "acc_norm|acc" : "acc", a.value, a.tasks.length, null]);
    notes.push(a.name === "paper"
      ? `average (paper) = mean of ${a.tasks.map((t, i) => `${t} ${a.metrics[i]}`).join(", ")} (SDMPrune's Avg: acc_norm where present, else acc; hellaswag and lambada_openai not averaged)`
      : `average (acc) = mean acc of ${a.tasks.join(", ")}`);
  }
  for (const r of results) if (r.note) notes.push(r.note);
  for (const r of results) if (r.truncatedRequests > 0) notes.push(`${r.task}: ${r.truncatedRequests} requests longer than max_length ${opts.maxLength} + 1 tokens were cut from the left (as lm-eval)`);
  if (opts.limit !== undefined) notes.push(`first ${opts.limit} items per task (lm-eval --limit ${opts.limit}): not comparable with full-set numbers`);
  const table = new Table(["task", "metric", "value", "n", "stderr"], rows, { title: "Zero-shot evaluation", notes });
  const avgPaper = averages.find((a) => a.name === "paper");
  return {
    table,
    tasks: results,
    average: avgPaper ? avgPaper.value : null,
    averagedTasks: avgPaper ? avgPaper.tasks : [],
    averages,
    settings: { bos, maxLength: opts.maxLength ?? null, limit: opts.limit ?? null, batchSize: opts.batchSize ?? 8 },
    notes,
  };
}
