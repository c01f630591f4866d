/**
 * Before/after runs of code changes, interleaved in one command (bench/NOTES.md, "What was changed"):
 *
 *   git worktree add /tmp/ab-old <commit>; ln -s $PWD/node_modules /tmp/ab-old/; cp bench/worker.ts bench/workloads.ts /tmp/ab-old/bench/
 *   npx tsx bench/ab.ts --variant old=/tmp/ab-old --variant new=. --variant 'new-b1=.:{"batchWindows":1}' \
 *     [--backend tensorflow,wasm] [--workload stories15M] [--rounds 3] [--windows 16]
 *
 * `--backend tensorflow@tf2` (or SDMPRUNE_BENCH_TFJS_NODE=tf2) loads the native backend from bench/.tfjs-node-tf2
 * (bash bench/setup-tensorflow-wheel.sh WHEEL) instead of bench/.tfjs-node (bench/tfjs-node.ts).
 *
 * Each variant is a source tree (with this harness's bench/worker.ts copied in, so every tree is measured the
 * same way) plus optional worker options. Per round, every (workload, backend, variant) runs once in its own
 * process, in turn, so load from elsewhere on a shared machine spreads over all variants. Reports the best
 * window of each (tokens/s) over the rounds, and the ratio to the first variant. Raw results: bench/results/ab-*.jsonl.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync } from "node:fs";
import * as path from "node:path";
import type { WorkerArgs } from "./worker";
import { envFor, BENCH_BACKENDS, parseBackendSpec } from "./tfjs-node";
import type { WorkloadName } from "./workloads";

function options(name: string): string[] {
  const out: string[] = [];
  process.argv.forEach((a, i) => {
    if (a === `--${name}` && i + 1 < process.argv.length) out.push(process.argv[i + 1]);
  });
  return out;
}
const one = (name: string, def: string): string => options(name)[0] ?? def;

interface Variant {
  name: string;
  dir: string;
  extra: Partial<WorkerArgs>;
}

const variants: Variant[] = options("variant").map((v) => {
  const eq = v.indexOf("=");
  const rest = v.slice(eq + 1);
  const colon = rest.indexOf(":{");
  const dir = path.resolve(colon >= 0 ? rest.slice(0, colon) : rest);
  const extra = colon >= 0 ? (JSON.parse(rest.slice(colon + 1)) as Partial<WorkerArgs>) : {};
  if (!existsSync(path.join(dir, "bench", "worker.ts"))) throw new Error(`${dir}/bench/worker.ts missing (copy this harness's worker.ts there)`);
  return { name: v.slice(0, eq), dir, extra };
});
if (variants.length < 2) throw new Error("give at least two --variant name=dir[:{json}]");
const backends = one("backend", "tensorflow,wasm").split(",").map((b) => parseBackendSpec(b.trim(), BENCH_BACKENDS));
const workloads = one("workload", "stories15M").split(",") as WorkloadName[];
const rounds = Number(one("rounds", "3"));
const windows = Number(one("windows", "16"));
const tasks = one("tasks", "teacher,importance,ppl").split(",") as WorkerArgs["tasks"];
const metrics = tasks.filter((t) => t === "teacher" || t === "importance" || t === "ppl") as ("teacher" | "importance" | "ppl")[];
const out = path.join(__dirname, "results", `ab-${new Date().toISOString().slice(0, 16).replace(/:/g, "-")}.jsonl`);
mkdirSync(path.dirname(out), { recursive: true });

type Rate = { best: number; median: number };
const best = new Map<string, Rate>();
for (let r = 1; r <= rounds; r++) {
  for (const w of workloads) {
    for (const b of backends) {
      for (const v of variants) {
        const args: WorkerArgs = { backend: b.backend, workload: w, seq: 128, windows, tasks, alpha: 0.4, temperature: 0.2, topk: 64, ...v.extra };
        const env = envFor(b, { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2" });
        delete env.SDMPRUNE_BACKEND;
        const t0 = Date.now();
        const p = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", path.join(v.dir, "bench", "worker.ts"), JSON.stringify(args)], { cwd: v.dir, env, encoding: "utf8", timeout: 1800_000 });
        const line = (p.stdout ?? "").split("\n").find((l) => l.startsWith("RESULT "));
        const res = line ? (JSON.parse(line.slice(7)) as Record<string, Rate>) : null;
        appendFileSync(out, JSON.stringify({ round: r, workload: w, backend: b.label, variant: v.name, extra: v.extra, result: res, error: res ? undefined : (p.stderr ?? "").slice(-400) }) + "\n");
        process.stderr.write(`[ab] round ${r} ${w} ${b.label} ${v.name}: ${res ? metrics.map((m) => `${m} ${res[m]?.best.toFixed(0)}`).join(", ") : "failed"} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
        for (const m of metrics) {
          const x = res?.[m];
          const k = `${w}/${b.label}/${m}/${v.name}`;
          if (x && (!best.has(k) || x.best > (best.get(k) as Rate).best)) best.set(k, x);
        }
      }
    }
  }
}

const rows: string[] = [`| workload | backend | pass | ${variants.map((v) => `${v.name} tok/s`).join(" | ")} | ${variants.slice(1).map((v) => `${v.name}/${variants[0].name}`).join(" | ")} |`];
rows.push(`|${"---|".repeat(3 + 2 * variants.length - 1)}`);
for (const w of workloads) {
  for (const b of backends) {
    for (const m of metrics) {
      const vals = variants.map((v) => best.get(`${w}/${b.label}/${m}/${v.name}`));
      const base = vals[0]?.best;
      const f = (x: Rate | undefined): string => (x ? `${x.best.toFixed(0)} (${x.median.toFixed(0)})` : "–");
      rows.push(`| ${w} | ${b.label} | ${m} | ${vals.map(f).join(" | ")} | ${vals.slice(1).map((x) => (x && base ? `${(x.best / base).toFixed(2)}×` : "–")).join(" | ")} |`);
    }
  }
}
console.log(`Best window tokens/s (median in brackets), ${rounds} interleaved rounds, ${windows} windows each; raw: ${path.relative(process.cwd(), out)}\n`);
console.log(rows.join("\n"));
