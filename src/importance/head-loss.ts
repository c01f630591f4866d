import * as tf from "@tensorflow/tfjs";
import { UsageError } from "../errors";
import { lossWeights, type LossSpec } from "../loss";
import { rmsNormVjp } from "../model/backward";
import { matMulBT } from "../model/kernels";
import { vocabMajorHead, type CausalLM } from "../model/causal-lm";
import type { SparseTargets } from "../teacher";

/** Per-row loss pieces of a chunk of positions (LossMeter sums them) and ∂L/∂h. */
export interface HeadLoss {
  /** ∂L/∂h [n, H] through the final RMSNorm and the head. The caller disposes it. */
  dh: tf.Tensor2D;
  /** Per row: −log q_s[label] (0 for a row without a label). */
  nll: Float64Array;
  /** Per row: −Σ_v p_τ log q_s (0 when α = 0). */
  cross: Float64Array;
}

/**
 * The SDMPrune loss of final hidden rows h [n, H] (labels: next tokens, −1 for none; tg: the teacher's
 * p_τ for the same rows, null when α = 0; weights from `lossWeights`, src/loss.ts) fused with the
 * backward of the head, so ∂L/∂z [n, V] is never built:
 *
 *     ∂L/∂z = ρ⊙q − t,   ρ_r = w_ce·[row r has a label] + w_kd,   t = w_kd·p_τ + w_ce·onehot(label)
 *     ∂L/∂xn = ρ⊙(q·E) − t·E
 *
 * where E is the [V, H] output embedding. With a top-k teacher, t has at most k+1 non-zeros per row, so
 * t·E is a weighted sum of k+1 gathered rows of E. On [n, V] that leaves the head product, max,
 * exp(z − max), Σ, one gather and e·E (q = e/Σe, the 1/Σe folded into ρ): the dense version spent more
 * time building, uploading and subtracting t than in the products (bench/NOTES.md). A "full" cache
 * (k = V) keeps the dense t.
 */
