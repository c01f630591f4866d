import * as tf from "@tensorflow/tfjs";

/**
 * Fixes that make the wasm backend usable for LLaMA training-style work (docs/engines.md, "Missing kernels and gradients" and "Performance traps and workarounds"):
 * - the wasm backend has no `UnsortedSegmentSum` kernel, and the gradient of `gather` (the embedding
 *   lookup) needs it, so we register a host-side implementation;
 * - tfjs's `BatchMatMul` gradient uses transposed products, which are 15–20× slower on wasm than an
 *   explicit `tf.transpose` followed by a plain product, so rank-2 untransposed products get a gradient
 *   built from explicit transposes.
 */

let segmentSumRegistered = false;
let sliceRegistered = false;
let matMulGradRegistered = false;

interface BackendLike {
  readSync(dataId: unknown): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.TypedArray): tf.TensorInfo;
}

/** Host-side UnsortedSegmentSum for wasm: rows of `x` summed into `numSegments` output rows. */
export function registerUnsortedSegmentSum(): void {
  if (segmentSumRegistered) return;
  segmentSumRegistered = true;
  if (tf.getKernel("UnsortedSegmentSum", "wasm")) return;
  tf.registerKernel({
    kernelName: "UnsortedSegmentSum",
    backendName: "wasm",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = (attrs as { numSegments: number }).numSegments;
      const be = backend as unknown as BackendLike;
      const xv = be.readSync(x.dataId);
      const ids = be.readSync(segmentIds.dataId);
      // segmentIds covers the leading dims of x; every remaining dim is one "row" of `inner` values.
      const nIds = ids.length;
      const inner = nIds === 0 ? 0 : xv.length / nIds;
      const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
      const out = x.dtype === "int32" ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
      for (let i = 0; i < nIds; i++) {
        const s = ids[i];
        if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
        const src = i * inner;
        const dst = s * inner;
        for (let j = 0; j < inner; j++) out[dst + j] += xv[src + j];
      }
      return be.makeOutput(outShape, x.dtype, undefined, out);
    },
  });
}

/**
 * Replace the BatchMatMul gradient (global, all backends) so that plain rank-2 products use explicit
 * transposes on wasm and cpu; every other case (rank > 2, transpose flags, the tensorflow and webgpu backends)
 * keeps tfjs's own gradient. The maths is identical, only the kernel choice differs.
 */
export function registerMatMulGradient(): void {
  if (matMulGradRegistered) return;
  matMulGradRegistered = true;
  const original = tf.getGradient("BatchMatMul");
  if (!original) return;
  const originalFunc = original.gradFunc;
  tf.registerGradient({
    kernelName: "BatchMatMul",
    inputsToSave: original.inputsToSave ?? ["a", "b"],
    saveAllInputs: original.saveAllInputs,
    outputsToSave: original.outputsToSave,
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const { transposeA, transposeB } = attrs as { transposeA?: boolean; transposeB?: boolean };
      const g = dy as tf.Tensor;
      const native = tf.getBackend() === "tensorflow" || tf.getBackend() === "webgpu"; // transposed products are as fast there
      if (a.rank !== 2 || b.rank !== 2 || transposeA || transposeB || native) {
        return originalFunc(dy, saved, attrs);
      }
      return {
        a: () => tf.matMul(g as tf.Tensor2D, tf.transpose(b as tf.Tensor2D)),
        b: () => tf.matMul(tf.transpose(a as tf.Tensor2D), g as tf.Tensor2D),
      };
    },
  });
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Puts `impl` in place of wasm's kernel `name` (setup and dispose stay the original's); `impl` gets the
 * original kernel function for the cases it leaves alone. False when wasm is not loaded yet (the engine
 * calls the registrations again after loading it).
 */
function replaceWasmKernel(name: string, impl: (args: KernelArgs, original: tf.KernelFunc) => tf.TensorInfo | tf.TensorInfo[]): boolean {
  const original = tf.getKernel(name, "wasm");
  if (!original) return false;
  const originalFunc = original.kernelFunc;
  tf.unregisterKernel(name, "wasm");
  tf.registerKernel({ kernelName: name, backendName: "wasm", setupFunc: original.setupFunc, disposeFunc: original.disposeFunc, kernelFunc: (args) => impl(args, originalFunc) });
  return true;
}

