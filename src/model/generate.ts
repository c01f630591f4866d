import type { Rng } from "../rng";

/**
 * Choose the next token from one row of logits: argmax when temperature is 0 (ties → lowest id),
 * otherwise a draw from softmax(logits / temperature), restricted to the topK largest logits when set.
 * Computed on the host in float64 so the draw depends only on the logits and the Rng state.
 */
export function pickToken(logits: Float32Array, temperature: number, topK: number | undefined, rng: Rng): number {
  const V = logits.length;
  if (!(temperature > 0)) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let ids = Array.from({ length: V }, (_, i) => i);
  if (topK !== undefined && topK > 0 && topK < V) {
    // stable by id for equal logits so the candidate set is deterministic
    ids.sort((a, b) => logits[b] - logits[a] || a - b);
    ids = ids.slice(0, topK);
  }
  let max = -Infinity;
  for (const i of ids) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(ids.length);
  let z = 0;
  for (let k = 0; k < ids.length; k++) {
    p[k] = Math.exp((logits[ids[k]] - max) / temperature);
    z += p[k];
  }
  let u = rng.next() * z;
  for (let k = 0; k < ids.length; k++) {
    u -= p[k];
    if (u < 0) return ids[k];
  }
  return ids[ids.length - 1];
}
