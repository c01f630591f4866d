import * as crypto from "node:crypto";
import * as fs from "node:fs";
import { DataError, FormatError } from "../errors";
import { writeContentAtomic } from "../io/atomic";
import { Rng } from "../rng";
import type { TextTokenizer } from "../types";
import { joinDocs } from "./text";

/**
 * Token windows for calibration (random, seeded) and evaluation (consecutive, non-overlapping).
 *
 * Calibration follows docs/method.md ("Calibration") with the reference's seeding bug fixed: one explicit seed plus a stream
 * name (e.g. "stage1", "stage2") determine the document order and every window offset, so the two stages draw
 * different windows from one seed and a recorded seed reproduces them exactly.
 */

/**
 * "documents": shuffle documents, tokenize each with BOS, keep those with MORE than seqLen tokens, take one
 *   window per document at an offset uniform in [0, len − seqLen − 1] (the reference's `randint(0, len − 1025)`
 *   for seqLen 1024), stop at `samples` windows.
 * "stream": tokenize the joined text once (one BOS at the start) and take `samples` windows at offsets
 *   uniform in [0, len − seqLen] (windows may overlap). The fallback for short documents or a single text.
 * "auto" (default): "documents" when documents are given and enough of them are long enough, else "stream".
 */
export type WindowMode = "documents" | "stream" | "auto";

export interface FileProvenance {
  path: string;
  sha256: string;
}

export interface WindowProvenance {
  seed: number;
  stream: string;
  mode: "documents" | "stream";
  seqLen: number;
  samples: number;
  files: FileProvenance[];
  /** Documents tokenized before `samples` windows were found (documents mode), or documents joined (stream mode). */
  documentsSeen: number;
  /** Why "auto" fell back to stream mode, when it did. */
  fallback?: string;
}

export interface WindowSet {
  windows: number[][];
  provenance: WindowProvenance;
}

export interface CalibrationOptions {
  /** Separate documents (TinyStories stories, C4 documents). Give `docs` or `text`. */
  docs?: string[];
  /** One text (treated as a single stream). */
  text?: string;
  tokenizer: TextTokenizer;
  samples: number;
  seqLen: number;
  seed: number;
  /** Stream name for Rng.derive, so different uses of one seed draw different windows (default "calibration"). */
  stream?: string;
  mode?: WindowMode;
  /** Files the text came from; their SHA-256 goes into the provenance. */
  files?: string[];
}

export function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new DataError(`${name} must be a positive integer, got ${v}`);
}

/** Draw seeded calibration windows (see WindowMode for the two protocols). */
export function calibrationWindows(opts: CalibrationOptions): WindowSet {
  const { tokenizer, samples, seqLen, seed } = opts;
  const stream = opts.stream ?? "calibration";
  const mode = opts.mode ?? "auto";
  checkPositiveInt("samples", samples);
  checkPositiveInt("seqLen", seqLen);
  if (!Number.isFinite(seed)) throw new DataError(`seed must be a finite number, got ${seed}`);
  if ((opts.docs === undefined) === (opts.text === undefined)) throw new DataError("calibrationWindows: give exactly one of docs or text");
  const docs = opts.docs ?? [opts.text as string];
  if (docs.length === 0 || docs.every((d) => d.trim() === "")) throw new DataError("calibration text is empty (no non-blank documents)");
  const files = (opts.files ?? []).map((p) => ({ path: p, sha256: sha256File(p) }));
  const base = { seed, stream, seqLen, samples, files };

  let fallback: string | undefined;
  if (mode === "documents" || (mode === "auto" && opts.docs !== undefined)) {
    const r = documentWindows(docs, tokenizer, samples, seqLen, Rng.derive(seed, `${stream}/documents`));
    if (r.windows.length === samples) {
      return { windows: r.windows, provenance: { ...base, mode: "documents", documentsSeen: r.documentsSeen } };
    }
    const why = `only ${r.windows.length} of ${docs.length} documents have more than ${seqLen} tokens, need ${samples}`;
    if (mode === "documents") throw new DataError(`not enough documents for ${samples} calibration windows: ${why}`);
    fallback = why;
  }
  const ids = tokenizer.encode(joinDocs(docs), { addBos: true });
  const windows = streamWindows(ids, samples, seqLen, Rng.derive(seed, `${stream}/stream`));
  const provenance: WindowProvenance = { ...base, mode: "stream", documentsSeen: docs.length };
  if (fallback) provenance.fallback = fallback;
  return { windows, provenance };
}

function documentWindows(docs: string[], tokenizer: TextTokenizer, samples: number, seqLen: number, rng: Rng): { windows: number[][]; documentsSeen: number } {
  const order = rng.shuffle(docs.map((_, i) => i));
  const windows: number[][] = [];
  let seen = 0;
  for (const i of order) {
    if (windows.length === samples) break;
    seen++;
    const ids = tokenizer.encode(docs[i], { addBos: true });
    if (ids.length <= seqLen) continue;
    const off = rng.int(0, ids.length - seqLen - 1);
    windows.push(ids.slice(off, off + seqLen));
  }
  return { windows, documentsSeen: seen };
}

