import * as tf from "@tensorflow/tfjs";

/**
 * The backend-specific products: the few places where the fastest way to compute a product depends on the
 * backend (bench/NOTES.md, environment.md). Nothing else in src/model knows backends exist.
 */

/**
 * Whether the head's logits are best computed vocabulary-major ([V, n] = E·xnᵀ) on the active backend:
 * libtensorflow 1.15's product is 8–10× slower for a short, very wide output ([n,H]·[H,V], n ≪ V) than for
 * the tall one (bench/NOTES.md, change 1), so on the native backend the head runs that way, and callers
 * that reduce over the vocabulary do it along axis 0 instead of transposing back.
 */
export function vocabMajorHead(): boolean {
  return tf.getBackend() === "tensorflow";
}

/**
 * Below this, Σ exp z of a row is not trusted without the max shift: its largest term could be subnormal
 * (lost precision) and the terms that underflowed could matter. Above it, with at most 2^18 terms, what
 * underflow drops is below 2^-40 of the sum.
 */
const LSE_UNSHIFTED_MIN = 1e-20;

/**
 * z[flat] − log Σ exp z along `axis` for a logits block z (which it disposes), read back to the host.
 * Two passes over z (exp, Σ) instead of four (max, sub, exp, Σ): without the usual max shift Σ exp z is as
 * accurate (every term carries exp's own relative error either way) as long as it neither overflows nor
 * falls near the subnormal range, which holds for any logits within about ±45 of zero, real models' and
 * softcapped ones' alike. Rows where it fails (Σ not finite or below LSE_UNSHIFTED_MIN) are recomputed on
 * the host from the shifted form, so the result never depends on the logits' range (bench/NOTES.md).
 * Each [rows, V] temporary is freed as soon as it is used, so at most two blocks are alive and the allocator
 * hands a freed block to the next one: inside a tidy all of them would be freed together at the end, the
 * heap top would be trimmed and every block would page-fault afresh (bench/NOTES.md).
 */
export function targetLogProbs(z: tf.Tensor2D, flat: Int32Array, axis: 0 | 1): Float32Array {
  const rows = flat.length;
  let zKept: tf.Tensor2D | null = z;
  try {
    // picked and Σ exp z in one tensor: one read back per block
    const both = tf.tidy(() => {
      const picked = tf.gather(tf.reshape(z, [-1]), tf.tensor1d(flat, "int32"));
      const e = tf.exp(z);
      const s = tf.sum(e, axis);
      e.dispose();
      return tf.concat([picked, s]);
    });
    const host = both.dataSync() as Float32Array;
    both.dispose();
    const out = new Float32Array(rows);
    let bad = false;
    for (let r = 0; r < rows; r++) {
      const s = host[rows + r];
      if (!(s >= LSE_UNSHIFTED_MIN && s < Infinity)) {
        bad = true;
        break;
      }
      out[r] = host[r] - Math.log(s);
    }
    if (bad) {
      const shifted = tf.tidy(() => {
        const m = tf.max(z, axis, true);
        const d = tf.sub(z, m);
        z.dispose();
        zKept = null;
        const e = tf.exp(d);
        d.dispose();
        const s = tf.sum(e, axis);
        e.dispose();
        return tf.add(tf.log(s), tf.reshape(m, [-1]));
      });
      const lse = shifted.dataSync() as Float32Array;
      shifted.dispose();
      for (let r = 0; r < rows; r++) out[r] = host[r] - lse[r];
    }
    return out;
  } finally {
    (zKept as tf.Tensor2D | null)?.dispose();
  }
}

/** Transposed products without transpose flags on wasm, where flagged products are 15–20× slower (environment.md). */
export function flagsAreFast(): boolean {
  return tf.getBackend() !== "wasm";
}

/** a·bᵀ. On wasm through whichever explicit transpose moves fewer values: bᵀ, or aᵀ plus the result's. */
export function matMulBT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (flagsAreFast()) return tf.matMul(a, b, false, true);
  const [n, k] = a.shape;
  const m = b.shape[0];
  if (m * k <= n * k + n * m) return tf.matMul(a, tf.transpose(b));
  return tf.transpose(tf.matMul(b, tf.transpose(a))) as tf.Tensor2D;
}

/** aᵀ·b (a holds activations: its transpose is small). */
export function matMulAT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return flagsAreFast() ? tf.matMul(a, b, true, false) : tf.matMul(tf.transpose(a), b);
}

/** [rows, cols] row-major → [cols, rows] row-major, blocked for cache locality on large matrices. */
export function transposeHost(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = data[base + c];
      }
    }
  }
  return out;
}

