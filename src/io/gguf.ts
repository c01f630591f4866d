import * as fs from "node:fs";
import { FormatError } from "../errors";
import { fsyncFd, openForWrite, writeAll } from "./atomic";
import { StoredFloat, TensorLocation, fileTensor, readTensorAt } from "./tensor-file";
import { HostTensor, numel } from "./tensors";
import { TensorStreamer } from "./tensor-stream";

/**
 * The GGUF container (versions 2 and 3, little-endian), independent of the model architecture: metadata of
 * every value type, tensor infos, and F32/F16/BF16 tensor data. Quantized ggml types are refused by name
 * (sdmprune needs dense weights to compute gradients). Architecture-specific mapping lives in gguf-llama.ts.
 *
 * Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv, KVs (string key, u32 type, value), tensor infos (string
 * name, u32 n_dims, u64 dims[n_dims] in ggml order = fastest-varying first, u32 ggml type, u64 offset relative to
 * the data section), padding to `general.alignment` (default 32), data section.
 */

export enum GgufType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8,
  ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/** ggml tensor type ids → names (for error messages; only F32, F16 and BF16 are readable). */
export const GGML_TYPE_NAMES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
  12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
  20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
  29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
};
export const GGML_F32 = 0;
export const GGML_F16 = 1;
export const GGML_BF16 = 30;
const ELEMENT_BYTES: Record<number, number> = { [GGML_F32]: 4, [GGML_F16]: 2, [GGML_BF16]: 2 };

export const GGUF_DEFAULT_ALIGNMENT = 32;

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the fastest-varying (the row length). */
  dims: number[];
  type: number;
  /** Offset relative to the data section, as stored. */
  offset: number;
}

export interface GgufHeader {
  path: string;
  version: number;
  metadata: Record<string, unknown>;
  /** Value type of each metadata key (arrays: the element type in `metadataArrayTypes`). */
  metadataTypes: Record<string, GgufType>;
  metadataArrayTypes: Record<string, GgufType>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the data section. */
  dataOffset: number;
  fileSize: number;
  /** Modification time when the header was read: tensors read later refuse a file changed since. */
  mtimeMs: number;
}

