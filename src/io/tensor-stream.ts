import { FormatError } from "../errors";
import { writeAll } from "./atomic";
import { encodeF16Into, encodeF32 } from "./dtypes";
import { HostTensor, numel } from "./tensors";

/** Values per chunk of a streamed tensor: 16 MiB as float32. */
export const STREAM_CHUNK_VALUES = 1 << 22;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Writes the tensors of one file through one reusable buffer (docs/memory.md, "Saving without the model in
 * memory"). A tensor with `readInto` (read from its checkpoint, or held by a streamed model) is read and encoded
 * chunk by chunk, so no tensor is ever whole in memory and nothing is allocated per chunk: a model saved under a
 * memory limit below its size used to make one or two arrays of up to 100 MB per tensor, freed more slowly than
 * they were made. A tensor without it is read once (`data`) and encoded chunk by chunk.
 */
export class TensorStreamer {
  private values: Float32Array | null = null;
  private bytes: Uint8Array | null = null;

  /** `chunkValues`: values per chunk; a chunk holds whole rows (last dimension) where a row fits in it. */
  constructor(private readonly chunkValues = STREAM_CHUNK_VALUES) {
    if (!Number.isInteger(chunkValues) || chunkValues < 1) throw new RangeError(`TensorStreamer: chunk of ${chunkValues} values`);
  }

  /**
   * Write the tensor's values at `fd`'s position as little-endian float32, or float16 when `half`; returns the
   * bytes written. `what` names the tensor in errors.
   */
  write(fd: number, t: HostTensor, half: boolean, file: string, what: string): number {
    const n = numel(t.shape);
    const row = t.shape.length > 0 ? t.shape[t.shape.length - 1] : 1;
    const per = row > 0 && row <= this.chunkValues ? Math.floor(this.chunkValues / row) * row : this.chunkValues;
    if (t.readInto) {
      const buf = this.valuesOf(Math.min(per, n));
      for (let at = 0; at < n; at += per) {
        const v = buf.subarray(0, Math.min(per, n - at));
        t.readInto(at, v);
        writeAll(fd, this.encode(v, half), file);
      }
      return n * (half ? 2 : 4);
    }
    const d = t.data; // once: a lazy tensor reads its file on every access
    if (d.length !== n) throw new FormatError(`${what} has ${d.length} values for shape [${t.shape.join(", ")}]`);
    if (!half && LITTLE_ENDIAN) {
      writeAll(fd, encodeF32(d), file);
      return n * 4;
    }
    for (let at = 0; at < n; at += per) writeAll(fd, this.encode(d.subarray(at, Math.min(n, at + per)), half), file);
    return n * (half ? 2 : 4);
  }

  private valuesOf(n: number): Float32Array {
    if (!this.values || this.values.length < n) this.values = new Float32Array(n);
    return this.values;
  }

  private encode(v: Float32Array, half: boolean): Uint8Array {
    if (!half && LITTLE_ENDIAN) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    const need = v.length * (half ? 2 : 4);
    if (!this.bytes || this.bytes.length < need) this.bytes = new Uint8Array(Math.max(need, Math.min(this.chunkValues, 1 << 22) * (half ? 2 : 4)));
    if (half) return encodeF16Into(v, this.bytes);
    const dv = new DataView(this.bytes.buffer, 0, need);
    for (let i = 0; i < v.length; i++) dv.setFloat32(i * 4, v[i], true);
    return this.bytes.subarray(0, need);
  }
}
