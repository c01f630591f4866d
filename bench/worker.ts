/**
 * One benchmark process: one backend, one workload, one sequence length. Runs the library's real code
 * paths (TeacherCache.build, accumulate(... "sd-taylor"), perplexity over model.tokenLogProbs as the
 * Session does) and prints one line `RESULT {json}` on stdout. Started by bench/run.ts; a separate process
 * per case so that peak RSS belongs to one measurement and only one TensorFlow binding is ever loaded.
 */
import { readFileSync, writeFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { backendInfo, initEngine, type BackendName } from "../src/engine";
import { perplexity } from "../src/eval/perplexity";
import { defaultPplBatch } from "../src/eval/ppl-batch";
import { accumulate } from "../src/importance";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { TeacherCache } from "../src/teacher";
import { leanRandomModel } from "./lean-model";
import { perUnit } from "./timing";
import { WORKLOADS, type WorkloadName } from "./workloads";

export type Task = "matmul" | "teacher" | "importance" | "ppl" | "profile" | "memory";

export interface WorkerArgs {
  backend: BackendName;
  workload: WorkloadName;
  seq: number;
  /** Timed windows per task (after one warm-up window). */
  windows: number;
  tasks: Task[];
  /** Importance path for the memory task. */
  path?: "layerwise" | "straightforward";
  alpha: number;
  temperature: number;
  topk: number;
  /** One untimed warm-up window per task (default true; --quick skips it on the slow cpu backend). */
  warmup?: boolean;
  /** A/B runs only: override the library's windows per pass and activation budget (default: the library's). */
  batchWindows?: number;
  keepActivationsMiB?: number;
  /** Windows per ppl batch (default: the library's default for the backend, defaultPplBatch). */
  pplBatch?: number;
}

function status(name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : -1;
}

/** Linux: writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS. */
function resetPeak(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) for (let i = 0; i < 3; i++) g();
}

function windowsFor(V: number, n: number, T: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: T }, () => rng.int(0, V)));
}

/** Median GFLOP/s of an [M,K]·[K,N] product on the active backend (2 warm-ups). */
function matmulGflops(M: number, K: number, N: number, reps: number): number {
  const a = tf.randomNormal([M, K]) as tf.Tensor2D;
  const b = tf.randomNormal([K, N]) as tf.Tensor2D;
  const times: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
    if (i >= 2) times.push(performance.now() - t0);
  }
  tf.dispose([a, b]);
  times.sort((x, y) => x - y);
  return (2 * M * N * K) / (times[times.length >> 1] / 1000) / 1e9;
}

/**
 * Throughput from per-unit times. `best` (fastest unit) is what the ratios use: the machine is shared, and
 * interference only ever slows a unit down; `median` and `mean` are reported next to it.
 */
function rate(seconds: number[], tokensPerUnit: number): { units: number; tokensPerUnit: number; best: number; median: number; mean: number } {
  const s = seconds.slice().sort((a, b) => a - b);
  const tot = s.reduce((a, b) => a + b, 0);
  return { units: s.length, tokensPerUnit, best: tokensPerUnit / s[0], median: tokensPerUnit / s[s.length >> 1], mean: (tokensPerUnit * s.length) / tot };
}

async function timeIt<T>(f: () => Promise<T> | T): Promise<{ seconds: number; value: T }> {
  const t0 = performance.now();
  const value = await f();
  return { seconds: (performance.now() - t0) / 1000, value };
}