export function headLossVjp(model: CausalLM, h: tf.Tensor2D, labels: Int32Array, tg: SparseTargets | null, spec: LossSpec): HeadLoss {
  const [n, H] = h.shape;
  const V = model.config.vocab_size;
  if (labels.length !== n) throw new UsageError(`headLossVjp: ${labels.length} labels for ${n} rows`);
  const w = lossWeights(spec);
  const useKd = spec.alpha > 0;
  if (useKd && (!tg || tg.probs.length !== n * tg.k)) throw new UsageError(`headLossVjp: teacher targets for ${n} rows needed, got ${tg ? tg.probs.length / tg.k : "none"}`);
  const k = useKd ? (tg as SparseTargets).k : 0;
  // Gemma's softcapped logits z = c·tanh(u/c) put dz/du = 1 − (z/c)² between ∂L/∂z and the head, so ∂L/∂z
  // is built densely there (the sparse trick folds it away)
  const cap = model.logitSoftcap();
  const sparse = cap === null && 8 * (k + 1) <= V;
  const rho = new Float32Array(n);
  const labelled: number[] = [];
  for (let r = 0; r < n; r++) {
    rho[r] = w.kd;
    if (labels[r] >= 0) {
      if (labels[r] >= V) throw new UsageError(`headLossVjp: label ${labels[r]} out of range for vocabulary ${V}`);
      rho[r] += w.ce;
      labelled.push(r);
    }
  }
  // Entries of t, k+1 per row when sparse: the label (weight w_ce; column 0 and weight 0 for a row
  // without one), then the teacher's k (weight w_kd·p). Dense: the labels only (for the logged loss).
  const per = sparse ? k + 1 : 1;
  const entries = n * per;
  const colOf = new Int32Array(entries);
  const weight = new Float32Array(entries);
  for (let r = 0; r < n; r++) {
    if (labels[r] >= 0) {
      colOf[r * per] = labels[r];
      weight[r * per] = w.ce;
    }
    if (sparse && useKd) {
      const t = tg as SparseTargets;
      for (let j = 0; j < k; j++) {
        colOf[r * per + 1 + j] = t.ids[r * k + j];
        weight[r * per + 1 + j] = w.kd * t.probs[r * k + j];
      }
    }
  }
  if (model.streamed && !sparse) {
    throw new UsageError(
      `the importance head loss on a streamed model (weightsIn "${model.weightsIn}") runs only with a top-k teacher and no logit softcapping; ` +
        `this one needs the dense path (${cap !== null ? "final_logit_softcapping" : k >= V ? "a full-vocabulary teacher" : `a top-${k} teacher: the sparse path needs 8·(k+1) ≤ vocab_size ${V}`}): ` +
        `${cap !== null ? "" : "use a smaller top-k teacher, or "}load the model resident with float32 weights (weightsIn "heap", hostFloat "float32")`,
    );
  }
  const out = model.streamed ? streamedHeadLoss(model, h, colOf, weight, rho, per) : residentHeadLoss();
  function residentHeadLoss(): { dh: tf.Tensor2D; stats: tf.Tensor } {
  const E = model.weights.lm_head; // [H, V] when untied; else the [V, H] embedding
  // Vocabulary-major [V, n] logits where the head is computed that way (no transpose of a [V, n] block).
  const vMajor = vocabMajorHead();
  const at = (row: number, col: number): number => (vMajor ? col * n + row : row * V + col);
  return tf.tidy(() => {
    const { xn, xhat, r } = model.finalNorm(h);
    const logits = vMajor ? model.headNormedT(xn) : model.headNormed(xn);
    const ax = vMajor ? 0 : 1;
    const flat = new Int32Array(entries);
    for (let i = 0; i < entries; i++) flat[i] = at(Math.floor(i / per), colOf[i]);
    const zFlat = tf.reshape(logits, [n * V]);
    const z = tf.gather(zFlat, tf.tensor1d(flat, "int32"));
    zFlat.dispose();
    // q = e/Σe along the vocabulary, log Σ exp z = m + log Σe. wasm's fused Softmax kernel beats its scalar
    // Exp plus Sub; libtensorflow 1.15's Softmax is ~9× slower than max, sub, exp and sum on [128, 32000].
    // [n, V] blocks are freed as soon as they are used (see targetLogProbs in model/kernels.ts); the dense
    // path still needs the logits at the end.
    const m = tf.max(logits, ax, true);
    const rhoT = tf.tensor2d(rho, vMajor ? [1, n] : [n, 1]);
    let sumE: tf.Tensor2D;
    let e: tf.Tensor2D;
    let rhoS: tf.Tensor2D; // ρ/Σe per row, so that ρ⊙q = rhoS⊙e
    if (tf.getBackend() === "wasm") {
      e = tf.softmax(logits) as tf.Tensor2D; // e = q
      if (sparse) logits.dispose();
      sumE = tf.reciprocal(tf.max(e, ax, true)) as tf.Tensor2D; // = Σ exp(z − m): the largest q is exp(0)/Σ
      rhoS = rhoT;
    } else {
      const d = tf.sub(logits, m);
      if (sparse) logits.dispose();
      e = tf.exp(d) as tf.Tensor2D;
      d.dispose();
      sumE = tf.sum(e, ax, true) as tf.Tensor2D;
      rhoS = tf.div(rhoT, sumE) as tf.Tensor2D;
    }
    /** d·E for d [n, V] (or [V, n] when vocabulary-major): [n, H]. */
    const timesE = (d: tf.Tensor2D): tf.Tensor2D => {
      if (vMajor) return (E ? tf.matMul(d, E, true, true) : tf.matMul(d, model.weights.embed_tokens, true, false)) as tf.Tensor2D;
      return E ? matMulBT(d, E) : (tf.matMul(d, model.weights.embed_tokens) as tf.Tensor2D);
    };
    let dxn: tf.Tensor2D;
    let tz: tf.Tensor = tf.zeros([0]);
    if (sparse) {
      const eE = timesE(e);
      const cols = tf.tensor1d(colOf, "int32");
      const picked = E ? tf.transpose(tf.gather(E, cols, 1)) : tf.gather(model.weights.embed_tokens, cols); // [entries, H]
      const tE = weightedRowSums(picked, weight, n, per);
      dxn = tf.sub(tf.mul(eE, vMajor ? tf.reshape(rhoS, [n, 1]) : rhoS), tE) as tf.Tensor2D;
    } else {
      const t = new Float32Array(n * V);
      for (const r of labelled) t[at(r, labels[r])] += w.ce;
      if (useKd) {
        const p = tg as SparseTargets;
        for (let i = 0; i < n * k; i++) t[at(Math.floor(i / k), p.ids[i])] += w.kd * p.probs[i];
      }
      const tT = tf.tensor2d(t, vMajor ? [V, n] : [n, V]);
      const dz = tf.sub(tf.mul(e, rhoS), tT) as tf.Tensor2D;
      dxn = timesE(cap === null ? dz : (tf.mul(dz, tf.sub(1, tf.square(tf.div(logits, cap)))) as tf.Tensor2D));
      if (useKd) tz = tf.sum(tf.mul(tT, logits), ax); // per row Σ_v t·z
    }
    const dh = rmsNormVjp(xhat, r, model.normWeight(model.weights.norm), dxn);
    return { dh, stats: tf.concat([m.reshape([n]), sumE.reshape([n]), z, tz]) };
  });
  }
  const s = out.stats.dataSync() as Float32Array;
  out.stats.dispose();
  const lse = new Float64Array(n);
  for (let r = 0; r < n; r++) lse[r] = s[r] + Math.log(s[n + r]);
  const zOf = (i: number): number => s[2 * n + i];
  const nll = new Float64Array(n);
  for (const r of labelled) nll[r] = lse[r] - zOf(r * per);
  const cross = new Float64Array(n);
  if (useKd) {
    const t = tg as SparseTargets;
    // −Σ p log q = lse·Σ_j p_j − Σ_j p_j·z_j per row; dense: Σ p·z = (Σ t·z − w_ce·z[label]) / w_kd
    for (let r = 0; r < n; r++) {
      let ps = 0;
      let pz = 0;
      for (let j = 0; j < k; j++) {
        ps += t.probs[r * k + j];
        if (sparse) pz += t.probs[r * k + j] * zOf(r * per + 1 + j);
      }
      if (!sparse) pz = (s[2 * n + entries + r] - (labels[r] >= 0 ? w.ce * zOf(r) : 0)) / w.kd;
      cross[r] = lse[r] * ps - pz;
    }
  }
  return { dh: out.dh, nll, cross };
}

