import * as tf from "@tensorflow/tfjs";
import { UsageError } from "../errors";
import { unpackHalf, unpackHalfRows } from "../engine/half";
import { decodeHalfWords, encodeHalfWords, floatToHalf, halfTable } from "../io/dtypes";
import { isLazy } from "../io/tensor-file";
import { numel, type HostTensor } from "../io/tensors";
import { transposeHost } from "./kernels";

/**
 * Weights held outside the tensor backend, for models whose weights do not fit it (docs/memory.md, "Layer
 * streaming"). wasm32 caps the backend's heap at 4 GiB; a streamed model keeps its weights in host memory (or in
 * its checkpoint file) and uploads one decoder layer at a time, for that layer's step only.
 *
 * - "heap": every weight is a tensor on the backend (the default where it fits).
 * - "host": every weight is a typed array in host memory; a layer's tensors exist only while it runs.
 * - "disk": each decoder layer's weights are read from the checkpoint (positioned reads) every time the layer
 *   runs, so host memory holds the embedding and one layer; a pruned layer stays there, read through its kept
 *   channels.
 *
 * Host storage can be float16 ("hostFloat": frozen weights rounded to half precision, upcast at upload).
 *
 * "heap" with float16 (webgpu only) holds every weight on the backend as packed IEEE halves (src/engine/half.ts:
 * int32 words, two halves each, half the GPU bytes) and unpacks one decoder layer to float32 for that layer's step
 * (docs/memory.md, "float16 weights on the GPU"). Such a model goes through the same per-layer path as a streamed
 * one: only the place the frozen weights are kept differs.
 */
export type WeightsIn = "heap" | "host" | "disk";
export const WEIGHTS_IN: readonly WeightsIn[] = ["heap", "host", "disk"];
export type HostFloat = "float32" | "float16";

function toHalf(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]);
  return out;
}

/** Round float32 values to the nearest float16 in place (what float16 storage would hold), without a copy. */
function roundHalfInPlace(v: Float32Array): Float32Array {
  const t = halfTable();
  for (let i = 0; i < v.length; i++) v[i] = t[floatToHalf(v[i])];
  return v;
}

function fromHalf(bits: Uint16Array, from = 0, to = bits.length): Float32Array {
  const t = halfTable();
  const out = new Float32Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = t[bits[i]];
  return out;
}

/**
 * Where a weight's values lie in its checkpoint: a lazy file-backed tensor in Hugging Face layout, transposed on
 * read when `transpose`, rounded to float16 on read when `half`; `rows`/`cols` (internal layout, only with
 * `transpose`): the file's kept columns and rows after pruning a weight that stays on disk.
 */
interface DiskSource {
  t: HostTensor;
  transpose: boolean;
  half: boolean;
  rows?: readonly number[];
  cols?: readonly number[];
}

/** The float32 read buffer of chunked disk reads, reused (one per process; every read here is synchronous). */
let readScratch: Float32Array | null = null;
function scratch(n: number): Float32Array {
  if (!readScratch || readScratch.length < n) readScratch = new Float32Array(n);
  return readScratch.subarray(0, n);
}

/**
 * One weight outside the backend, in the model's internal layout: [in, out] for linears, [V, H] for the embedding
 * and for the head (the head is kept vocabulary-major so that a chunk of the vocabulary is a contiguous run of
 * rows). Immutable: pruning makes new HostWeights.
 */
export class HostWeight {
  private constructor(
    readonly shape: number[],
    private readonly f32: Float32Array | null,
    private readonly f16: Uint16Array | null,
    /**
     * A lazy file-backed tensor in Hugging Face layout, transposed on read when `transpose`, rounded to float16 on
     * read when `half`: read on every use when nothing is held, else where the held values came from (spill()).
     */
    private readonly file: DiskSource | null,
    /**
     * Packed halves on the tensor backend: int32 [R, ceil(C / 2)] for a 2D weight (each row padded to whole
     * words, so that a row is a run of words and rows can be sliced and gathered as they are), [ceil(n / 2)] for
     * a vector. Owned by this weight: dispose() frees it.
     */
    private readonly packed: tf.Tensor | null = null,
  ) {}

