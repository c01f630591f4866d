import * as tf from "@tensorflow/tfjs";
import { DataError } from "../errors";
import type { ForwardOptions, CausalLM } from "../model/causal-lm";
import type { GreedyScorer, Scorer } from "./scorer";

/**
 * A harness Scorer backed by a CausalLM. Evaluation requests have many different lengths, so sequences are
 * right-padded into batches (safe with a causal mask: a position never sees the padding after it) instead of
 * being grouped by exact length. The head runs on row chunks so a [rows, V] block stays small for big
 * vocabularies. Besides log-probs it reports whether each target was the argmax (LAMBADA accuracy).
 */

export interface ModelScorerOptions {
  /** Upper bound on B × T rows per trunk batch (default 2048). */
  maxBatchRows?: number;
  /** Hooks (masks, switched-off blocks; src/model/hooks.ts) applied to every forward. */
  forward?: ForwardOptions;
}

/** Logit floats per head chunk (~16 MB). */
const LOGIT_CHUNK_FLOATS = 1 << 22;

function scoreBatch(model: CausalLM, rows: number[][], opts: ModelScorerOptions): { logProbs: Float32Array; greedy: Uint8Array }[] {
  const V = model.config.vocab_size;
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  const N = B * T;
  const padded = new Int32Array(N);
  const targets = new Int32Array(N);
  rows.forEach((r, b) => {
    padded.set(r, b * T);
    for (let t = 0; t + 1 < r.length; t++) targets[b * T + t] = r[t + 1];
  });
  const lpAll = new Float32Array(N);
  const amAll = new Int32Array(N);
  const chunkRows = Math.max(1, Math.floor(LOGIT_CHUNK_FLOATS / V));
  tf.tidy(() => {
    const ids = tf.tensor2d(padded, [B, T], "int32");
    let h = model.embed(ids);
    for (let l = 0; l < model.config.num_hidden_layers; l++) {
      const next = model.layer(l, h, B, T, undefined, opts.forward);
      h.dispose();
      h = next;
    }
    for (let r0 = 0; r0 < N; r0 += chunkRows) {
      const c = Math.min(chunkRows, N - r0);
      const [lp, am] = tf.tidy(() => {
        const logits = model.head(tf.slice(h, [r0, 0], [c, -1]));
        const flat = new Int32Array(c);
        for (let r = 0; r < c; r++) flat[r] = r * V + targets[r0 + r];
        const gathered = tf.gather(tf.logSoftmax(logits).reshape([c * V]), tf.tensor1d(flat, "int32"));
        return [gathered, tf.argMax(logits, 1)];
      });
      lpAll.set(lp.dataSync() as Float32Array, r0);
      amAll.set(am.dataSync() as Int32Array, r0);
      lp.dispose();
      am.dispose();
    }
  });
  return rows.map((r, b) => {
    const n = Math.max(0, r.length - 1);
    const greedy = new Uint8Array(n);
    for (let t = 0; t < n; t++) greedy[t] = amAll[b * T + t] === targets[b * T + t] ? 1 : 0;
    return { logProbs: lpAll.slice(b * T, b * T + n), greedy };
  });
}

export function modelScorer(model: CausalLM, opts: ModelScorerOptions = {}): Scorer {
  const maxRows = opts.maxBatchRows ?? 2048;
  const V = model.config.vocab_size;
  const greedy: GreedyScorer = (seqs) => {
    seqs.forEach((s, i) => {
      if (s.length === 0) throw new DataError(`sequence ${i} is empty`);
      for (let p = 0; p < s.length; p++) {
        if (!Number.isInteger(s[p]) || s[p] < 0 || s[p] >= V) throw new DataError(`sequence ${i}, position ${p}: token id ${s[p]} is out of range (vocab size ${V})`);
      }
    });
    const out: { logProbs: Float32Array; greedy: Uint8Array }[] = new Array(seqs.length);
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[b].length - seqs[a].length);
    let at = 0;
    while (at < order.length) {
      // Longest first: the first member fixes T, so add members while B × T stays under the row budget.
      const T = seqs[order[at]].length;
      const perBatch = Math.max(1, Math.floor(maxRows / T));
      const idx = order.slice(at, at + perBatch);
      at += idx.length;
      const res = scoreBatch(model, idx.map((i) => seqs[i]), opts);
      idx.forEach((i, k) => (out[i] = res[k]));
    }
    return out;
  };
  return { logProbs: (seqs) => greedy(seqs).map((o) => o.logProbs), greedy };
}
