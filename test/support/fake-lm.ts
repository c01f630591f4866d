import type { TextTokenizer } from "../../src/types";

/**
 * Test doubles for the evaluation protocols: a character tokenizer and a bigram "language model" whose
 * log-probs are a deterministic function of the ids, so tests can recompute every number independently.
 */

export const FAKE_VOCAB = 64;
export const FAKE_BOS = 1;
export const FAKE_EOS = 2;

/** Character-level: id = 3 + (code point mod 61); BOS 1 prepended unless addBos is false. */
export class CharTokenizer implements TextTokenizer {
  readonly vocabSize = FAKE_VOCAB;
  readonly bosTokenId = FAKE_BOS;
  readonly eosTokenId = FAKE_EOS;
  encodeCalls = 0;
  encode(text: string, options?: { addBos?: boolean }): number[] {
    this.encodeCalls++;
    const ids = [...text].map((c) => 3 + ((c.codePointAt(0) as number) % 61));
    return options?.addBos === false ? ids : [FAKE_BOS, ...ids];
  }
  decode(ids: number[]): string {
    return ids.filter((i) => i > 2).map((i) => String.fromCharCode(i - 3 + 61)).join("");
  }
  toJSON(): object {
    return { type: "char" };
  }
}

/** Bigram log-probs: log softmax over v of 3·sin(7·prev + 13·v). */
export function bigramLogProb(prev: number, next: number): number {
  let max = -Infinity;
  const logits = new Float64Array(FAKE_VOCAB);
  for (let v = 0; v < FAKE_VOCAB; v++) {
    logits[v] = 3 * Math.sin(7 * prev + 13 * v);
    max = Math.max(max, logits[v]);
  }
  let z = 0;
  for (let v = 0; v < FAKE_VOCAB; v++) z += Math.exp(logits[v] - max);
  return logits[next] - max - Math.log(z);
}

export function bigramArgmax(prev: number): number {
  let best = 0;
  for (let v = 1; v < FAKE_VOCAB; v++) if (Math.sin(7 * prev + 13 * v) > Math.sin(7 * prev + 13 * best)) best = v;
  return best;
}

export const bigramScorer = (seqs: number[][]): Float32Array[] =>
  seqs.map((s) => {
    const out = new Float32Array(Math.max(0, s.length - 1));
    for (let t = 0; t + 1 < s.length; t++) out[t] = bigramLogProb(s[t], s[t + 1]);
    return out;
  });

export const bigramGreedy = (seqs: number[][]) =>
  seqs.map((s) => {
    const logProbs = bigramScorer([s])[0];
    const greedy = new Uint8Array(logProbs.length);
    for (let t = 0; t + 1 < s.length; t++) greedy[t] = bigramArgmax(s[t]) === s[t + 1] ? 1 : 0;
    return { logProbs, greedy };
  });