/**
 * softmax(qq·kkᵀ + mask)·vv per (sequence, kv head) batch: qq [N, g·T, hd] (g query heads of one kv head
 * stacked by rows), kk, vv [N, Tk, hd], mask [T, Tk] added to each head's rows. Returns the context
 * [N, g·T, hd] and, with `keepProbs`, the probabilities [N, g·T, Tk]. wasm runs batched products (batch > 1)
 * in a plain loop at ~1 GFLOP/s but rank-2 ones through XNNPACK at ~10, so there it is one pair of 2D
 * products per batch entry; the slices are contiguous (cheap with the Slice kernel of wasm-fixes) and their
 * gradients are pads.
 */
export function groupedAttention(
  qq: tf.Tensor3D,
  kk: tf.Tensor3D,
  vv: tf.Tensor3D,
  mask: tf.Tensor2D | null,
  g: number,
  keepProbs: boolean,
): { ctx: tf.Tensor3D; probs: tf.Tensor3D | null } {
  const [N, gT, hd] = qq.shape;
  const T = gT / g;
  const Tk = kk.shape[1];
  if (tf.getBackend() === "wasm" && N > 1) {
    const heads: tf.Tensor2D[] = [];
    const probs: tf.Tensor2D[] = [];
    for (let i = 0; i < N; i++) {
      const qi = tf.reshape(tf.slice(qq, [i, 0, 0], [1, gT, hd]), [gT, hd]) as tf.Tensor2D;
      const ki = tf.reshape(tf.slice(kk, [i, 0, 0], [1, Tk, hd]), [Tk, hd]) as tf.Tensor2D;
      const vi = tf.reshape(tf.slice(vv, [i, 0, 0], [1, Tk, hd]), [Tk, hd]) as tf.Tensor2D;
      let s: tf.Tensor = tf.matMul(qi, tf.transpose(ki));
      if (mask) s = tf.add(s.reshape([g, T, Tk]), mask).reshape([gT, Tk]);
      const p = tf.softmax(s) as tf.Tensor2D;
      if (keepProbs) probs.push(p);
      heads.push(tf.matMul(p, vi));
    }
    return { ctx: tf.stack(heads) as tf.Tensor3D, probs: keepProbs ? (tf.stack(probs) as tf.Tensor3D) : null };
  }
  let scores: tf.Tensor = tf.matMul(qq, tf.transpose(kk, [0, 2, 1]));
  if (mask) scores = tf.add(scores.reshape([N, g, T, Tk]), mask).reshape([N, gT, Tk]);
  const probs = tf.softmax(scores) as tf.Tensor3D;
  return { ctx: tf.matMul(probs, vv), probs: keepProbs ? probs : null };
}

/**
 * The VJP of groupedAttention from its saved probabilities P: with dP = dC·vvᵀ,
 *   dS = P ⊙ (dP − Σ_k dP ⊙ P),  dqq = dS·kk,  dkk = dSᵀ·qq,  dvv = Pᵀ·dC.
 * On wasm 2D products per batch entry (see groupedAttention).
 */
export function groupedAttentionVjp(
  dCtx: tf.Tensor3D,
  qq: tf.Tensor3D,
  kk: tf.Tensor3D,
  vv: tf.Tensor3D,
  probs: tf.Tensor3D,
): { dqq: tf.Tensor3D; dkk: tf.Tensor3D; dvv: tf.Tensor3D } {
  if (flagsAreFast()) {
    const dP = tf.matMul(dCtx, vv, false, true);
    const dS = tf.mul(probs, tf.sub(dP, tf.sum(tf.mul(dP, probs), -1, true))) as tf.Tensor3D;
    return { dvv: tf.matMul(probs, dCtx, true, false), dqq: tf.matMul(dS, kk), dkk: tf.matMul(dS, qq, true, false) };
  }
  const [N, gT, hd] = qq.shape;
  const T = kk.shape[1];
  const q: tf.Tensor2D[] = [];
  const k: tf.Tensor2D[] = [];
  const v: tf.Tensor2D[] = [];
  for (let i = 0; i < N; i++) {
    const pick = (t: tf.Tensor3D, rows: number): tf.Tensor2D => tf.reshape(tf.slice(t, [i, 0, 0], [1, rows, hd]), [rows, hd]);
    const p = tf.reshape(tf.slice(probs, [i, 0, 0], [1, gT, T]), [gT, T]) as tf.Tensor2D;
    const dC = pick(dCtx, gT);
    const dP = tf.matMul(dC, tf.transpose(pick(vv, T)));
    const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))) as tf.Tensor2D;
    v.push(tf.matMul(tf.transpose(p), dC));
    q.push(tf.matMul(dS, pick(kk, T)));
    k.push(tf.matMul(tf.transpose(dS), pick(qq, gT)));
  }
  return { dqq: tf.stack(q) as tf.Tensor3D, dkk: tf.stack(k) as tf.Tensor3D, dvv: tf.stack(v) as tf.Tensor3D };
}
