import * as tf from "@tensorflow/tfjs";
import { DataError, FormatError, NumericError, UsageError } from "./errors";
import { fingerprintMismatch, modelFingerprint, type ModelFingerprint } from "./importance/fingerprint";
import { windowsPerPass } from "./engine";
import { positionChunk } from "./loss";
import type { CausalLM } from "./model/causal-lm";
import { Progress } from "./progress";
import type { RunOptions } from "./types";

/**
 * Teacher logits for self-distillation, computed ONCE from the unpruned model over the calibration
 * windows, so scoring the pruned student never needs a second model in memory (the reference code computes
 * the teacher on the fly; the result is the same because the teacher is frozen).
 *
 * Per position we store the top-k teacher logits (z, float32) with their token ids and the log-sum-exp
 * of all V logits at τ = 1. `topk: "full"` stores all V logits (exact; meant for small vocabularies:
 * T·V·4 bytes per window).
 *
 * Reconstructing p_τ = softmax(z / τ) from a top-k cache ("drop the tail"):
 *     p_τ[v] = exp(z_v/τ) / Σ_{j ∈ top-k} exp(z_j/τ)   for v in the top-k,   0 elsewhere.
 * Why dropping: every shipped setting has τ < 1 (0.2, 0.5), which raises probabilities to the power
 * 1/τ, so the tail shrinks geometrically; the tail's τ = 1 mass is known exactly from the stored
 * log-sum-exp, but its mass at τ ≠ 1 depends on the unknown shape of the tail, so any "explicit tail"
 * would be a guess. Instead the cache reports a rigorous upper bound on the dropped mass (tailBound):
 *     S_tail(τ) = Σ_{v ∉ top-k} e^{z_v/τ} ≤ min( (V−k)·e^{z_k/τ},  e^{z_k(1/τ−1)}·S_tail(1) )   (second term for τ ≤ 1)
 * with z_k the k-th largest logit and S_tail(1) = e^{lse} − Σ_top e^{z_j}. The test suite measures the
 * effect on the rankings against the exact ("full") cache.
 */
export type TopK = number | "full";

export interface TeacherCacheOptions {
  /** Logits kept per position; "full" keeps all of them (exact). */
  topk: TopK;
  /** Windows per forward pass (default: see windowsPerPass in src/engine, at most 2048 rows). */
  batchWindows?: number;
}

export interface TeacherTargets {
  /** Dense p_τ rows [n·V] (float32). */
  probs: Float32Array;
  /** Σ_rows Σ_v p log p (float64), the student-independent part of the KL. */
  plogp: number;
}

export interface SparseTargets {
  /** Entries per row (the cache's k; V for a "full" cache). */
  k: number;
  /** Token id of each entry, [n·k]. */
  ids: Int32Array;
  /** p_τ of each entry, [n·k] (float32 of a float64 softmax). */
  probs: Float32Array;
  /** Σ_rows Σ p log p (float64). */
  plogp: number;
}

export interface TailStats {
  /** Dropped mass at τ = 1 (exact): mean and max over positions. */
  meanTailMass1: number;
  maxTailMass1: number;
  /** Upper bound on the dropped mass at the requested τ: mean and max over positions. */
  meanTailBound: number;
  maxTailBound: number;
}

function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

/**
 * Teacher cache entries per position when none is asked for: the full distribution for vocabularies of at
 * most 4096 tokens, else the 64 most likely tokens.
 */
export function defaultTopk(vocab: number): TopK {
  return vocab <= 4096 ? "full" : 64;
}

export class TeacherCache {
  private constructor(
    readonly topk: TopK,
    readonly vocabSize: number,
    readonly seqLen: number,
    /** The token windows the cache covers (accumulate checks its windows against these). */
    readonly windows: number[][],
    readonly fingerprint: ModelFingerprint,
    /** Per window: [T·k] logits sorted descending per position (or [T·V] in vocabulary order for "full"). */
    private readonly values: Float32Array[],
    /** Per window: [T·k] token ids (null for "full"). */
    private readonly ids: Int32Array[] | null,
    /** Per window: [T] log-sum-exp of all logits at τ = 1. */
    private readonly lse: Float32Array[],
  ) {}

  /** Entries stored per position. */
  get k(): number {
    return this.topk === "full" ? this.vocabSize : this.topk;
  }

