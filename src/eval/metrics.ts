import type { ChoiceDoc } from "./tasks/types";

/** Per-item bookkeeping of lm-eval's multiple-choice metrics. */
export interface ChoiceItemResult {
  id: string;
  gold: number;
  /** Summed continuation log-likelihood per choice. */
  logliks: number[];
  /** argmax of logliks (acc). */
  pred: number;
  /** argmax of loglik / character length of the choice string (acc_norm). */
  predNorm: number;
}

export interface TargetItemResult {
  id: string;
  /** Summed log-likelihood of the target continuation. */
  loglik: number;
  /** Target tokens scored. */
  tokens: number;
  /** All target tokens were the argmax; null when the scorer could not tell. */
  greedy: boolean | null;
}

/**
 * numpy.argmax: index of the largest value, the first one on ties; a NaN counts as the largest (numpy returns
 * the first NaN), which matters for acc_norm when an empty choice gives 0 / 0.
 */
export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 0; i < xs.length; i++) {
    if (Number.isNaN(xs[i])) return i;
    if (xs[i] > xs[best]) best = i;
  }
  return best;
}

/** Python's len(str): Unicode code points, not UTF-16 units (an emoji or a rare CJK character counts 1). */
export function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * acc picks the choice with the highest summed log-likelihood; acc_norm divides each by the character length
 * of the choice string first (lm-eval: len(choice) in code points, without the " " delimiter of the
 * continuation). An empty choice divides by 0 as numpy does: −∞ for a negative log-likelihood, NaN for 0.
 */
export function scoreChoice(doc: ChoiceDoc, logliks: number[]): ChoiceItemResult {
  const norm = logliks.map((l, i) => l / charLength(doc.choices[i]));
  return { id: doc.id, gold: doc.gold, logliks, pred: argmax(logliks), predNorm: argmax(norm) };
}

export interface MeanStderr {
  mean: number;
  /** Standard error of the mean (sample std with n − 1 over √n, as lm-eval); null for n < 2. */
  stderr: number | null;
}

export function meanStderr(xs: number[]): MeanStderr {
  const n = xs.length;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  if (n < 2) return { mean, stderr: null };
  const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1);
  return { mean, stderr: Math.sqrt(v / n) };
}