function streamWindows(ids: number[], samples: number, seqLen: number, rng: Rng): number[][] {
  if (ids.length < seqLen) {
    throw new DataError(`calibration text is too short: ${ids.length} tokens, need at least ${seqLen} for one window`);
  }
  const windows: number[][] = [];
  for (let s = 0; s < samples; s++) {
    const off = rng.int(0, ids.length - seqLen);
    windows.push(ids.slice(off, off + seqLen));
  }
  return windows;
}

/**
 * Consecutive non-overlapping windows of seqLen tokens; the remainder (< seqLen tokens) is dropped, as in the
 * perplexity protocol (docs/method.md, "Perplexity").
 */
export function evalWindows(ids: number[], seqLen: number): number[][] {
  checkPositiveInt("seqLen", seqLen);
  if (seqLen < 2) throw new DataError(`seqLen must be at least 2 (one prediction per window), got ${seqLen}`);
  if (ids.length < seqLen) throw new DataError(`text is too short: ${ids.length} tokens, need at least ${seqLen} for one window`);
  const n = Math.floor(ids.length / seqLen);
  const out: number[][] = [];
  for (let w = 0; w < n; w++) out.push(ids.slice(w * seqLen, (w + 1) * seqLen));
  return out;
}

export interface ValidateOptions {
  /** Every id must be < vocabSize. */
  vocabSize?: number;
  /** Allow windows of different lengths (default false). */
  ragged?: boolean;
  /** Named in error messages (file path). */
  source?: string;
}

/** Check windows are non-empty arrays of integer ids in [0, vocabSize), of equal length unless ragged. */
export function validateWindows(windows: unknown, opts: ValidateOptions = {}): number[][] {
  const where = opts.source ? `${opts.source}: ` : "";
  if (!Array.isArray(windows)) throw new DataError(`${where}"windows" must be an array of arrays of token ids, got ${typeof windows}`);
  if (windows.length === 0) throw new DataError(`${where}"windows" is empty, expected at least one window`);
  const len0 = Array.isArray(windows[0]) ? windows[0].length : -1;
  windows.forEach((w, i) => {
    if (!Array.isArray(w)) throw new DataError(`${where}window ${i} must be an array of token ids, got ${w === null ? "null" : typeof w}`);
    if (w.length === 0) throw new DataError(`${where}window ${i} is empty`);
    if (!opts.ragged && w.length !== len0) throw new DataError(`${where}window ${i} has ${w.length} tokens, expected ${len0} like window 0 (windows must have equal lengths)`);
    for (let p = 0; p < w.length; p++) {
      const id = w[p];
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
        throw new DataError(`${where}window ${i}, position ${p}: expected a non-negative integer token id, got ${JSON.stringify(id)}`);
      }
      if (opts.vocabSize !== undefined && id >= opts.vocabSize) {
        throw new DataError(`${where}window ${i}, position ${p}: token id ${id} is out of range (vocab size ${opts.vocabSize})`);
      }
    }
  });
  return windows as number[][];
}

/** Write {"windows": [[ids]...], "provenance": {...}} atomically (temp file + rename). */
export async function saveWindows(file: string, windows: number[][], provenance?: WindowProvenance | null): Promise<void> {
  validateWindows(windows, { ragged: true });
  const body: { windows: number[][]; provenance?: WindowProvenance } = { windows };
  if (provenance) body.provenance = provenance;
  // One window per line keeps large files diffable and fast to write.
  const lines = windows.map((w) => JSON.stringify(w));
  const prov = provenance ? `,\n"provenance": ${JSON.stringify(provenance)}` : "";
  const text = `{"windows": [\n${lines.join(",\n")}\n]${prov}\n}\n`;
  await writeContentAtomic(file, text);
}

export interface LoadedWindows {
  windows: number[][];
  provenance: WindowProvenance | null;
}

/** Read a windows JSON file ({"windows": [[ids]...]}, optional "provenance") and validate it. */
export function loadWindows(file: string, opts: Omit<ValidateOptions, "source"> = {}): LoadedWindows {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new DataError(`cannot read windows file ${file}: ${(err as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new FormatError(`windows file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj) || !("windows" in obj)) {
    throw new FormatError(`windows file ${file}: expected an object {"windows": [[ids]...]}, got ${Array.isArray(obj) ? "an array" : typeof obj}`);
  }
  const o = obj as { windows: unknown; provenance?: WindowProvenance };
  const windows = validateWindows(o.windows, { ...opts, source: file });
  return { windows, provenance: o.provenance ?? null };
}

// ------------------------------------------------------------------ window identity and shards

/**
 * Content digest of one window: SHA-256 of its token ids as little-endian int32, first 16 hex digits
 * (64 bits: a chance collision needs ~4·10^9 windows). Score files list the digest of every window they
 * summed, so merges can refuse windows counted twice whatever seed or file they came from.
 */
export function windowDigest(ids: readonly number[]): string {
  const a = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) a[i] = ids[i];
  const bytes = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  if (!LITTLE_ENDIAN) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return crypto.createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A draw: one ordered set of calibration windows (all shards of one run share it). */
