import * as tf from "@tensorflow/tfjs";

/**
 * A list for the tensors a model builds from host arrays, whose `push` hands each tensor's values to the backend
 * at once on the native `tensorflow` backend (elsewhere it is a plain array).
 *
 * Why: tfjs-node's `write` only stores the JavaScript array and copies it into TensorFlow at the tensor's first
 * use in an op (`getInputTensorIds`), so a freshly loaded model is all JavaScript arrays, and during the first
 * pass each weight exists twice: TensorFlow's copy and the JavaScript array, which is garbage from then on but
 * is collected only when V8 next needs memory (a forward pass allocates almost nothing in JavaScript). Measured
 * from a file: the first pass peaked at 2.1× the f32 weights (docs/memory.md). Uploading while loading turns
 * each array into garbage while the next weight is being read, whose allocation lets V8 collect it.
 *
 * `getInputTensorIds` is the backend's own upload step (tfjs-node 4.x); where a backend lacks it the tensor is
 * left as it is, which changes memory, never values.
 */
export function uploadedOnPush<T extends tf.Tensor = tf.Tensor>(): T[] {
  const list: T[] = [];
  if (tf.getBackend() !== "tensorflow") return list;
  const backend = tf.backend() as unknown as { getInputTensorIds?: (ts: tf.Tensor[]) => unknown };
  if (typeof backend.getInputTensorIds !== "function") return list;
  list.push = (...ts: T[]): number => {
    backend.getInputTensorIds!(ts);
    return Array.prototype.push.apply(list, ts);
  };
  return list;
}

/**
 * A tensor's values as an array the caller owns, with one host copy: wasm's `dataSync` already copies out of its
 * heap, and tfjs-node's copies out of TensorFlow once the tensor is there (hence the upload first: before it,
 * `dataSync` returns the backend's own array). Elsewhere (cpu, webgpu's cache) the array is copied. Saving a
 * model reads each weight through this, so a 1 GiB embedding costs one transient gigabyte, not two.
 */
export function ownedData(t: tf.Tensor): Float32Array {
  const name = tf.getBackend();
  if (name === "tensorflow") {
    const backend = tf.backend() as unknown as { getInputTensorIds?: (ts: tf.Tensor[]) => unknown };
    if (typeof backend.getInputTensorIds === "function") {
      backend.getInputTensorIds([t]);
      return t.dataSync() as Float32Array;
    }
  }
  if (name === "wasm") return t.dataSync() as Float32Array;
  return Float32Array.from(t.dataSync() as Float32Array);
}
