import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors";
import { fsyncFd, openForWrite, writeAll } from "./atomic";
import { decodeBF16, decodeF16, decodeF32, encodeF16, encodeF32 } from "./dtypes";
import { HostTensor, TensorMap, numel } from "./tensors";

/**
 * safetensors: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__": {...}}, then the data buffer (offsets relative to its start). F32, F16 and BF16 are read into
 * Float32Array. The header is validated as the reference implementation does (offsets inside the buffer, byte size
 * = dtype size × numel, no overlap) before any tensor is read; errors name the file and the tensor.
 */

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const MAX_HEADER = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  dataOffset: number;
}

export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new FormatError(`${file}: not a safetensors file (${size} bytes, shorter than the 8-byte header length)`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(Math.min(MAX_HEADER, size - 8))) {
      throw new FormatError(`${file}: safetensors header length ${n} exceeds the file (${size} bytes) or the ${MAX_HEADER}-byte limit`);
    }
    const hlen = Number(n);
    const hbuf = Buffer.alloc(hlen);
    fs.readSync(fd, hbuf, 0, hlen, 8);
    let json: unknown;
    try {
      json = JSON.parse(hbuf.toString("utf8"));
    } catch (err) {
      throw new FormatError(`${file}: safetensors header is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new FormatError(`${file}: safetensors header must be a JSON object`);
    const dataOffset = 8 + hlen;
    const dataLen = size - dataOffset;
    const entries: SafetensorsEntry[] = [];
    let metadata: Record<string, string> = {};
    for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
      if (name === "__metadata__") {
        metadata = (v ?? {}) as Record<string, string>;
        continue;
      }
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e !== "object" || e === null) throw new FormatError(`${file}: tensor ${name}: header entry must be an object`);
      if (typeof e.dtype !== "string") throw new FormatError(`${file}: tensor ${name}: missing dtype`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new FormatError(`${file}: tensor ${name}: shape must be a list of non-negative integers, got ${JSON.stringify(e.shape)}`);
      }
      const off = e.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isInteger(x) && x >= 0) || off[1] < off[0]) {
        throw new FormatError(`${file}: tensor ${name}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
      }
      const [begin, end] = off as number[];
      if (end > dataLen) {
        throw new FormatError(
          `${file}: tensor ${name}: data_offsets [${begin}, ${end}] extend beyond the end of the file (data section is ${dataLen} bytes; truncated or corrupt file)`,
        );
      }
      const eb = DTYPE_BYTES[e.dtype];
      if (eb !== undefined && end - begin !== eb * numel(e.shape as number[])) {
        throw new FormatError(
          `${file}: tensor ${name}: ${end - begin} bytes of data but dtype ${e.dtype} × shape [${(e.shape as number[]).join(", ")}] needs ${eb * numel(e.shape as number[])}`,
        );
      }
      entries.push({ name, dtype: e.dtype, shape: e.shape as number[], begin, end });
    }
    const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].begin < sorted[i - 1].end) {
        throw new FormatError(`${file}: tensors ${sorted[i - 1].name} and ${sorted[i].name} overlap (data_offsets [${sorted[i - 1].begin}, ${sorted[i - 1].end}] and [${sorted[i].begin}, ${sorted[i].end}])`);
      }
    }
    return { path: file, entries, metadata, dataOffset };
  } finally {
    fs.closeSync(fd);
  }
}