export interface WindowDraw {
  /** First 16 hex digits of SHA-256 over the draw's window digests in order. */
  id: string;
  /** Windows in the whole draw (all shards). */
  total: number;
  /** Seed and stream it was drawn with (null for given windows). */
  seed: number | null;
  stream: string | null;
}

/** The draw id of an ordered list of window digests. */
export function drawId(digests: readonly string[]): string {
  return crypto.createHash("sha256").update(digests.join("\n")).digest("hex").slice(0, 16);
}

/** Identity of windows[k] for scoring: its draw, its index in the draw and its digest. */
export interface WindowIdentity {
  draw: WindowDraw;
  /** indices[k]: index in the draw of the k-th window held. */
  indices: number[];
  digests: string[];
}

/** Identity of a whole draw held in full (indices 0..n-1). */
export function identifyWindows(windows: readonly number[][], seed: number | null = null, stream: string | null = null): WindowIdentity {
  const digests = windows.map(windowDigest);
  return { draw: { id: drawId(digests), total: windows.length, seed, stream }, indices: windows.map((_, i) => i), digests };
}

/** Shard `index` of `count` (0-based). */
export interface ShardSpec {
  index: number;
  count: number;
}

/**
 * The windows of shard i of N in a draw of `total`: the contiguous range [⌊i·total/N⌋, ⌊(i+1)·total/N⌋).
 * Contiguous (not strided) so a shard's windows file is one slice of the draw's and its teacher cache is
 * built for its own windows only; the sums are exact (importance/exact-sum.ts), so the split never changes
 * the merged result.
 */
export function shardRange(total: number, shard: ShardSpec): [number, number] {
  checkShard(shard);
  if (shard.count > total) throw new DataError(`shard count ${shard.count} is larger than the ${total} windows of the draw (every shard needs one window)`);
  return [Math.floor((shard.index * total) / shard.count), Math.floor(((shard.index + 1) * total) / shard.count)];
}

function checkShard(s: ShardSpec): void {
  if (!Number.isInteger(s.count) || s.count < 1) throw new DataError(`shard count must be a positive integer, got ${s.count}`);
  if (!Number.isInteger(s.index) || s.index < 0 || s.index >= s.count) throw new DataError(`shard index must be an integer in [0, ${s.count}), got ${s.index}`);
}

/**
 * Environment variables read by `--shard auto`, in order: Slurm job arrays (the array must start at 0:
 * `--array=0-(N-1)`), then Kubernetes Indexed Jobs, whose pods get JOB_COMPLETION_INDEX; Kubernetes gives
 * no count variable, so the job spec sets SDMPRUNE_SHARD_COUNT to its `completions`.
 */
export const SHARD_ENV = {
  slurm: { index: "SLURM_ARRAY_TASK_ID", count: "SLURM_ARRAY_TASK_COUNT", min: "SLURM_ARRAY_TASK_MIN" },
  kubernetes: { index: "JOB_COMPLETION_INDEX", count: "SDMPRUNE_SHARD_COUNT" },
} as const;

/** Parses "i/N" (0-based i) or "auto" (from the environment, see SHARD_ENV). */
export function parseShard(spec: string, env: NodeJS.ProcessEnv = process.env): ShardSpec & { source: string } {
  const int = (name: string, v: string | undefined): number => {
    if (v === undefined || !/^\d+$/.test(v.trim())) throw new DataError(`--shard auto: ${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return Number(v.trim());
  };
  let s: ShardSpec & { source: string };
  if (spec === "auto") {
    const sl = SHARD_ENV.slurm;
    const k8 = SHARD_ENV.kubernetes;
    if (env[sl.index] !== undefined) {
      if (env[sl.count] === undefined) throw new DataError(`--shard auto: ${sl.index} is set but ${sl.count} is not (submit with sbatch --array=0-N)`);
      const min = env[sl.min] === undefined ? 0 : int(sl.min, env[sl.min]);
      if (min !== 0) throw new DataError(`--shard auto: the Slurm array must start at 0 (--array=0-N), got ${sl.min}=${min}`);
      s = { index: int(sl.index, env[sl.index]), count: int(sl.count, env[sl.count]), source: `Slurm ${sl.index}/${sl.count}` };
    } else if (env[k8.index] !== undefined) {
      if (env[k8.count] === undefined) throw new DataError(`--shard auto: ${k8.index} is set (Kubernetes Indexed Job) but ${k8.count} is not: set it to the Job's completions`);
      s = { index: int(k8.index, env[k8.index]), count: int(k8.count, env[k8.count]), source: `Kubernetes ${k8.index}/${k8.count}` };
    } else {
      throw new DataError(`--shard auto: none of ${sl.index} (Slurm job array) or ${k8.index} (Kubernetes Indexed Job) is set; give --shard i/N`);
    }
  } else {
    const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
    if (!m) throw new DataError(`--shard must be i/N (0-based shard i of N) or auto, got ${JSON.stringify(spec)}`);
    s = { index: Number(m[1]), count: Number(m[2]), source: "--shard" };
  }
  checkShard(s);
  return s;
}