  /**
   * Held on the tensor backend as packed halves (rounded to nearest even), unpacked where it is used. The caller
   * decides the backend can unpack them on the device (webgpu); elsewhere tensor() would read them back.
   */
  static onBackend(shape: number[], data: Float32Array): HostWeight {
    if (data.length !== numel(shape)) throw new UsageError(`HostWeight: ${data.length} values for shape [${shape}]`);
    if (shape.length !== 2) return new HostWeight(shape, null, null, null, tf.tensor1d(encodeHalfWords(data), "int32"));
    const [R, C] = shape;
    const wc = Math.ceil(C / 2);
    let rowAligned = data;
    if (C % 2 === 1) {
      // an odd row gets a zero half at its end, so every row starts on a word
      rowAligned = new Float32Array(R * 2 * wc);
      for (let r = 0; r < R; r++) rowAligned.set(data.subarray(r * C, (r + 1) * C), r * 2 * wc);
    }
    return new HostWeight(shape, null, null, null, tf.tensor2d(encodeHalfWords(rowAligned), [R, wc], "int32"));
  }

  /**
   * Held in host memory as `dtype` (float16 rounds to nearest even). The array is kept, not copied: do not change
   * it. `source`: the file-backed tensor the values were read from (Hugging Face layout, transposed when
   * `transpose`), which lets spill() drop the held values.
   */
  static of(shape: number[], data: Float32Array, dtype: HostFloat, source?: HostTensor, transpose = false): HostWeight {
    if (data.length !== numel(shape)) throw new UsageError(`HostWeight: ${data.length} values for shape [${shape}]`);
    const file = source && isLazy(source) ? { t: source, transpose, half: dtype === "float16" } : null;
    return dtype === "float16" ? new HostWeight(shape, null, toHalf(data), file) : new HostWeight(shape, data, null, file);
  }

  /**
   * Held as float16, converted from a tensor that reads ranges (HostTensor.readInto) a chunk at a time: the
   * embedding of a large model is never whole as float32 (1.5 GiB for a 3B model's) beside its float16 copy.
   */
  static halfFrom(shape: number[], t: HostTensor): HostWeight {
    const n = numel(shape);
    if (numel(t.shape) !== n) throw new UsageError(`HostWeight.halfFrom: ${numel(t.shape)} values for shape [${shape}]`);
    if (!t.readInto) throw new UsageError("HostWeight.halfFrom: the tensor cannot be read in ranges");
    const out = new Uint16Array(n);
    const buf = new Float32Array(Math.min(n, 1 << 22));
    for (let at = 0; at < n; at += buf.length) {
      const v = buf.subarray(0, Math.min(buf.length, n - at));
      t.readInto!(at, v);
      for (let i = 0; i < v.length; i++) out[at + i] = floatToHalf(v[i]);
    }
    return new HostWeight(shape, null, out, null);
  }

  /**
   * Read from its file every time it is used. `t` is the reader's lazy tensor in Hugging Face layout; a linear is
   * transposed to [in, out] on each read; float16 storage rounds what is read as held float16 values would be.
   */
  static onDisk(t: HostTensor, transpose: boolean, dtype: HostFloat = "float32"): HostWeight {
    if (!isLazy(t)) throw new UsageError("HostWeight.onDisk: the tensor is not file-backed");
    const shape = transpose ? [t.shape[1], t.shape[0]] : t.shape.slice();
    return new HostWeight(shape, null, null, { t, transpose, half: dtype === "float16" });
  }

  /**
   * The same values read from the checkpoint when used instead of held (null when they did not come from a file):
   * lets a model free host memory for weights it will rarely use again (the original MLP of a pruned layer).
   */
  spill(): HostWeight | null {
    if (!this.file || (!this.f32 && !this.f16)) return null;
    return new HostWeight(this.shape, null, null, this.file);
  }

