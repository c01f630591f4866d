import { DataError } from "../errors";

/**
 * The unigram baseline a language model must beat: p(token) from add-one-smoothed token frequencies of
 * the training windows, scored on exactly the tokens a model predicts in the evaluation windows
 * (positions 1..T−1 of each window), so its perplexity is directly comparable with the model's.
 */
export function unigramPerplexity(train: number[][], evalWindows: number[][], vocabSize: number): { ppl: number; nll: number; tokens: number } {
  const counts = new Float64Array(vocabSize).fill(1);
  let total = vocabSize;
  for (const w of train) {
    for (const t of w) {
      if (t < 0 || t >= vocabSize) throw new DataError(`unigram: token id ${t} outside [0, ${vocabSize})`);
      counts[t]++;
      total++;
    }
  }
  let nll = 0;
  let n = 0;
  for (const w of evalWindows) {
    for (let i = 1; i < w.length; i++) {
      nll -= Math.log(counts[w[i]] / total);
      n++;
    }
  }
  if (n === 0) throw new DataError("unigram: no evaluation tokens");
  return { ppl: Math.exp(nll / n), nll: nll / n, tokens: n };
}
