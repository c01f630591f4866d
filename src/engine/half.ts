import * as tf from "@tensorflow/tfjs";
import { decodeHalfWords, encodeHalfWords } from "../io/dtypes";

/**
 * Weights stored as IEEE half on the device, computed in float32.
 *
 * tfjs 4.22 has no float16 dtype on any backend, so a half tensor is an int32 tensor of ceil(n / 2) words, two
 * halves per word (element 2i in the low 16 bits): half the bytes of the float32 tensor it stands for. It is
 * unpacked to float32 where it is used. On webgpu that is one shader pass with WGSL's core `unpack2x16float`
 * (every WebGPU adapter has it: no `shader-f16` feature is needed, and that feature would not make it cheaper,
 * since it only adds f16 arithmetic and f16 storage types while the bytes read and written are the same); on the
 * other backends the words are read back and decoded on the host, which is exact and keeps the function usable
 * everywhere. Rounding to half is round-to-nearest-even, as PyTorch's `.half()`. docs/engines.md, "float16
 * weight storage on webgpu".
 */

/** `data` rounded to half and packed two per word: an int32 tensor of ceil(n / 2) elements (the shape is the caller's to keep). */
export function packHalf(data: Float32Array, shape: readonly number[]): tf.Tensor1D {
  const n = shape.reduce((a, b) => a * b, 1);
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new RangeError(`packHalf: shape [${shape.join(", ")}] is not a shape`);
  if (n !== data.length) throw new RangeError(`packHalf: shape [${shape.join(", ")}] holds ${n} elements, data has ${data.length}`);
  return tf.tensor1d(encodeHalfWords(data), "int32");
}

/** Bytes a half tensor of `shape` takes (4 per word), against 4 per element as float32. */
export function packedBytes(shape: readonly number[]): number {
  return Math.ceil(shape.reduce((a, b) => a * b, 1) / 2) * 4;
}

/**
 * The float32 tensor of `shape` that `packed` (from packHalf) holds; exact (every half is a float32). The words are
 * one row of n halves, so this is unpackHalfRows of that row (one shader pass on webgpu) in the caller's shape.
 */
export function unpackHalf(packed: tf.Tensor, shape: readonly number[]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (packed.dtype !== "int32") throw new TypeError(`unpackHalf: expected the int32 words of packHalf, got a ${packed.dtype} tensor`);
  if (packed.size !== Math.ceil(n / 2)) throw new RangeError(`unpackHalf: shape [${shape.join(", ")}] needs ${Math.ceil(n / 2)} words, the packed tensor has ${packed.size}`);
  if (n === 0) return tf.zeros([...shape]);
  // a reshape only rewrites the shape (on webgpu too): the buffer is the one the kernel wrote
  return tf.tidy(() => tf.reshape(unpackHalfRows(packed, n, { from: 0, count: 1 }), [...shape]));
}

const ROWS_KERNEL = "SdmpruneUnpackHalfRows";

/**
 * Rows of a row-packed half matrix as float32 [k, cols]. `packed` holds R rows of ceil(cols / 2) int32 words each
 * (an odd row ends in a padding half, so every row starts on a word: what packHalf makes of each row padded to an
 * even length); the rows are `rows` (an int32 tensor of row indices, any order, repeats allowed) or the run
 * `{ from, count }`. One shader pass on webgpu, which reads the words it needs straight from the packed buffer: tfjs's
 * own Slice and Gather would not do, since on webgpu they carry int32 values through float32 and so lose the low
 * bits of a word (one of its two halves). Elsewhere the words are read back and decoded on the host.
 */
