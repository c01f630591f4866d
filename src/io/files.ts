import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, FormatError, UsageError } from "../errors";
import { LlamaConfig, expectedShapes, parseConfig } from "../model/config";
import type { TextTokenizer } from "../types";
import { writeDirAtomic } from "./atomic";
import { type GgufHeader, GgufType, checkSupportedType, ggufLocation, openGgufTensors, readGgufHeader, writeGguf } from "./gguf";
import { FAMILIES } from "../model/registry";
import { byteLevelBpeFromGguf, configFromGguf, ggufFromModel, sentencePieceFromGguf, tensorsFromGguf } from "./gguf-llama";
import { readHfDir, writeHfDir } from "./hf";
import { sameStoredBytes } from "./tensor-file";
import { TensorMap } from "./tensors";
import { HfTokenizer, checkGgufVocab } from "./tokenizer";
import { readJsonFile } from "./json";

/** Kept here for callers of the public API; defined beside the config it is derived from. */
export { expectedShapes };

/**
 * One entry point for model files in either format. Whatever the source, the result is HF-named tensors in HF
 * layout (q/k rows in rotate-half order), a validated config and a tokenizer, so nothing downstream cares where
 * the model came from.
 */

export interface ModelFiles {
  format: "gguf" | "hf";
  path: string;
  config: LlamaConfig;
  /**
   * Lazy: each tensor's `data` is read from the file when accessed and not kept (see tensor-file.ts), so reading
   * a model's files costs only its headers and loading it holds one tensor at a time. Read `data` once per use.
   */
  tensors: TensorMap;
  tokenizer: TextTokenizer | null;
  metadata: Record<string, unknown>;
}

export interface WriteModelOptions {
  format: "hf" | "gguf";
  dtype?: "f32" | "f16";
  force?: boolean;
  /** Extra files to put in the directory (string content as is, objects as JSON). */
  extraFiles?: Record<string, string | object>;
  /** general.name for GGUF. */
  name?: string;
  /**
   * GGUF only: pad non-uniform MLP widths to the widest layer with zero channels so llama.cpp (which sizes every
   * layer's ffn tensors with layer 0's width) can load the file. Outputs are unchanged; the widths are not kept.
   */
  padMlp?: boolean;
}