  /** Host memory held by the cache. */
  bytes(): number {
    let b = 0;
    for (const v of this.values) b += v.byteLength;
    if (this.ids) for (const v of this.ids) b += v.byteLength;
    for (const v of this.lse) b += v.byteLength;
    return b + this.windows.length * this.seqLen * 4;
  }

  static async build(model: CausalLM, windows: number[][], opts: TeacherCacheOptions, run: RunOptions = {}): Promise<TeacherCache> {
    const V = model.config.vocab_size;
    const topk = opts.topk;
    if (topk !== "full" && (!Number.isInteger(topk) || topk < 1)) throw new UsageError(`teacher topk must be a positive integer or "full", got ${topk}`);
    const k = topk === "full" ? V : Math.min(topk, V);
    if (windows.length === 0) throw new UsageError("teacher cache needs at least one window");
    const T = windows[0].length;
    windows.forEach((w, i) => {
      if (w.length !== T) throw new UsageError(`teacher cache: window ${i} has ${w.length} tokens, expected ${T} (all windows must have equal length)`);
      w.forEach((id, pos) => {
        if (!Number.isInteger(id) || id < 0 || id >= V) throw new DataError(`teacher cache: window ${i}: token id ${id} at position ${pos} is outside [0, ${V})`);
      });
    });
    const values: Float32Array[] = [];
    const ids: Int32Array[] | null = topk === "full" ? null : [];
    const lse: Float32Array[] = [];
    const batch = opts.batchWindows ?? windowsPerPass(2048 / T);
    if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`teacher batchWindows must be a positive integer, got ${batch}`);
    const progress = new Progress(run, "teacher", windows.length);
    for (let w0 = 0; w0 < windows.length; w0 += batch) {
      await progress.checkpoint(`teacher cache cancelled after ${w0} of ${windows.length} windows`);
      const B = Math.min(batch, windows.length - w0);
      const N = B * T;
      const chunk = positionChunk(V, N);
      const hidden = tf.tidy(() => {
        let h = model.embed(tf.tensor2d(windows.slice(w0, w0 + B), [B, T], "int32"));
        for (let l = 0; l < model.config.num_hidden_layers; l++) {
          const next = model.layer(l, h, B, T);
          h.dispose();
          h = next;
        }
        return h;
      });
      const vals = new Float32Array(N * k);
      const idx = ids ? new Int32Array(N * k) : null;
      const ls = new Float32Array(N);
      try {
        for (let p0 = 0; p0 < N; p0 += chunk) {
          const n = Math.min(chunk, N - p0);
          const got = tf.tidy(() => {
            const logits = model.head(tf.slice(hidden, [p0, 0], [n, -1]));
            const l = tf.logSumExp(logits, 1);
            if (ids) {
              const t = tf.topk(logits, k, true);
              return { lz: l, top: t.values, topIdx: t.indices };
            }
            return { z: logits, lz: l };
          }) as { z?: tf.Tensor; lz: tf.Tensor; top?: tf.Tensor; topIdx?: tf.Tensor };
          const { z, lz, top, topIdx } = got;
          const lv = lz.dataSync();
          for (let i = 0; i < n; i++) {
            if (!Number.isFinite(lv[i])) throw new NumericError(`teacher logits are not finite in window ${w0 + Math.floor((p0 + i) / T)}, position ${(p0 + i) % T}`);
          }
          ls.set(lv, p0);
          if (z) vals.set(z.dataSync(), p0 * k);
          if (top) vals.set(top.dataSync(), p0 * k);
          if (topIdx && idx) idx.set(topIdx.dataSync(), p0 * k);
          tf.dispose([z, lz, top, topIdx].filter((x): x is tf.Tensor => !!x));
        }
      } finally {
        hidden.dispose();
      }
      for (let b = 0; b < B; b++) {
        values.push(vals.slice(b * T * k, (b + 1) * T * k));
        if (ids && idx) ids.push(idx.slice(b * T * k, (b + 1) * T * k));
        lse.push(ls.slice(b * T, (b + 1) * T));
      }
      progress.advance(B, N);
    }
    // k, not the requested topk: a top-k above the vocabulary is clamped to it (all entries kept).
    return new TeacherCache(topk === "full" ? "full" : k, V, T, windows.map((x) => x.slice()), modelFingerprint(model), values, ids, lse);
  }

  /** Throws UsageError unless `windows[from..from+count)` are the cache's windows at the same indices. */
  checkWindows(windows: number[][], from: number, count: number): void {
    if (from + count > this.windows.length) {
      throw new UsageError(`teacher cache covers ${this.windows.length} windows; windows ${from}..${from + count - 1} requested`);
    }
    for (let i = from; i < from + count; i++) {
      const a = windows[i];
      const b = this.windows[i];
      if (a.length !== b.length || a.some((x, j) => x !== b[j])) {
        throw new UsageError(`window ${i} differs from the window the teacher cache was built on (build the cache from the same windows)`);
      }
    }
  }

  /** Refuses a cache built on another teacher (e.g. the pruned student instead of the original model). */
  checkTeacher(expected: ModelFingerprint): void {
    const why = fingerprintMismatch(this.fingerprint, expected);
    if (why) throw new UsageError(`teacher cache was built on a different model (${why})`);
  }

  /** p_τ rows for positions [p0, p1) of window w, dense [n·V], plus Σ p log p. */
  targets(w: number, p0: number, p1: number, temperature: number): TeacherTargets {
    const sp = this.sparseTargets(w, p0, p1, temperature);
    const V = this.vocabSize;
    const k = sp.k;
    const probs = new Float32Array((p1 - p0) * V);
    for (let r = 0; r < p1 - p0; r++) for (let j = 0; j < k; j++) probs[r * V + sp.ids[r * k + j]] = sp.probs[r * k + j];
    return { probs, plogp: sp.plogp };
  }

  /** The same p_τ rows as `targets`, as the cache's k entries per row: token ids and probabilities [n·k]. */
  sparseTargets(w: number, p0: number, p1: number, temperature: number): SparseTargets {
    if (w < 0 || w >= this.windows.length) throw new UsageError(`teacher cache has no window ${w}`);
    if (!(temperature > 0)) throw new UsageError(`temperature must be > 0, got ${temperature}`);
    if (p0 < 0 || p1 > this.seqLen || p0 >= p1) throw new UsageError(`teacher cache: positions [${p0}, ${p1}) outside [0, ${this.seqLen})`);
    const k = this.k;
    const n = p1 - p0;
    const probs = new Float32Array(n * k);
    const outIds = new Int32Array(n * k);
    const vals = this.values[w];
    const ids = this.ids ? this.ids[w] : null;
    const e = new Float64Array(k);
    let plogp = 0;
    for (let r = 0; r < n; r++) {
      const off = (p0 + r) * k;
      let m = -Infinity;
      for (let j = 0; j < k; j++) if (vals[off + j] > m) m = vals[off + j];
      let s = 0;
      for (let j = 0; j < k; j++) {
        e[j] = Math.exp((vals[off + j] - m) / temperature);
        s += e[j];
      }
      const logS = Math.log(s);
      for (let j = 0; j < k; j++) {
        const p = e[j] / s;
        probs[r * k + j] = p;
        outIds[r * k + j] = ids ? ids[off + j] : j;
        if (p > 0) plogp += p * ((vals[off + j] - m) / temperature - logS);
      }
    }
    return { k, ids: outIds, probs, plogp };
  }

  /** Dropped tail mass (exact at τ = 1, upper bound at `temperature`) over all cached positions. */
  tailStats(temperature: number): TailStats {
    const k = this.k;
    const V = this.vocabSize;
    let n = 0;
    let sum1 = 0;
    let max1 = 0;
    let sumB = 0;
    let maxB = 0;
    if (!this.ids) return { meanTailMass1: 0, maxTailMass1: 0, meanTailBound: 0, maxTailBound: 0 };
    for (let w = 0; w < this.windows.length; w++) {
      const vals = this.values[w];
      for (let t = 0; t < this.seqLen; t++) {
        const off = t * k;
        const lse = this.lse[w][t];
        let top1 = -Infinity;
        let topT = -Infinity;
        for (let j = 0; j < k; j++) {
          top1 = logAddExp(top1, vals[off + j]);
          topT = logAddExp(topT, vals[off + j] / temperature);
        }
        const tail1 = Math.max(0, 1 - Math.exp(top1 - lse));
        const zk = vals[off + k - 1];
        let logTailT = V > k ? Math.log(V - k) + zk / temperature : -Infinity;
        if (temperature <= 1 && tail1 > 0) logTailT = Math.min(logTailT, zk * (1 / temperature - 1) + lse + Math.log(tail1));
        if (tail1 === 0) logTailT = -Infinity;
        const bound = logTailT === -Infinity ? 0 : Math.exp(logTailT - logAddExp(topT, logTailT));
        n++;
        sum1 += tail1;
        max1 = Math.max(max1, tail1);
        sumB += bound;
        maxB = Math.max(maxB, bound);
      }
    }
    return { meanTailMass1: sum1 / n, maxTailMass1: max1, meanTailBound: sumB / n, maxTailBound: maxB };
  }

  /** Plain-JSON form (typed arrays as base64 of their little-endian bytes). */
  toJSON(): object {
    const b64 = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
    return {
      format: "sdmprune-teacher-cache",
      version: 1,
      topk: this.topk,
      vocabSize: this.vocabSize,
      seqLen: this.seqLen,
      fingerprint: this.fingerprint,
      windows: this.windows,
      values: this.values.map(b64),
      ids: this.ids ? this.ids.map(b64) : null,
      lse: this.lse.map(b64),
    };
  }

  static fromJSON(raw: unknown, source = "teacher cache"): TeacherCache {
    const bad = (msg: string): never => {
      throw new FormatError(`${source}: ${msg}`);
    };
    if (typeof raw !== "object" || raw === null) bad("expected a JSON object");
    const r = raw as Record<string, unknown>;
    if (r.format !== "sdmprune-teacher-cache") bad(`field "format" must be "sdmprune-teacher-cache", got ${JSON.stringify(r.format)}`);
    const V = r.vocabSize as number;
    const T = r.seqLen as number;
    if (!Number.isInteger(V) || V < 1) bad(`field "vocabSize" must be a positive integer, got ${JSON.stringify(r.vocabSize)}`);
    if (!Number.isInteger(T) || T < 2) bad(`field "seqLen" must be an integer ≥ 2, got ${JSON.stringify(r.seqLen)}`);
    const topk = r.topk as TopK;
    if (topk !== "full" && !(Number.isInteger(topk) && (topk as number) >= 1)) bad(`field "topk" must be a positive integer or "full", got ${JSON.stringify(topk)}`);
    const k = topk === "full" ? V : (topk as number);
    if (!Array.isArray(r.windows) || r.windows.length === 0) bad(`field "windows" must be a non-empty array`);
    const windows = r.windows as unknown[];
    windows.forEach((w, i) => {
      if (!Array.isArray(w) || w.length !== T || w.some((x) => !Number.isInteger(x) || x < 0 || x >= V)) {
        bad(`windows[${i}] must be ${T} token ids in [0, ${V})`);
      }
    });
    const W = windows.length;
    const dec = <A extends Float32Array | Int32Array>(field: string, ctor: new (b: ArrayBuffer) => A, len: number): A[] => {
      const arr = r[field];
      if (!Array.isArray(arr) || arr.length !== W) bad(`field "${field}" must have one entry per window (${W})`);
      return (arr as unknown[]).map((s, i) => {
        if (typeof s !== "string") bad(`${field}[${i}] must be a base64 string`);
        const buf = Buffer.from(s as string, "base64");
        if (buf.byteLength !== len * 4) bad(`${field}[${i}] has ${buf.byteLength} bytes, expected ${len * 4}`);
        const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
        return new ctor(ab);
      });
    };
    const values = dec("values", Float32Array, T * k);
    const ids = topk === "full" ? null : dec("ids", Int32Array, T * k);
    if (ids) ids.forEach((a, i) => { if (a.some((x) => x < 0 || x >= V)) bad(`ids[${i}] has a token id outside [0, ${V})`); });
    const lse = dec("lse", Float32Array, T);
    const fp = r.fingerprint as ModelFingerprint;
    if (typeof fp !== "object" || fp === null || typeof fp.weightHash !== "string" || !Array.isArray(fp.intermediate_sizes)) bad(`field "fingerprint" is missing or malformed`);
    // k, not the requested topk: a top-k above the vocabulary is clamped to it (all entries kept).
    return new TeacherCache(topk === "full" ? "full" : k, V, T, windows as number[][], fp, values, ids, lse);
  }
}