/** Read all (or the selected) tensors of one file. Unsupported dtypes fail only when such a tensor is read. */
export function readSafetensors(file: string, select?: (name: string) => boolean): TensorMap {
  const h = readSafetensorsHeader(file);
  const out: TensorMap = new Map();
  const fd = fs.openSync(file, "r");
  try {
    for (const e of h.entries) {
      if (select && !select(e.name)) continue;
      out.set(e.name, readEntry(fd, h, e));
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function readEntry(fd: number, h: SafetensorsHeader, e: SafetensorsEntry): HostTensor {
  if (DTYPE_BYTES[e.dtype] === undefined) {
    throw new FormatError(`${h.path}: not supported: tensor ${e.name} has dtype ${e.dtype} (sdmprune reads F32, F16 and BF16)`);
  }
  const nbytes = e.end - e.begin;
  const buf = Buffer.alloc(nbytes);
  const got = fs.readSync(fd, buf, 0, nbytes, h.dataOffset + e.begin);
  if (got !== nbytes) throw new FormatError(`${h.path}: tensor ${e.name}: file is truncated (${got} of ${nbytes} bytes)`);
  const n = numel(e.shape);
  const data = e.dtype === "F32" ? decodeF32(buf, n) : e.dtype === "F16" ? decodeF16(buf, n) : decodeBF16(buf, n);
  return { shape: e.shape.slice(), data };
}

/**
 * Read a checkpoint directory: `model.safetensors`, or the shards listed in `model.safetensors.index.json`
 * (`weight_map`: tensor name → shard file). Every tensor the index names must be found in its shard.
 */
export function readSafetensorsDir(dir: string): { tensors: TensorMap; files: string[] } {
  const index = path.join(dir, "model.safetensors.index.json");
  if (fs.existsSync(index)) {
    let json: { weight_map?: Record<string, string> };
    try {
      json = JSON.parse(fs.readFileSync(index, "utf8"));
    } catch (err) {
      throw new FormatError(`${index}: not valid JSON: ${(err as Error).message}`);
    }
    const wm = json.weight_map;
    if (!wm || typeof wm !== "object") throw new FormatError(`${index}: missing "weight_map"`);
    const shards = [...new Set(Object.values(wm))].sort();
    const tensors: TensorMap = new Map();
    for (const s of shards) {
      const file = path.join(dir, s);
      if (!fs.existsSync(file)) throw new FormatError(`${index}: shard ${s} is listed but ${file} does not exist`);
      for (const [k, v] of readSafetensors(file, (n) => wm[n] === s)) tensors.set(k, v);
    }
    for (const [name, s] of Object.entries(wm)) {
      if (!tensors.has(name)) throw new FormatError(`${index}: tensor ${name} is mapped to ${s} but that shard does not contain it`);
    }
    return { tensors, files: shards.map((s) => path.join(dir, s)) };
  }
  const single = path.join(dir, "model.safetensors");
  if (fs.existsSync(single)) return { tensors: readSafetensors(single), files: [single] };
  const any = fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort();
  if (any.length === 0) throw new FormatError(`${dir}: no model.safetensors, model.safetensors.index.json or *.safetensors file`);
  const tensors: TensorMap = new Map();
  for (const f of any) for (const [k, v] of readSafetensors(path.join(dir, f))) tensors.set(k, v);
  return { tensors, files: any.map((f) => path.join(dir, f)) };
}

/** Write one safetensors file (caller makes it atomic). Tensors are stored in name order, F32 or F16. */
export function writeSafetensors(file: string, tensors: TensorMap, dtype: "f32" | "f16" = "f32", metadata: Record<string, string> = { format: "pt" }): void {
  const names = [...tensors.keys()].sort();
  const st = dtype === "f16" ? "F16" : "F32";
  const eb = DTYPE_BYTES[st];
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const n of names) {
    const t = tensors.get(n)!;
    if (t.data.length !== numel(t.shape)) throw new FormatError(`safetensors writer: tensor ${n} has ${t.data.length} values for shape [${t.shape.join(", ")}]`);
    const nb = t.data.length * eb;
    header[n] = { dtype: st, shape: t.shape, data_offsets: [off, off + nb] };
    off += nb;
  }
  let hjson = JSON.stringify(header);
  // Pad with spaces so the data buffer starts 8-byte aligned (what the reference writer does).
  hjson += " ".repeat((8 - ((Buffer.byteLength(hjson) + 8) % 8)) % 8);
  const hbuf = Buffer.from(hjson, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbuf.length));
  const fd = openForWrite(file);
  try {
    writeAll(fd, len, file);
    writeAll(fd, hbuf, file);
    for (const n of names) {
      const d = tensors.get(n)!.data;
      writeAll(fd, dtype === "f16" ? encodeF16(d) : encodeF32(d), file);
    }
    fsyncFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}
