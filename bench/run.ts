/**
 * `npm run bench [-- --backend cpu,wasm,tensorflow,webgpu|all] [--workload stories15M,stories110M,llama1b|all] [--rounds N] [--quick]`
 *   `[--tasks teacher,importance,ppl]` (a subset of the three timed passes, for both sides; no matmul table or profile then)
 *   `[--ppl-batch N] [--peer-ppl-batch N]` (windows per ppl batch: ours by default the library's defaultPplBatch for
 *   the backend, the peer's by default --ppl-batch if given, else PEER_PPL_BATCH, its best measured on this machine)
 * (`npm run bench --quick` works too: npm hands it over as npm_config_quick).
 *
 * sdmprune against PyTorch peers (bench/peer.py) on random-weight models of real shapes, in the same command.
 * Peers: every python that imports torch among $SDMPRUNE_PEER_PYTHON (a path, or several joined by ":"),
 * python3 on PATH and /usr/bin/python3 (Debian's python3-torch); the newest torch is the peer of the ratios,
 * the others get a ratio column of their own. Each peer runs with OMP_WAIT_POLICY=ACTIVE and =PASSIVE, each
 * round (OpenBLAS builds PASSIVE only, see policiesOf); per workload and metric the faster policy counts, and
 * both are shown. Each case runs in its own process
 * (bench/worker.ts): one backend per process, and peak RSS that belongs to one measurement. The
 * TensorFlow backend comes from bench/.tfjs-node (bash bench/setup-tensorflow.sh; benchmark-only) via NODE_PATH;
 * `--backend tensorflow@tf2` loads bench/.tfjs-node-tf2 instead (bash bench/setup-tensorflow-wheel.sh WHEEL), and
 * `--backend tensorflow,tensorflow@tf2` measures both builds interleaved (bench/tfjs-node.ts).
 * Prints a markdown report and writes it, with the raw JSON, to bench/results/.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Task, WorkerArgs } from "./worker";
import { BENCH_BACKENDS, buildReady, envFor, parseBackendSpec, type BackendSpec } from "./tfjs-node";
import { flopsPerToken, parseWorkloads, paramCount, WORKLOADS, type RawConfig, type WorkloadName } from "./workloads";

type Backend = "cpu" | "wasm" | "tensorflow" | "webgpu";
const ROOT = path.resolve(__dirname, "..");
const DEBIAN_PY = "/usr/bin/python3";
const POLICIES = ["ACTIVE", "PASSIVE"] as const;
type Policy = (typeof POLICIES)[number];

interface Rate { units: number; tokensPerUnit: number; best: number; median: number; mean: number }
interface Profile { totalMs: number; matmulMs: number; matmulFlops: number; byKernel: Record<string, number> }
interface Result {
  backend?: string;
  libtensorflow?: string;
  matmul?: Record<string, number>;
  teacher?: Rate;
  importance?: Rate;
  ppl?: Rate & { nll: number; batch?: number };
  profile?: Record<"teacher" | "importance" | "ppl", Profile>;
  memory?: { path: string; seconds: number; rssBefore: number; peakRss: number; ratio: number };
  weightBytes?: number;
  buildSeconds?: number;
  error?: string;
  torch?: string;
  threads?: number;
  blas?: string;
  omp_wait_policy?: string;
  /** webgpu: the adapter, and whether it is a software rasterizer (timings then say nothing about speed). */
  adapter?: { summary: string; software: boolean };
}

function option(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (eq) return eq.slice(name.length + 3);
  const env = process.env[`npm_config_${name}`];
  return env && env !== "true" ? env : def;
}
function flag(name: string): boolean {
  return process.argv.includes(`--${name}`) || process.env[`npm_config_${name.replace(/-/g, "_")}`] === "true";
}

