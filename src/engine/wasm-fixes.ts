import * as tf from "@tensorflow/tfjs";

/**
 * Fixes that make the wasm backend usable for LLaMA training-style work (see notes ENGINES.md §3–4):
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
 * transposes off the tensorflow backend; every other case (rank > 2, transpose flags, tensorflow backend)
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
      if (a.rank !== 2 || b.rank !== 2 || transposeA || transposeB || tf.getBackend() === "tensorflow") {
        return originalFunc(dy, saved, attrs);
      }
      return {
        a: () => tf.matMul(g as tf.Tensor2D, tf.transpose(b as tf.Tensor2D)),
        b: () => tf.matMul(tf.transpose(a as tf.Tensor2D), g as tf.Tensor2D),
      };
    },
  });
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
  const original = tf.getKernel("Slice", "wasm");
  if (!original) return; // wasm not loaded yet: loadWasm calls this again
  sliceRegistered = true;
  const originalFunc = original.kernelFunc;
  tf.unregisterKernel("Slice", "wasm");
  tf.registerKernel({
    kernelName: "Slice",
    backendName: "wasm",
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
    kernelFunc: (args) => {
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
    },
  });
}

export function registerWasmFixes(): void {
  registerWasmSlice();
  registerUnsortedSegmentSum();
  registerMatMulGradient();
}