/** Kernel time per op name over one call of `f`, split into matmul vs the rest; matmul FLOPs from the shapes. */
async function kernelProfile(f: () => Promise<unknown> | unknown): Promise<{ totalMs: number; matmulMs: number; matmulFlops: number; byKernel: Record<string, number> }> {
  // engine.profile awaits the query, so async library calls are profiled whole
  const info = await tf.profile(async () => {
    await f();
    return [];
  });
  const byKernel: Record<string, number> = {};
  let totalMs = 0;
  let matmulMs = 0;
  let matmulFlops = 0;
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    byKernel[k.name] = (byKernel[k.name] ?? 0) + ms;
    totalMs += ms;
    if (k.name === "BatchMatMul" || k.name === "_FusedMatMul") {
      matmulMs += ms;
      const [a, b] = k.inputShapes as number[][];
      const o = k.outputShapes[0] as number[];
      // inner dim: a's last dim unless transposed; the output holds M·N (·batch) entries
      const inner = a && b ? (a[a.length - 1] === b[b.length - 2] || a[a.length - 1] === b[b.length - 1] ? a[a.length - 1] : a[a.length - 2]) : 0;
      matmulFlops += 2 * o.reduce((x, y) => x * y, 1) * inner;
    }
  }
  return { totalMs, matmulMs, matmulFlops, byKernel };
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as WorkerArgs;
  const out: Record<string, unknown> = { backend: args.backend, workload: args.workload, seq: args.seq };
  const backend = await initEngine(args.backend);
  out.backend = backend;
  if (backend === "tensorflow") {
    const b = tf.backend() as unknown as { binding?: { TF_Version?: string } };
    out.libtensorflow = b.binding?.TF_Version ?? "?";
  }
  const info = backendInfo();
  if (info.adapter) out.adapter = { summary: info.summary, software: info.adapter.software };
  // A software adapter (Mesa llvmpipe, ~1 GFLOP/s) only shows that the workloads run: the matmul table would
  // take minutes and mean nothing, and per-kernel timing there needs timestamp queries it lacks.
  const tasks = info.adapter?.software ? args.tasks.filter((t) => t !== "matmul" && t !== "profile") : args.tasks;
  const raw = WORKLOADS[args.workload].config;
  const config = parseConfig(raw, args.workload);
  const T = args.seq;
  const n = args.windows;
  const V = config.vocab_size;
  const H = config.hidden_size;
  const I = config.intermediate_size as number;

  if (tasks.includes("matmul")) {
    const reps = backend === "cpu" ? 3 : 5;
    // The shapes of the model's own products (attention projections, MLP up/gate, MLP down, head): the
    // single-threaded wasm "ceiling" is computed from these rates (bench/run.ts).
    const shapes: [number, number, number][] = [[T, H, H], [T, H, I], [T, I, H]];
    if (backend !== "cpu") shapes.push([T, H, V], [1024, 1024, 1024]);
    out.matmul = Object.fromEntries(shapes.map(([m, k, nn]) => [`${m}x${k}x${nn}`, matmulGflops(m, k, nn, reps)]));
  }

  const tb = await timeIt(() => (args.workload === "llama1b" ? leanRandomModel(config, 1, gc) : CausalLM.fromTensors(config, randomTensors(config, 1), args.workload)));
  const model = tb.value;
  out.buildSeconds = tb.seconds;
  out.weightBytes = 4 * model.parameterNames().reduce((s, nm) => s + model.parameter(nm).size, 0);
  gc();

  const score = { criterion: "sd-taylor" as const, alpha: args.alpha, temperature: args.temperature, seed: 0, batchWindows: args.batchWindows, keepActivationsMiB: args.keepActivationsMiB };
  const cacheOpts = { topk: args.topk, batchWindows: args.batchWindows };
  const wins = windowsFor(V, n + 1, T, 1);

  if (tasks.includes("memory")) {
    const path = args.path ?? "layerwise";
    const teacher = await TeacherCache.build(model, [wins[0]], { topk: args.topk });
    model.disposeCaches(); // as Session.calibrate does: the transposed tied head is not needed for scoring
    gc();
    const before = status("VmRSS");
    const canReset = resetPeak();
    const r = await timeIt(() => accumulate(model, [wins[0]], teacher, null, { ...score, path }));
    const peak = status("VmHWM");
    out.memory = { path, seconds: r.seconds, rssBefore: before, peakRss: peak, ratio: peak / (out.weightBytes as number), peakReset: canReset, tfBytes: tf.memory().numBytes };
    console.log("RESULT " + JSON.stringify(out));
    return;
  }

  let teacher: TeacherCache | null = null;
  if (tasks.includes("teacher") || tasks.includes("importance")) {
    if (args.warmup !== false) await TeacherCache.build(model, wins.slice(1, 1 + Math.min(8, n)), cacheOpts); // warm-up: kernels, RoPE tables, masks, one full batch
    const r = await perUnit((onProgress) => TeacherCache.build(model, wins.slice(1), cacheOpts, { onProgress }));
    teacher = r.value;
    out.teacher = rate(r.seconds, T);
  }
  if (tasks.includes("importance")) {
    if (args.warmup !== false) await accumulate(model, wins.slice(1), teacher, null, { ...score, count: Math.min(8, n) }); // warm-up (one full batch)
    const r = await perUnit((onProgress) => accumulate(model, wins.slice(1), teacher, null, { ...score, onProgress }));
    out.importance = rate(r.seconds, T);
  }
  if (tasks.includes("ppl")) {
    const B = args.pplBatch ?? Math.min(defaultPplBatch(config, T, backend), n);
    const pw = windowsFor(V, B * (n + 1), T, 2);
    const scorer = (seqs: number[][]) => model.tokenLogProbs(seqs); // what Session.evaluate uses
    if (args.warmup !== false) await perplexity(scorer, pw.slice(0, B), { batchSize: B });
    const r = await perUnit((onProgress) => perplexity(scorer, pw.slice(B), { batchSize: B, onProgress }));
    out.ppl = { ...rate(r.seconds, T), nll: r.value.nll, batch: B }; // perUnit splits each batch of B windows into B units
  }
  if (tasks.includes("profile")) {
    // One window each, every kernel timed (tf.profile adds per-kernel synchronisation, so totals are a bit
    // above the timed runs).
    const t1 = await TeacherCache.build(model, [wins[1]], { topk: args.topk });
    out.profile = {
      teacher: await kernelProfile(() => TeacherCache.build(model, [wins[1]], { topk: args.topk })),
      importance: await kernelProfile(() => accumulate(model, [wins[1]], t1, null, score)),
      ppl: await kernelProfile(() => model.tokenLogProbs(windowsFor(V, Math.min(4, n), T, 3))),
    };
  }
  out.tfBytes = tf.memory().numBytes;
  out.peakRss = status("VmHWM");
  model.dispose();
  console.log("RESULT " + JSON.stringify(out));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