const quick = flag("quick");
const noPeer = flag("no-peer");
const slow = flag("slow");
const noScaling = flag("no-scaling");
const memPaths = option("memory-paths", quick ? "layerwise" : "layerwise,straightforward").split(",");
// Each entry is a label (`tensorflow`, `tensorflow@tf2`, `wasm`) that keys results and rows; specs maps it to the
// backend the worker initialises and, for tensorflow, the benchmark build it loads.
const specs = new Map<string, BackendSpec>();
// "all" leaves webgpu out: on a machine without a GPU it is Mesa's software rasterizer (minutes per window)
for (const b of option("backend", "all") === "all" ? ["tensorflow", "wasm", "cpu"] : option("backend", "").split(",")) {
  const spec = parseBackendSpec(b.trim(), BENCH_BACKENDS);
  if (specs.has(spec.label)) throw new Error(`backend "${spec.label}" given twice`);
  specs.set(spec.label, spec);
}
const backends = [...specs.keys()];
const base = (label: string): Backend => specs.get(label)!.backend;
const workloads = parseWorkloads(option("workload", quick ? "stories15M" : "all"));
const SEQ = Number(option("seq", "128"));
const rounds = Math.max(1, Number(option("rounds", quick ? "1" : "2")));
const TIMED = ["teacher", "importance", "ppl"] as const;
const onlyTasks = option("tasks", "") === "" ? null : option("tasks", "").split(",").map((t) => t.trim());
for (const t of onlyTasks ?? []) if (!(TIMED as readonly string[]).includes(t)) throw new Error(`unknown task "${t}", expected some of ${TIMED.join(", ")}`);
/** Our windows per ppl batch; unset: the library's default for the backend (defaultPplBatch). */
const PPL_BATCH = option("ppl-batch", "") === "" ? undefined : Number(option("ppl-batch", ""));
/**
 * The peer's windows per ppl batch when neither flag sets it. pip's torch 2.13 at 16 against 4 on this machine:
 * stories15M 3990 against 3670 tok/s in one round, 3723 against 3458 in the next (within its own spread), stories110M
 * 666 against 692 and 654 against 687 (bench/NOTES.md, "Windows per ppl batch"); so 4, never far from its best.
 */
const PEER_PPL_BATCH_DEFAULT = 4;
const PEER_PPL_BATCH = Number(option("peer-ppl-batch", PPL_BATCH === undefined ? String(PEER_PPL_BATCH_DEFAULT) : String(PPL_BATCH)));
for (const [f, b] of [["ppl-batch", PPL_BATCH ?? 1], ["peer-ppl-batch", PEER_PPL_BATCH]] as const) {
  if (!Number.isInteger(b) || b < 1) throw new Error(`--${f} must be a positive integer, got ${b}`);
}
const ALPHA = 0.4;
const TAU = 0.2; // docs/method.md "Recipe numbers", 20 % setting
const TOPK = 64; // Session's default for vocabularies > 4096

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function runChild(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutS: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutS * 1000);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function lastLines(s: string, n: number): string {
  return s
    .split("\n")
    .filter((l) => l.trim() && !/^\d{4}-\d\d-\d\d .*tensorflow\//.test(l))
    .slice(-n)
    .join(" | ");
}

async function ours(label: string, a: WorkerArgs, timeoutS: number): Promise<Result> {
  const env = envFor(specs.get(label)!, process.env);
  env.TF_CPP_MIN_LOG_LEVEL = "2";
  delete env.SDMPRUNE_BACKEND;
  log(`sdmprune ${label} ${a.workload} seq ${a.seq} ${a.tasks.join(",")} (${a.windows} windows)`);
  const r = await runChild(process.execPath, ["--expose-gc", "--import", "tsx", path.join(__dirname, "worker.ts"), JSON.stringify(a)], env, timeoutS);
  const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) return { error: r.code === null ? `timed out after ${timeoutS} s` : `exit ${r.code}: ${lastLines(r.stderr, 3)}` };
  return JSON.parse(line.slice(7)) as Result;
}

/** One python that imports torch. `id` keys its results; the first of the list is the peer of the ratios. */
interface Peer { id: string; python: string; torch: string; blas: string; label: string }

let peerMissing: string | null = null;
/**
 * The peers of this run: every distinct torch among $SDMPRUNE_PEER_PYTHON (":"-separated), python3 on PATH
 * and Debian's /usr/bin/python3, newest torch first. Nothing here names a particular venv: a user points
 * SDMPRUNE_PEER_PYTHON at theirs (pip's torch is the PyTorch most users run, so it should be the peer).
 */
