/**
 * Host-side tensors exchanged by the readers and writers. Shapes and data are in Hugging Face layout
 * (linear weights `[out, in]`, row-major); the model converts to its own layout once at load time. Tensors from
 * the model-file readers are lazy: `data` is a getter that reads the file on each access (tensor-file.ts), so
 * consumers read it once per use.
 */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
  /**
   * Where present: the values [start, start + into.length) of `data` written into `into`, without making the
   * whole array. Writers stream a tensor that has it through one reusable buffer (tensor-stream.ts), so saving a
   * model larger than memory never holds one of its tensors whole. A tensor derived from another (permuted,
   * padded, fused) must not copy it over unless the values are the same.
   */
  readInto?: (start: number, into: Float32Array) => void;
}

/** Tensors keyed by their Hugging Face names (`model.layers.0.mlp.gate_proj.weight`, ...). */
export type TensorMap = Map<string, HostTensor>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