  /** "disk" when read from the checkpoint on use, "backend" for packed halves on the tensor backend, else "host". */
  get where(): "host" | "disk" | "backend" {
    return this.packed ? "backend" : this.f32 || this.f16 ? "host" : "disk";
  }

  get dtype(): HostFloat {
    return this.f16 || this.packed || this.file?.half ? "float16" : "float32";
  }

  /** Host bytes held (0 for a weight read from disk or held on the backend). */
  get bytes(): number {
    return this.f32 ? this.f32.byteLength : this.f16 ? this.f16.byteLength : 0;
  }

  /** Backend bytes held (the packed words; 0 unless held on the backend). */
  get backendBytes(): number {
    return this.packed ? this.packed.size * 4 : 0;
  }

  /** Free what this weight holds on the backend (nothing for host and disk weights, which are collected). */
  dispose(): void {
    this.packed?.dispose();
  }

  /** An independent copy: the weight itself where it is immutable host data, a new reference to the packed words (tf.clone) else. */
  clone(): HostWeight {
    return this.packed ? new HostWeight(this.shape, null, null, null, tf.clone(this.packed)) : this;
  }

  /** Float32 values (internal layout). For a float32 weight this is the held array itself: do not change it. */
  values(): Float32Array {
    if (this.f32) return this.f32;
    if (this.f16) return fromHalf(this.f16);
    if (this.packed) return this.unpackedRows(this.packed, this.shape.length === 2 ? this.shape[0] : 1);
    if (this.selected) return this.selectedValues();
    const { t, transpose, half } = this.file!;
    const d = t.data;
    const v = transpose ? transposeHost(d, t.shape[0], t.shape[1]) : d;
    return half ? roundHalfInPlace(v) : v;
  }

  /** Values in Hugging Face layout ([out, in] for a linear) for writers: no transpose for a weight read from disk. */
  hfValues(linear: boolean, copy: boolean): Float32Array {
    if (this.selected && linear) {
      const out = new Float32Array(numel(this.shape));
      this.hfRange(true)!(0, out);
      return out;
    }
    if (this.where === "disk" && this.file!.transpose === linear) {
      // as stored (Hugging Face layout): read, rounded in place for float16 storage, no transposes
      const d = this.file!.t.data;
      return this.file!.half ? roundHalfInPlace(d) : d;
    }
    if (linear && this.f16) {
      // decoded straight into the transposed layout: one array per tensor, not two (a model saved under a memory
      // limit makes one such array per tensor, faster than they are collected)
      const [R, C] = this.shape;
      const t = halfTable();
      const out = new Float32Array(R * C);
      const b = this.f16;
      for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = t[b[r * C + c]];
      return out;
    }
    const v = this.values();
    return linear ? transposeHost(v, this.shape[0], this.shape[1]) : this.f32 && copy ? Float32Array.from(v) : v;
  }

  /**
   * Packed words of `rows` rows (all of them for a vector) decoded on the host, the row padding dropped (the
   * read-back path: saving, pruning along columns, fingerprints).
   */
  private unpackedRows(words: tf.Tensor, rows: number): Float32Array {
    const w = words.dataSync() as Int32Array;
    if (this.shape.length !== 2) return decodeHalfWords(w, this.shape[0]);
    const C = this.shape[1];
    const wc = Math.ceil(C / 2);
    const all = decodeHalfWords(w, rows * 2 * wc);
    if (C % 2 === 0) return all;
    const out = new Float32Array(rows * C);
    for (let r = 0; r < rows; r++) out.set(all.subarray(r * 2 * wc, r * 2 * wc + C), r * C);
    return out;
  }

