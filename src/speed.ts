import * as fs from "node:fs";
import * as path from "node:path";
import { DataError, UsageError } from "./errors";
import { Table, type Cell } from "./table";

/**
 * Measured speed of GGUF models in llama.cpp, the runtime pruned models are deployed with, through the
 * optional `node-llama-cpp` package (prebuilt llama.cpp binaries ship inside its npm packages). Parameter
 * counts promise a speed-up; this measures it: load time, prefill and decode tokens per second, memory.
 *
 * node-llama-cpp is ESM-only (with top-level await, so not even Node's require(esm) loads it) and src/ must
 * load as CommonJS (tslab). It is imported at run time through kernel/esm-import.cjs, a plain CommonJS file
 * whose import() works also inside a tslab cell's vm context (where an import() compiled into src/ fails with
 * ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING); a Function-built import() is the fallback when that file is absent.
 *
 * Protocol (per model): load once; `warmup` untimed passes; then `repeats` timed passes of
 * - prefill: one batch evaluation of `prefill` prompt tokens into an empty context;
 * - decode: `decode` tokens evaluated one forward pass each after a 16-token prompt (the fixed text's next
 *   tokens, not sampled ones: the same work for both models, no sampler or end-of-text in the timing).
 * Tokens per second are the median over the repeats. The prompt is fixed English text (tokenized by the
 * model), so two models with one tokenizer see the same tokens.
 */

function importEsm(specifier: string): Promise<unknown> {
  // src/speed.ts and dist/speed.js both sit one level below the package root
  const shim = path.resolve(__dirname, "..", "kernel", "esm-import.cjs");
  if (fs.existsSync(shim)) return (require(shim) as (s: string) => Promise<unknown>)(specifier);
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return (new Function("specifier", "return import(specifier)") as (s: string) => Promise<unknown>)(specifier);
}

/* Minimal structural types of the node-llama-cpp API used here (the package is optional, so no type import). */
interface NlcSequence {
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  clearHistory(): Promise<void>;
}
interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}
interface NlcModel {
  readonly size: number;
  readonly trainContextSize: number;
  readonly tokens: { bos: number | null };
  tokenize(text: string): number[];
  createContext(options: { contextSize: number; batchSize: number; threads?: number; sequences?: number }): Promise<NlcContext>;
  dispose(): Promise<void>;
}
interface NlcLlama {
  readonly gpu: string | false;
  readonly cpuMathCores: number;
  loadModel(options: { modelPath: string }): Promise<NlcModel>;
  dispose(): Promise<void>;
}
interface NlcModule {
  getLlama(options: { gpu?: "auto" | false; build?: "never"; logLevel?: unknown; progressLogs?: boolean }): Promise<NlcLlama>;
  LlamaLogLevel: { error: unknown };
}

let cached: NlcModule | null = null;

/** Whether node-llama-cpp can be imported here (it is an optional dependency). */
export async function llamaCppAvailable(): Promise<boolean> {
  try {
    await loadNodeLlamaCpp();
    return true;
  } catch {
    return false;
  }
}

async function loadNodeLlamaCpp(): Promise<NlcModule> {
  if (cached) return cached;
  try {
    cached = (await importEsm("node-llama-cpp")) as NlcModule;
    return cached;
  } catch (e) {
    throw new UsageError(
      `speed measurements run GGUF models in llama.cpp through the optional package node-llama-cpp, which could not be loaded (${(e as Error).message.split("\n")[0]}); install it with \`npm install node-llama-cpp\``,
    );
  }
}

export interface SpeedOptions {
  /** Prompt tokens evaluated in one batch (default 256). */
  prefill?: number;
  /** Tokens generated one at a time (default 64). */
  decode?: number;
  /** Timed passes; the median is reported (default 3). */
  repeats?: number;
  /** Untimed passes first (default 1). */
  warmup?: number;
  /** CPU threads (default: node-llama-cpp's choice, the machine's math cores). */
  threads?: number;
  /** "auto" uses a GPU when llama.cpp finds one; "cpu" (default) measures on the CPU. */
  gpu?: "auto" | "cpu";
}