export function unpackHalfRows(packed: tf.Tensor, cols: number, rows: tf.Tensor | { from: number; count: number }): tf.Tensor2D {
  if (packed.dtype !== "int32") throw new TypeError(`unpackHalfRows: expected the int32 words of packed halves, got a ${packed.dtype} tensor`);
  const wc = Math.ceil(cols / 2);
  if (!(cols > 0) || packed.size % wc !== 0) throw new RangeError(`unpackHalfRows: ${packed.size} words are not whole rows of ${wc} words (${cols} columns)`);
  const R = packed.size / wc;
  const k = rows instanceof tf.Tensor ? rows.size : rows.count;
  if (!(rows instanceof tf.Tensor) && (rows.from < 0 || rows.count < 0 || rows.from + rows.count > R)) {
    throw new RangeError(`unpackHalfRows: rows ${rows.from}..${rows.from + rows.count - 1} of ${R}`);
  }
  if (k === 0) return tf.zeros([0, cols]);
  if (tf.getBackend() === "webgpu") {
    registerWebGPUKernel();
    const inputs: tf.NamedTensorMap = rows instanceof tf.Tensor ? { packed, rows } : { packed };
    return tf.engine().runKernel(ROWS_KERNEL, inputs, { cols, from: rows instanceof tf.Tensor ? 0 : rows.from, count: k }) as tf.Tensor2D;
  }
  const words = packed.dataSync() as Int32Array;
  const idx = rows instanceof tf.Tensor ? (rows.dataSync() as Int32Array) : Int32Array.from({ length: k }, (_, i) => rows.from + i);
  const out = new Float32Array(k * cols);
  for (let i = 0; i < k; i++) {
    const r = idx[i];
    if (!(r >= 0 && r < R)) throw new RangeError(`unpackHalfRows: row ${r} of ${R}`);
    out.set(decodeHalfWords(words.subarray(r * wc, (r + 1) * wc), cols), i * cols);
  }
  return tf.tensor2d(out, [k, cols], "float32");
}

// The slice of tfjs-backend-webgpu's WebGPUProgram and backend this file uses (their .d.ts needs @webgpu/types).
interface WebGPUProgramLike {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  size: boolean;
  uniforms?: string;
  getUserCode(): string;
}
interface WebGPUBackendLike {
  runWebGPUProgram(program: WebGPUProgramLike, inputs: tf.TensorInfo[], outputDtype: tf.DataType, uniforms?: Array<{ type: string; data: number[] }>): tf.TensorInfo;
}

const WORKGROUP = 128;

/**
 * One invocation per float written: output element (i, c) is half c & 1 of word c / 2 of source row rows[i] (or
 * from + i). A word is read by both of its halves' invocations; the reads hit the same cache line.
 */
class UnpackHalfRowsProgram implements WebGPUProgramLike {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;
  uniforms = "cols : i32, wc : i32, rowFrom : i32,";
  private readonly indexed: boolean;

  constructor(n: number, indexed: boolean) {
    this.outputShape = [n];
    this.indexed = indexed;
    this.variableNames = indexed ? ["W", "Rows"] : ["W"];
    this.shaderKey = `sdmpruneUnpackHalfRows_${indexed ? "gather" : "run"}`;
    this.dispatch = [Math.ceil(n / WORKGROUP), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let r = index / uniforms.cols;
          let c = index - r * uniforms.cols;
          let src = ${this.indexed ? "Rows[r]" : "uniforms.rowFrom + r"};
          let v = unpack2x16float(bitcast<u32>(W[src * uniforms.wc + c / 2]));
          result[index] = select(v.x, v.y, (c & 1) == 1);
        }
      }
    `;
  }
}

function registerWebGPUKernel(): void {
  if (tf.getKernel(ROWS_KERNEL, "webgpu")) return;
  tf.registerKernel({
    kernelName: ROWS_KERNEL,
    backendName: "webgpu",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { packed, rows } = inputs as unknown as { packed: tf.TensorInfo; rows?: tf.TensorInfo };
      const { cols, from, count } = attrs as unknown as { cols: number; from: number; count: number };
      const be = backend as unknown as WebGPUBackendLike;
      const uniforms = [
        { type: "int32", data: [cols] },
        { type: "int32", data: [Math.ceil(cols / 2)] },
        { type: "int32", data: [from] },
      ];
      const flat = be.runWebGPUProgram(new UnpackHalfRowsProgram(count * cols, rows !== undefined), rows ? [packed, rows] : [packed], "float32", uniforms);
      return { dataId: flat.dataId, shape: [count, cols], dtype: "float32" };
    },
  });
}