  /**
   * What hfValues(linear) holds at [start, start + into.length), written into `into` without making the whole
   * array (HostTensor.readInto: a writer streams the weight through one buffer); null where only hfValues can (a
   * weight read from disk in the other layout, or from a file tensor that cannot be read in ranges).
   */
  hfRange(linear: boolean): ((start: number, into: Float32Array) => void) | null {
    // packed halves on the backend are read back whole (hfValues): the model is held on the backend anyway
    if (this.packed) return null;
    if (this.where === "disk") {
      const { t, transpose, half, rows, cols } = this.file!;
      const read = t.readInto;
      if (transpose !== linear || !read) return null;
      if (rows || cols) {
        // Hugging Face layout [C, R]: row c is the file's row cols[c] (or c), its columns the file's `rows`
        const [R, R0] = [this.shape[0], t.shape[1]];
        const rowBuf = rows ? new Float32Array(R0) : null;
        return (start, into) => {
          for (let at = 0; at < into.length; ) {
            const e = start + at;
            const c = Math.floor(e / R);
            const r0 = e - c * R;
            const m = Math.min(R - r0, into.length - at);
            const src = cols ? cols[c] : c;
            if (!rows) read(src * R0 + r0, into.subarray(at, at + m));
            else {
              read(src * R0, rowBuf!);
              for (let i = 0; i < m; i++) into[at + i] = rowBuf![rows[r0 + i]];
            }
            at += m;
          }
          if (half) roundHalfInPlace(into);
        };
      }
      return (start, into) => {
        read(start, into);
        if (half) roundHalfInPlace(into);
      };
    }
    const f32 = this.f32;
    const f16 = this.f16;
    const table = f16 ? halfTable() : null;
    if (!linear) {
      // the internal layout is the Hugging Face one
      if (f32) return (start, into) => into.set(f32.subarray(start, start + into.length));
      return (start, into) => {
        for (let i = 0; i < into.length; i++) into[i] = table![f16![start + i]];
      };
    }
    // internal [R, C] = [in, out]; Hugging Face [C, R]: its element c·R + r is internal r·C + c
    const [R, C] = this.shape;
    const at = f32 ? (k: number) => f32[k] : (k: number) => table![f16![k]];
    return (start, into) => {
      const n = into.length;
      const c0 = Math.floor(start / R);
      if (start === c0 * R && n % R === 0) {
        // whole output rows: read each input row's run of columns in order
        const nc = n / R;
        for (let r = 0; r < R; r++) {
          const base = r * C + c0;
          if (f32) for (let j = 0; j < nc; j++) into[j * R + r] = f32[base + j];
          else for (let j = 0; j < nc; j++) into[j * R + r] = table![f16![base + j]];
        }
        return;
      }
      let c = c0;
      let r = start - c0 * R;
      for (let i = 0; i < n; i++) {
        into[i] = at(r * C + c);
        if (++r === R) {
          r = 0;
          c++;
        }
      }
    };
  }

  /** A weight read from disk through a pruning selection (DiskSource rows/cols). */
  private get selected(): boolean {
    return !this.f32 && !this.f16 && !!this.file && !!(this.file.rows || this.file.cols);
  }

  /** values() of a selected disk weight: the file's [C0, R0] read in chunks of whole rows through one buffer. */
  private selectedValues(): Float32Array {
    const { t, half, rows, cols } = this.file!;
    const [C0, R0] = t.shape;
    const [R, C] = this.shape;
    const out = new Float32Array(R * C);
    const colOf = new Int32Array(C0).fill(-1);
    for (let j = 0; j < C; j++) colOf[cols ? cols[j] : j] = j;
    const per = Math.max(1, Math.floor((1 << 22) / R0));
    for (let h0 = 0; h0 < C0; h0 += per) {
      const n = Math.min(per, C0 - h0);
      const buf = scratch(n * R0);
      t.readInto!(h0 * R0, buf);
      for (let hh = 0; hh < n; hh++) {
        const j = colOf[h0 + hh];
        if (j < 0) continue;
        const base = hh * R0;
        if (rows) for (let r = 0; r < R; r++) out[r * C + j] = buf[base + rows[r]];
        else for (let r = 0; r < R; r++) out[r * C + j] = buf[base + r];
      }
    }
    return half ? roundHalfInPlace(out) : out;
  }