export interface SpeedResult {
  model: string;
  fileBytes: number;
  /** Bytes llama.cpp holds for the weights. */
  modelBytes: number;
  /** Resident-set growth over loading the model and creating the context (rough: includes allocator slack). */
  rssBytes: number;
  loadSeconds: number;
  prefillTokens: number;
  decodeTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** All timed passes (tokens/s), for spread. */
  prefillRuns: number[];
  decodeRuns: number[];
  threads: number;
  device: string;
}

/** Prompt tokens before the timed decode steps. */
const DECODE_PROMPT = 16;

const PROMPT =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine with her dog, Max. " +
  "One day, they found a big red ball in the park. Lily threw the ball and Max ran after it as fast as he could. " +
  "They played all afternoon until the sun went down, and then they walked home together, happy and tired. ";

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function checkInt(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new UsageError(`speed: ${name} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** Load one GGUF model in llama.cpp and time prefill and decode (see the module comment). */
export async function measureSpeed(modelPath: string, opts: SpeedOptions = {}): Promise<SpeedResult> {
  const prefill = checkInt("prefill", opts.prefill ?? 256, 1);
  const decode = checkInt("decode", opts.decode ?? 64, 1);
  const repeats = checkInt("repeats", opts.repeats ?? 3, 1);
  const warmup = checkInt("warmup", opts.warmup ?? 1, 0);
  if (opts.threads !== undefined) checkInt("threads", opts.threads, 1);
  const gpu = opts.gpu ?? "cpu";
  if (gpu !== "auto" && gpu !== "cpu") throw new UsageError(`speed: gpu must be "auto" or "cpu", got ${JSON.stringify(gpu)}`);
  const file = path.resolve(modelPath);
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new DataError(`speed: ${file} is not a file (llama.cpp runs .gguf files; save a pruned model with --format gguf)`);
  if (!/\.gguf$/i.test(file)) throw new UsageError(`speed: ${file} is not a .gguf file (llama.cpp runs GGUF models)`);
  const nlc = await loadNodeLlamaCpp();
  const llama = await nlc.getLlama({ gpu: gpu === "auto" ? "auto" : false, build: "never", logLevel: nlc.LlamaLogLevel.error, progressLogs: false });
  try {
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    let model: NlcModel;
    try {
      model = await llama.loadModel({ modelPath: file });
    } catch (e) {
      throw new DataError(`llama.cpp could not load ${file}: ${(e as Error).message} (llama.cpp needs the same MLP width in every layer: prune with --ratio/--keep/--target, uniform allocation)`);
    }
    const loadSeconds = (performance.now() - t0) / 1000;
    try {
      const need = Math.max(prefill, DECODE_PROMPT + decode) + 8;
      if (need > model.trainContextSize) {
        throw new UsageError(`speed: prefill ${prefill} or ${DECODE_PROMPT} + decode ${decode} tokens exceed the model's context of ${model.trainContextSize} tokens`);
      }
      const context = await model.createContext({ contextSize: need, batchSize: Math.max(prefill, 16), threads: opts.threads });
      const rssBytes = process.memoryUsage().rss - rss0;
      try {
        const seq = context.getSequence();
        const bos = model.tokens.bos;
        const needTokens = Math.max(prefill, DECODE_PROMPT + decode);
        let text = PROMPT;
        let tokens = model.tokenize(text);
        while (tokens.length + 1 < needTokens) {
          text += PROMPT;
          tokens = model.tokenize(text);
        }
        const all = bos === null ? tokens : [bos, ...tokens];
        const prompt = all.slice(0, prefill);
        const prefillRuns: number[] = [];
        const decodeRuns: number[] = [];
        for (let pass = 0; pass < warmup + repeats; pass++) {
          await seq.clearHistory();
          let t = performance.now();
          await seq.evaluateWithoutGeneratingNewTokens(prompt);
          const pf = prompt.length / ((performance.now() - t) / 1000);
          await seq.clearHistory();
          await seq.evaluateWithoutGeneratingNewTokens(all.slice(0, DECODE_PROMPT));
          t = performance.now();
          // One forward pass per token, as in generation; the tokens are the fixed text's (teacher forcing), so
          // both models do identical work and no sampler or stop condition enters the timing.
          for (let i = DECODE_PROMPT; i < DECODE_PROMPT + decode; i++) await seq.evaluateWithoutGeneratingNewTokens([all[i]]);
          const dc = decode / ((performance.now() - t) / 1000);
          if (pass >= warmup) {
            prefillRuns.push(pf);
            decodeRuns.push(dc);
          }
        }
        return {
          model: file,
          fileBytes: fs.statSync(file).size,
          modelBytes: model.size,
          rssBytes,
          loadSeconds,
          prefillTokens: prompt.length,
          decodeTokens: decode,
          prefillTokensPerSecond: median(prefillRuns),
          decodeTokensPerSecond: median(decodeRuns),
          prefillRuns,
          decodeRuns,
          threads: opts.threads ?? llama.cpuMathCores,
          device: llama.gpu === false ? "cpu" : String(llama.gpu),
        };
      } finally {
        await context.dispose();
      }
    } finally {
      await model.dispose();
    }
  } finally {
    await llama.dispose();
  }
}

