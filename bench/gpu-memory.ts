/**
 * GPU memory of float16 weights on the GPU (weightsIn "heap", hostFloat "float16") against float32, on the webgpu
 * backend: bytes in use after loading, and the peak while building a top-k teacher and scoring sd-taylor on the
 * same windows (one pass, layer by layer, as Session.score runs). Random weights of a workload's shape.
 *
 *   SDMPRUNE_BACKEND=webgpu npx tsx bench/gpu-memory.ts [--workload stories15M] [--seq 64] [--windows 1] [--dtype f32,f16]
 *
 * "held by the backend" counts tfjs's pool of freed buffers, which it keeps for reuse and never gives back: it
 * accumulates over the runs of one process, so compare it with one --dtype per process.
 * Accepts a software adapter (llvmpipe): memory figures do not depend on the adapter's speed.
 */
import * as tf from "@tensorflow/tfjs";
import { backendInfo, gpuMemory, initEngine, resetGpuPeak } from "../src/engine";
import { accumulate } from "../src/importance";
import { CausalLM } from "../src/model/causal-lm";
import { parseConfig } from "../src/model/config";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { TeacherCache } from "../src/teacher";
import { WORKLOADS, type WorkloadName } from "./workloads";

function option(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

async function main(): Promise<void> {
  await initEngine("webgpu");
  const name = option("workload", "stories15M") as WorkloadName;
  const T = Number(option("seq", "64"));
  const n = Number(option("windows", "1"));
  const cfg = parseConfig(WORKLOADS[name].config as unknown as Record<string, unknown>);
  const tensors = randomTensors(cfg, 1, 0.02);
  const rng = new Rng(3);
  const windows = Array.from({ length: n }, () => Array.from({ length: T }, () => rng.int(0, cfg.vocab_size)));
  console.log(`${backendInfo().summary}\n${WORKLOADS[name].label}; ${n} window(s) × ${T} tokens, top-32 teacher, sd-taylor`);
  const dtypes = option("dtype", "f32,f16").split(",");
  const storages = dtypes.map((d) => (d === "f16" ? { weightsIn: "heap" as const, hostFloat: "float16" as const } : {}));
  for (const storage of storages) {
    const base = gpuMemory()!.inUse;
    const bytes0 = tf.memory().numBytes;
    resetGpuPeak();
    const t0 = Date.now();
    const model = CausalLM.fromTensors(cfg, tensors, name, storage);
    // tensor bytes: webgpu creates a tensor's buffer when a kernel first reads it, so the GPU figure lags the load
    const loaded = tf.memory().numBytes - bytes0;
    const teacher = await TeacherCache.build(model, windows, { topk: 32 });
    await accumulate(model, windows, teacher, null, { criterion: "sd-taylor", alpha: 0.4, temperature: 0.5 });
    const peak = gpuMemory()!.peak - base;
    model.dispose();
    console.log(`${"hostFloat" in storage ? "float16 (packed)" : "float32"}: weights ${mib(loaded)}, GPU peak in use ${mib(peak)}, held by the backend ${mib(gpuMemory()!.held)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
  console.log(`tensors left: ${tf.memory().numTensors}`);
}

void main();