  /** Rows [r0, r1) of a 2D host weight, float32 (the embedding's or the head's vocabulary chunk). */
  rows(r0: number, r1: number): Float32Array {
    const H = this.shape[1];
    if (this.f32) return this.f32.subarray(r0 * H, r1 * H);
    if (this.f16) return fromHalf(this.f16, r0 * H, r1 * H);
    if (this.packed) {
      const t = this.rowsTensor(r0, r1);
      try {
        return t.dataSync() as Float32Array;
      } finally {
        t.dispose();
      }
    }
    return this.values().slice(r0 * H, r1 * H);
  }

  /** Rows [r0, r1) of a 2D weight as a new float32 tensor [r1 − r0, H] (unpacked on the backend when held there). */
  rowsTensor(r0: number, r1: number): tf.Tensor2D {
    if (!this.packed) return tf.tensor2d(this.rows(r0, r1), [r1 - r0, this.shape[1]], "float32");
    return unpackHalfRows(this.packed, this.shape[1], { from: r0, count: r1 - r0 });
  }

  /**
   * The rows `ids` (int32, any shape; flattened) of a 2D weight as a new float32 tensor [ids.size, H]: gathered
   * and unpacked on the backend when held there, else gathered on the host and uploaded.
   */
  gatherTensor(ids: tf.Tensor): tf.Tensor2D {
    if (!this.packed) return tf.tensor2d(this.gatherRows(ids.dataSync()), [ids.size, this.shape[1]], "float32");
    const packed = this.packed;
    return tf.tidy(() => unpackHalfRows(packed, this.shape[1], ids.dtype === "int32" ? tf.reshape(ids, [-1]) : tf.cast(tf.reshape(ids, [-1]), "int32")));
  }

  /** The listed rows of a 2D host weight, [ids.length, H] float32. */
  gatherRows(ids: ArrayLike<number>): Float32Array {
    const H = this.shape[1];
    if (this.packed) {
      const t = tf.tidy(() => this.gatherTensor(tf.tensor1d(Int32Array.from(ids), "int32")));
      try {
        return t.dataSync() as Float32Array;
      } finally {
        t.dispose();
      }
    }
    const out = new Float32Array(ids.length * H);
    const t = this.f16 ? halfTable() : null;
    const src = this.f32 ?? (this.f16 ? null : this.values());
    for (let i = 0; i < ids.length; i++) {
      const o = ids[i] * H;
      if (src) out.set(src.subarray(o, o + H), i * H);
      else for (let j = 0; j < H; j++) out[i * H + j] = t![this.f16![o + j]];
    }
    return out;
  }

  /** A new tensor on the backend with these values (the caller disposes it): uploaded, or unpacked on the backend. */
  tensor(): tf.Tensor {
    if (this.packed) return this.shape.length === 2 ? unpackHalfRows(this.packed, this.shape[1], { from: 0, count: this.shape[0] }) : unpackHalf(this.packed, this.shape);
    return tf.tensor(this.values(), this.shape, "float32");
  }