export interface SpeedComparison {
  pruned: SpeedResult;
  baseline: SpeedResult | null;
}

export type SpeedTable = Table & { raw: SpeedComparison };

/** Pruned vs baseline: one row per measure, ratio = pruned / baseline (> 1 is faster for tokens/s). */
export function speedTable(raw: SpeedComparison): SpeedTable {
  const p = raw.pruned;
  const b = raw.baseline;
  const MiB = 2 ** 20;
  const row = (name: string, pv: number, bv: number | undefined): Cell[] => (b ? [name, bv!, pv, bv ? pv / bv : null] : [name, pv]);
  const rows: Cell[][] = [
    row(`prefill tokens/s (${p.prefillTokens} tokens)`, p.prefillTokensPerSecond, b?.prefillTokensPerSecond),
    row(`decode tokens/s (${p.decodeTokens} tokens)`, p.decodeTokensPerSecond, b?.decodeTokensPerSecond),
    row("load seconds", p.loadSeconds, b?.loadSeconds),
    row("weights in llama.cpp (MiB)", p.modelBytes / MiB, b ? b.modelBytes / MiB : undefined),
    row("file (MiB)", p.fileBytes / MiB, b ? b.fileBytes / MiB : undefined),
    row("RSS growth at load (MiB)", p.rssBytes / MiB, b ? b.rssBytes / MiB : undefined),
  ];
  const spread = (v: number[]) => `${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)}`;
  const notes = [
    `llama.cpp via node-llama-cpp on ${p.device}, ${p.threads} thread(s); median of ${p.prefillRuns.length} timed passes after warm-up`,
    `pruned: ${path.basename(p.model)} (prefill ${spread(p.prefillRuns)}, decode ${spread(p.decodeRuns)} tokens/s over passes)`,
  ];
  if (b) notes.push(`baseline: ${path.basename(b.model)} (prefill ${spread(b.prefillRuns)}, decode ${spread(b.decodeRuns)} tokens/s over passes); ratio = pruned / baseline`);
  const t = new Table(b ? ["measure", "baseline", "pruned", "ratio"] : ["measure", "value"], rows, { title: "Speed in llama.cpp", digits: 2, notes });
  return Object.assign(t, { raw });
}

/** Measure `model` (and `baseline`, when given) one after the other, in that order: baseline first. */
export async function compareSpeed(model: string, baseline: string | undefined, opts: SpeedOptions = {}): Promise<SpeedTable> {
  const b = baseline !== undefined ? await measureSpeed(baseline, opts) : null;
  const p = await measureSpeed(model, opts);
  return speedTable({ pruned: p, baseline: b });
}
