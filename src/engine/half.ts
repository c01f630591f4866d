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

const KERNEL = "SdmpruneUnpackHalf";

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

/** The float32 tensor of `shape` that `packed` (from packHalf) holds; exact (every half is a float32). */
export function unpackHalf(packed: tf.Tensor, shape: readonly number[]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (packed.dtype !== "int32") throw new TypeError(`unpackHalf: expected the int32 words of packHalf, got a ${packed.dtype} tensor`);
  if (packed.size !== Math.ceil(n / 2)) throw new RangeError(`unpackHalf: shape [${shape.join(", ")}] needs ${Math.ceil(n / 2)} words, the packed tensor has ${packed.size}`);
  if (tf.getBackend() === "webgpu") {
    registerWebGPUKernel();
    return tf.engine().runKernel(KERNEL, { packed }, { shape: [...shape] }) as tf.Tensor;
  }
  return tf.tensor(decodeHalfWords(packed.dataSync() as Int32Array, n), [...shape], "float32");
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
  outputComponent?: number;
  variableComponents?: number[];
  getUserCode(): string;
}
interface WebGPUBackendLike {
  runWebGPUProgram(program: WebGPUProgramLike, inputs: tf.TensorInfo[], outputDtype: tf.DataType): tf.TensorInfo;
}

const WORKGROUP = 128;

/**
 * One invocation per word. The output is flat (the caller's shape is applied by a reshape, which only rewrites
 * the shape), so an even count is written as vec2<f32>, one store per word (about 20% faster than two scalar
 * stores on llvmpipe); an odd count takes scalar stores and the last word writes one float. More than 65535
 * workgroups are laid out in 2-D/3-D by the backend (`reshapeDispatch`); tfjs's global index accounts for that.
 */
class UnpackHalfProgram implements WebGPUProgramLike {
  variableNames = ["W"];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;
  // tfjs declares the output as array<vec2<f32>> and sets uniforms.size to n / 2; the input stays array<i32>
  outputComponent?: number;
  variableComponents?: number[];
  private readonly even: boolean;

  constructor(n: number) {
    this.outputShape = [n];
    this.even = n % 2 === 0;
    this.shaderKey = `sdmpruneUnpackHalf_${this.even ? "vec2" : "odd"}`;
    if (this.even) {
      this.outputComponent = 2;
      this.variableComponents = [1];
    }
    this.dispatch = [Math.ceil(Math.ceil(n / 2) / WORKGROUP), 1, 1];
  }

  getUserCode(): string {
    // `main(index)` is tfjs's entry point, called with the flattened invocation index
    if (this.even) {
      return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          result[index] = unpack2x16float(bitcast<u32>(W[index]));
        }
      }
    `;
    }
    return `
      fn main(index : i32) {
        let at = index * 2;
        if (at < uniforms.size) {
          let v = unpack2x16float(bitcast<u32>(W[index]));
          result[at] = v.x;
          if (at + 1 < uniforms.size) {
            result[at + 1] = v.y;
          }
        }
      }
    `;
  }
}

function registerWebGPUKernel(): void {
  if (tf.getKernel(KERNEL, "webgpu")) return;
  tf.registerKernel({
    kernelName: KERNEL,
    backendName: "webgpu",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const packed = (inputs as unknown as { packed: tf.TensorInfo }).packed;
      const shape = (attrs as unknown as { shape: number[] }).shape;
      const n = shape.reduce((a, b) => a * b, 1);
      const be = backend as unknown as WebGPUBackendLike;
      const flat = be.runWebGPUProgram(new UnpackHalfProgram(n), [packed], "float32");
      // Same buffer, new shape: tfjs's own Reshape kernel on webgpu only rewrites the shape.
      return { dataId: flat.dataId, shape, dtype: "float32" };
    },
  });
}
