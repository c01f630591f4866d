/**
 * `--workers N` on the wasm backend: wall time of sd-taylor scoring (teacher cache included) with 1 and 2
 * worker threads on a random-weight stories15M-shaped model, and a check that both give the same exact sums.
 *
 *   npx tsx bench/workers.ts [--windows 8] [--seq-len 128] [--workers 1,2]
 *
 * Each worker loads its own model copy and backend, so the start-up cost (load + backend init) is paid per
 * worker, in parallel; it is reported separately from the scoring rate. Results: bench/NOTES.md.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { saveWindows } from "../src/data/windows";
import { initEngine } from "../src/engine";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { saveModel } from "../src/model/load";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { scoreWithWorkers } from "../src/score-workers";
import { WORKLOADS } from "./workloads";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { windows: { type: "string", default: "8" }, "seq-len": { type: "string", default: "128" }, workers: { type: "string", default: "1,2" } } });
  const n = Number(values.windows);
  const T = Number(values["seq-len"]);
  const counts = String(values.workers).split(",").map(Number);
  await initEngine("wasm");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-bench-workers-"));
  try {
    const cfg = parseConfig(WORKLOADS.stories15M.config as unknown as Record<string, unknown>);
    const model = CausalLM.fromTensors(cfg, randomTensors(cfg, 1));
    const modelDir = path.join(dir, "model");
    await saveModel(modelDir, model, null, { format: "hf" });
    model.dispose();
    const rng = new Rng(0);
    const windowsFile = path.join(dir, "windows.json");
    await saveWindows(windowsFile, Array.from({ length: n }, () => Array.from({ length: T }, () => rng.int(0, cfg.vocab_size - 1))));
    console.log(`${WORKLOADS.stories15M.label}; wasm; sd-taylor (alpha 0.4, tau 0.2, teacher top-k 64); ${n} windows x ${T} tokens; ${os.cpus().length} CPUs`);
    const rows: { workers: number; seconds: number; firstWindow: number; sums: string }[] = [];
    for (const w of counts) {
      const t0 = Date.now();
      let first = 0;
      const s = await scoreWithWorkers({
        model: modelDir,
        backend: "wasm",
        workers: w,
        calibrate: { windows: windowsFile, topk: 64 },
        score: { criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 },
        onProgress: (e) => {
          if (e.phase === "score" && e.done > 0 && !first) first = (Date.now() - t0) / 1000;
        },
      });
      const seconds = (Date.now() - t0) / 1000;
      rows.push({ workers: w, seconds, firstWindow: first, sums: JSON.stringify(s.toJSON().exactSums) });
      console.log(`workers ${w}: ${seconds.toFixed(1)} s wall (${((n * T) / seconds).toFixed(0)} tok/s overall; first window done after ${first.toFixed(1)} s: load, backend, teacher)`);
    }
    const same = rows.every((r) => r.sums === rows[0].sums);
    console.log(`exact sums identical across worker counts: ${same}`);
    if (rows.length > 1) console.log(`speed-up ${rows[0].workers} -> ${rows[rows.length - 1].workers} workers: ${(rows[0].seconds / rows[rows.length - 1].seconds).toFixed(2)}x`);
    if (!same) process.exitCode = 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
