/**
 * The GPU check (bench/gpu.sh bundles this file with the library into one script): on the webgpu backend,
 * random-weight models of real shapes, sd-taylor importance (teacher cache first, as Session.score does) and
 * perplexity over model.tokenLogProbs, the library's own code paths. Prints a table and one line
 * `RESULT {json}` (read by bench/gpu.sh for the PyTorch peer ratio).
 *
 *   node gpu.cjs [--workload stories110M,llama1b] [--seq 128] [--windows 8] [--smoke]
 *
 * --smoke: tiny shapes, accepts a software adapter (Mesa llvmpipe): proves the packed route end to end on a
 * machine without a GPU. Without --smoke a software adapter is refused (it would take hours, and measure nothing).
 */
import * as tf from "@tensorflow/tfjs";
import { backendInfo, initEngine } from "../src/engine";
import { perplexity } from "../src/eval/perplexity";
import { accumulate } from "../src/importance";
import { parseConfig } from "../src/model/config";
import { Rng } from "../src/rng";
import { TeacherCache } from "../src/teacher";
import { leanRandomModel } from "./lean-model";
import { perUnit } from "./timing";
import { flopsPerToken, WORKLOADS, type RawConfig } from "./workloads";

function option(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const smoke = process.argv.includes("--smoke");

/** Smoke shapes: the two workloads' structure (tied MHA vocab-32000-like, GQA llama3) at a size llvmpipe runs in seconds. */
const SMOKE: Record<string, { label: string; config: RawConfig }> = {
  stories110M: { label: "stories110M-structured, tiny (dim 64, 2 layers, vocab 512)", config: { ...WORKLOADS.stories110M.config, vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 16 } },
  llama1b: { label: "Llama-3.2-1B-structured, tiny (dim 64, 2 layers, GQA 4/2, vocab 1024, llama3 RoPE)", config: { ...WORKLOADS.llama1b.config, vocab_size: 1024, hidden_size: 64, intermediate_size: 192, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16 } },
};

function windowsFor(V: number, n: number, T: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: T }, () => rng.int(0, V)));
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Bytes the webgpu backend holds in GPU buffers now (tensors plus its buffer pool). */
function gpuBytes(): number {
  const m = tf.memory() as tf.MemoryInfo & { numBytesAllocatedInGPU?: number };
  return m.numBytesAllocatedInGPU ?? m.numBytes;
}

async function main(): Promise<void> {
  const backend = await initEngine("webgpu");
  const info = backendInfo();
  process.stderr.write(`backend: ${info.summary}\n`);
  if (info.adapter?.software && !smoke) {
    throw new Error(`only a software adapter was found (${info.summary}); on a GPU machine check the Vulkan driver (bench/gpu.sh prints what it found), or pass --smoke`);
  }
  const T = Number(option("seq", smoke ? "32" : "128"));
  const n = Number(option("windows", smoke ? "2" : "8"));
  const names = option("workload", "stories110M,llama1b").split(",");
  const results: Record<string, unknown>[] = [];
  for (const name of names) {
    const w = smoke ? SMOKE[name] : WORKLOADS[name as keyof typeof WORKLOADS];
    if (!w) throw new Error(`unknown workload "${name}", expected stories110M or llama1b`);
    const config = parseConfig(w.config as unknown as Record<string, unknown>, name);
    const V = config.vocab_size;
    const flops = flopsPerToken(w.config, T);
    const t0 = performance.now();
    const model = leanRandomModel(config, 1);
    const buildSeconds = (performance.now() - t0) / 1000;
    let peak = gpuBytes();
    const track = () => (peak = Math.max(peak, gpuBytes()));
    const wins = windowsFor(V, n + 1, T, 1);
    const opts = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.2, seed: 0 };
    const topk = V > 4096 ? 64 : "full";
    // warm-up: shader compilation and pipeline creation happen on first use of each shape
    const warm = await TeacherCache.build(model, wins.slice(0, 1), { topk });
    await accumulate(model, wins.slice(0, 1), warm, null, opts);
    track();
    const te = await perUnit((onProgress) => TeacherCache.build(model, wins.slice(1), { topk }, { onProgress }));
    track();
    const imp = await perUnit((onProgress) => accumulate(model, wins.slice(1), te.value, null, { ...opts, onProgress: (e) => (track(), onProgress(e)) }));
    const scorer = (seqs: number[][]) => model.tokenLogProbs(seqs);
    const B = Math.min(4, n);
    const pw = windowsFor(V, B * (n + 1), T, 2);
    await perplexity(scorer, pw.slice(0, B), { batchSize: B });
    const ppl = await perUnit((onProgress) => perplexity(scorer, pw.slice(B), { batchSize: B, onProgress: (e) => (track(), onProgress(e)) }));
    const r = {
      workload: name,
      label: w.label,
      config: w.config,
      seq: T,
      windows: n,
      buildSeconds,
      teacherTokPerS: T / median(te.seconds),
      importanceTokPerS: T / median(imp.seconds),
      importanceGflops: (flops.importance * T) / median(imp.seconds) / 1e9,
      pplTokPerS: T / median(ppl.seconds),
      pplGflops: (flops.forward * T) / median(ppl.seconds) / 1e9,
      nll: ppl.value.nll,
      peakGpuBytes: peak,
    };
    results.push(r);
    process.stderr.write(
      `${w.label}: importance ${r.importanceTokPerS.toFixed(1)} tok/s (${r.importanceGflops.toFixed(1)} GFLOP/s), ppl ${r.pplTokPerS.toFixed(1)} tok/s (${r.pplGflops.toFixed(1)} GFLOP/s), peak GPU ${(peak / 2 ** 30).toFixed(2)} GiB\n`,
    );
    model.dispose();
  }
  console.log("RESULT " + JSON.stringify({ backend, adapter: info.adapter, summary: info.summary, smoke, results }));
}

main()
  .then(() => process.exit(0)) // Dawn's instance keeps the event loop alive
  .catch((e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  });
