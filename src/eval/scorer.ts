import { DataError, NumericError } from "../errors";

/**
 * What evaluation needs from a model, as plain functions so the protocols can be tested with fakes and run on
 * any backend.
 */

/**
 * For each sequence x (any lengths ≥ 1): log p(x[t+1] | x[..t]) for t = 0..len−2 (len−1 values).
 * Same semantics as `CausalLM.tokenLogProbs`.
 */
export type TokenScorer = (seqs: number[][]) => Float32Array[];

/** Log-probs as above plus, per position, 1 if x[t+1] was the argmax of the prediction (greedy), else 0. */
export type GreedyScorer = (seqs: number[][]) => { logProbs: Float32Array; greedy: Uint8Array }[];

/**
 * A scorer for the zero-shot harness: `logProbs` always; `greedy` when the task needs greedy matching
 * (LAMBADA accuracy). A bare TokenScorer is accepted wherever a Scorer is.
 */
export interface Scorer {
  logProbs: TokenScorer;
  greedy?: GreedyScorer;
}

export type ScorerLike = TokenScorer | Scorer;

export function asScorer(s: ScorerLike): Scorer {
  return typeof s === "function" ? { logProbs: s } : s;
}

/** Check a scorer's answer has one array of len−1 finite values per sequence. */
export function checkScores(seqs: number[][], out: ArrayLike<number>[], what = "scorer"): void {
  if (!Array.isArray(out) || out.length !== seqs.length) {
    throw new DataError(`${what} returned ${Array.isArray(out) ? out.length : typeof out} results for ${seqs.length} sequences`);
  }
  for (let i = 0; i < seqs.length; i++) {
    const want = Math.max(0, seqs[i].length - 1);
    if (out[i].length !== want) throw new DataError(`${what} returned ${out[i].length} log-probs for sequence ${i} of ${seqs[i].length} tokens, expected ${want}`);
    for (let t = 0; t < want; t++) {
      const v = out[i][t];
      if (!Number.isFinite(v) && v !== -Infinity) throw new NumericError(`${what} returned ${v} at sequence ${i}, position ${t}`);
    }
  }
}