/** Sequential reader over a file descriptor that pulls 1 MiB chunks, so a multi-GB file is never read whole. */
class Cursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  constructor(private readonly fd: number, readonly size: number, private readonly file: string) {}

  private ensure(n: number, what: string): void {
    const end = this.pos + n;
    if (end > this.size) {
      throw new FormatError(`${this.file}: truncated GGUF file: ${what} needs bytes [${this.pos}, ${end}) but the file has ${this.size} bytes`);
    }
    if (this.pos >= this.bufStart && end <= this.bufStart + this.buf.length) return;
    const len = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
    this.buf = Buffer.alloc(len);
    fs.readSync(this.fd, this.buf, 0, len, this.pos);
    this.bufStart = this.pos;
  }
  bytes(n: number, what: string): Buffer {
    this.ensure(n, what);
    const o = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(o, o + n);
  }
  u8(w: string) { return this.bytes(1, w).readUInt8(0); }
  i8(w: string) { return this.bytes(1, w).readInt8(0); }
  u16(w: string) { return this.bytes(2, w).readUInt16LE(0); }
  i16(w: string) { return this.bytes(2, w).readInt16LE(0); }
  u32(w: string) { return this.bytes(4, w).readUInt32LE(0); }
  i32(w: string) { return this.bytes(4, w).readInt32LE(0); }
  f32(w: string) { return this.bytes(4, w).readFloatLE(0); }
  f64(w: string) { return this.bytes(8, w).readDoubleLE(0); }
  u64(w: string): number | bigint { return small(this.bytes(8, w).readBigUInt64LE(0)); }
  i64(w: string): number | bigint { return small(this.bytes(8, w).readBigInt64LE(0)); }
  /** A u64 that must be a usable length/count/offset. */
  size64(w: string): number {
    const v = this.bytes(8, w).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${this.file}: ${w} is ${v}, too large (corrupt file?)`);
    return Number(v);
  }
  str(w: string): string {
    const n = this.size64(`${w} length`);
    return this.bytes(n, w).toString("utf8");
  }
}

/** The shortest decimal that rounds to the same f32 (1e-5 instead of 0.000009999999747378752). */
function shortestF32(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let p = 1; p <= 9; p++) {
    const c = Number(v.toPrecision(p));
    if (Math.fround(c) === v) return c;
  }
  return v;
}

function small(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

function readValue(c: Cursor, type: number, key: string, file: string): unknown {
  const w = `value of "${key}"`;
  switch (type) {
    case GgufType.UINT8: return c.u8(w);
    case GgufType.INT8: return c.i8(w);
    case GgufType.UINT16: return c.u16(w);
    case GgufType.INT16: return c.i16(w);
    case GgufType.UINT32: return c.u32(w);
    case GgufType.INT32: return c.i32(w);
    case GgufType.FLOAT32: return shortestF32(c.f32(w));
    case GgufType.BOOL: return c.u8(w) !== 0;
    case GgufType.STRING: return c.str(w);
    case GgufType.UINT64: return c.u64(w);
    case GgufType.INT64: return c.i64(w);
    case GgufType.FLOAT64: return c.f64(w);
    default: throw new FormatError(`${file}: metadata "${key}" has unknown value type ${type}`);
  }
}

/** Smallest encoding of one value of each type (strings: their 8-byte length), to bound array lengths by the file. */
const VALUE_MIN_BYTES: Record<number, number> = {
  [GgufType.UINT8]: 1, [GgufType.INT8]: 1, [GgufType.UINT16]: 2, [GgufType.INT16]: 2, [GgufType.UINT32]: 4,
  [GgufType.INT32]: 4, [GgufType.FLOAT32]: 4, [GgufType.BOOL]: 1, [GgufType.STRING]: 8, [GgufType.UINT64]: 8,
  [GgufType.INT64]: 8, [GgufType.FLOAT64]: 8,
};

const INT_TYPES = new Set([GgufType.UINT8, GgufType.INT8, GgufType.UINT16, GgufType.INT16, GgufType.UINT32, GgufType.INT32, GgufType.UINT64, GgufType.INT64]);
const FLOAT_TYPES = new Set([GgufType.FLOAT32, GgufType.FLOAT64]);
type Kind = "count" | "counts" | "float" | "string" | "bool" | "strings" | "floats" | "ints" | "json";

/**
 * Value types of the keys sdmprune reads: a value of the wrong type (a string where a count belongs, tokens that are
 * not strings) is refused here with the key, the expected and the actual type, instead of being coerced into a
 * different model. Integer widths are not constrained (the value is used exactly), only the kind.
 */
const KEY_KINDS: Record<string, Kind> = {
  "general.alignment": "count",
  "general.architecture": "string",
  "general.name": "string",
  "llama.context_length": "count",
  "llama.embedding_length": "count",
  "llama.block_count": "count",
  "llama.vocab_size": "count",
  "llama.feed_forward_length": "counts",
  "llama.attention.head_count": "counts",
  "llama.attention.head_count_kv": "counts",
  "llama.attention.key_length": "count",
  "llama.attention.value_length": "count",
  "llama.rope.dimension_count": "count",
  "llama.attention.layer_norm_rms_epsilon": "float",
  "llama.rope.freq_base": "float",
  "llama.rope.scaling.type": "string",
  "llama.rope.scaling.factor": "float",
  "tokenizer.ggml.model": "string",
  "tokenizer.ggml.pre": "string",
  "tokenizer.ggml.merges": "strings",
  "tokenizer.ggml.tokens": "strings",
  "tokenizer.ggml.scores": "floats",
  "tokenizer.ggml.token_type": "ints",
  "tokenizer.ggml.bos_token_id": "count",
  "tokenizer.ggml.eos_token_id": "count",
  "tokenizer.ggml.unknown_token_id": "count",
  "tokenizer.ggml.padding_token_id": "count",
  "tokenizer.ggml.add_bos_token": "bool",
  "tokenizer.ggml.add_eos_token": "bool",
  "sdmprune.rope_scaling": "json",
};

function typeLabel(t: GgufType | undefined, et: GgufType | undefined): string {
  const n = (x: GgufType | undefined) => (x === undefined ? "?" : (GgufType[x] ?? `type ${x}`));
  return t === GgufType.ARRAY ? `ARRAY of ${n(et)}` : n(t);
}

function checkMetadataTypes(file: string, m: Record<string, unknown>, types: Record<string, GgufType>, arrayTypes: Record<string, GgufType>): void {
  for (const key of Object.keys(types)) {
    // The other architectures sdmprune reads use the llama keys under their own prefix, with the same kinds.
    const k = key.replace(/^(qwen2|qwen3|phi3)\./, "llama.");
    const kind = Object.prototype.hasOwnProperty.call(KEY_KINDS, k) ? KEY_KINDS[k] : undefined;
    if (!kind) continue;
    const t = types[key];
    const et = arrayTypes[key];
    const v = m[key];
    const count = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
    let ok: boolean;
    let want: string;
    switch (kind) {
      case "count": ok = INT_TYPES.has(t) && count(v); want = "a non-negative integer"; break;
      case "counts":
        ok = (INT_TYPES.has(t) && count(v)) || (t === GgufType.ARRAY && INT_TYPES.has(et) && (v as unknown[]).every(count));
        want = "a non-negative integer or an array of them"; break;
      case "float": ok = FLOAT_TYPES.has(t); want = "FLOAT32 or FLOAT64"; break;
      case "string": ok = t === GgufType.STRING; want = "STRING"; break;
      case "bool": ok = t === GgufType.BOOL; want = "BOOL"; break;
      case "strings": ok = t === GgufType.ARRAY && et === GgufType.STRING; want = "ARRAY of STRING"; break;
      case "floats": ok = t === GgufType.ARRAY && FLOAT_TYPES.has(et); want = "ARRAY of FLOAT32"; break;
      case "ints": ok = t === GgufType.ARRAY && INT_TYPES.has(et); want = "ARRAY of INT32"; break;
      case "json": {
        ok = t === GgufType.STRING;
        want = "STRING holding a JSON object";
        if (ok) {
          try {
            const j = JSON.parse(v as string);
            ok = typeof j === "object" && j !== null && !Array.isArray(j);
          } catch {
            ok = false;
          }
        }
        break;
      }
    }
    if (!ok) {
      const shown = t === GgufType.ARRAY ? `${(v as unknown[]).length} elements` : JSON.stringify(typeof v === "bigint" ? v.toString() : v)?.slice(0, 40);
      throw new FormatError(`${file}: metadata "${key}" must be ${want}, got ${typeLabel(t, et)} (${shown})`);
    }
  }
}

/** Parse the header (metadata and tensor infos) and validate that every tensor's data lies inside the file. */
export function readGgufHeader(file: string): GgufHeader {
  const fd = fs.openSync(file, "r");
  try {
    const st = fs.fstatSync(fd);
    return { ...parseHeader(fd, st.size, file), mtimeMs: st.mtimeMs };
  } finally {
    fs.closeSync(fd);
  }
}

function parseHeader(fd: number, size: number, file: string): Omit<GgufHeader, "mtimeMs"> {
  const c = new Cursor(fd, size, file);
  if (size < 4) throw new FormatError(`${file}: not a GGUF file (${size} bytes, too short for the magic)`);
  const magic = c.bytes(4, "magic");
  if (magic.toString("latin1") !== "GGUF") {
    throw new FormatError(`${file}: not a GGUF file: magic is ${JSON.stringify(magic.toString("latin1"))} (bytes ${magic.toString("hex")}), expected "GGUF"`);
  }
  const version = c.u32("version");
  if (version !== 2 && version !== 3) {
    throw new FormatError(`${file}: GGUF version ${version} is not supported (expected 2 or 3)`);
  }
  const nTensors = c.size64("tensor count");
  const nKv = c.size64("metadata count");
  // Every entry takes at least a few bytes, so counts larger than the file are corrupt: refused before any loop.
  if (nKv > (size - c.pos) / 13) throw new FormatError(`${file}: metadata count ${nKv} cannot fit in a ${size}-byte file (corrupt header)`);
  if (nTensors > (size - c.pos) / 24) throw new FormatError(`${file}: tensor count ${nTensors} cannot fit in a ${size}-byte file (corrupt header)`);
  const metadata: Record<string, unknown> = {};
  const metadataTypes: Record<string, GgufType> = {};
  const metadataArrayTypes: Record<string, GgufType> = {};
  // defineProperty: a key such as "__proto__" is data, never the object's prototype.
  const put = (o: Record<string, unknown>, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`metadata key #${i}`);
    if (Object.prototype.hasOwnProperty.call(metadataTypes, key)) throw new FormatError(`${file}: duplicate metadata key "${key}" (entries #${Object.keys(metadataTypes).indexOf(key)} and #${i}); llama.cpp refuses such a file too`);
    const type = c.u32(`type of "${key}"`);
    put(metadataTypes, key, type);
    if (type === GgufType.ARRAY) {
      const et = c.u32(`array type of "${key}"`);
      const n = c.size64(`array length of "${key}"`);
      put(metadataArrayTypes, key, et);
      if (et === GgufType.ARRAY) throw new FormatError(`${file}: metadata "${key}" is a nested array (not supported)`);
      const min = VALUE_MIN_BYTES[et];
      if (min === undefined) throw new FormatError(`${file}: metadata "${key}" is an array of unknown value type ${et}`);
      if (n * min > size - c.pos) {
        throw new FormatError(`${file}: truncated GGUF file: metadata "${key}" claims ${n} elements (at least ${n * min} bytes) but only ${size - c.pos} of the file's ${size} bytes are left`);
      }
      const arr = new Array<unknown>(n);
      for (let j = 0; j < n; j++) arr[j] = readValue(c, et, key, file);
      put(metadata, key, arr);
    } else {
      put(metadata, key, readValue(c, type, key, file));
    }
  }
  const tensors: GgufTensorInfo[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`tensor name #${i}`);
    if (seen.has(name)) throw new FormatError(`${file}: duplicate tensor name ${name} (tensor #${i}); llama.cpp refuses such a file too`);
    seen.add(name);
    const nd = c.u32(`dims of tensor ${name}`);
    if (nd > 8) throw new FormatError(`${file}: tensor ${name} has ${nd} dims (corrupt header?)`);
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(c.size64(`dim ${d} of tensor ${name}`));
    const type = c.u32(`type of tensor ${name}`);
    const offset = c.size64(`offset of tensor ${name}`);
    tensors.push({ name, dims, type, offset });
  }
  checkMetadataTypes(file, metadata, metadataTypes, metadataArrayTypes);
  const alignment = metadata["general.alignment"] === undefined ? GGUF_DEFAULT_ALIGNMENT : Number(metadata["general.alignment"]);
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new FormatError(`${file}: general.alignment must be a power of two, got ${String(metadata["general.alignment"])}`);
  }
  const dataOffset = alignUp(c.pos, alignment);
  // As llama.cpp: tensor data is laid out in header order, each tensor at the running sum of the previous
  // tensors' sizes padded to the alignment. That rules out overlapping (aliased) and out-of-order ranges.
  let expected = 0;
  let layoutKnown = true;
  for (const t of tensors) {
    if (t.offset % alignment !== 0) {
      throw new FormatError(`${file}: tensor ${t.name} offset ${t.offset} is not a multiple of the alignment ${alignment}`);
    }
    const eb = ELEMENT_BYTES[t.type];
    if (eb === undefined) { layoutKnown = false; continue; } // unsupported types are reported by name when read
    if (layoutKnown && t.offset !== expected) {
      throw new FormatError(
        `${file}: tensor ${t.name} has data offset ${t.offset}, expected ${expected} (tensor data must follow header order without overlap or gap, as llama.cpp requires)`,
      );
    }
    const start = dataOffset + t.offset;
    const end = start + numel(t.dims) * eb;
    if (end > size) {
      throw new FormatError(
        `${file}: truncated GGUF file: tensor ${t.name} (${typeName(t.type)}, dims [${t.dims.join(", ")}]) needs bytes [${start}, ${end}) but the file has ${size} bytes`,
      );
    }
    expected = alignUp(t.offset + numel(t.dims) * eb, alignment);
  }
  return { path: file, version, metadata, metadataTypes, metadataArrayTypes, tensors, alignment, dataOffset, fileSize: size };
}

