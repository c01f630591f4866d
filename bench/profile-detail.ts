/**
 * Kernel-by-shape profile of one pass, for finding where time goes (not part of `npm run bench`):
 *   NODE_PATH=bench/.tfjs-node/node_modules npx tsx bench/profile-detail.ts tensorflow stories15M importance [seq] [windows]
 * Prints the top kernels grouped by name and input shapes, with call counts and total kernel ms. `windows`
 * (default 1) is how many windows one teacher/importance call gets: 8 shows the native backend's real
 * 8-window passes (the library's default batching there), 1 one window alone.
 */
import * as tf from "@tensorflow/tfjs";
import { initEngine, type BackendName } from "../src/engine";
import { accumulate } from "../src/importance";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { TeacherCache } from "../src/teacher";
import { WORKLOADS, type WorkloadName } from "./workloads";

async function main(): Promise<void> {
  const [backend, workload, pass, seqArg, winArg] = process.argv.slice(2) as [BackendName, WorkloadName, string, string?, string?];
  const nWin = Number(winArg ?? 1);
  await initEngine(backend);
  const T = Number(seqArg ?? 128);
  const config = parseConfig(WORKLOADS[workload].config);
  const model = CausalLM.fromTensors(config, randomTensors(config, 1));
  const rng = new Rng(1);
  const wins = Array.from({ length: Math.max(4, nWin) }, () => Array.from({ length: T }, () => rng.int(0, config.vocab_size)));
  const teacher = await TeacherCache.build(model, wins, { topk: 64 });
  const score = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.2 };
  const run = async (): Promise<unknown> => {
    if (pass === "importance") return accumulate(model, wins, teacher, null, { ...score, count: nWin });
    if (pass === "teacher") return TeacherCache.build(model, wins.slice(0, nWin), { topk: 64 });
    return model.tokenLogProbs(wins);
  };
  await run();
  let t0 = performance.now();
  await run();
  const wall = performance.now() - t0;
  t0 = performance.now();
  const info = await tf.profile(async () => {
    await run();
    return [];
  });
  const profWall = performance.now() - t0;
  const groups = new Map<string, { n: number; ms: number }>();
  let total = 0;
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    total += ms;
    const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
    const g = groups.get(key) ?? { n: 0, ms: 0 };
    g.n++;
    g.ms += ms;
    groups.set(key, g);
  }
  console.log(`${backend} ${workload} ${pass} T=${T} windows ${nWin}: wall ${wall.toFixed(0)} ms (profiled ${profWall.toFixed(0)}), kernels ${info.kernels.length}, kernel ms ${total.toFixed(0)}`);
  for (const [k, g] of [...groups].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(process.env.TOP ?? 30))) console.log(`${g.ms.toFixed(1).padStart(8)} ms ${String(g.n).padStart(5)}×  ${k}`);
  const byName = new Map<string, { n: number; ms: number }>();
  for (const k of info.kernels) {
    const g = byName.get(k.name) ?? { n: 0, ms: 0 };
    g.n++;
    g.ms += typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    byName.set(k.name, g);
  }
  console.log("by kernel: " + [...byName].sort((a, b) => b[1].n - a[1].n).map(([k, g]) => `${k} ${g.n}× ${g.ms.toFixed(0)} ms`).join(", "));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