function findPeers(): Peer[] {
  if (noPeer) {
    peerMissing = "--no-peer given";
    return [];
  }
  const env = process.env.SDMPRUNE_PEER_PYTHON?.trim();
  const candidates = [...(env ? env.split(path.delimiter).filter(Boolean) : []), "python3", DEBIAN_PY];
  const probe = `import sys; sys.argv = ["peer"]; sys.path.insert(0, ${JSON.stringify(__dirname)}); import peer, torch; print(torch.__version__); print(torch.__file__); print(peer.blas_name())`;
  const found: Peer[] = [];
  const tried: string[] = [];
  for (const py of candidates) {
    try {
      const [torch, file, blas] = execFileSync(py, ["-c", probe], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 60000 }).trim().split("\n");
      if (found.some((p) => p.id === file)) continue; // the same installation reached twice (python3 → /usr/bin/python3)
      found.push({ id: file, python: py, torch, blas, label: `PyTorch ${torch.replace(/\+.*$/, "")} (${/openblas/i.test(blas) ? "OpenBLAS" : blas === "mkl" ? "MKL" : blas})` });
    } catch {
      tried.push(py);
    }
  }
  if (env && !found.some((p) => env.split(path.delimiter).includes(p.python))) {
    log(`SDMPRUNE_PEER_PYTHON=${env}: no python there imports torch`);
  }
  const ver = (v: string): number[] => v.split(/[.+]/).slice(0, 3).map((x) => Number(x) || 0);
  found.sort((a, b) => {
    const x = ver(a.torch);
    const y = ver(b.torch);
    return y[0] - x[0] || y[1] - x[1] || y[2] - x[2];
  });
  found.forEach((p, i) => (p.id = `torch${i}`));
  if (found.length === 0) {
    peerMissing = `no python with torch found (tried ${tried.join(", ")}): set SDMPRUNE_PEER_PYTHON to one (e.g. a venv with \`pip install torch\`), or apt-get install -y python3-torch python3-numpy libopenblas0-pthread`;
    log(peerMissing);
  } else {
    for (const p of found) log(`peer ${p.id}: ${p.label}, ${p.python}`);
  }
  return found;
}

/**
 * Wait policies a peer is measured with. An OpenBLAS build (Debian's) runs its products on OpenBLAS's own
 * pthreads, which spinning OpenMP threads starve on 2 cores (ACTIVE: 2.5× and more slower), so it gets PASSIVE
 * only; MKL shares torch's OpenMP pool, and which policy wins depends on the workload and the machine's load.
 */
function policiesOf(p: Peer): readonly Policy[] {
  return /openblas/i.test(p.blas) ? ["PASSIVE"] : POLICIES;
}

async function peer(who: Peer, policy: Policy, w: WorkloadName, tasks: string[], windows: number, timeoutS: number): Promise<Result | null> {
  log(`${who.label} OMP_WAIT_POLICY=${policy} ${w} seq ${SEQ} ${tasks.join(",")} (${windows} windows)`);
  const env = { ...process.env, OMP_WAIT_POLICY: policy };
  const args = [path.join(__dirname, "peer.py"), "--config", JSON.stringify(WORKLOADS[w].config), "--seq", String(SEQ), "--windows", String(windows), "--tasks", tasks.join(","), "--alpha", String(ALPHA), "--temperature", String(TAU), "--topk", String(TOPK), "--threads", String(os.cpus().length), "--ppl-batch", String(PEER_PPL_BATCH)];
  const r = await runChild(who.python, args, env, timeoutS);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as Result;
  } catch {
    return { error: r.code === null ? `timed out after ${timeoutS} s` : `exit ${r.code}: ${lastLines(r.stderr, 3)}` };
  }
}

// ------------------------------------------------------------------ formatting

const f0 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? "–" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const pct = (x: number): string => `${(100 * x).toFixed(0)}%`;
const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;

function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** Forward time per token at the measured single-thread matmul rates of the model's own shapes. */
function ceilingForward(c: RawConfig, T: number, mm: Record<string, number>): { tokPerS: number; gflops: number } | null {
  const H = c.hidden_size;
  const I = c.intermediate_size;
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const r = (k: string): number | undefined => mm[k];
  const attn = r(`${T}x${H}x${H}`);
  const up = r(`${T}x${H}x${I}`);
  const down = r(`${T}x${I}x${H}`);
  const head = r(`${T}x${H}x${c.vocab_size}`);
  if (!attn || !up || !down || !head) return null;
  const L = c.num_hidden_layers;
  const secs = (L * (2 * (H * q + 2 * H * kv + q * H) + 4 * T * q)) / (attn * 1e9) + (L * 4 * H * I) / (up * 1e9) + (L * 2 * I * H) / (down * 1e9) + (2 * H * c.vocab_size) / (head * 1e9);
  return { tokPerS: 1 / secs, gflops: flopsPerToken(c, T).forward / secs / 1e9 };
}

