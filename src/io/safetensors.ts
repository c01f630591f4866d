import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors";
import { fsyncFd, openForWrite, writeAll } from "./atomic";
import { StoredFloat, TensorLocation, fileTensor, readTensorAt } from "./tensor-file";
import { TensorMap, numel } from "./tensors";
import { TensorStreamer } from "./tensor-stream";
import { readJsonFile } from "./json";

/**
 * safetensors: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__": {...}}, then the data buffer (offsets relative to its start). F32, F16 and BF16 are read into
 * Float32Array. The header is validated as strictly as the reference loader (huggingface/safetensors
 * `SafeTensors::read_metadata` + `Metadata::validate`) before any tensor is read: header at most 100 MB, UTF-8,
 * starting with '{', a JSON object; known dtypes; data_offsets contiguous from 0 in offset order (no gap, no
 * overlap), each range exactly dtype size × numel, and the last one ending at the end of the file (no trailing
 * bytes); `__metadata__` a map of strings. Errors name the file and the tensor, never echo file bytes.
 */

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
/** Every dtype the reference format defines, with its element size (readable or not, it sizes the layout). */
const FORMAT_DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4,
  F64: 8, I64: 8, U64: 8, C64: 8,
};
const MAX_HEADER = 100_000_000;
const utf8 = new TextDecoder("utf-8", { fatal: true });

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
  /** Size and modification time when the header was read: tensors read later refuse a file changed since. */
  fileSize: number;
  mtimeMs: number;
}

export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = fs.openSync(file, "r");
  try {
    const st = fs.fstatSync(fd);
    return { ...parseSafetensorsHeader(fd, st.size, file), fileSize: st.size, mtimeMs: st.mtimeMs };
  } finally {
    fs.closeSync(fd);
  }
}

function parseSafetensorsHeader(fd: number, size: number, file: string): Omit<SafetensorsHeader, "fileSize" | "mtimeMs"> {
  if (size < 8) throw new FormatError(`${file}: not a safetensors file (${size} bytes, shorter than the 8-byte header length)`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(Math.min(MAX_HEADER, size - 8))) {
    // The value is shown only when plausible: for a file that is not safetensors at all it is just its first bytes.
    throw new FormatError(
      `${file}: not a valid safetensors file: the header length${n <= BigInt(MAX_HEADER) ? ` (${n} bytes)` : ""} exceeds the file (${size} bytes) or the ${MAX_HEADER}-byte limit`,
    );
  }
  const hlen = Number(n);
  const hbuf = Buffer.alloc(hlen);
  if (fs.readSync(fd, hbuf, 0, hlen, 8) !== hlen) throw new FormatError(`${file}: safetensors header is truncated`);
  let text: string;
  try {
    text = utf8.decode(hbuf);
  } catch {
    throw new FormatError(`${file}: safetensors header is not valid UTF-8`);
  }
  if (!text.startsWith("{")) throw new FormatError(`${file}: safetensors header must start with '{' (not a safetensors file?)`);
  let json: unknown;
  try {
    json = JSON.parse(text);
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
      if (v === null) continue;
      if (typeof v !== "object" || Array.isArray(v) || !Object.values(v as object).every((x) => typeof x === "string")) {
        throw new FormatError(`${file}: __metadata__ must be a map of strings, got ${describe(v)}`);
      }
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null || Array.isArray(e)) throw new FormatError(`${file}: tensor ${name}: header entry must be an object, got ${describe(v)}`);
    if (typeof e.dtype !== "string") throw new FormatError(`${file}: tensor ${name}: missing dtype`);
    const fb = FORMAT_DTYPE_BYTES[e.dtype];
    if (fb === undefined) throw new FormatError(`${file}: tensor ${name}: unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError(`${file}: tensor ${name}: shape must be a list of non-negative integers, got ${describe(e.shape)}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0) || off[1] < off[0]) {
      throw new FormatError(`${file}: tensor ${name}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${describe(off)}`);
    }
    const [begin, end] = off as number[];
    if (end > dataLen) {
      throw new FormatError(
        `${file}: tensor ${name}: data_offsets [${begin}, ${end}] extend beyond the end of the file (data section is ${dataLen} bytes; truncated or corrupt file)`,
      );
    }
    const need = fb * numel(e.shape as number[]);
    if (end - begin !== need) {
      throw new FormatError(
        `${file}: tensor ${name}: ${end - begin} bytes of data but dtype ${e.dtype} × shape [${(e.shape as number[]).join(", ")}] needs ${need}`,
      );
    }
    entries.push({ name, dtype: e.dtype, shape: e.shape as number[], begin, end });
  }
  const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (t.begin < at) {
      throw new FormatError(`${file}: tensors ${sorted[i - 1].name} and ${t.name} overlap (data_offsets [${sorted[i - 1].begin}, ${sorted[i - 1].end}] and [${t.begin}, ${t.end}])`);
    }
    if (t.begin > at) {
      throw new FormatError(`${file}: tensor ${t.name}: data_offsets [${t.begin}, ${t.end}] leave bytes [${at}, ${t.begin}) of the data section unused (the format requires contiguous tensors)`);
    }
    at = t.end;
  }
  if (at !== dataLen) {
    throw new FormatError(`${file}: ${dataLen - at} bytes after the last tensor (data section is ${dataLen} bytes, tensors cover ${at}): truncated header or appended data`);
  }
  return { path: file, entries, metadata, dataOffset };
}

