import * as tf from "@tensorflow/tfjs";

/**
 * What the webgpu backend needs to run the library in Node.
 *
 * Synchronous reads (`dataSync`, `arraySync`): tfjs-backend-webgpu implements them with `OffscreenCanvas`, which
 * exists only in browsers, and Dawn's Node binding offers no blocking wait: a buffer map completes only when
 * Node's event loop turns. The library reads small results synchronously in a few places (scores, sampled
 * tokens, losses), so `readSync` is replaced by the same staging-buffer copy as the async `read`, waiting for
 * the map on a nested turn of the event loop (`deasync`, an optional dependency with prebuilt binaries).
 * Timers and I/O callbacks that fall due meanwhile run inside that wait; the library's own reads happen
 * between tensor ops, where that is harmless. Async reads (`await t.data()`) never take this path.
 */

interface GpuBufferLike {
  size: number;
  mapState: "unmapped" | "pending" | "mapped";
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
}
interface TensorDataLike {
  values: tf.backend_util.BackendValues | null;
  dtype: tf.DataType;
  resource: GpuBufferLike | null;
  complexTensorInfos?: unknown;
}
interface WebGPUBackendLike {
  tensorMap: { get(dataId: unknown): TensorDataLike | undefined; has(dataId: unknown): boolean };
  bufferManager: { acquireBuffer(size: number, usage: number): GpuBufferLike; releaseBuffer(b: GpuBufferLike): void };
  commandEncoder: { copyBufferToBuffer(src: GpuBufferLike, so: number, dst: GpuBufferLike, d: number, size: number): void };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  readSync(dataId: unknown): tf.backend_util.BackendValues;
}

type LoopWhile = (pred: () => boolean) => void;
let loopWhile: LoopWhile | null | undefined;

function loadLoopWhile(): LoopWhile | null {
  if (loopWhile !== undefined) return loopWhile;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loopWhile = (require("deasync") as { loopWhile: LoopWhile }).loopWhile;
  } catch {
    loopWhile = null;
  }
  return loopWhile;
}

function readSyncNode(this: WebGPUBackendLike, dataId: unknown): tf.backend_util.BackendValues {
  const data = this.tensorMap.get(dataId);
  if (!data) throw new Error(`webgpu readSync: tensor ${String(dataId)} is not registered`);
  if (data.values != null || data.dtype === "string") return data.values as tf.backend_util.BackendValues;
  if (data.dtype === "complex64" || !data.resource) throw new Error(`webgpu readSync: cannot read a ${data.dtype} tensor synchronously; use await tensor.data()`);
  const wait = loadLoopWhile();
  if (!wait) throw new Error("webgpu: synchronous reads (dataSync/arraySync) need the optional package deasync; reinstall with optional dependencies");
  const size = data.resource.size;
  const GPU = globalThis as unknown as { GPUBufferUsage: Record<string, number>; GPUMapMode: Record<string, number> };
  const staging = this.bufferManager.acquireBuffer(size, GPU.GPUBufferUsage.COPY_DST | GPU.GPUBufferUsage.MAP_READ);
  this.ensureCommandEncoderReady();
  this.endComputePassEncoder();
  this.commandEncoder.copyBufferToBuffer(data.resource, 0, staging, 0, size);
  this.submitQueue();
  let failure: Error | null = null;
  staging.mapAsync(GPU.GPUMapMode.READ).catch((e: Error) => {
    failure = e;
  });
  wait(() => failure === null && staging.mapState === "pending");
  if (failure !== null || staging.mapState !== "mapped") {
    this.bufferManager.releaseBuffer(staging);
    throw new Error(`webgpu readSync: mapping the staging buffer failed${failure ? `: ${(failure as Error).message}` : ""}`);
  }
  const raw = staging.getMappedRange().slice(0);
  staging.unmap();
  this.bufferManager.releaseBuffer(staging);
  const vals = tf.util.convertBackendValuesAndArrayBuffer(raw, data.dtype);
  data.values = vals; // cached on the CPU side, as tfjs's own read does
  return vals;
}

let readSyncPatched = false;

/** Called once the webgpu backend module is loaded (src/engine/webgpu.ts). */
export function registerWebGPUFixes(backendClass: { prototype: unknown }): void {
  if (readSyncPatched) return;
  readSyncPatched = true;
  (backendClass.prototype as WebGPUBackendLike).readSync = readSyncNode;
}