/**
 * The sparse head loss of headLossVjp for a streamed model, whose head is uploaded one vocabulary chunk at a time
 * (CausalLM.forEachHeadChunk). Per chunk c with logits z_c = xn·E_cᵀ, a running max m, Σ exp(z − m) and
 * acc = Σ exp(z − m)·E_c [n, H] are rescaled by exp(m_old − m_new) when m grows, so q·E = acc / Σ at the end
 * without the [n, V] logits or the whole head on the backend. The label and teacher logits are dot products with
 * their rows of E, gathered on the host. Same stats layout as the resident path (m, Σ, z at the entries, no Σt·z).
 */
function streamedHeadLoss(model: CausalLM, h: tf.Tensor2D, colOf: Int32Array, weight: Float32Array, rho: Float32Array, per: number): { dh: tf.Tensor2D; stats: tf.Tensor } {
  const [n, H] = h.shape;
  const entries = colOf.length;
  const { xn, xhat, r } = model.finalNorm(h);
  let m: tf.Tensor2D | null = null;
  let sum: tf.Tensor2D | null = null;
  let acc: tf.Tensor2D | null = null;
  try {
    model.forEachHeadChunk((_v0, Ec) => {
      const next = tf.tidy(() => {
        const z = matMulBT(xn, Ec); // [n, Vc]; sparse implies no softcap
        const mc = tf.max(z, 1, true);
        const mNew = m ? tf.maximum(m, mc) : mc;
        const e = tf.exp(tf.sub(z, mNew));
        const eE = tf.matMul(e, Ec) as tf.Tensor2D;
        const sc = tf.sum(e, 1, true);
        if (!m) return { m: mNew, sum: sc, acc: eE };
        const scale = tf.exp(tf.sub(m, mNew));
        return { m: mNew, sum: tf.add(tf.mul(sum!, scale), sc), acc: tf.add(tf.mul(acc!, scale), eE) };
      }) as { m: tf.Tensor2D; sum: tf.Tensor2D; acc: tf.Tensor2D };
      tf.dispose([m, sum, acc].filter((t): t is tf.Tensor2D => t !== null));
      m = next.m;
      sum = next.sum;
      acc = next.acc;
    });
    return tf.tidy(() => {
      // gathered on the GPU when the head is held there as packed halves (no read-back)
      const picked = model.headRowsTensor(colOf); // [entries, H]
      const z = tf.sum(tf.mul(tf.reshape(picked, [n, per, H]), tf.reshape(xn, [n, 1, H])), 2).reshape([entries]);
      const tE = weightedRowSums(picked, weight, n, per);
      const rhoS = tf.div(tf.tensor2d(rho, [n, 1]), sum!);
      const dxn = tf.sub(tf.mul(acc!, rhoS), tE) as tf.Tensor2D;
      const dh = rmsNormVjp(xhat, r, model.normWeight(model.ownNorm()), dxn);
      return { dh, stats: tf.concat([m!.reshape([n]), sum!.reshape([n]), z, tf.zeros([0])]) };
    });
  } finally {
    tf.dispose([xn, xhat, r]);
    for (const t of [m, sum, acc] as (tf.Tensor | null)[]) t?.dispose();
  }
}

/**
 * t·E of the sparse path: per row r, Σ_j weight[r·per + j]·rows[r·per + j], as one batched product
 * [n, 1, per]·[n, per, H]. Multiply-then-Sum over the middle axis of [n, per, H] took 5–8× longer on the native
 * backend (Eigen reduces a middle axis slowly) and 2× on wasm, with the same sums (bench/NOTES.md).
 */
function weightedRowSums(rows: tf.Tensor2D, weight: Float32Array, n: number, per: number): tf.Tensor2D {
  const H = rows.shape[1];
  return tf.tidy(() => tf.reshape(tf.matMul(tf.tensor3d(weight, [n, 1, per]), tf.reshape(rows, [n, per, H]) as tf.Tensor3D), [n, H]) as tf.Tensor2D);
}