export function typeName(t: number): string {
  return GGML_TYPE_NAMES[t] ?? `type ${t}`;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** The error for any tensor sdmprune cannot use densely. */
export function checkSupportedType(file: string, t: GgufTensorInfo): void {
  if (ELEMENT_BYTES[t.type] === undefined) {
    throw new FormatError(
      `${file}: not supported: tensor ${t.name} has type ${typeName(t.type)} (sdmprune reads F32, F16 and BF16 GGUF tensors; dequantize first, e.g. llama-quantize --allow-requantize ... F16)`,
    );
  }
}

/** Where a tensor's data lies (shape = ggml dims reversed, i.e. row-major [out, in] for a matrix). */
export function ggufLocation(h: GgufHeader, t: GgufTensorInfo): TensorLocation {
  checkSupportedType(h.path, t);
  const dtype: StoredFloat = t.type === GGML_F32 ? "F32" : t.type === GGML_F16 ? "F16" : "BF16";
  return { file: h.path, name: t.name, dtype, shape: t.dims.slice().reverse(), position: h.dataOffset + t.offset, fileSize: h.fileSize, mtimeMs: h.mtimeMs };
}

/** Read every tensor into memory as a row-major HostTensor. */
export function readGgufTensors(h: GgufHeader): Map<string, HostTensor> {
  const locs = h.tensors.map((t) => ggufLocation(h, t));
  return new Map(locs.map((l) => [l.name, { shape: l.shape, data: readTensorAt(l) }]));
}

/**
 * Every tensor as a lazy HostTensor (read from the file when accessed, not kept; see tensor-file.ts), so a model
 * loads at file size. Unsupported types are refused before anything is read.
 */
export function openGgufTensors(h: GgufHeader): Map<string, HostTensor> {
  const locs = h.tensors.map((t) => ggufLocation(h, t));
  return new Map(locs.map((l) => [l.name, fileTensor(l)]));
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

/** A typed metadata value for the writer (GGUF stores the type, and llama.cpp checks it). */
export type GgufValue =
  | { type: Exclude<GgufType, GgufType.ARRAY>; value: number | bigint | string | boolean }
  | { type: GgufType.ARRAY; elementType: Exclude<GgufType, GgufType.ARRAY>; value: (number | bigint | string | boolean)[] };

export const gv = {
  u32: (v: number): GgufValue => ({ type: GgufType.UINT32, value: v }),
  i32: (v: number): GgufValue => ({ type: GgufType.INT32, value: v }),
  f32: (v: number): GgufValue => ({ type: GgufType.FLOAT32, value: v }),
  bool: (v: boolean): GgufValue => ({ type: GgufType.BOOL, value: v }),
  str: (v: string): GgufValue => ({ type: GgufType.STRING, value: v }),
  arr: (elementType: Exclude<GgufType, GgufType.ARRAY>, v: (number | string | boolean)[]): GgufValue => ({ type: GgufType.ARRAY, elementType, value: v }),
};

export interface GgufWriteTensor {
  name: string;
  /** Row-major shape (HF order); written as reversed ggml dims. */
  shape: number[];
  data: Float32Array;
  /** As HostTensor.readInto: a range of `data` without the whole array (lets the writer stream the tensor). */
  readInto?: (start: number, into: Float32Array) => void;
  type: "f32" | "f16";
}

class Sink {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer | Uint8Array): void {
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.chunks.push(buf);
    this.length += buf.length;
  }
  u32(v: number) { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.push(b); }
  u64(v: number | bigint) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  str(s: string) { const b = Buffer.from(s, "utf8"); this.u64(b.length); this.push(b); }
  take(): Buffer[] { const c = this.chunks; this.chunks = []; return c; }
}

function writeScalar(s: Sink, type: GgufType, v: number | bigint | string | boolean, key: string): void {
  const b8 = Buffer.alloc(8);
  switch (type) {
    case GgufType.UINT8: b8.writeUInt8(Number(v)); s.push(b8.subarray(0, 1)); return;
    case GgufType.INT8: b8.writeInt8(Number(v)); s.push(b8.subarray(0, 1)); return;
    case GgufType.UINT16: b8.writeUInt16LE(Number(v)); s.push(b8.subarray(0, 2)); return;
    case GgufType.INT16: b8.writeInt16LE(Number(v)); s.push(b8.subarray(0, 2)); return;
    case GgufType.UINT32: b8.writeUInt32LE(Number(v)); s.push(b8.subarray(0, 4)); return;
    case GgufType.INT32: b8.writeInt32LE(Number(v)); s.push(b8.subarray(0, 4)); return;
    case GgufType.FLOAT32: b8.writeFloatLE(Number(v)); s.push(b8.subarray(0, 4)); return;
    case GgufType.BOOL: b8.writeUInt8(v ? 1 : 0); s.push(b8.subarray(0, 1)); return;
    case GgufType.STRING: s.str(String(v)); return;
    case GgufType.UINT64: b8.writeBigUInt64LE(BigInt(v)); s.push(b8); return;
    case GgufType.INT64: b8.writeBigInt64LE(BigInt(v)); s.push(b8); return;
    case GgufType.FLOAT64: b8.writeDoubleLE(Number(v)); s.push(b8); return;
    default: throw new FormatError(`GGUF writer: metadata "${key}" has unknown type ${type}`);
  }
}

/**
 * Write a GGUF v3 file to `file` (the caller makes it atomic). Tensor data is aligned to 32 bytes; one-dimensional
 * tensors (norms) stay F32 even with type "f16", as llama.cpp's converter does.
 */
export function writeGguf(file: string, kvs: [string, GgufValue][], tensors: GgufWriteTensor[]): void {
  const alignment = GGUF_DEFAULT_ALIGNMENT;
  const s = new Sink();
  s.push(Buffer.from("GGUF", "latin1"));
  s.u32(3);
  s.u64(tensors.length);
  s.u64(kvs.length);
  for (const [key, v] of kvs) {
    s.str(key);
    s.u32(v.type);
    if (v.type === GgufType.ARRAY) {
      s.u32(v.elementType);
      s.u64(v.value.length);
      for (const e of v.value) writeScalar(s, v.elementType, e, key);
    } else {
      writeScalar(s, v.type, v.value, key);
    }
  }
  // Offsets come from the shapes, and each tensor's data is read and encoded only when it is written, so a model
  // whose tensors are lazy (read from their file on access) is converted one tensor at a time.
  let offset = 0;
  const offsets: number[] = [];
  const halves: boolean[] = [];
  for (const t of tensors) {
    const half = t.type === "f16" && t.shape.length > 1;
    halves.push(half);
    offsets.push(offset);
    offset = alignUp(offset + numel(t.shape) * (half ? 2 : 4), alignment);
    s.str(t.name);
    s.u32(t.shape.length);
    for (const d of t.shape.slice().reverse()) s.u64(d);
    s.u32(half ? GGML_F16 : GGML_F32);
    s.u64(offsets[offsets.length - 1]);
  }
  const fd = openForWrite(file);
  try {
    let pos = 0;
    for (const b of s.take()) { writeAll(fd, b, file); pos += b.length; }
    const pad = (to: number) => {
      if (to > pos) { writeAll(fd, Buffer.alloc(to - pos), file); pos = to; }
    };
    const dataStart = alignUp(pos, alignment);
    pad(dataStart);
    // chunk by chunk where a tensor can be read in ranges (tensor-stream.ts)
    const streamer = new TensorStreamer();
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      pad(dataStart + offsets[i]);
      pos += streamer.write(fd, t, halves[i], file, `GGUF writer: tensor ${t.name}`);
    }
    fsyncFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}
