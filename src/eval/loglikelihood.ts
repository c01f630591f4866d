import { DataError } from "../errors";
import type { RunOptions, TextTokenizer } from "../types";
import { Progress } from "../progress";
import { asScorer, checkScores, type ScorerLike } from "./scorer";

/**
 * lm-evaluation-harness `loglikelihood` requests: log p(continuation | context), summed over the continuation's
 * tokens, and whether every continuation token was the greedy (argmax) choice.
 */
export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

export interface LoglikelihoodResult {
  /** Sum of the continuation tokens' log-probs (nats). */
  loglik: number;
  /** Every continuation token was the argmax; null when the scorer cannot tell (no greedy scorer). */
  greedy: boolean | null;
  /** Continuation tokens scored. */
  tokens: number;
  /** Tokens cut from the left because context + continuation exceeded maxLength + 1. */
  truncated: number;
  /** encodePair's token ids (before truncation), kept when `keepTokens` is set. */
  contextIds?: number[];
  continuationIds?: number[];
}

export interface EncodedPair {
  contextIds: number[];
  continuationIds: number[];
}

/**
 * Tokenize like lm-eval `_encode_pair` (HFLM): trailing whitespace of the context moves to the front of the
 * continuation; whole = encode(context + continuation), context_enc = encode(context), both with BOS when
 * `addBos` (HFLM add_bos_token=True, the SDMPrune setting; default) and without otherwise; the continuation
 * tokens are whole[len(context_enc):]. Encoding the whole string (not the two parts) keeps the tokenizer's
 * merges across the boundary the way the harness does.
 * An empty context becomes [BOS] (HFLM's prefix_token_id: BOS, else EOS, whatever add_bos_token says) with the
 * continuation encoded alone.
 */
export function encodePair(tokenizer: TextTokenizer, context: string, continuation: string, cache?: Map<string, number[]>, addBos = true): EncodedPair {
  const trimmed = context.trimEnd();
  const nSpaces = context.length - trimmed.length;
  if (nSpaces > 0) {
    continuation = context.slice(trimmed.length) + continuation;
    context = trimmed;
  }
  if (context === "") {
    const start = tokenizer.bosTokenId ?? tokenizer.eosTokenId;
    if (start === null) throw new DataError("loglikelihood request with an empty context needs a tokenizer with a BOS or EOS token");
    const cont = tokenizer.encode(continuation, { addBos: false });
    // HFLM.loglikelihood: a continuation that already starts with the prefix token lends it to the context.
    if (cont.length > 0 && cont[0] === start) return { contextIds: cont.slice(0, 1), continuationIds: cont.slice(1) };
    return { contextIds: [start], continuationIds: cont };
  }
  let contextIds = cache?.get(context);
  if (!contextIds) {
    contextIds = tokenizer.encode(context, { addBos });
    cache?.set(context, contextIds);
  }
  const whole = tokenizer.encode(context + continuation, { addBos });
  return { contextIds, continuationIds: whole.slice(contextIds.length) };
}

export interface LoglikelihoodOptions extends RunOptions {
  /** Sequences per scorer call (default 8). Results do not depend on it beyond float rounding. */
  batchSize?: number;
  /**
   * Model context (HFLM max_length: the config's max_position_embeddings): context + continuation longer than
   * maxLength + 1 tokens keeps its last maxLength + 1 tokens, as HFLM `_loglikelihood_tokens` does; the model
   * reads the first maxLength of them.
   */
  maxLength?: number;
  /** Prepend BOS to context and whole (lm-eval add_bos_token; default true). */
  addBos?: boolean;
  /** Keep each request's token ids in the results (for --log-samples). */
  keepTokens?: boolean;
  /** Compute `greedy` (needs a Scorer with `greedy`); otherwise greedy is null. */
  needGreedy?: boolean;
  phase?: string;
  /** A progress tracker shared with the caller (several tasks under one bar); default: one for these requests. */
  progress?: Progress;
  /** Progress message (the task name). */
  message?: string;
  /**
   * The item (task document) each request belongs to: progress then counts items, each done when its last
   * request is scored, since a researcher thinks in items (`--limit N`), not in the several requests of one.
   */
  itemOf?: number[];
}