/**
 * Combines two rounds of one side: per throughput metric the round with the faster best unit (its median
 * and mean come along), and everything else (matmul rates, profile) from whichever round has it.
 */
function mergeRounds(a: Result | null | undefined, b: Result | null): Result | null {
  if (!a || a.error) return b ?? a ?? null;
  if (!b || b.error) return a;
  const out: Result = { ...b, ...a };
  for (const m of ["teacher", "importance", "ppl"] as const) {
    const x = a[m];
    const y = b[m];
    if (x && y) (out as Record<string, unknown>)[m] = y.best > x.best ? y : x;
    else if (x || y) (out as Record<string, unknown>)[m] = x ?? y;
  }
  (out as Record<string, unknown>).rounds = ((a as { rounds?: number }).rounds ?? 1) + 1;
  return out;
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = os.loadavg()[0];
  const results: Record<string, Result | null> = {};
  const partial = path.join(__dirname, "results", `partial-${process.pid}.json`);
  mkdirSync(path.dirname(partial), { recursive: true });
  // every finished case is saved at once, so an interrupted run keeps what it measured
  const save = (): void => writeFileSync(partial, JSON.stringify(results, null, 1) + "\n");
  const key = (who: string, w: string, seq: number, extra = ""): string => `${who}/${w}/${seq}${extra}`;
  const missing = [...specs.values()].filter((s) => !buildReady(s)).map((s) => `; ${path.relative(ROOT, path.dirname(s.nodePath!))} missing (${s.setup})`);
  const peers = findPeers();
  const pkey = (p: Peer, pol: Policy): string => `${p.id}:${pol}`;
  log(`${os.cpus().length} cores; backends ${backends.join(", ")}; workloads ${workloads.join(", ")}${quick ? "; quick" : ""}${missing.join("")}`);

  const speedWorkloads = workloads.filter((w) => w !== "llama1b");
  // Rounds interleave the peer and each backend, so a burst of load from elsewhere on a shared machine
  // hits one round of one side, not a whole side; each side keeps its best round (mergeRounds).
  for (let round = 1; round <= rounds; round++) {
    for (const w of speedWorkloads) {
      const big = w === "stories110M";
      // enough windows for two full batches of 8 on the native backend (it scores 8 windows per pass)
      const n = quick ? 8 : big ? 8 : 16;
      // ACTIVE and PASSIVE alternate which goes first from round to round, so neither always runs on a cooler machine
      for (const p of peers) {
        const pols = policiesOf(p);
        for (const pol of round % 2 === 1 ? pols : [...pols].reverse()) {
          const k = key(pkey(p, pol), w, SEQ);
          results[k] = mergeRounds(results[k], await peer(p, pol, w, onlyTasks ?? [round === 1 ? "matmul" : "", ...TIMED].filter(Boolean), n, 900));
          save();
        }
      }
      for (const b of backends) {
        // webgpu without a GPU is Mesa's llvmpipe (~1 GFLOP/s): stories110M would take ~10 min per task
        if ((base(b) === "cpu" || base(b) === "webgpu") && big && !slow) {
          results[key(b, w, SEQ)] = { error: `skipped: ${base(b) === "cpu" ? "~15 min on the pure-JS backend" : "minutes per window on a software adapter"} (pass --slow to include)` };
          continue;
        }
        if ((base(b) === "cpu" || base(b) === "webgpu") && round > 1) continue; // seconds to minutes per window: one round shows the scale
        const slowQuick = quick && base(b) === "cpu"; // ~10 s per forward window: no warm-up, no profile, no matmul table
        const tasks: Task[] = onlyTasks ? (onlyTasks as Task[]) : slowQuick ? ["teacher", "importance", "ppl"] : round === 1 ? ["matmul", "teacher", "importance", "ppl", "profile"] : ["teacher", "importance", "ppl"];
        const r = await ours(b, { backend: base(b), workload: w, seq: SEQ, windows: base(b) === "cpu" ? (quick ? 1 : 2) : base(b) === "webgpu" ? 2 : n, tasks, alpha: ALPHA, temperature: TAU, topk: TOPK, warmup: !slowQuick, pplBatch: PPL_BATCH }, 1800);
        results[key(b, w, SEQ)] = mergeRounds(results[key(b, w, SEQ)], r);
        save();
      }
    }
  }
  const scaling = !quick && !noScaling && backends.includes("cpu") && workloads.includes("stories15M");
  if (scaling) {
    for (const seq of [64, 256]) {
      results[key("cpu", "stories15M", seq)] = await ours("cpu", { backend: "cpu", workload: "stories15M", seq, windows: 1, tasks: ["teacher", "importance", "ppl"], alpha: ALPHA, temperature: TAU, topk: TOPK }, 1800);
      save();
    }
  }
  const memBackends: string[] = [];
  if (workloads.includes("llama1b")) {
    // 1.2 B float32 weights (4.9 GB): wasm32's heap is 4 GiB and the pure-JS backend would need about an
    // hour per window, so the memory figure is taken on the TensorFlow backend.
    memBackends.push(...backends.filter((b) => base(b) === "tensorflow"));
    // memory does not depend on the wait policy: the ratio peer, PASSIVE, once
    if (peers.length) results[key("torch", "llama1b", 128, ":memory")] = await peer(peers[0], "PASSIVE", "llama1b", ["memory"], 1, 1200);
    for (const b of memBackends) {
      for (const p of memPaths) {
        results[key(b, "llama1b", 128, `:memory:${p}`)] = await ours(b, { backend: base(b), workload: "llama1b", seq: 128, windows: 1, tasks: ["memory"], path: p as "layerwise", alpha: ALPHA, temperature: TAU, topk: TOPK }, 2400);
        save();
      }
    }
  }

  // ---------------------------------------------------------------- report
  const md: string[] = [];
  const tfVer = (label: string): string => Object.entries(results).find(([k, r]) => k.startsWith(`${label}/`) && r?.libtensorflow)?.[1]?.libtensorflow ?? "(not loaded)";
  const tfBuilds = backends.filter((b) => base(b) === "tensorflow").map((b) => `${b} = tfjs-node 4.22 on libtensorflow ${tfVer(b)} (${specs.get(b)!.setup})`);
  type Metric = "teacher" | "importance" | "ppl";
  /** A peer's figure for one workload and metric: the faster wait policy, and both. */
  const peerRate = (p: Peer, w: string, m: Metric): { rate?: Rate; policy?: Policy; both: string } => {
    const by = policiesOf(p).map((pol) => [pol, results[key(pkey(p, pol), w, SEQ)]?.[m]] as const);
    const have = by.filter(([, r]) => r) as [Policy, Rate][];
    if (!have.length) {
      const err = policiesOf(p).map((pol) => results[key(pkey(p, pol), w, SEQ)]?.error).find(Boolean);
      return { both: err ?? "–" };
    }
    const [policy, rate] = have.reduce((a, b) => (b[1].best > a[1].best ? b : a));
    return { rate, policy, both: by.map(([pol, r]) => `${pol[0]} ${r ? f0(r.best) : "–"}`).join(" / ") };
  };
  /** Windows per ppl batch each side ran with, as the workers report them. */
  const pplBatches = (): string => {
    const seen = new Map<string, Set<number>>();
    for (const [k, r] of Object.entries(results)) {
      const b = r?.ppl?.batch;
      if (b === undefined) continue;
      const who = peers.find((p) => k.startsWith(`${p.id}:`))?.label ?? k.split("/")[0];
      if (!seen.has(who)) seen.set(who, new Set());
      seen.get(who)!.add(b);
    }
    return [...seen].map(([who, bs]) => `${[...bs].join("/")} (${who})`).join(", ") || "–";
  };
  const software = (r: Result | null | undefined): string => (r?.adapter?.software ? " ˢ" : "");
  const anySoftware = backends.some((b) => Object.entries(results).some(([k, r]) => k.startsWith(`${b}/`) && r?.adapter?.software));
  md.push(`# sdmprune benchmark (${new Date().toISOString().slice(0, 16)} UTC${quick ? ", --quick" : ""})`);
  md.push("");
  const adapter = Object.values(results).find((r) => r?.adapter)?.adapter;
  md.push(`Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${gib(os.totalmem())} RAM, load average at start ${loadAtStart.toFixed(1)}, at end ${os.loadavg()[0].toFixed(1)}. Node ${process.version}, TensorFlow.js 4.22; ${tfBuilds.length ? tfBuilds.join(", ") : "tensorflow not run"}, wasm = SIMD, 1 thread, cpu = pure JS, 1 thread${adapter ? `, webgpu = ${adapter.summary}` : ""}.`);
  if (anySoftware) md.push("ˢ webgpu on a software adapter (Mesa llvmpipe, a CPU rasterizer): these rows check that the backend runs the workloads; their speed says nothing about a GPU (bash bench/gpu.sh on a GPU machine).");
  md.push(
    peers.length
      ? `Peers: ${peers.map((p, i) => `${p.label} (${p.python}, ${i === 0 ? "the peer of the ratios" : "second row"})`).join("; ")}; ${os.cpus().length} threads, float32, same shapes and computation (bench/peer.py). Each ran with OMP_WAIT_POLICY=ACTIVE and =PASSIVE (per workload and metric the faster counts; A / P: best tok/s of each), except OpenBLAS builds, PASSIVE only (OpenBLAS's own threads fight spinning OpenMP threads: 2.5× and more slower with ACTIVE).`
      : `Peer: skipped — ${peerMissing ?? "no peer result"}.`,
  );
  md.push(`Models: random weights (untrained) of real shapes; sd-taylor with α = ${ALPHA}, τ = ${TAU}, teacher top-${TOPK} cache; seq ${SEQ}; Taylor scores per sample (batch 1 in PyTorch; sdmprune's default batching: 8 windows per pass on tensorflow and webgpu (webgpu ˢ: 2 windows in all), 1 on wasm and cpu; the 1B memory figure is 1 sample); ppl batches of ${pplBatches()} windows. Throughput = tokens per second of the fastest window (windows of a batch count at the batch's average) after a warm-up, best of ${rounds} interleaved round${rounds > 1 ? "s" : ""} per side (the machine is shared; interference only slows a unit down); median in brackets.`);
  for (const w of workloads) md.push(`- ${w}: ${WORKLOADS[w].label}, ${(paramCount(WORKLOADS[w].config) / 1e6).toFixed(1)} M params`);
  md.push("");

  md.push("## Ratio table (ours / PyTorch, tokens/s, fastest unit)");
  md.push("");
  const rows: (string | number)[][] = [];
  for (const w of speedWorkloads) {
    for (const m of ["teacher", "importance", "ppl"] as const) {
      for (const b of backends) {
        const o = results[key(b, w, SEQ)];
        const ov = o?.[m];
        const name = { teacher: "1 teacher logits", importance: "2 sd-taylor importance", ppl: "3 ppl eval" }[m];
        const row: (string | number)[] = [w, name, b + software(o), ov ? `${f0(ov.best)} (${f0(ov.median)})` : o?.error ?? "–"];
        if (!peers.length) row.push(peerMissing ?? "–", "–");
        peers.forEach((p, i) => {
          const pr = peerRate(p, w, m);
          if (i === 0) row.push(pr.rate ? `${f0(pr.rate.best)} (${f0(pr.rate.median)}) ${pr.policy}; ${pr.both}` : pr.both);
          row.push(ov && pr.rate ? (i === 0 ? `**${(ov.best / pr.rate.best).toFixed(2)}×**` : `${(ov.best / pr.rate.best).toFixed(2)}× (${f0(pr.rate.best)} ${pr.policy})`) : "–");
        });
        rows.push(row);
      }
    }
  }
  for (const b of memBackends) {
    const p = results[key("torch", "llama1b", 128, ":memory")];
    for (const pth of memPaths) {
      const o = results[key(b, "llama1b", 128, `:memory:${pth}`)];
      const row: (string | number)[] = ["llama1b", `4 peak RSS / weights (${pth})`, b, o?.memory ? `${o.memory.ratio.toFixed(2)}× (${gib(o.memory.peakRss)})` : o?.error ?? "–", p?.memory ? `${p.memory.ratio.toFixed(2)}× (${gib(p.memory.peakRss)}) PASSIVE` : p?.error ?? peerMissing ?? "–", o?.memory && p?.memory ? `**${(o.memory.ratio / p.memory.ratio).toFixed(2)}×**` : "–"];
      for (let i = 1; i < peers.length; i++) row.push("–");
      rows.push(row);
    }
  }
  const peerHead = peers.length ? [`${peers[0].label}: best (median) policy; A / P`, `ours / ${peers[0].label}`, ...peers.slice(1).map((p) => `ours / ${p.label}`)] : ["PyTorch", "ours/PyTorch"];
  md.push(table(["workload", "metric", "backend", "sdmprune", ...peerHead], rows));
  md.push("");

  md.push("## FLOPs per token and achieved GFLOP/s");
  md.push("");
  md.push("Model FLOPs (2 per multiply-add; linears incl. head, attention over the full T×T; importance = forward + input gradients + gate/up/down weight gradients; in brackets the trunk forward that sdmprune's layerwise path would recompute for layers past its activation budget, by default 2 GiB minus the f32 weights within 128 MiB … 1 GiB: none for the stories models at seq 128, even at 8 windows per pass; for the 1B model (128 MiB) every layer past the first few). Achieved = model FLOPs × tokens/s (best).");
  md.push("");
  const frows: (string | number)[][] = [];
  for (const w of speedWorkloads) {
    const c = WORKLOADS[w].config;
    const fl = flopsPerToken(c, SEQ);
    const fcol = `${(fl.forward / 1e6).toFixed(1)} / ${(fl.importance / 1e6).toFixed(1)} (${(fl.recompute / 1e6).toFixed(1)})`;
    for (const p of peers) {
      const g = (m: Metric, f: number): string => {
        const pr = peerRate(p, w, m);
        return pr.rate ? `${f0((pr.rate.best * f) / 1e9)} ${pr.policy![0]}` : "–";
      };
      frows.push([w, p.label, fcol, g("teacher", fl.forward), g("importance", fl.importance), g("ppl", fl.forward)]);
    }
    for (const who of backends) {
      const r = results[key(who, w, SEQ)];
      if (!r || r.error) continue;
      const g = (m: Metric, f: number): string => (r[m] ? f0((r[m]!.best * f) / 1e9) : "–");
      frows.push([w, who + software(r), fcol, g("teacher", fl.forward), g("importance", fl.importance), g("ppl", fl.forward)]);
    }
  }
  md.push(table(["workload", "engine", "MFLOP/token fwd / importance (recompute past budget)", "teacher GFLOP/s", "importance GFLOP/s", "ppl GFLOP/s"], frows));
  md.push("");

  md.push("## Matmul rates measured in this run (GFLOP/s, median of 5 after 2 warm-ups; [M,K]·[K,N])");
  md.push("");
  const mrows: (string | number)[][] = [];
  for (const w of speedWorkloads) {
    const ids: [string, string][] = [...peers.flatMap((p) => policiesOf(p).map((pol) => [pkey(p, pol), `${p.label} ${pol}`] as [string, string])), ...backends.map((b) => [b, b] as [string, string])];
    for (const [id, name] of ids) {
      const r = results[key(id, w, SEQ)];
      if (r?.matmul) mrows.push([w, name + software(r), Object.entries(r.matmul).map(([k, v]) => `${k}: ${f0(v)}`).join(", ")]);
    }
  }
  md.push(table(["workload", "engine", "rates"], mrows));
  md.push("");

  if (backends.includes("wasm")) {
    md.push("## wasm against its own single-threaded matmul ceiling");
    md.push("");
    md.push("Ceiling = tokens/s if every model FLOP ran at the wasm matmul rate measured above for its own shape (projections at [T,H,H], gate/up at [T,H,I], down at [T,I,H], head at [T,H,V]) and everything else were free; the importance ceiling scales the forward one by importance/forward FLOPs.");
    md.push("");
    const wrows: (string | number)[][] = [];
    for (const w of speedWorkloads) {
      const r = results[key("wasm", w, SEQ)];
      if (!r?.matmul) continue;
      const c = WORKLOADS[w].config;
      const ce = ceilingForward(c, SEQ, r.matmul);
      if (!ce) continue;
      const fl = flopsPerToken(c, SEQ);
      for (const m of ["teacher", "importance", "ppl"] as const) {
        const ceil = m === "importance" ? (ce.tokPerS * fl.forward) / fl.importance : ce.tokPerS;
        const got = r[m]?.best;
        wrows.push([w, m, f0(ce.gflops), `${((m === "importance" ? fl.importance : fl.forward) / 1e6).toFixed(1)}`, f0(ceil), f0(got), got ? `**${pct(got / ceil)}**` : "–"]);
      }
    }
    md.push(table(["workload", "metric", "ceiling GFLOP/s", "MFLOP/token", "ceiling tok/s", "wasm tok/s", "share of ceiling"], wrows));
    md.push("");
  }

  md.push("## Kernel profile (tf.profile, one window / one batch of 4; ms of kernel time)");
  md.push("");
  const prows: (string | number)[][] = [];
  for (const w of speedWorkloads) {
    for (const b of backends) {
      const r = results[key(b, w, SEQ)];
      if (!r?.profile) continue;
      for (const m of ["teacher", "importance", "ppl"] as const) {
        const p = r.profile[m];
        const top = Object.entries(p.byKernel).sort((x, y) => y[1] - x[1]).slice(0, 5).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ");
        prows.push([w, b, m, p.totalMs.toFixed(0), pct(p.matmulMs / p.totalMs), f0(p.matmulFlops / (p.matmulMs / 1000) / 1e9), top]);
      }
    }
  }
  md.push(table(["workload", "backend", "pass", "kernel ms", "matmul share", "matmul GFLOP/s", "top kernels (ms)"], prows));
  md.push("");

  if (scaling) {
    md.push("## cpu backend: scaling with sequence length (stories15M, 1 window / 1 batch of 4)");
    md.push("");
    const srows: (string | number)[][] = [];
    const base = results[key("cpu", "stories15M", 128)];
    for (const seq of [64, 128, 256]) {
      const r = results[key("cpu", "stories15M", seq)];
      if (!r || r.error) {
        srows.push([seq, r?.error ?? "–", "", "", ""]);
        continue;
      }
      const fl = flopsPerToken(WORKLOADS.stories15M.config, seq);
      const secs = r.importance ? seq / r.importance.best : NaN;
      const secs128 = base?.importance ? 128 / base.importance.best : NaN;
      srows.push([seq, f0(r.teacher?.best), f0(r.importance?.best), f0(r.ppl?.best), `${f0(secs)} s (×${f0(secs / secs128)} of seq 128; FLOPs ×${f0((fl.importance * seq) / (flopsPerToken(WORKLOADS.stories15M.config, 128).importance * 128))})`]);
    }
    md.push(table(["seq", "teacher tok/s", "importance tok/s", "ppl tok/s", "importance s/window"], srows));
    md.push("");
  }

  if (workloads.includes("llama1b")) {
    md.push("## Memory: LLaMA-3.2-1B-shaped importance pass (1 sample, seq 128)");
    md.push("");
    md.push("Peak RSS (VmHWM, reset via /proc/self/clear_refs after the model and the teacher cache are built) of one sd-taylor window, divided by the float32 weight bytes. Includes the runtime's own baseline (Node + libtensorflow, or Python + torch).");
    md.push("");
    const rrows: (string | number)[][] = [];
    const p = results[key("torch", "llama1b", 128, ":memory")];
    if (p?.memory) rrows.push([peers[0]?.label ?? "PyTorch", p.memory.path, gib(p.weightBytes!), gib(p.memory.rssBefore), gib(p.memory.peakRss), `${p.memory.ratio.toFixed(2)}×`, f0(p.memory.seconds)]);
    else rrows.push(["PyTorch", p?.error ?? peerMissing ?? "–", "", "", "", "", ""]);
    for (const b of memBackends) {
      for (const pth of memPaths) {
        const o = results[key(b, "llama1b", 128, `:memory:${pth}`)];
        if (o?.memory) rrows.push([b, pth, gib(o.weightBytes!), gib(o.memory.rssBefore), gib(o.memory.peakRss), `${o.memory.ratio.toFixed(2)}×`, f0(o.memory.seconds)]);
        else rrows.push([b, pth, o?.error ?? "–", "", "", "", ""]);
      }
    }
    if (!memBackends.length) rrows.push(["(none)", "the 1B figure needs the tensorflow backend (wasm32 heap 4 GiB < 4.9 GB of weights; cpu ~1 h/window)", "", "", "", "", ""]);
    md.push(table(["engine", "path", "weights", "RSS before", "peak RSS", "peak / weights", "seconds"], rrows));
    md.push("");
  }
  md.push(`Total bench time ${((Date.now() - started) / 60000).toFixed(1)} min.`);
  const text = md.join("\n");
  console.log(text);
  const dir = path.join(__dirname, "results");
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  writeFileSync(path.join(dir, `${stamp}${quick ? "-quick" : ""}.md`), text + "\n");
  writeFileSync(path.join(dir, `${stamp}${quick ? "-quick" : ""}.json`), JSON.stringify(results, null, 1) + "\n");
  unlinkSync(partial);
  log(`written bench/results/${stamp}${quick ? "-quick" : ""}.{md,json}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