/** Missing, unexpected or mis-shaped tensors → ConfigError naming the tensor, the source and expected vs got. */
export function validateTensors(c: LlamaConfig, tensors: TensorMap, source: string): void {
  // Each layer holds 9 tensors: a layer count beyond what the file holds is refused before the expected shapes
  // (one entry per layer) are even listed, so an absurd num_hidden_layers cannot exhaust memory.
  if (c.num_hidden_layers * 9 > tensors.size) {
    throw new ConfigError(`${source}: num_hidden_layers is ${c.num_hidden_layers} but the weights hold only ${tensors.size} tensors (9 per layer expected)`);
  }
  const want = expectedShapes(c);
  for (const [name, shape] of want) {
    const t = tensors.get(name);
    if (!t) throw new ConfigError(`${source}: missing tensor ${name} (expected shape [${shape.join(", ")}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ConfigError(`${source}: tensor ${name} has shape [${t.shape.join(", ")}] but the config implies [${shape.join(", ")}]`);
    }
  }
  for (const name of tensors.keys()) {
    if (!want.has(name)) {
      if (name === "lm_head.weight") throw new ConfigError(`${source}: lm_head.weight present but tie_word_embeddings is true`);
      // Rotary caches some old checkpoints saved are recomputed, not weights.
      if (/rotary_emb\.inv_freq$/.test(name)) { tensors.delete(name); continue; }
      throw new ConfigError(`${source}: unexpected tensor ${name} (not part of a LlamaForCausalLM with this config)`);
    }
  }
}

function findGguf(dir: string): string | null {
  const g = fs.readdirSync(dir).filter((f) => f.endsWith(".gguf"));
  if (g.length === 1) return path.join(dir, g[0]);
  if (g.length > 1) throw new UsageError(`${dir}: contains ${g.length} .gguf files (${g.join(", ")}); pass one of them`);
  return null;
}

/**
 * The config of the model at `p` from its headers alone (no tensor data, no tokenizer), for estimates made before
 * loading. A GGUF whose head is stored as a copy of the embedding counts as untied here (readModelFiles compares
 * the bytes), so an estimate from it errs on the large side by one embedding.
 */
export function readModelConfig(p: string): LlamaConfig {
  if (!fs.existsSync(p)) throw new UsageError(`model path ${p} does not exist`);
  let file = p;
  if (fs.statSync(p).isDirectory()) {
    const cfg = path.join(p, "config.json");
    if (fs.existsSync(cfg)) {
      const raw = readJsonFile(cfg);
      return parseConfig(raw, cfg);
    }
    const g = findGguf(p);
    if (!g) throw new FormatError(`${p}: neither a Hugging Face model directory (config.json) nor a directory with one .gguf file`);
    file = g;
  }
  const h = checkedGgufHeader(file);
  const emb = h.tensors.find((t) => t.name === "token_embd.weight");
  return configFromGguf(h, !h.tensors.some((t) => t.name === "output.weight"), emb ? emb.dims[emb.dims.length - 1] : 0);
}

export async function readModelFiles(p: string): Promise<ModelFiles> {
  if (!fs.existsSync(p)) throw new UsageError(`model path ${p} does not exist`);
  const stat = fs.statSync(p);
  if (stat.isDirectory()) {
    if (fs.existsSync(path.join(p, "config.json"))) return readHf(p);
    const g = findGguf(p);
    if (g) return readGguf(g);
    throw new FormatError(`${p}: neither a Hugging Face model directory (config.json) nor a directory with one .gguf file`);
  }
  return readGguf(p);
}

/**
 * Keys llama.cpp requires for a llama/qwen2/qwen3 model (it refuses the file without them). Without this a damaged
 * or misspelt key would silently fall back to a default (context length 2048, epsilon 1e-5): another model.
 */
const REQUIRED_KEYS = [
  "context_length", "embedding_length", "block_count", "feed_forward_length",
  "attention.head_count", "attention.layer_norm_rms_epsilon",
];
const READ_ARCHS = ["llama", "qwen2", "qwen3", "phi3", "gemma3"];

/** The GGUF header, after the checks made before anything else is read from it. */
function checkedGgufHeader(file: string): GgufHeader {
  const h = readGgufHeader(file);
  // Unsupported tensor types first (the most useful message), then required keys, before any data is read.
  for (const t of h.tensors) checkSupportedType(file, t);
  const arch = h.metadata["general.architecture"];
  if (typeof arch === "string" && READ_ARCHS.includes(arch)) {
    const missing = REQUIRED_KEYS.map((k) => `${arch}.${k}`).filter((k) => h.metadata[k] === undefined);
    if (missing.length) throw new FormatError(`${file}: required metadata missing: ${missing.join(", ")} (llama.cpp refuses such a file too)`);
  }
  return h;
}

function readGguf(file: string): ModelFiles {
  const h = checkedGgufHeader(file);
  // Lazy tensors: each is read from the file when the model takes it (see tensor-file.ts).
  const raw = openGgufTensors(h);
  const emb = raw.get("token_embd.weight");
  const arch = String(h.metadata["general.architecture"]);
  const heads = Number(h.metadata[`${arch}.attention.head_count`]);
  const kvHeads = h.metadata[`${arch}.attention.head_count_kv`] === undefined ? heads : Number(h.metadata[`${arch}.attention.head_count_kv`]);
  const info = new Map(h.tensors.map((t) => [t.name, t]));
  const same = (a: string, b: string) => sameStoredBytes(ggufLocation(h, info.get(a)!), ggufLocation(h, info.get(b)!));
  const { tensors: stored, tied } = tensorsFromGguf(file, raw, heads, kvHeads, same, arch);
  const config = configFromGguf(h, tied, emb ? emb.shape[0] : 0);
  const fromDisk = FAMILIES[config.model_type].fromDisk; // phi3: fused qkv_proj / gate_up_proj, as in HF files
  const tensors = fromDisk ? fromDisk(config, stored, file) : stored;
  validateTensors(config, tensors, file);
  checkGgufVocab(file, h.metadata, config.vocab_size);
  const sp = sentencePieceFromGguf(h);
  const bl = byteLevelBpeFromGguf(h);
  let tokenizerWarning: string | null = null;
  let tokenizer: HfTokenizer | null = null;
  if (sp) {
    const addBos = h.metadata["tokenizer.ggml.add_bos_token"];
    tokenizer = HfTokenizer.fromSentencePiece(sp, `${file} (tokenizer.ggml.*)`, typeof addBos === "boolean" ? addBos : undefined);
  } else if (bl) {
    // A pre-tokenizer sdmprune cannot reproduce leaves the model usable without a tokenizer (as other vocabulary
    // kinds do), with the reason recorded, rather than tokenizing differently from llama.cpp.
    try {
      tokenizer = HfTokenizer.fromByteLevelBpe(bl, `${file} (tokenizer.ggml.*)`);
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      tokenizerWarning = `${err.message}; no tokenizer loaded`;
    }
  }
  const metadata: Record<string, unknown> = { ggufVersion: h.version };
  for (const [k, v] of Object.entries(h.metadata)) {
    // Long arrays (the vocabulary) are summarised and 64-bit values beyond 2^53 kept as strings, so the
    // metadata stays small and JSON-serialisable.
    metadata[k] =
      h.metadataTypes[k] === GgufType.ARRAY && (v as unknown[]).length > 64
        ? `[${(v as unknown[]).length} items]`
        : typeof v === "bigint"
          ? v.toString()
          : Array.isArray(v)
            ? v.map((x) => (typeof x === "bigint" ? x.toString() : x))
            : v;
  }
  if (tokenizerWarning) metadata["sdmprune.warning"] = tokenizerWarning;
  else if (!tokenizer && h.metadata["tokenizer.ggml.model"] !== undefined) {
    metadata["sdmprune.warning"] = `tokenizer.ggml.model ${JSON.stringify(h.metadata["tokenizer.ggml.model"])} is not supported; no tokenizer loaded`;
  }
  return { format: "gguf", path: file, config, tensors, tokenizer, metadata };
}

function readHf(dir: string): ModelFiles {
  const r = readHfDir(dir);
  validateTensors(r.config, r.tensors, dir);
  return { format: "hf", path: dir, config: r.config, tensors: r.tensors, tokenizer: r.tokenizer, metadata: { files: r.files } };
}

function asHfTokenizer(t: TextTokenizer): HfTokenizer {
  return t instanceof HfTokenizer ? t : new HfTokenizer(t.toJSON(), { bosTokenId: t.bosTokenId, eosTokenId: t.eosTokenId });
}

/**
 * Write a model into `dir` (HF directory, or `dir/model.gguf`). The directory is built beside the target and renamed
 * into place; an existing non-empty `dir` is refused unless `force`, and even then unless it holds only an earlier
 * sdmprune output (see writeDirAtomic). Returns the paths written (the manifest not included).
 */
export async function writeModelFiles(
  dir: string,
  m: { config: LlamaConfig; tensors: TensorMap; tokenizer: TextTokenizer | null },
  opts: WriteModelOptions,
): Promise<string[]> {
  const dtype = opts.dtype ?? "f32";
  if (opts.format !== "hf" && opts.format !== "gguf") throw new UsageError(`format must be "hf" or "gguf", got ${JSON.stringify(opts.format)}`);
  if (dtype !== "f32" && dtype !== "f16") throw new UsageError(`dtype must be "f32" or "f16", got ${JSON.stringify(dtype)}`);
  validateTensors(m.config, m.tensors, "model to save");
  const names: string[] = [];
  await writeDirAtomic(dir, opts.force ?? false, async (tmp) => {
    if (opts.format === "hf") {
      names.push(...writeHfDir(tmp, m.config, m.tensors, m.tokenizer, dtype));
    } else {
      const g = ggufFromModel(m.config, m.tensors, m.tokenizer ? asHfTokenizer(m.tokenizer) : null, dtype, opts.name, opts.padMlp ?? false);
      writeGguf(path.join(tmp, "model.gguf"), g.kvs, g.tensors);
      names.push("model.gguf");
    }
    for (const [name, content] of Object.entries(opts.extraFiles ?? {})) {
      if (name.includes("/") || name.includes("\\") || name.startsWith(".")) throw new UsageError(`extra file name ${JSON.stringify(name)} must be a plain file name`);
      fs.writeFileSync(path.join(tmp, name), typeof content === "string" ? content : JSON.stringify(content, null, 2) + "\n");
      names.push(name);
    }
  });
  return names.map((n) => path.join(path.resolve(dir), n));
}