/** Score requests in batches (longest first, like lm-eval, so batches have similar lengths). */
export async function loglikelihoods(
  scorerLike: ScorerLike,
  tokenizer: TextTokenizer,
  requests: LoglikelihoodRequest[],
  opts: LoglikelihoodOptions = {},
): Promise<LoglikelihoodResult[]> {
  const scorer = asScorer(scorerLike);
  const batchSize = opts.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new DataError(`batchSize must be a positive integer, got ${batchSize}`);
  if (opts.needGreedy && !scorer.greedy) throw new DataError("greedy matching was requested but the scorer has no greedy function (use modelScorer(model))");
  const cache = new Map<string, number[]>();
  const seqs: number[][] = [];
  const nCont: number[] = [];
  const pairs: EncodedPair[] = [];
  const cut: number[] = [];
  if (opts.maxLength !== undefined && (!Number.isInteger(opts.maxLength) || opts.maxLength < 1)) throw new DataError(`maxLength must be a positive integer, got ${opts.maxLength}`);
  for (const r of requests) {
    const pair = encodePair(tokenizer, r.context, r.continuation, cache, opts.addBos ?? true);
    const { contextIds, continuationIds } = pair;
    if (continuationIds.length === 0) throw new DataError(`loglikelihood request has an empty continuation after tokenization: ${JSON.stringify(r.continuation)}`);
    if (opts.maxLength !== undefined && continuationIds.length > opts.maxLength) {
      // HFLM asserts this; scoring fewer tokens than asked would be a silently different number.
      throw new DataError(`continuation of ${continuationIds.length} tokens does not fit the model context of ${opts.maxLength} tokens`);
    }
    let seq = contextIds.concat(continuationIds);
    const over = opts.maxLength !== undefined ? Math.max(0, seq.length - (opts.maxLength + 1)) : 0;
    if (over > 0) seq = seq.slice(over);
    seqs.push(seq);
    cut.push(over);
    nCont.push(continuationIds.length);
    if (opts.keepTokens) pairs.push(pair);
  }
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[b].length - seqs[a].length || a - b);
  const results: LoglikelihoodResult[] = new Array(requests.length);
  const itemOf = opts.itemOf;
  if (itemOf && itemOf.length !== requests.length) throw new Error(`itemOf has ${itemOf.length} entries for ${requests.length} requests`);
  const pending = new Map<number, number>();
  if (itemOf) for (const it of itemOf) pending.set(it, (pending.get(it) ?? 0) + 1);
  const progress = opts.progress ?? new Progress(opts, opts.phase ?? "eval:loglikelihood", itemOf ? pending.size : requests.length);
  for (let b = 0; b < order.length; b += batchSize) {
    await progress.checkpoint();
    const idx = order.slice(b, b + batchSize);
    const batch = idx.map((i) => seqs[i]);
    let logProbs: Float32Array[];
    let greedy: Uint8Array[] | null = null;
    if (opts.needGreedy && scorer.greedy) {
      const out = scorer.greedy(batch);
      logProbs = out.map((o) => o.logProbs);
      greedy = out.map((o) => o.greedy);
    } else {
      logProbs = scorer.logProbs(batch);
    }
    checkScores(batch, logProbs);
    idx.forEach((i, k) => {
      const lp = logProbs[k];
      const n = nCont[i];
      let sum = 0;
      let allGreedy = true;
      for (let t = lp.length - n; t < lp.length; t++) {
        sum += lp[t];
        if (greedy && !greedy[k][t]) allGreedy = false;
      }
      results[i] = { loglik: sum, greedy: greedy ? allGreedy : null, tokens: n, truncated: cut[i] };
      if (opts.keepTokens) {
        results[i].contextIds = pairs[i].contextIds;
        results[i].continuationIds = pairs[i].continuationIds;
      }
    });
    let units = batch.length;
    if (itemOf) {
      units = 0;
      for (const i of idx) {
        const left = (pending.get(itemOf[i]) as number) - 1;
        pending.set(itemOf[i], left);
        if (left === 0) units++;
      }
    }
    progress.advance(units, batch.reduce((s, q) => s + q.length, 0), opts.message);
  }
  return results;
}