/** A short description of a JSON value for error messages (never more than a few dozen characters). */
function describe(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Read all (or the selected) tensors of one file into memory. Unsupported dtypes fail only when such a tensor is read. */
export function readSafetensors(file: string, select?: (name: string) => boolean): TensorMap {
  const h = readSafetensorsHeader(file);
  const out: TensorMap = new Map();
  for (const e of h.entries) {
    if (select && !select(e.name)) continue;
    out.set(e.name, { shape: e.shape.slice(), data: readTensorAt(location(h, e)) });
  }
  return out;
}

/**
 * The (selected) tensors of one file as lazy tensors: each one's data is read from the file when accessed and not
 * kept (see tensor-file.ts), so a model loads at file size. Unsupported dtypes among them are refused here, before
 * anything is read.
 */
export function openSafetensors(file: string, select?: (name: string) => boolean): TensorMap {
  const h = readSafetensorsHeader(file);
  const out: TensorMap = new Map();
  for (const e of h.entries) {
    if (select && !select(e.name)) continue;
    out.set(e.name, fileTensor(location(h, e)));
  }
  return out;
}

function location(h: SafetensorsHeader, e: SafetensorsEntry): TensorLocation {
  if (DTYPE_BYTES[e.dtype] === undefined) {
    throw new FormatError(`${h.path}: not supported: tensor ${e.name} has dtype ${e.dtype} (sdmprune reads F32, F16 and BF16)`);
  }
  return { file: h.path, name: e.name, dtype: e.dtype as StoredFloat, shape: e.shape, position: h.dataOffset + e.begin, fileSize: h.fileSize, mtimeMs: h.mtimeMs };
}

/**
 * Resolve `name` (from an index file or a directory listing) inside the model folder `dir`, refusing anything
 * that would read elsewhere: absolute paths, `..`, and symbolic links whose target lies outside the folder. One
 * exception keeps Hugging Face hub caches usable: a `snapshots/<revision>` folder may link into the cache's own
 * `blobs/` folder, which is where the hub stores every file. Nothing is opened before the check passes.
 */
export function resolveInside(dir: string, name: unknown, source: string): string {
  if (typeof name !== "string" || name.length === 0 || name.includes("\0")) {
    throw new FormatError(`${source}: shard file name must be a non-empty string, got ${describe(name)}`);
  }
  const root = path.resolve(dir);
  const file = path.resolve(root, name);
  const rel = path.relative(root, file);
  if (path.isAbsolute(name) || rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) {
    throw new FormatError(`${source}: shard ${JSON.stringify(name)} is outside the model folder ${root}; refused (shards must be files inside it)`);
  }
  if (!fs.existsSync(file)) return file;
  const real = fs.realpathSync(file);
  const realRoot = fs.realpathSync(root);
  const allowed = [realRoot];
  if (path.basename(path.dirname(realRoot)) === "snapshots") allowed.push(path.join(path.dirname(path.dirname(realRoot)), "blobs"));
  if (!allowed.some((a) => real.startsWith(a + path.sep))) {
    throw new FormatError(`${source}: shard ${JSON.stringify(name)} is a link to ${real}, outside the model folder ${realRoot}; refused`);
  }
  if (!fs.statSync(real).isFile()) throw new FormatError(`${source}: shard ${JSON.stringify(name)} is not a regular file`);
  return file;
}

/**
 * Read a checkpoint directory: `model.safetensors`, or the shards listed in `model.safetensors.index.json`
 * (`weight_map`: tensor name → shard file inside the directory). Every tensor the index names must be found in its
 * shard, and every shard file is resolved inside the directory before it is opened. The tensors are lazy (read
 * from their shard when accessed; see tensor-file.ts).
 */
export function readSafetensorsDir(dir: string): { tensors: TensorMap; files: string[] } {
  const index = path.join(dir, "model.safetensors.index.json");
  if (fs.existsSync(index)) {
    const json = readJsonFile(index);
    const wm = (json as { weight_map?: unknown } | null)?.weight_map;
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new FormatError(`${index}: must be a JSON object with a "weight_map"`);
    if (!wm || typeof wm !== "object" || Array.isArray(wm)) throw new FormatError(`${index}: missing "weight_map" (an object of tensor name → shard file), got ${describe(wm)}`);
    const map = new Map<string, string>();
    for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof shard !== "string") throw new FormatError(`${index}: weight_map["${name}"] must be a shard file name, got ${describe(shard)}`);
      map.set(name, shard);
    }
    const shards = [...new Set(map.values())].sort();
    const files = shards.map((s) => resolveInside(dir, s, index));
    const tensors: TensorMap = new Map();
    for (let i = 0; i < shards.length; i++) {
      const s = shards[i];
      if (!fs.existsSync(files[i])) throw new FormatError(`${index}: shard ${s} is listed but ${files[i]} does not exist`);
      for (const [k, v] of openSafetensors(files[i], (n) => map.get(n) === s)) tensors.set(k, v);
    }
    for (const [name, s] of map) {
      if (!tensors.has(name)) throw new FormatError(`${index}: tensor ${name} is mapped to ${s} but that shard does not contain it`);
    }
    return { tensors, files };
  }
  const single = path.join(dir, "model.safetensors");
  if (fs.existsSync(single)) return { tensors: openSafetensors(resolveInside(dir, "model.safetensors", dir)), files: [single] };
  const any = fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort();
  if (any.length === 0) throw new FormatError(`${dir}: no model.safetensors, model.safetensors.index.json or *.safetensors file`);
  const tensors: TensorMap = new Map();
  for (const f of any) {
    for (const [k, v] of openSafetensors(resolveInside(dir, f, dir))) {
      if (tensors.has(k)) throw new FormatError(`${dir}: tensor ${k} appears in more than one .safetensors file (last: ${f})`);
      tensors.set(k, v);
    }
  }
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
    const nb = numel(t.shape) * eb;
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
    // Tensor by tensor, chunk by chunk where a tensor can be read in ranges (tensor-stream.ts); a tensor read
    // whole is checked against the size already promised in the header.
    const streamer = new TensorStreamer();
    for (const n of names) streamer.write(fd, tensors.get(n)!, dtype === "f16", file, `safetensors writer: tensor ${n}`);
    fsyncFd(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}