interface WasmBackendLike {
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  wasm: { HEAPU8: Uint8Array };
}

/**
 * wasm's Slice kernel copies the WHOLE source tensor out of the heap (readSync) on every call, then keeps
 * the part it needs: slicing 256 values off the 32000×288 embedding (model fingerprint) took 1.3 s, and any
 * row slice of a big tensor costs O(source). Contiguous slices (leading-dimension ranges, and anything whose
 * trailing dims are taken whole) are re-implemented as one copy of just their bytes inside the heap; other
 * slices go to the original kernel.
 */
export function registerWasmSlice(): void {
  if (sliceRegistered) return;
  sliceRegistered = replaceWasmKernel("Slice", (args, originalFunc) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x;
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size?: number | number[] };
    const [b, sz] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size);
    if (x.dtype === "string" || !tf.slice_util.isSliceContinous(x.shape, b, sz)) return originalFunc(args);
    const be = args.backend as unknown as WasmBackendLike;
    const out = be.makeOutput(sz, x.dtype);
    const n = tf.util.sizeFromShape(sz);
    if (n > 0) {
      const bpe = tf.util.bytesPerElement(x.dtype);
      const src = be.dataIdMap.get(x.dataId).memoryOffset + tf.slice_util.computeFlatOffset(b, tf.util.computeStrides(x.shape)) * bpe;
      const dst = be.dataIdMap.get(out.dataId).memoryOffset;
      be.wasm.HEAPU8.copyWithin(dst, src, src + n * bpe);
    }
    return out;
  });
}

let gatherRegistered = false;

/**
 * wasm's GatherV2 computes a strided source index per element (~50 ns each): gathering the 8 320 teacher
 * and label rows of the embedding per 128-position chunk ([8320, 288], the sparse loss targets of
 * src/importance/head-loss.ts) took 123 ms, 20 % of a stories15M importance window. Gathers along axis 0
 * with no batch dims (embedding rows, flat element picks) become one heap copy per index; every other case
 * goes to the original kernel. Out-of-range indices are an error, as in the original.
 */
export function registerWasmGather(): void {
  if (gatherRegistered) return;
  gatherRegistered = replaceWasmKernel("GatherV2", (args, originalFunc) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims?: number };
    const ax = axis < 0 ? axis + x.shape.length : axis;
    if (ax !== 0 || (batchDims ?? 0) !== 0 || x.dtype === "string" || indices.dtype !== "int32" || x.shape.length === 0) return originalFunc(args);
    const be = args.backend as unknown as WasmBackendLike;
    const rows = x.shape[0];
    const inner = tf.util.sizeFromShape(x.shape.slice(1));
    const n = tf.util.sizeFromShape(indices.shape);
    const out = be.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    if (n * inner === 0) return out;
    // views after makeOutput: it may grow (and so replace) the heap buffer
    const heap = be.wasm.HEAPU8;
    const idx = new Int32Array(heap.buffer, be.dataIdMap.get(indices.dataId).memoryOffset, n);
    const bpe = tf.util.bytesPerElement(x.dtype);
    const src = be.dataIdMap.get(x.dataId).memoryOffset;
    const dst = be.dataIdMap.get(out.dataId).memoryOffset;
    if (inner === 1 && bpe === 4) {
      const h32 = new Int32Array(heap.buffer); // 4-byte values copied bit for bit, float32 or int32
      const s4 = src >> 2;
      const d4 = dst >> 2;
      for (let i = 0; i < n; i++) {
        const r = idx[i];
        if (r < 0 || r >= rows) throw new Error(`GatherV2: index ${r} at position ${i} is outside [0, ${rows})`);
        h32[d4 + i] = h32[s4 + r];
      }
      return out;
    }
    const rowBytes = inner * bpe;
    for (let i = 0; i < n; i++) {
      const r = idx[i];
      if (r < 0 || r >= rows) throw new Error(`GatherV2: index ${r} at position ${i} is outside [0, ${rows})`);
      heap.copyWithin(dst + i * rowBytes, src + r * rowBytes, src + (r + 1) * rowBytes);
    }
    return out;
  });
}

export function registerWasmFixes(): void {
  registerWasmSlice();
  registerWasmGather();
  registerUnsortedSegmentSum();
  registerMatMulGradient();
}
