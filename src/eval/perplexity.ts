import { DataError, NumericError } from "../errors";
import type { RunOptions, TextTokenizer } from "../types";
import { evalWindows, validateWindows } from "../data/windows";
import { Progress } from "../progress";
import { PPL_BATCH_WINDOWS } from "./ppl-batch";
import { checkScores, type TokenScorer } from "./scorer";

export type { TokenScorer } from "./scorer";

export interface PerplexityResult {
  /** exp(nll). */
  ppl: number;
  /** Mean negative log-likelihood (nats) over all predicted tokens of all windows. */
  nll: number;
  /** Predicted tokens: windows × (seqLen − 1). */
  tokens: number;
  seqLen: number;
  windows: number;
}

export interface PerplexityOptions extends RunOptions {
  /**
   * Windows per scorer call (default PPL_BATCH_WINDOWS, 4; the Session passes defaultPplBatch for its model and
   * backend). The result does not depend on it beyond float rounding.
   */
  batchSize?: number;
  /** Progress phase name (default "eval:ppl"). */
  phase?: string;
}

/**
 * Perplexity over equal-length windows: each window contributes its seqLen − 1 next-token predictions, and
 * PPL = exp(mean NLL over all of them) (docs/method.md, "Perplexity", steps 4–5). Cancellation is checked between batches.
 */
export async function perplexity(scorer: TokenScorer, windows: number[][], opts: PerplexityOptions = {}): Promise<PerplexityResult> {
  validateWindows(windows);
  const seqLen = windows[0].length;
  if (seqLen < 2) throw new DataError(`windows must have at least 2 tokens to predict one, got ${seqLen}`);
  const batchSize = opts.batchSize ?? PPL_BATCH_WINDOWS;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new DataError(`batchSize must be a positive integer, got ${batchSize}`);
  const progress = new Progress(opts, opts.phase ?? "eval:ppl", windows.length);
  let sum = 0;
  let count = 0;
  for (let b = 0; b < windows.length; b += batchSize) {
    await progress.checkpoint();
    const batch = windows.slice(b, b + batchSize);
    const out = scorer(batch);
    checkScores(batch, out);
    let batchTokens = 0;
    for (const lp of out) {
      for (let t = 0; t < lp.length; t++) sum -= lp[t];
      batchTokens += lp.length;
    }
    count += batchTokens;
    progress.advance(batch.length, batch.length * seqLen);
  }
  const nll = sum / count;
  if (!Number.isFinite(nll)) throw new NumericError(`perplexity: mean NLL is ${nll} over ${count} tokens (a log-prob was -Infinity or NaN)`);
  return { ppl: Math.exp(nll), nll, tokens: count, seqLen, windows: windows.length };
}

export interface TextPerplexityResult extends PerplexityResult {
  /** Tokens of the whole text (with its single BOS). */
  textTokens: number;
  /** Tokens in the dropped remainder (< seqLen). */
  droppedTokens: number;
}

/**
 * docs/method.md, "Perplexity": tokenize the whole text once with a single BOS at the start, cut it into non-overlapping
 * seqLen windows (remainder dropped; only the first window starts with BOS), then `perplexity`.
 * For WikiText pass `wikitextText(file)` (rows joined with "\n\n").
 */
export async function pplFromText(scorer: TokenScorer, tokenizer: TextTokenizer, text: string, seqLen: number, opts: PerplexityOptions = {}): Promise<TextPerplexityResult> {
  if (text.trim() === "") throw new DataError("perplexity text is empty");
  return pplFromIds(scorer, tokenizer.encode(text, { addBos: true }), seqLen, opts);
}

/** pplFromText on text already tokenized (with its one BOS), for callers that also need the ids. */
export async function pplFromIds(scorer: TokenScorer, ids: number[], seqLen: number, opts: PerplexityOptions = {}): Promise<TextPerplexityResult> {
  const windows = evalWindows(ids, seqLen);
  const r = await perplexity(scorer, windows, opts);
  return { ...r, textTokens: ids.length, droppedTokens: ids.length - windows.length * seqLen };
}
