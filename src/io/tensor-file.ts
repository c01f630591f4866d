import * as fs from "node:fs";
import { FormatError } from "../errors";
import { decodeBF16Into, decodeF16Into } from "./dtypes";
import { HostTensor, numel } from "./tensors";

/**
 * Tensors read from their checkpoint file one at a time, so loading a model never holds the file (or a second copy
 * of the model) in memory: a model file's readers return tensors whose `data` is read from disk with positioned
 * reads each time it is accessed and is not kept. The model converts each one to its own layout and drops it, so
 * memory at load is the model plus one tensor in flight (plus, for F16/BF16 files, one read chunk).
 */

/** The on-disk element types a tensor can be read from; each becomes a Float32Array. */
export type StoredFloat = "F32" | "F16" | "BF16";

export const STORED_BYTES: Record<StoredFloat, number> = { F32: 4, F16: 2, BF16: 2 };

/** Where one tensor's bytes lie, and what the file looked like when its header was read. */
export interface TensorLocation {
  file: string;
  name: string;
  dtype: StoredFloat;
  shape: number[];
  /** Absolute byte offset of the tensor's first element. */
  position: number;
  /** Size and modification time of the file when its header was parsed: a file changed since then is refused. */
  fileSize: number;
  mtimeMs: number;
}

/** Positioned reads into `target`, in chunks (one read call takes at most 2 GiB), until it is full. */
export function readFully(fd: number, target: Uint8Array, position: number, what: string): void {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < target.length) {
    const got = fs.readSync(fd, target, done, Math.min(CHUNK, target.length - done), position + done);
    if (got === 0) throw new FormatError(`${what}: file is truncated (${done} of ${target.length} bytes)`);
    done += got;
  }
}

/** Half-precision files are read in chunks of this many bytes, so the only transient beyond the f32 result is one chunk. */
const HALF_CHUNK = 64 << 20;

/** Read one tensor from its file as float32 (F16/BF16 converted chunk by chunk, `chunkBytes` at a time). */
export function readTensorAt(loc: TensorLocation, chunkBytes = HALF_CHUNK): Float32Array {
  const what = `${loc.file}: tensor ${loc.name}`;
  const n = numel(loc.shape);
  const fd = openUnchanged(loc);
  try {
    const out = new Float32Array(n);
    if (loc.dtype === "F32") {
      // Straight into the result's own bytes: no intermediate buffer (files are little-endian; swapped in place
      // on a big-endian host).
      readFully(fd, new Uint8Array(out.buffer), loc.position, what);
      if (!LITTLE_ENDIAN) {
        const dv = new DataView(out.buffer);
        for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      }
      return out;
    }
    const decode = loc.dtype === "F16" ? decodeF16Into : decodeBF16Into;
    const chunk = Buffer.allocUnsafeSlow(Math.max(2, Math.min(chunkBytes - (chunkBytes % 2), n * 2)));
    for (let at = 0; at < n; ) {
      const m = Math.min(chunk.length / 2, n - at);
      readFully(fd, chunk.subarray(0, m * 2), loc.position + at * 2, what);
      decode(chunk, m, out, at);
      at += m;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/** Open the tensor's file for reading, refusing a file changed since its header was read. */
function openUnchanged(loc: TensorLocation): number {
  const fd = fs.openSync(loc.file, "r");
  try {
    const st = fs.fstatSync(fd);
    if (st.size !== loc.fileSize || st.mtimeMs !== loc.mtimeMs) {
      throw new FormatError(`${loc.file}: the file changed after its header was read (size ${loc.fileSize} → ${st.size} bytes); reload the model`);
    }
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/**
 * The read buffer of half-precision range reads, reused across calls: a save streams every tensor of a model
 * through it, and one new buffer per chunk would be freed more slowly than it is made under a memory limit.
 */
let halfScratch: Buffer | null = null;

/**
 * Values [start, start + into.length) of one tensor (row-major, as stored) read into `into` as float32:
 * F32 straight into its bytes, F16/BF16 through one reused buffer of at most `chunkBytes`.
 */
export function readRangeAt(loc: TensorLocation, start: number, into: Float32Array, chunkBytes = HALF_CHUNK): void {
  const n = into.length;
  const total = numel(loc.shape);
  if (!Number.isInteger(start) || start < 0 || start + n > total) {
    throw new FormatError(`${loc.file}: tensor ${loc.name}: values [${start}, ${start + n}) are outside its ${total} values`);
  }
  const what = `${loc.file}: tensor ${loc.name}`;
  const fd = openUnchanged(loc);
  try {
    if (loc.dtype === "F32") {
      readFully(fd, new Uint8Array(into.buffer, into.byteOffset, n * 4), loc.position + start * 4, what);
      if (!LITTLE_ENDIAN) {
        const dv = new DataView(into.buffer, into.byteOffset, n * 4);
        for (let i = 0; i < n; i++) into[i] = dv.getFloat32(i * 4, true);
      }
      return;
    }
    const decode = loc.dtype === "F16" ? decodeF16Into : decodeBF16Into;
    const want = Math.max(2, Math.min(chunkBytes - (chunkBytes % 2), n * 2));
    if (!halfScratch || halfScratch.length < want) halfScratch = Buffer.allocUnsafeSlow(want);
    const chunk = halfScratch;
    const per = Math.floor(Math.min(chunk.length, chunkBytes) / 2);
    for (let at = 0; at < n; ) {
      const m = Math.min(per, n - at);
      readFully(fd, chunk.subarray(0, m * 2), loc.position + (start + at) * 2, what);
      decode(chunk, m, into, at);
      at += m;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A HostTensor whose `data` is read from the file on every access and not kept (read it once per use). Spreading
 * or copying it reads it; its shape is known without reading. `readInto`, where given, reads a range of it
 * (HostTensor.readInto).
 */
export function lazyTensor(shape: number[], read: () => Float32Array, readInto?: (start: number, into: Float32Array) => void): HostTensor {
  const t = { shape } as HostTensor;
  Object.defineProperty(t, "data", { get: read, enumerable: true });
  // not enumerable: a copy ({ ...t }) or comparison of tensors sees shape and data, as for any HostTensor
  if (readInto) Object.defineProperty(t, "readInto", { value: readInto, enumerable: false });
  return t;
}

/** Whether a tensor's data is read on access (lazy) rather than held. */
export function isLazy(t: HostTensor): boolean {
  return Object.getOwnPropertyDescriptor(t, "data")?.get !== undefined;
}

/** The location's tensor as a lazy HostTensor. */
export function fileTensor(loc: TensorLocation): HostTensor {
  return lazyTensor(loc.shape.slice(), () => readTensorAt(loc), (start, into) => readRangeAt(loc, start, into));
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Compare two stored tensors' bytes chunk by chunk (same dtype and shape), without reading either whole. */
export function sameStoredBytes(a: TensorLocation, b: TensorLocation): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return false;
  const total = numel(a.shape) * STORED_BYTES[a.dtype];
  const CH = 16 << 20;
  const ba = Buffer.allocUnsafeSlow(Math.min(CH, total));
  const bb = Buffer.allocUnsafeSlow(Math.min(CH, total));
  const fa = fs.openSync(a.file, "r");
  const fb = fs.openSync(b.file, "r");
  try {
    for (let at = 0; at < total; at += CH) {
      const m = Math.min(CH, total - at);
      readFully(fa, ba.subarray(0, m), a.position + at, `${a.file}: tensor ${a.name}`);
      readFully(fb, bb.subarray(0, m), b.position + at, `${b.file}: tensor ${b.name}`);
      if (!ba.subarray(0, m).equals(bb.subarray(0, m))) return false;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}
