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
 * z[flat] − log Σ exp z along `axis` for a logits block z (which it disposes). Each [rows, V] temporary
 * is freed as soon as the next one exists, so at most two blocks are alive and the allocator hands a
 * freed block to the next one: inside a tidy all of them would be freed together at the end, the heap
 * top would be trimmed and every block would page-fault afresh (bench/NOTES.md).
 */
export function targetLogProbs(z: tf.Tensor2D, flat: Int32Array, axis: 0 | 1): tf.Tensor1D {
  return tf.tidy(() => {
    const zFlat = tf.reshape(z, [-1]);
    const picked = tf.gather(zFlat, tf.tensor1d(flat, "int32"));
    zFlat.dispose();
    const m = tf.max(z, axis, true);
    const d = tf.sub(z, m);
    z.dispose();
    const e = tf.exp(d);
    d.dispose();
    const s = tf.sum(e, axis);
    e.dispose();
    return tf.sub(picked, tf.add(tf.log(s), tf.reshape(m, [-1]))) as tf.Tensor1D;
  });
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