  /**
   * Keep the listed indices along `axis` of a 2D weight (columns for axis 1, rows for axis 0): a new host weight
   * of the given storage type; a weight read from disk becomes a host one, unless `keepOnDisk` (a "disk" model),
   * where it stays a disk weight read through the kept indices.
   */
  select(idx: readonly number[], axis: 0 | 1, dtype: HostFloat, keepOnDisk = false): HostWeight {
    const [R, C] = this.shape;
    if (this.packed) {
      // packed halves are picked from the host decode and packed again (exact: every value already is a half): a
      // word holds two neighbouring columns, and tfjs's Gather on webgpu would not keep a word's low half (see
      // unpackHalfRows)
      const v = this.values();
      const out = new Float32Array(idx.length * (axis === 0 ? C : R));
      if (axis === 0) idx.forEach((r, i) => out.set(v.subarray(r * C, (r + 1) * C), i * C));
      else for (let r = 0; r < R; r++) for (let j = 0; j < idx.length; j++) out[r * idx.length + j] = v[r * C + idx[j]];
      return HostWeight.onBackend(axis === 0 ? [idx.length, C] : [R, idx.length], out);
    }
    const k = idx.length;
    const shape = axis === 0 ? [k, C] : [R, k];
    const f = this.file;
    if (keepOnDisk && this.where === "disk" && f!.transpose && f!.t.readInto && f!.half === (dtype === "float16")) {
      // still read from the checkpoint on use, now only the kept rows/columns: memory stays one layer
      const rows = axis === 0 ? idx.map((i) => (f!.rows ? f!.rows[i] : i)) : f!.rows;
      const cols = axis === 1 ? idx.map((j) => (f!.cols ? f!.cols[j] : j)) : f!.cols;
      return new HostWeight(shape, null, null, { ...f!, rows, cols });
    }
    // The kept values go straight into the new storage, and a weight read from disk is read a row of its file at a
    // time: no whole float32 copy of the weight or of the result, which a model pruned under a memory limit
    // would make faster than they are collected.
    const o32 = dtype === "float32" ? new Float32Array(k * (axis === 0 ? C : R)) : null;
    const o16 = o32 ? null : new Uint16Array(k * (axis === 0 ? C : R));
    const set = (o: number, x: number): void => {
      if (o32) o32[o] = x;
      else o16![o] = floatToHalf(x);
    };
    // from disk: the file holds the Hugging Face layout [C, R] (internal element r·C + c is its c·R + r)
    const read = this.where === "disk" ? this.hfRange(true) : null;
    if (read) {
      if (axis === 1) {
        const row = new Float32Array(R);
        idx.forEach((c, j) => {
          read(c * R, row);
          for (let r = 0; r < R; r++) set(r * k + j, row[r]);
        });
      } else {
        const per = Math.max(1, Math.floor((1 << 20) / R));
        const buf = new Float32Array(Math.min(per, C) * R);
        for (let c0 = 0; c0 < C; c0 += per) {
          const n = Math.min(per, C - c0);
          read(c0 * R, buf.subarray(0, n * R));
          for (let cc = 0; cc < n; cc++) for (let j = 0; j < k; j++) set(j * C + c0 + cc, buf[cc * R + idx[j]]);
        }
      }
      return new HostWeight(shape, o32, o16, null);
    }
    const f32 = this.f32 ?? (this.f16 ? null : this.values());
    const f16 = this.f16;
    const t = halfTable();
    const get = (i: number): number => (f32 ? f32[i] : t[f16![i]]);
    if (axis === 0) {
      idx.forEach((r, i) => {
        for (let c = 0; c < C; c++) set(i * C + c, get(r * C + c));
      });
    } else {
      for (let r = 0; r < R; r++) for (let j = 0; j < k; j++) set(r * k + j, get(r * C + idx[j]));
    }
    return new HostWeight(shape, o32, o16, null);
  }
}

/** One decoder layer's weights outside the backend, keyed as LayerWeights. */
export type HostLayer = Record<string, HostWeight>;

/**
 * A streamed model's weights. Only the final norm (H floats) lives on the backend as float32; with weightsIn
 * "heap" (float16 on webgpu) every other weight is packed halves on the backend.
 */
export interface HostModelWeights {
  weightsIn: WeightsIn;
  dtype: HostFloat;
  embed_tokens: HostWeight; // [V, H]
  layers: HostLayer[];
  norm: tf.Tensor1D; // [H], on the backend
  /** [V, H] (vocabulary-major, i.e. the Hugging Face layout); null when tied to the embedding. */
  lm_head: HostWeight | null;
}

/** The layer's tensors on the backend, created now (the caller disposes them, e.g. by running inside a tidy). */
export function materialiseLayer(layer: HostLayer): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  try {
    for (const [k, w] of Object.entries(layer)) out[k] = w.tensor();
  } catch (e) {
    tf.dispose(Object.values(out));
    throw e;
  }
  return out;
}

/** Free what a layer holds on the backend (packed halves); host and disk weights are collected. */
export function disposeHostLayer(layer: HostLayer): void {
  for (const w of Object.values(layer)) w.dispose();
}

/** Host bytes a layer holds. */
export function hostLayerBytes(layer: HostLayer): number {
  return Object.values(layer).reduce((a, w) => a + w.bytes, 0);
}
