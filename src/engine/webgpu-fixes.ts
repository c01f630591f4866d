import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";

/**
 * What the webgpu backend needs to run the library in Node.
 *
 * Synchronous reads (`dataSync`, `arraySync`): tfjs-backend-webgpu implements them with `OffscreenCanvas`, which
 * exists only in browsers, and Dawn's Node binding offers no blocking wait: a buffer map completes only when
 * Node's event loop turns. The library reads small results synchronously in a few places (scores, sampled
 * tokens, losses), so `readSync` is replaced by the same staging-buffer copy as the async `read`, waiting for
 * the map on nested turns of the event loop (`uv_run` once per turn, from the prebuilt addon of the optional
 * dependency `deasync`). Dawn completes maps from a `setImmediate` callback, so a turn is enough; timers and I/O
 * callbacks that fall due meanwhile run inside that wait. Only the loop turn is used, not deasync's
 * `loopWhile`: that also drains the microtask queue, which reports promise rejections as unhandled before the
 * code awaiting them has attached its handler. Async reads (`await t.data()`) never take this path.
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

let runLoopOnce: (() => void) | null | undefined;

/** deasync's addon (`run`: one uv_run(UV_RUN_ONCE)), found where deasync's own index.js looks for it. */
function loadRunLoopOnce(): (() => void) | null {
  if (runLoopOnce !== undefined) return runLoopOnce;
  runLoopOnce = null;
  let dir: string;
  try {
    dir = path.dirname(require.resolve("deasync"));
  } catch {
    return null;
  }
  const [major, minor] = process.versions.node.split(".");
  const candidates = [`${major}.${minor}`, major].map((v) => path.join(dir, "bin", `${process.platform}-${process.arch}-node-${v}`, "deasync.node"));
  candidates.push(path.join(dir, "build", "Release", "deasync.node"));
  for (const c of candidates) {
    if (!fs.existsSync(c)) continue;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    runLoopOnce = (require(c) as { run: () => void }).run;
    break;
  }
  return runLoopOnce;
}

function readSyncNode(this: WebGPUBackendLike, dataId: unknown): tf.backend_util.BackendValues {
  const data = this.tensorMap.get(dataId);
  if (!data) throw new Error(`webgpu readSync: tensor ${String(dataId)} is not registered`);
  if (data.values != null || data.dtype === "string") return data.values as tf.backend_util.BackendValues;
  if (data.dtype === "complex64" || !data.resource) throw new Error(`webgpu readSync: cannot read a ${data.dtype} tensor synchronously; use await tensor.data()`);
  const turn = loadRunLoopOnce();
  if (!turn) throw new Error("webgpu: synchronous reads (dataSync/arraySync) need the optional package deasync with a prebuilt addon for this Node version; use await tensor.data(), or install deasync");
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
  while (failure === null && staging.mapState === "pending") turn();
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

interface DeviceBackendLike {
  device: { limits: { maxStorageBuffersPerShaderStage: number } };
  disposeData(dataId: unknown): void;
}

/**
 * tfjs-backend-webgpu's AddN binds every input as its own storage buffer, so more inputs than the device's
 * `maxStorageBuffersPerShaderStage` − 1 (8 by default in WebGPU, and on Dawn's OpenGL backend) make an invalid
 * pipeline: Dawn reports a validation error on stderr and the sum comes back wrong, silently (the
 * global-norm gradient clip of recovery sums one term per parameter: 20–30 inputs). Larger sums are done as
 * sums of at most that many inputs, level by level, with the original kernel (its own Concat does the same).
 */
function registerAddN(): void {
  const original = tf.getKernel("AddN", "webgpu");
  if (!original) return;
  const originalFunc = original.kernelFunc;
  tf.unregisterKernel("AddN", "webgpu");
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const be = args.backend as unknown as DeviceBackendLike;
      const max = Math.max(2, be.device.limits.maxStorageBuffersPerShaderStage - 1);
      let level = args.inputs as unknown as tf.TensorInfo[];
      if (level.length <= max) return originalFunc(args);
      const made: tf.TensorInfo[] = [];
      while (level.length > max) {
        const next: tf.TensorInfo[] = [];
        for (let i = 0; i < level.length; i += max) {
          const group = level.slice(i, i + max);
          if (group.length === 1) {
            next.push(group[0]);
            continue;
          }
          const sum = originalFunc({ ...args, inputs: group as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
          made.push(sum);
          next.push(sum);
        }
        level = next;
      }
      const out = originalFunc({ ...args, inputs: level as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
      for (const t of made) be.disposeData(t.dataId);
      return out;
    },
  });
}

/**
 * Dawn reports invalid GPU work (a validation or out-of-memory error) as an event, not an exception, and the
 * op's output is then garbage. The first such error is kept, printed once, and makes every later read throw,
 * so a wrong result cannot pass for a right one.
 */
let gpuError: string | null = null;

export function recordGpuError(message: string): void {
  if (gpuError !== null) return;
  gpuError = message;
  process.stderr.write(`webgpu: the GPU rejected a command; results from here on are invalid:\n${message}\n`);
}

function checkGpuError(): void {
  if (gpuError !== null) throw new Error(`webgpu: an earlier GPU command failed, so tensor values are invalid: ${gpuError.split("\n")[0]}`);
}

let patched = false;

/** Called once the webgpu backend module is loaded (src/engine/webgpu.ts). */
export function registerWebGPUFixes(backendClass: { prototype: unknown }): void {
  if (patched) return;
  patched = true;
  const proto = backendClass.prototype as WebGPUBackendLike & { read(dataId: unknown): Promise<tf.backend_util.BackendValues> };
  proto.readSync = function (this: WebGPUBackendLike, dataId: unknown) {
    checkGpuError();
    const v = readSyncNode.call(this, dataId);
    checkGpuError();
    return v;
  };
  const read = proto.read;
  proto.read = async function (this: unknown, dataId: unknown) {
    checkGpuError();
    const v = await read.call(this, dataId);
    checkGpuError();
    return v;
  };
  registerAddN();
}
