import type { HostFloat, WeightsIn } from "./model/weight-store";
import * as tf from "@tensorflow/tfjs";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { evaluationText, PPL_PROTOCOLS, readDocuments, type DocumentSource, type Documents, type PplProtocol } from "./data/documents";
import { checkPplSpec, exactlyOne, seqLenOption } from "./options";
import { calibrationWindows, evalWindows, identifyWindows, loadWindows, saveWindows, sha256File, shardRange, validateWindows, type ShardSpec, type WindowIdentity, type WindowProvenance } from "./data/windows";
import { backendInfo, gpuMemory, initEngine, type BackendName, type GpuAdapterInfo, type GpuMemory } from "./engine";
import { findLeakage, type LeakageReport } from "./data/leakage";
import { compareSpeed, type SpeedOptions, type SpeedTable } from "./speed";
import { runCompare, validateCompare, type CompareOptions, type CompareTable } from "./compare";
import { CancelledError, DataError, UsageError } from "./errors";
import { evaluateTasks, type EvaluationResult } from "./eval/harness";
import { modelScorer } from "./eval/model-scorer";
import { perplexity, pplFromIds, type PerplexityResult } from "./eval/perplexity";
import { defaultPplBatch } from "./eval/ppl-batch";
import { PruneHistory, type PruneStep } from "./history";
import { priorPruningSteps, provenanceFile, PROVENANCE_FILE, readLineage, type ProvenanceLink } from "./provenance";
import { accumulate, checkDistinctFiles, CRITERIA, DATA_FREE, ImportanceScores, isAdditive, readScoresFile, settingsFor, writeScoresFile, type AccumulateOptions, type Criterion } from "./importance";
import { checkCalibration, checkContext, checkModelLoad, checkPassMemory, estimateCalibration, type JobEstimate, type ResourceOptions } from "./resources";
import { readModelConfig, writeModelFiles, type ModelFiles } from "./io/files";
import { padMlpWidths } from "./io/gguf-llama";
import { intermediateSizes, paramCounts, type LlamaConfig, type ParamCounts } from "./model/config";
import type { CausalLM } from "./model/causal-lm";
import { loadModel, saveModel } from "./model/load";
import { ModelState } from "./model-state";
import { accounting, resolvePrune, selectChannels, type PruneAccounting, type PruneSpec } from "./prune";
import { keepForTarget, planSdmprune, STAGE1_KEEP_FRACTION, type RecipePlan } from "./recipe";
import { layerSensitivity, type SensitivityResult } from "./sensitivity";
import { keptSetAgreement } from "./stats";
import { Table } from "./table";
import { calibrationTable, evaluationTable, familyNotes, infoTable, pruneReport, scoreSummaryTable, scoreTable, sdmpruneTable, withRaw } from "./report";
import { defaultTopk, TeacherCache, type TopK } from "./teacher";
import type { ProgressEvent, RunOptions, TextTokenizer } from "./types";
import { recoverWithData, type RecoverData, type RecoverResult, type SessionRecoverOptions } from "./train/recover";

/**
 * The one stateful object of sdmprune: a model being pruned, its original (teacher) predictions on the
 * calibration windows, the running importance scores and the pruning history. Everything it does is a call
 * into the stateless modules (data, teacher, importance, prune, eval); surfaces (CLI, REPL, notebooks)
 * only talk to a Session.
 *
 * Weights: the original and current model and who owns which tensor live in a ModelState
 * (src/model-state.ts) that the session holds; `undo()` rebuilds the previous step's weights bit for bit
 * from the original. Report tables are built in src/report.ts, texts become documents in
 * src/data/documents.ts.
 */

/**
 * What `criterion` needs from calibrate(): windows (every criterion but magnitude and random) and the
 * teacher cache (sd-taylor with alpha > 0; alpha defaults to 0.4).
 */
export function criterionNeeds(criterion: Criterion, alpha?: number): { windows: boolean; teacher: boolean } {
  return { windows: !DATA_FREE.includes(criterion), teacher: criterion === "sd-taylor" && (alpha ?? 0.4) > 0 };
}

export interface LoadOptions extends ResourceOptions {
  backend?: BackendName;
  /** Told, once, a choice made for the user (e.g. that the weights are streamed because the heap cannot hold them). */
  onNote?: (message: string) => void;
}

export interface CalibrateOptions extends RunOptions, ResourceOptions {
  /**
   * Called once the windows are known, before the teacher pass, with the estimated memory and time of the
   * teacher cache and (with `score: true`) of one Taylor importance pass over the windows (src/resources.ts).
   */
  estimate?: { score: boolean; report: (e: JobEstimate) => void };
  /** One text; TinyStories dumps (stories separated by <|endoftext|>) are split into documents. */
  text?: string;
  /** Text files (their SHA-256 go into the provenance); each is split into stories if it is a TinyStories dump. */
  files?: string | string[];
  /** Token windows, or a windows JSON file ({"windows": [[ids]...]}). */
  windows?: number[][] | string;
  /** 1-based inclusive story range of TinyStories input, e.g. "1-200". */
  stories?: string;
  /** Windows to draw (default 32). */
  samples?: number;
  /** Tokens per window (default 128). */
  seqLen?: number;
  /** Seed of the window draw (default 0). */
  seed?: number;
  /** Teacher cache entries per position; default "full" for vocabularies ≤ 4096, else 64. */
  topk?: TopK;
  /** Build the teacher cache (default true; only sd-taylor with α > 0 needs it). */
  teacher?: boolean;
  /** Rng stream name (default "calibration"). */
  stream?: string;
  /**
   * Keep only shard `index` of `count` of the drawn (or given) windows: the contiguous slice
   * [⌊i·n/N⌋, ⌊(i+1)·n/N⌋) of the same global draw (data/windows.ts shardRange). The teacher cache covers the
   * shard only; scores record the windows' indices in the whole draw, so shards merge into one run. A list
   * slices in turn (shard k of the shard before it: how `--workers` splits a `--shard`).
   */
  shard?: ShardSpec | ShardSpec[];
}

export interface CalibrationInfo {
  windows: number;
  seqLen: number;
  source: "text" | "files" | "windows";
  provenance: WindowProvenance | null;
  topk: TopK | null;
  teacherBytes: number;
  teacherSeconds: number;
  /** Calibration windows (of those held) already in the running accumulator. */
  cursor: number;
  /** The draw the windows belong to (id, total windows, seed) and the shard held, if any. */
  draw: WindowIdentity["draw"];
  shard: ShardSpec | null;
}

export interface ScoreOptions extends RunOptions {
  criterion?: Criterion;
  /** sd-taylor KD weight (default 0.4, the paper's 20 % row). */
  alpha?: number;
  /** sd-taylor teacher temperature (default 0.2). */
  temperature?: number;
  /** Windows to add in this call (default: all not yet scored). */
  samples?: number;
  /** Seed of the "random" criterion (default: the calibration seed, else 0). */
  seed?: number;
  /** sd-taylor/ce-taylor: windows per forward/backward batch (AccumulateOptions.batchWindows; default automatic). */
  batchWindows?: number;
  /**
   * sd-taylor/ce-taylor: MiB of activations kept for the backward sweep (AccumulateOptions.keepActivationsMiB,
   * default 2 GiB minus the float32 weights, within 128 MiB … 1 GiB; 128 MiB on wasm); more keeps more layers of a batch instead of
   * recomputing them (faster, more memory).
   */
  keepActivationsMiB?: number;
  /**
   * sd-taylor/ce-taylor: write the running scores to `file` (atomically, same format as saveScores) every
   * `everyWindows` windows (default 8) and when the run is cancelled; loadScores(file) and score() continue it.
   */
  checkpoint?: { file: string; everyWindows?: number };
  /**
   * Continue the running scores or fail (UsageError) instead of starting a new accumulator: they must have
   * this criterion and settings and hold only windows of this calibration (e.g. a checkpoint just loaded).
   */
  resume?: boolean;
}

export interface ScoreReport {
  criterion: Criterion;
  settings: Record<string, unknown>;
  /** Samples in the accumulator after this call, and added by it. */
  samples: number;
  added: number;
  /** True when this call started a new accumulator (first call, or criterion/settings changed). */
  started: boolean;
  message: string;
  /** Per layer: fraction of the channels that a 20 % removal would keep that it still keeps after this call (null on a new accumulator). */
  stability: number[] | null;
  seconds: number;
  table(): Table;
}

export interface PruneOptions extends PruneSpec {
  /** Share of ALL parameters to remove (tied embedding counted once), instead of ratio/keep/mlpRatio: the same K for every layer (src/recipe.ts keepForTarget). */
  target?: number;
  /** Label recorded in the history (e.g. "sdmprune stage 1"). */
  label?: string;
}

export interface PruneReport {
  step: PruneStep;
  accounting: PruneAccounting;
  widthsBefore: number[];
  widthsAfter: number[];
  table(): Table;
}

export interface SdmpruneOptions extends RunOptions, ResourceOptions {
  /** Share of total parameters to remove (tied embedding counted once). Or keep / mlpRatio. */
  target?: number;
  keep?: number;
  mlpRatio?: number;
  /** Final widths rounded to a multiple of N (see roundKeep in src/prune.ts). */
  roundTo?: number;
  alpha?: number;
  temperature?: number;
  /** Windows per stage (default: the calibration's window count, else 32). */
  samples?: number;
  seqLen?: number;
  seed?: number;
  /** Text source (default: the one given to calibrate()). */
  text?: string;
  files?: string | string[];
  stories?: string;
  topk?: TopK;
  /**
   * false: give back the original model once stage 2's teacher is cached (releaseOriginal()), so each stage frees
   * a layer's previous MLP as it prunes it; undo() is then unavailable, and a failed run is not rolled back.
   * Default true.
   */
  keepOriginal?: boolean;
}

export interface SdmpruneReport {
  plan: RecipePlan;
  stage1: PruneReport;
  stage2: PruneReport;
  provenance: { stage1: WindowProvenance; stage2: WindowProvenance };
  table(): Table;
}

export interface PplSpec extends ResourceOptions {
  text?: string;
  file?: string;
  windows?: number[][] | string;
  /** Default 128. */
  seqLen?: number;
  /** TinyStories story range for `file` or `text`, 1-based inclusive ("500-999"). */
  stories?: string;
  /** Windows per forward batch (default defaultPplBatch: by backend and memory; the result does not depend on it). */
  batchSize?: number;
  /**
   * How a text becomes the one token stream that is cut into windows (docs/method.md, "Perplexity"):
   * "documents" (default): WikiText `.raw` files by the row protocol, TinyStories dumps split into stories
   * and joined with "\n\n" (the `<|endoftext|>` separators are not scored), any other text as it is;
   * "wikitext": the row protocol for any file; "file": the text exactly as read, separators included.
   */
  protocol?: PplProtocol;
}

export { PPL_PROTOCOLS, type PplProtocol };

/** A perplexity with where it came from and how the text was turned into windows. */
export type PplRecord = PerplexityResult & { source: string; protocol: string; textTokens?: number; droppedTokens?: number };

export interface EvaluateOptions extends RunOptions {
  ppl?: PplSpec;
  tasks?: string[];
  limit?: number;
  dataDir?: string;
  /** Zero-shot requests start with BOS (lm-eval add_bos_token=True; default true). */
  bos?: boolean;
  /** Keep per-item SampleRecords (raw.tasks.tasks[i].samples) for --log-samples. */
  logSamples?: boolean;
  /** Zero-shot max_length (default the model's max_position_embeddings, as lm-eval HFLM). */
  maxLength?: number;
}

export interface EvaluationRecord {
  time: string;
  step: number;
  params: number;
  ppl: PplRecord | null;
  tasks: { task: string; n: number; metrics: Record<string, number | null> }[];
  average: number | null;
  /** Zero-shot settings that change the numbers (BOS, max_length, limit); null without tasks. */
  zeroShot?: { bos: boolean; maxLength: number | null; limit: number | null; averagedTasks: string[] } | null;
  /** Leakage warnings of this evaluation (absent when none). */
  warnings?: string[];
}

export type EvaluationTable = Table & {
  raw: { ppl: PplRecord | null; tasks: EvaluationResult | null; leakage: LeakageReport | null };
};
export type SensitivityTable = Table & { raw: SensitivityResult };
export type InfoTable = Table & { raw: SessionInfo };

export interface SessionInfo {
  path: string;
  format: "gguf" | "hf";
  /** config.json's model_type (the family) and the family features that change the computation. */
  modelType: string;
  family: string;
  backend: BackendName;
  /** The GPU adapter when the backend is webgpu (vendor, device, limits, software or not), else null. */
  adapter: GpuAdapterInfo | null;
  params: ParamCounts;
  originalParams: ParamCounts;
  widths: number[];
  originalWidths: number[];
  calibration: CalibrationInfo | null;
  criterion: Criterion | null;
  scoredSamples: number;
  steps: number;
  /**
   * Where the weights live: "heap" (on the backend) or streamed from "host" memory or "disk", with the storage type
   * (float16 with "heap": packed halves on the GPU, webgpu only).
   */
  weightsIn: WeightsIn;
  hostFloat: HostFloat;
  /** On webgpu: GPU bytes in use now, the most in use at once so far, and all the backend holds (with its pool); else null. */
  gpuMemory: GpuMemory | null;
}

export interface SaveOptions {
  format?: "hf" | "gguf";
  force?: boolean;
  dtype?: "f32" | "f16";
  /**
   * Pad every layer's MLP to the widest with zero channels when widths differ (same outputs), so the file has one
   * `intermediate_size`, which stock transformers and llama.cpp need. pruning.json keeps the real widths.
   */
  padMlp?: boolean;
}

interface CalibrationState {
  windows: number[][];
  provenance: WindowProvenance | null;
  source: "text" | "files" | "windows";
  /** Documents the windows were drawn from, for sdmprune's fresh windows (null for given windows). */
  docs: string[] | null;
  files: string[];
  /** TinyStories story range the documents were taken from (1-based inclusive, as given), null for all. */
  stories: string | null;
  /** 0-based number of the first document in its file (for naming shared documents in leakage warnings). */
  firstDoc: number;
  /** Original-model predictions on `windows` (null when calibrate was asked for none). */
  teacher: TeacherCache | null;
  teacherSeconds: number;
  /** Draw, indices in the draw and digests of `windows`. */
  identity: WindowIdentity;
  shard: ShardSpec | null;
}

/** Calibration documents of a text or files (data/documents.ts), with the calibration's error messages. */
function readCalibrationDocuments(src: DocumentSource): Documents {
  return readDocuments(src, { empty: "calibration text is empty", noDocs: "calibration text is empty (no non-blank documents)" });
}


/** Teacher cache entries per position a calibration asks for: none without a teacher, else topk or the default. */
function calibrationTopk(opts: { teacher?: boolean; topk?: TopK }, vocab: number): TopK | null {
  return opts.teacher === false ? null : opts.topk ?? defaultTopk(vocab);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Ascending window indices as [from, count] runs of consecutive indices, each at most `max` long. */
function windowRuns(idx: readonly number[], max: number): [number, number][] {
  const out: [number, number][] = [];
  for (const i of idx) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === i && last[1] < max) last[1]++;
    else out.push([i, 1]);
  }
  return out;
}

export class Session {
  /** The original and current weights and which tensors each owns. */
  private readonly weights: ModelState;
  private readonly history_: PruneHistory;
  private calib: CalibrationState | null = null;
  private lastEval: { text: string; ids: number[] } | null = null;
  private acc: ImportanceScores | null = null;
  /** Accumulator before each pruning step (restored by undo). */
  private readonly accStack: (ImportanceScores | null)[] = [];
  private readonly evaluations: EvaluationRecord[] = [];
  private disposed = false;
  /** Recovery runs on this session (written into pruning.json). */
  private readonly recoveries: Record<string, unknown>[] = [];
  /** recovery.json of the last recover(): written by save() beside the recovered weights. */
  private lastRecovery: Record<string, unknown> | null = null;
  private readonly warnings_: string[] = [];

  private constructor(
    readonly path: string,
    readonly backend: BackendName,
    /** The model as loaded; never modified. Owns every tensor the current model shares with it. */
    original: CausalLM,
    readonly tokenizer: TextTokenizer | null,
    readonly files: Omit<ModelFiles, "tensors">,
    /** Where the loaded model came from, newest first, back to the original (its provenance.json or pruning.json). */
    readonly lineage: ProvenanceLink[] = [{ kind: "original", path }],
  ) {
    this.weights = new ModelState(original);
    this.history_ = new PruneHistory(intermediateSizes(original.config));
  }

  /** Load a .gguf file or a Hugging Face directory (initialises the tensor backend first). */
  static async load(modelPath: string, opts: LoadOptions = {}): Promise<Session> {
    const backend = await initEngine(opts.backend);
    // a model that does not fit the wasm heap resident is streamed from host memory unless weightsIn says otherwise
    const weightsIn = checkModelLoad(readModelConfig(modelPath), backend, modelPath, opts);
    if (weightsIn !== "heap" && opts.weightsIn === undefined) {
      opts.onNote?.(`the model does not fit the ${backend} heap: its weights stay in host memory and each layer is uploaded when it runs (weightsIn "host")`);
    }
    const { model, tokenizer, files } = await loadModel(modelPath, { weightsIn, hostFloat: opts.hostFloat });
    return new Session(files.path, backend, model, tokenizer, files, readLineage(modelPath));
  }

  /** Wrap an in-memory model (tests, notebooks). The session takes ownership of the model's tensors. */
  static fromModel(model: CausalLM, tokenizer: TextTokenizer | null = null, source = "(in memory)"): Session {
    const files = { format: "hf" as const, path: source, config: model.config, tokenizer, metadata: {} };
    let backend: BackendName;
    try {
      backend = tf.getBackend() as BackendName;
    } catch {
      backend = "cpu";
    }
    return new Session(source, backend, model, tokenizer, files);
  }

  // ------------------------------------------------------------------ state

  private get current(): CausalLM {
    return this.weights.current;
  }

  private get original(): CausalLM {
    return this.weights.original;
  }

  /** The original model for a computation (teacher, baseline); refused once releaseOriginal() gave it back. */
  private originalFor(what: string): CausalLM {
    if (this.weights.originalReleased) throw new UsageError(`${what} needs the original model, whose pruned MLP weights were released (releaseOriginal()); reload the model`);
    return this.weights.original;
  }

  /**
   * Give back the memory of the original model's MLP weights that pruning replaced: without it a session holds
   * the original and the pruned MLP of every pruned layer (for undo and as the teacher). Afterwards undo(),
   * calibrate(), sdmprune() and speed() with its baseline are refused. Called before pruning, each prune() frees
   * a layer's previous MLP as soon as its slice exists; the CLI's one-shot `prune` does so (sdmprune with
   * keepOriginal false, or before its single prune()).
   */
  releaseOriginal(): void {
    this.alive();
    this.weights.releaseOriginalMlp();
  }

  /** The current (possibly pruned) model. Do not dispose it; the session owns it. */
  get model(): CausalLM {
    this.alive();
    return this.current;
  }

  get config(): LlamaConfig {
    return this.current.config;
  }

  get originalConfig(): LlamaConfig {
    return this.original.config;
  }

  /** The running accumulator (null before score()). */
  get scores(): ImportanceScores | null {
    return this.acc;
  }

  get calibrationWindows(): number[][] | null {
    return this.calib ? this.calib.windows : null;
  }

  get teacher(): TeacherCache | null {
    return this.calib ? this.calib.teacher : null;
  }

  /** Pruning steps so far, as a Table (raw steps in `.raw`). */
  get history(): Table & { raw: readonly PruneStep[] } {
    return withRaw(this.history_.table(), this.history_.steps);
  }

  /**
   * Warnings raised so far (e.g. calibration text that overlaps evaluation text), oldest first. evaluate()
   * also puts its warnings in the table notes and in the evaluation record of pruning.json.
   */
  get warnings(): readonly string[] {
    return this.warnings_;
  }

  /** Per layer, the original index of each current MLP channel. */
  originalIndices(): number[][] {
    return this.history_.originalIndices();
  }

  private alive(): void {
    if (this.disposed) throw new UsageError("this session has been disposed");
  }

  private calibrationInfo(): CalibrationInfo | null {
    const c = this.calib;
    if (!c) return null;
    return {
      windows: c.windows.length,
      seqLen: c.windows[0].length,
      source: c.source,
      provenance: c.provenance,
      topk: c.teacher ? c.teacher.topk : null,
      teacherBytes: c.teacher ? c.teacher.bytes() : 0,
      teacherSeconds: c.teacherSeconds,
      cursor: this.scoredCalibrationWindows(),
      draw: c.identity.draw,
      shard: c.shard,
    };
  }

  info(): InfoTable {
    this.alive();
    const widths = intermediateSizes(this.current.config);
    const originalWidths = intermediateSizes(this.original.config);
    const raw: SessionInfo = {
      path: this.path,
      format: this.files.format,
      modelType: this.current.config.model_type,
      family: familyNotes(this.current.config),
      backend: this.backend,
      adapter: this.backend === "webgpu" ? backendInfo().adapter : null,
      params: paramCounts(this.current.config),
      originalParams: paramCounts(this.original.config),
      widths,
      originalWidths,
      calibration: this.calibrationInfo(),
      criterion: this.acc ? this.acc.criterion : null,
      scoredSamples: this.acc ? this.acc.samples : 0,
      steps: this.history_.length,
      weightsIn: this.current.weightsIn,
      hostFloat: this.current.hostFloat,
      gpuMemory: this.backend === "webgpu" ? gpuMemory() : null,
    };
    return infoTable(raw, this.backend === backendInfo().name ? backendInfo().summary : raw.backend, this.current.config.tie_word_embeddings, this.acc ? this.acc.settings : null);
  }

  // ------------------------------------------------------------------ calibration

  /**
   * Build calibration windows (seeded; or take given windows) and the teacher cache from the ORIGINAL model
   * (also after pruning: the original weights are kept). Replaces any previous calibration and starts a new
   * score accumulator (`scoresReset` says whether scores were dropped).
   */
  async calibrate(opts: CalibrateOptions): Promise<CalibrationInfo & { scoresReset: boolean; table(): Table }> {
    this.alive();
    exactlyOne("calibrate", opts, ["text", "files", "windows"]);
    const V = this.original.config.vocab_size;
    const topk = calibrationTopk(opts, V);
    let windows: number[][];
    let provenance: WindowProvenance | null = null;
    let docs: string[] | null = null;
    let files: string[] = [];
    let source: CalibrationState["source"];
    let firstDoc = 0;
    if (opts.windows !== undefined) {
      if (typeof opts.windows === "string") {
        const l = loadWindows(opts.windows, { vocabSize: V });
        windows = l.windows;
        provenance = l.provenance;
      } else {
        windows = validateWindows(opts.windows, { vocabSize: V, source: "calibrate windows" }).map((w) => w.slice());
      }
      if (windows[0].length < 2) throw new DataError(`calibration windows must hold at least 2 tokens, got ${windows[0].length}`);
      if (opts.samples !== undefined) {
        if (!Number.isInteger(opts.samples) || opts.samples < 1 || opts.samples > windows.length) {
          throw new UsageError(`samples must be in [1, ${windows.length}] for ${windows.length} given windows, got ${opts.samples}`);
        }
        windows = windows.slice(0, opts.samples);
      }
      source = "windows";
      checkCalibration(this.original.config, windows.length, windows[0]?.length ?? 0, topk, opts, undefined, undefined, this.original.weightsIn);
    } else {
      if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; calibrate with token windows instead of text`);
      const src = readCalibrationDocuments(opts);
      firstDoc = src.firstDoc;
      docs = src.docs;
      files = src.files;
      source = src.source;
      const seqLen = seqLenOption(opts.seqLen);
      checkCalibration(this.original.config, opts.samples ?? 32, seqLen, topk, opts, undefined, undefined, this.original.weightsIn);
      const set = calibrationWindows({
        docs,
        tokenizer: this.tokenizer,
        samples: opts.samples ?? 32,
        seqLen,
        seed: opts.seed ?? 0,
        stream: opts.stream ?? "calibration",
        files,
      });
      windows = set.windows;
      provenance = set.provenance;
      validateWindows(windows, { vocabSize: V, source: "calibration windows" });
    }
    let identity = identifyWindows(windows, provenance ? provenance.seed : null, provenance ? provenance.stream : null);
    const shards = opts.shard === undefined ? [] : Array.isArray(opts.shard) ? opts.shard : [opts.shard];
    for (const sh of shards) {
      const [a, b] = shardRange(windows.length, sh);
      windows = windows.slice(a, b);
      identity = { draw: identity.draw, indices: identity.indices.slice(a, b), digests: identity.digests.slice(a, b) };
    }
    const shard = shards.length === 1 ? shards[0] : null;
    if (opts.estimate && windows.length > 0) {
      opts.estimate.report(estimateCalibration(this.original.config, windows.length, windows[0].length, topk, this.backend, opts.estimate.score));
    }
    const t0 = Date.now();
    const teacher = topk === null ? null : await TeacherCache.build(this.originalFor("calibrate"), windows, { topk }, opts);
    this.original.disposeCaches();
    this.calib = { windows, provenance, source, docs, files, stories: opts.windows === undefined ? opts.stories ?? null : null, firstDoc, teacher, teacherSeconds: (Date.now() - t0) / 1000, identity, shard };
    // New windows start a new accumulator: continuing would silently count windows twice if the same set came back.
    const scoresReset = this.acc !== null;
    this.acc = null;
    const info = this.calibrationInfo()!;
    return {
      ...info,
      scoresReset,
      table: () => calibrationTable(info, identity, shard, provenance, files),
    };
  }

  /** Write the calibration windows as {"windows": [[ids]...], "provenance": {...}}. */
  async saveWindows(file: string): Promise<void> {
    this.alive();
    if (!this.calib) throw new UsageError("no calibration windows yet (call calibrate first)");
    await saveWindows(file, this.calib.windows, this.calib.provenance);
  }

  // ------------------------------------------------------------------ scores

  /**
   * Add importance evidence from the next `samples` calibration windows to the running accumulator. A new
   * criterion or new settings start a new accumulator (the report says so); non-additive criteria are always
   * computed afresh. On an error (e.g. a NaN loss, named by sample) the accumulator is left as it was; on
   * cancellation the whole samples finished so far are kept.
   */
  async score(opts: ScoreOptions = {}): Promise<ScoreReport> {
    this.alive();
    const criterion = opts.criterion ?? "sd-taylor";
    if (!CRITERIA.includes(criterion)) throw new UsageError(`unknown criterion "${criterion}", expected one of ${CRITERIA.join(", ")}`);
    const needs = criterionNeeds(criterion, opts.alpha);
    const dataFree = !needs.windows;
    const additive = isAdditive(criterion);
    const c = this.calib;
    if (!dataFree && !c) throw new UsageError(`criterion "${criterion}" needs calibration windows: call calibrate() first`);
    const alpha = criterion === "sd-taylor" ? opts.alpha ?? 0.4 : undefined;
    const temperature = criterion === "sd-taylor" ? opts.temperature ?? 0.2 : undefined;
    const seed = opts.seed ?? c?.provenance?.seed ?? (criterion === "random" ? 0 : undefined);
    const seqLen = c && !dataFree ? c.windows[0].length : null;
    const teacher = c ? c.teacher : null;
    if (needs.teacher && !teacher) {
      throw new UsageError("sd-taylor with alpha > 0 needs the teacher cache: calibrate() without teacher: false");
    }
    const accOpts: AccumulateOptions = { criterion, alpha, temperature, seed, batchWindows: opts.batchWindows, keepActivationsMiB: opts.keepActivationsMiB, onProgress: opts.onProgress, signal: opts.signal };
    const settings = settingsFor(accOpts, seqLen, teacher); // validates alpha/temperature before any work

    // Does the running accumulator continue?
    let prev = this.acc;
    let why: string | null = null;
    if (prev) {
      if (prev.criterion !== criterion) why = `criterion changed from ${prev.criterion} to ${criterion}`;
      else if (!additive) why = `criterion ${criterion} is computed in one call`;
      else if (JSON.stringify(prev.settings) !== JSON.stringify(settings)) why = `settings changed from ${JSON.stringify(prev.settings)} to ${JSON.stringify(settings)}`;
    }
    if (opts.resume) {
      if (!prev) throw new UsageError("resume: there are no running scores to continue (load the checkpoint first)");
      if (why) throw new UsageError(`resume: the running scores cannot be continued: ${why}`);
      const foreign = (prev.windows ?? []).find((r) => !c || r.draw !== c.identity.draw.id || !c.identity.indices.includes(r.index));
      if (!prev.windows) throw new UsageError("resume: the running scores do not record their windows (scores format version 1)");
      if (foreign) {
        throw new UsageError(
          `resume: the running scores hold window ${foreign.index} of draw ${foreign.draw}, which is not one of this calibration's windows ` +
            `(draw ${c ? c.identity.draw.id : "none"}${c && c.shard ? `, shard ${c.shard.index}/${c.shard.count}` : ""}): a different seed, data or shard?`,
        );
      }
    }
    const started = !prev || why !== null;
    const message = !prev
      ? `started a new ${criterion} accumulator`
      : why
        ? `started a new accumulator (${why}); the previous ${prev.criterion} scores (${prev.samples} samples) were replaced`
        : `continued the ${criterion} accumulator`;
    if (started) prev = null;
    // The calibration windows still to score: additive criteria skip those the accumulator already holds
    // (also after loadScores/mergeScores of a checkpoint or another shard), in any order: sums are exact.
    let todo: number[] = [];
    if (!dataFree) {
      const held = c!.windows.length;
      const pending = !additive || !prev ? range(held) : range(held).filter((k) => !prev!.hasWindow(c!.identity.draw.id, c!.identity.indices[k]));
      const max = pending.length;
      if (max <= 0) {
        throw new UsageError(`all ${held} calibration windows are already scored (${prev?.samples ?? 0} samples); calibrate() with more samples, or mergeScores() from another run`);
      }
      const count = additive ? opts.samples ?? max : max;
      if (!Number.isInteger(count) || count < 1 || count > max) {
        throw new UsageError(`samples must be an integer in [1, ${max}] (${max} calibration windows not yet scored), got ${count}`);
      }
      todo = pending.slice(0, count);
    }
    const ck = opts.checkpoint;
    const every = ck ? ck.everyWindows ?? 8 : Infinity;
    if (ck && !additive) throw new UsageError(`checkpoint: criterion ${criterion} is computed in one call; only sd-taylor and ce-taylor can be checkpointed`);
    if (ck && !(Number.isInteger(every) && every >= 1)) throw new UsageError(`checkpoint.everyWindows must be a positive integer, got ${ck.everyWindows}`);
    // Work on a copy so a failure leaves the running accumulator untouched.
    const work = prev ? prev.clone() : ImportanceScores.create(this.current, criterion, settings);
    const prevSamples = prev ? prev.samples : 0;
    let beforeRanking: number[][] | null = null;
    if (prev) {
      try {
        beforeRanking = prev.scores();
      } catch {
        beforeRanking = null;
      }
    }
    const t0 = Date.now();
    let result: ImportanceScores;
    try {
      if (dataFree || !additive) {
        result = await accumulate(this.current, c ? c.windows : [], teacher, null, { ...accOpts, identity: c?.identity });
      } else {
        // runs of consecutive windows, cut every `every` windows for the checkpoint; progress over all of them
        let base = 0;
        const T = c!.windows[0].length;
        const onProgress = opts.onProgress;
        for (const [from, count] of windowRuns(todo, every)) {
          const wrap = onProgress
            ? (e: ProgressEvent) => {
                const done = base + e.done;
                const left = (todo.length - done) * T;
                onProgress({ ...e, done, total: todo.length, etaSeconds: e.tokensPerSecond ? left / e.tokensPerSecond : undefined });
              }
            : undefined;
          await accumulate(this.current, c!.windows, teacher, work, { ...accOpts, onProgress: wrap, from, count, identity: c!.identity });
          base += count;
          if (ck) await writeScoresFile(ck.file, work);
        }
        result = work;
      }
    } catch (e) {
      if (e instanceof CancelledError && additive && work.samples > prevSamples) {
        // the whole samples finished before the cancel are kept (and checkpointed)
        this.acc = work;
        if (ck) await writeScoresFile(ck.file, work);
        throw new CancelledError(
          `score cancelled: ${work.samples - prevSamples} windows were added; the running scores hold ${work.samples}${ck ? ` and are written to ${ck.file}` : ""}`,
        );
      }
      if (e instanceof CancelledError && ck && work.samples > 0) {
        await writeScoresFile(ck.file, work);
        throw new CancelledError(`score cancelled before any new window finished; ${ck.file} holds the ${work.samples} windows scored before`);
      }
      throw e;
    }
    this.acc = result;
    const added = result.samples - prevSamples;
    const seconds = (Date.now() - t0) / 1000;
    const stability = beforeRanking ? result.scores().map((s, l) => keptSetAgreement([beforeRanking![l]], [s], 0.8)) : null;
    const recorded = { ...result.settings } as Record<string, unknown>;
    const samples = result.samples;
    return {
      criterion,
      settings: recorded,
      samples,
      added,
      started,
      message,
      stability,
      seconds,
      table: () => scoreTable({ criterion, settings: recorded, samples, added, message, stability, seconds }),
    };
  }

  /**
   * Write the running scores as JSON (format sdmprune-scores version 2, docs/scores-format.md: scores, exact
   * sums, the digest of every summed window, settings, model fingerprint), atomically.
   */
  async saveScores(file: string): Promise<void> {
    this.alive();
    if (!this.acc) throw new UsageError("no scores to save (call score first)");
    await writeScoresFile(file, this.acc);
  }

  private readScores(file: string): ImportanceScores {
    const s = readScoresFile(file);
    s.checkModel(this.current);
    return s;
  }

  /** Calibration windows (of those held) that the running accumulator holds. */
  private scoredCalibrationWindows(): number {
    const c = this.calib;
    const a = this.acc;
    if (!c || !a || !a.windows) return 0;
    return c.identity.indices.filter((i) => a.hasWindow(c.identity.draw.id, i)).length;
  }

  /**
   * Replace the running scores by a scores file (must belong to the current model). A later score() with
   * the same criterion and settings adds only the calibration windows the file does not hold (a checkpoint
   * continues where it stopped).
   */
  async loadScores(file: string): Promise<ImportanceScores> {
    this.alive();
    this.acc = this.readScores(file);
    return this.acc;
  }

  /**
   * Add score files to the running scores, exactly (sums, sample counts, window lists). Refuses another
   * model, criterion or settings, a file given twice, and any window already counted (same window of the same
   * draw, or the same content from another draw), naming the first one. Without running scores the first
   * file is loaded.
   */
  async mergeScores(files: string | string[]): Promise<ImportanceScores> {
    this.alive();
    const list = typeof files === "string" ? [files] : files;
    checkDistinctFiles(list);
    const others = list.map((f) => this.readScores(f));
    // the files among themselves first, so an error names the two files involved
    for (let j = 1; j < others.length; j++) for (let i = 0; i < j; i++) others[i].checkMergeable(others[j], { a: list[i], b: list[j] });
    let acc = this.acc;
    let label = "the running scores";
    others.forEach((o, k) => {
      acc = acc ? acc.merge(o, { a: label, b: list[k] }) : o;
      label = acc === o ? list[k] : `the running scores (with ${list.slice(0, k + 1).join(", ")})`;
    });
    this.acc = acc;
    return this.acc as ImportanceScores;
  }

  // ------------------------------------------------------------------ analysis

  /** Per-layer loss increase with the layer's MLP / attention switched off, plus score distributions. */
  async sensitivity(opts: RunOptions & { samples?: number } = {}): Promise<SensitivityTable> {
    this.alive();
    if (!this.calib) throw new UsageError("sensitivity needs calibration windows: call calibrate() first");
    const n = opts.samples ?? this.calib.windows.length;
    if (!Number.isInteger(n) || n < 1 || n > this.calib.windows.length) throw new UsageError(`samples must be in [1, ${this.calib.windows.length}], got ${n}`);
    let scores: number[][] | null = null;
    if (this.acc) {
      try {
        scores = this.acc.scores();
      } catch {
        scores = null;
      }
    }
    const r = await layerSensitivity(this.current, this.calib.windows.slice(0, n), { ...opts, scores });
    return withRaw(r.table(), r);
  }

  /** Per-layer score distribution (min, quartiles, max, mean) of the running scores. */
  scoreSummary(): Table {
    this.alive();
    if (!this.acc) throw new UsageError("no scores yet (call score first)");
    return scoreSummaryTable(this.acc);
  }

  // ------------------------------------------------------------------ pruning

  /**
   * Remove the lowest-scoring MLP channels (see src/prune.ts for ratio/keep/mlpRatio semantics). Kept
   * indices are ascending; gate/up columns and down rows are sliced; scores are re-indexed to the
   * surviving channels; the step is recorded for undo().
   */
  prune(opts: PruneOptions): PruneReport {
    this.alive();
    if (!this.acc) throw new UsageError("no importance scores: call score() (or loadScores) before prune()");
    this.acc.checkModel(this.current);
    const before = this.current.config;
    const widths = intermediateSizes(before);
    let spec: PruneSpec = opts;
    if (opts.target !== undefined) {
      if (opts.ratio !== undefined || opts.keep !== undefined || opts.mlpRatio !== undefined) throw new UsageError("prune: give target or one of ratio, keep, mlpRatio, not both");
      spec = { ...opts, keep: keepForTarget(this.original.config, opts.target) };
    }
    const plan = resolvePrune(spec, before.hidden_size, intermediateSizes(this.original.config), widths);
    const kept = selectChannels(this.acc.scores(), plan, widths);
    const keptFull = kept.map((idx, l) => idx ?? range(widths[l]));
    const nextAcc = this.acc.reindex(keptFull);
    this.weights.prune(kept);
    const after = this.current.config;
    const acct = accounting(this.original.config, before, after);
    this.accStack.push(this.acc);
    this.acc = nextAcc;
    const step = this.history_.push({
      rule: plan.rule,
      criterion: this.accStack[this.accStack.length - 1]!.criterion,
      settings: { ...this.accStack[this.accStack.length - 1]!.settings, calibration: this.calib?.provenance ? { ...this.calib.provenance, stories: this.calib.stories } : null },
      samples: this.accStack[this.accStack.length - 1]!.samples,
      layers: plan.layers,
      allocation: plan.allocation,
      widthsBefore: widths,
      widthsAfter: intermediateSizes(after),
      kept,
      accounting: acct,
      label: opts.label,
      ...(plan.roundTo !== null ? { roundTo: plan.roundTo } : {}),
    });
    return pruneReport(step);
  }

  /** Undo the last pruning step; weights are restored bit for bit and the scores as they were. */
  undo(): PruneStep {
    this.alive();
    if (this.weights.recovered) throw new UsageError("undo() is not available after recover(): the recovered weights cannot be re-derived from the original; reload the model to start over");
    if (this.weights.originalReleased) throw new UsageError("undo() is not available after releaseOriginal(): the original MLP weights were given back; reload the model to start over");
    const step = this.history_.pop();
    if (!step) throw new UsageError("nothing to undo: no pruning steps");
    this.weights.restore(step.kept.map((k) => !!k), this.history_.originalIndices());
    this.acc = this.accStack.pop() ?? null;
    return step;
  }

  /**
   * The two-stage SDMPrune recipe (docs/method.md, "Pipeline"): stage 1 removes 2.5 % of each layer's channels by
   * ce-taylor (keep floor(0.975·width), see src/recipe.ts); stage 2 scores the stage-1 model with sd-taylor
   * against the ORIGINAL model as teacher (cache built before stage 1) on freshly drawn windows, then prunes
   * to the target. Both stages draw windows from one seed with different Rng streams. Afterwards the
   * session's calibration is the stage-2 windows and cache, and its scores the stage-2 accumulator.
   */
  async sdmprune(opts: SdmpruneOptions): Promise<SdmpruneReport> {
    this.alive();
    if (this.history_.length > 0) throw new UsageError(`sdmprune starts from the original model, but ${this.history_.length} pruning step(s) are applied; undo them first`);
    const plan = planSdmprune(this.original.config, opts);
    if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; sdmprune draws windows from text`);
    let src: { docs: string[]; files: string[]; stories: string | null; firstDoc: number };
    if (opts.text !== undefined || opts.files !== undefined) src = readCalibrationDocuments(opts);
    else if (this.calib?.docs) src = { docs: this.calib.docs, files: this.calib.files, stories: this.calib.stories, firstDoc: this.calib.firstDoc };
    else throw new UsageError("sdmprune draws fresh windows for each stage: give text or files (or calibrate() from text first)");
    const { stories, firstDoc } = src;
    const samples = opts.samples ?? this.calib?.windows.length ?? 32;
    const seqLen = opts.seqLen ?? (this.calib ? this.calib.windows[0].length : 128);
    const seed = opts.seed ?? this.calib?.provenance?.seed ?? 0;
    // the two-stage recipe always distils from the original, so a teacher is always cached
    const topk = opts.topk ?? defaultTopk(this.original.config.vocab_size);
    checkCalibration(this.original.config, samples, seqLen, topk, opts, "sdmprune", samples, this.original.weightsIn);
    const draw = (stream: string) => calibrationWindows({ docs: src.docs, tokenizer: this.tokenizer!, samples, seqLen, seed, stream, files: src.files });
    const w1 = draw("sdmprune/stage1");
    const w2 = draw("sdmprune/stage2");
    const phase = (name: string) => (opts.onProgress ? { ...opts, onProgress: (e: Parameters<NonNullable<RunOptions["onProgress"]>>[0]) => opts.onProgress!({ ...e, phase: `${name}:${e.phase}` }) } : opts);

    // Teacher for stage 2 = the original model, cached before anything is pruned.
    const t0 = Date.now();
    const teacher2 = await TeacherCache.build(this.originalFor("sdmprune"), w2.windows, { topk }, phase("stage2"));
    const teacherSeconds = (Date.now() - t0) / 1000;
    this.original.disposeCaches();
    if (opts.keepOriginal === false) this.releaseOriginal();
    const savedCalib = this.calib;
    const savedAcc = this.acc;
    try {
      // Stage 1: ce-taylor, no teacher.
      this.calib = { windows: w1.windows, provenance: w1.provenance, source: src.files.length ? "files" : "text", docs: src.docs, files: src.files, stories, firstDoc, teacher: null, teacherSeconds: 0, identity: identifyWindows(w1.windows, seed, w1.provenance.stream), shard: null };
      this.acc = null;
      await this.score({ criterion: "ce-taylor", ...phase("stage1") });
      const stage1 = this.prune({ keep: plan.stage1Keep, label: `sdmprune stage 1 (ce-taylor, keep ${STAGE1_KEEP_FRACTION} of width)` });
      // Stage 2: sd-taylor on the stage-1 model against the original teacher, fresh windows.
      this.calib = { windows: w2.windows, provenance: w2.provenance, source: src.files.length ? "files" : "text", docs: src.docs, files: src.files, stories, firstDoc, teacher: teacher2, teacherSeconds, identity: identifyWindows(w2.windows, seed, w2.provenance.stream), shard: null };
      this.acc = null;
      await this.score({ criterion: "sd-taylor", alpha: plan.alpha, temperature: plan.temperature, ...phase("stage2") });
      const stage2 = this.prune({ keep: plan.finalKeep, roundTo: plan.roundTo ?? undefined, label: `sdmprune stage 2 (sd-taylor α ${plan.alpha}, τ ${plan.temperature}; ${plan.settingsSource})` });
      return {
        plan,
        stage1,
        stage2,
        provenance: { stage1: w1.provenance, stage2: w2.provenance },
        table: () => sdmpruneTable({ plan, stage1, stage2, windows: [w1.windows.length, w2.windows.length], seed, samples, seqLen, topk }),
      };
    } catch (e) {
      // leave the session as it was: undo any stage that completed, restore calibration and scores (not possible
      // once the original was given back: keepOriginal false)
      if (!this.weights.originalReleased) while (this.history_.length > 0) this.undo();
      this.calib = savedCalib;
      this.acc = savedAcc;
      throw e;
    }
  }

  // ------------------------------------------------------------------ comparisons

  /**
   * Criteria × ratios × calibration seeds on held-out text (src/compare.ts): perplexity (and task accuracy)
   * as mean ± std over seeds, and kept-set agreement across seeds. Needs the unpruned model; each seed
   * calibrates once, each criterion scores once per seed, each ratio is prune + evaluate + undo. The
   * session's calibration and scores are restored afterwards; evaluations are not recorded in pruning.json.
   */
  async compare(opts: CompareOptions): Promise<CompareTable> {
    this.alive();
    if (this.history_.length > 0) throw new UsageError(`compare starts from the original model, but ${this.history_.length} pruning step(s) are applied; undo them first`);
    validateCompare(opts);
    const spec = opts.ppl;
    checkPplSpec(spec);
    // Tokenize the evaluation text once; pplFromText's protocol (BOS, consecutive windows) on fixed windows.
    let windows: number[][] | null = null;
    let label: { source: string; protocol: string } | null = null;
    if (spec.file !== undefined || spec.text !== undefined) {
      if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; evaluate perplexity on token windows instead`);
      const e = evaluationText(spec);
      const seqLen = spec.seqLen ?? 128;
      windows = evalWindows(this.evalIds(e.text), seqLen);
      label = { source: e.source, protocol: `${e.how}; one BOS, non-overlapping windows of ${seqLen}` };
    }
    const saved = { calib: this.calib, acc: this.acc };
    try {
      return await runCompare(this, opts, {
        // the windows go through pplOf, so the context and memory checks of every perplexity apply here too
        ppl: async (run) =>
          windows && label
            ? { ...(await this.pplOf({ windows, batchSize: spec.batchSize, allowLonger: spec.allowLonger, skipMemoryCheck: spec.skipMemoryCheck }, run)), ...label }
            : this.pplOf(spec, run),
        leakage: () => this.leakage(spec)?.message ?? null,
      });
    } finally {
      while (this.history_.length > 0) this.undo();
      this.calib = saved.calib;
      this.acc = saved.acc;
    }
  }

  // ------------------------------------------------------------------ deployment

  /**
   * Measured speed of the current model in llama.cpp (src/speed.ts; needs the optional node-llama-cpp):
   * the model is written as GGUF to a temporary folder (llama.cpp needs one MLP width for all layers) and
   * timed against the original weights written the same way (same writer, same dtype) unless
   * `baseline: false`. The temporary files are removed afterwards.
   */
  async speed(opts: SpeedOptions & { baseline?: boolean; dtype?: "f32" | "f16" } = {}): Promise<SpeedTable> {
    this.alive();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-speed-"));
    try {
      const dtype = opts.dtype ?? "f32";
      const write = async (name: string, model: CausalLM) => {
        const files = await saveModel(path.join(tmp, name), model, this.tokenizer, { format: "gguf", dtype });
        return files.find((f) => f.endsWith(".gguf"))!;
      };
      const pruned = await write("current", this.current);
      let baseline: string | undefined;
      // The original is written by the same writer with the same dtype, so only the widths differ.
      if (opts.baseline !== false) baseline = await write("original", this.originalFor("speed (its baseline; baseline: false skips it)"));
      return await compareSpeed(pruned, baseline, opts);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  // ------------------------------------------------------------------ evaluation

  /**
   * The evaluation text tokenized with its one BOS. The last text is remembered: evaluate() reads the same
   * text for perplexity and for the leakage check, and a WikiText-sized text takes seconds to tokenize.
   */
  private evalIds(text: string): number[] {
    if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; evaluate perplexity on token windows instead`);
    if (this.lastEval?.text !== text) this.lastEval = { text, ids: this.tokenizer.encode(text, { addBos: true }) };
    return this.lastEval.ids;
  }

  private scorer() {
    const model = this.current;
    return (seqs: number[][]) => model.tokenLogProbs(seqs);
  }

  /**
   * Overlap between the current calibration windows/documents and the evaluation text of `spec`
   * (src/data/leakage.ts); null without calibration.
   */
  leakage(spec: PplSpec): LeakageReport | null {
    this.alive();
    checkPplSpec(spec);
    const c = this.calib;
    if (!c) return this.recordedLeakage(spec);
    const calLabel = `${c.windows.length} calibration windows${c.files.length ? ` from ${c.files.map((f) => path.basename(f)).join(", ")}` : ""}`;
    const calibration = { windows: c.windows, docs: c.docs, label: calLabel, firstDoc: c.firstDoc };
    if (spec.windows !== undefined) {
      const V = this.current.config.vocab_size;
      const w = typeof spec.windows === "string" ? loadWindows(spec.windows, { vocabSize: V }).windows : spec.windows;
      return findLeakage({ calibration, evaluation: { ids: w.flat(), docs: null, label: typeof spec.windows === "string" ? path.basename(spec.windows) : "given windows" } });
    }
    if (spec.text === undefined && spec.file === undefined) return null;
    const e = evaluationText(spec);
    const ids = this.tokenizer ? this.evalIds(e.text) : null;
    return findLeakage({ calibration, evaluation: { ids, docs: e.docs, label: e.source, firstDoc: e.firstDoc } });
  }

  /**
   * Leakage check for a loaded pruned model without a calibration in this session: its pruning.json records
   * the calibration (files with SHA-256, story range, seed, stream, window count and length). When the
   * evaluation file is one of the calibration files, the windows are drawn again from the evaluation file
   * itself (only the file the user named is read) and compared; with several calibration files only the
   * shared file is reported.
   */
  private recordedLeakage(spec: PplSpec): LeakageReport | null {
    if (spec.file === undefined || !this.tokenizer) return null;
    const dir = fs.statSync(this.path).isDirectory() ? this.path : path.dirname(this.path);
    const file = path.join(dir, "pruning.json");
    if (!fs.existsSync(file)) return null;
    let cal: { provenance?: WindowProvenance | null; stories?: string | null; source?: string } | null;
    try {
      cal = (JSON.parse(fs.readFileSync(file, "utf8")) as { calibration?: typeof cal }).calibration ?? null;
    } catch {
      return null; // a damaged record is not this check's business; loading reports the model's own files
    }
    const prov = cal?.provenance;
    if (!prov || !Array.isArray(prov.files) || prov.files.length === 0) return null;
    const sha = sha256File(spec.file);
    const same = prov.files.find((f) => f.sha256 === sha);
    if (!same) return null;
    const e = evaluationText(spec);
    const label = `the calibration recorded in ${path.basename(dir)}/pruning.json (${prov.samples} windows, seed ${prov.seed}${cal!.stories ? `, stories ${cal!.stories}` : ""})`;
    if (prov.files.length > 1) {
      const message = `calibration text overlaps the evaluation text (${label} vs ${e.source}): the evaluation file ${path.basename(spec.file)} is one of the calibration files (SHA-256 ${sha.slice(0, 12)}…). Perplexity on text the scores were computed from is optimistic; evaluate on held-out text.`;
      return { windows: null, windowRun: 0, documents: [], lines: 0, message };
    }
    const { docs, firstDoc } = readCalibrationDocuments({ files: spec.file, stories: cal!.stories ?? undefined });
    const set = calibrationWindows({ docs, tokenizer: this.tokenizer, samples: prov.samples, seqLen: prov.seqLen, seed: prov.seed, stream: prov.stream, mode: prov.mode, files: [spec.file] });
    const ids = this.evalIds(e.text);
    return findLeakage({ calibration: { windows: set.windows, docs, label, firstDoc }, evaluation: { ids, docs: e.docs, label: e.source, firstDoc: e.firstDoc } });
  }

  private async pplOf(spec: PplSpec, run: RunOptions): Promise<PplRecord> {
    checkPplSpec(spec);
    const batchOf = (seqLen: number) => spec.batchSize ?? defaultPplBatch(this.current.config, seqLen, this.backend, this.current.weightsIn);
    if (spec.windows !== undefined) {
      const V = this.current.config.vocab_size;
      const windows = typeof spec.windows === "string" ? loadWindows(spec.windows, { vocabSize: V }).windows : validateWindows(spec.windows, { vocabSize: V, source: "ppl windows" });
      if (spec.seqLen !== undefined && windows[0].length !== spec.seqLen) {
        throw new UsageError(`ppl: seq len ${spec.seqLen} does not match the given windows (${windows[0].length} tokens each)`);
      }
      checkContext(windows[0].length, this.current.config.max_position_embeddings, "perplexity", spec);
      const batchSize = batchOf(windows[0].length);
      checkPassMemory(this.current.config, "forward", Math.min(batchSize, windows.length), windows[0].length, "perplexity", spec, undefined, undefined, this.current.weightsIn);
      const r = await perplexity(this.scorer(), windows, { ...run, batchSize });
      return { ...r, source: typeof spec.windows === "string" ? spec.windows : `${windows.length} given windows`, protocol: "windows: as given" };
    }
    if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; evaluate perplexity on token windows instead`);
    const seqLen = spec.seqLen ?? 128;
    const { text, how, source } = evaluationText(spec);
    checkContext(seqLen, this.current.config.max_position_embeddings, "perplexity", spec);
    const batchSize = batchOf(seqLen);
    checkPassMemory(this.current.config, "forward", batchSize, seqLen, "perplexity", spec, undefined, undefined, this.current.weightsIn);
    if (text.trim() === "") throw new DataError("perplexity text is empty");
    const r = await pplFromIds(this.scorer(), this.evalIds(text), seqLen, { ...run, batchSize });
    return { ...r, source, protocol: `${how}; one BOS, non-overlapping windows of ${seqLen}` };
  }

  /** Perplexity of the current model alone (same protocol as evaluate, not recorded in pruning.json). */
  async perplexity(spec: PplSpec, run: RunOptions = {}): Promise<PplRecord> {
    this.alive();
    return this.pplOf(spec, run);
  }

  /**
   * Perplexity (docs/method.md, "Perplexity"; protocol and seq len reported) and zero-shot tasks on the current model. The
   * result is recorded and written into pruning.json by save().
   */
  async evaluate(opts: EvaluateOptions): Promise<EvaluationTable> {
    this.alive();
    if (!opts.ppl && !opts.tasks) throw new UsageError("evaluate: give ppl and/or tasks");
    const run: RunOptions = { onProgress: opts.onProgress, signal: opts.signal };
    const ppl = opts.ppl ? await this.pplOf(opts.ppl, run) : null;
    const leakage = opts.ppl ? this.leakage(opts.ppl) : null;
    const warnings = leakage?.message ? [leakage.message] : [];
    this.warnings_.push(...warnings);
    let tasks: EvaluationResult | null = null;
    if (opts.tasks) {
      if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; zero-shot tasks need one`);
      tasks = await evaluateTasks(modelScorer(this.current), this.tokenizer, {
        tasks: opts.tasks,
        limit: opts.limit,
        dataDir: opts.dataDir,
        bos: opts.bos,
        logSamples: opts.logSamples,
        maxLength: opts.maxLength ?? this.current.config.max_position_embeddings,
        ...run,
      });
    }
    const params = paramCounts(this.current.config).total;
    const table = evaluationTable({ ppl, tasks, params, steps: this.history_.length, prior: priorPruningSteps(this.lineage), warnings });
    this.evaluations.push({
      time: new Date().toISOString(),
      step: this.history_.length,
      params,
      ppl,
      tasks: tasks ? tasks.tasks.map((t) => ({ task: t.task, n: t.n, metrics: { ...t.metrics } as Record<string, number | null> })) : [],
      average: tasks ? tasks.average : null,
      zeroShot: tasks ? { bos: tasks.settings.bos, maxLength: tasks.settings.maxLength, limit: tasks.settings.limit, averagedTasks: tasks.averagedTasks } : null,
      ...(warnings.length ? { warnings } : {}),
    });
    return withRaw(table, { ppl, tasks, leakage });
  }

  /** Continue `prompt` with the current model; returns the new text only. */
  generate(prompt: string, opts: { maxNewTokens?: number; temperature?: number; topK?: number; seed?: number; stopAtEos?: boolean } = {}): string {
    this.alive();
    if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; use model.generate with token ids`);
    const ids = this.tokenizer.encode(prompt, { addBos: true });
    const out = this.current.generate(ids, { maxNewTokens: opts.maxNewTokens ?? 64, temperature: opts.temperature, topK: opts.topK, seed: opts.seed, stopAtEos: opts.stopAtEos });
    return this.tokenizer.decode(out, { skipSpecialTokens: true });
  }

  // ------------------------------------------------------------------ recovery

  /**
   * Recovery fine-tuning of the current model (src/train/recover.ts): LoRA (default r 8, α 16, dropout 0.05)
   * or full training; loss "ce" on `data`, or "kd"/"mix" against this session's teacher cache (the original
   * model on the calibration windows, which are then the data), or against another model given as
   * `teacher` (a path; its predictions on `data` are cached first). The trained model, LoRA merged, becomes the
   * current model; earlier pruning steps can no longer be undone.
   */
  async recover(opts: SessionRecoverOptions): Promise<RecoverResult & RecoverData> {
    this.alive();
    const res = await recoverWithData(this.current, this.tokenizer, this.teacher, opts);
    this.weights.adoptRecovered(res.model);
    this.recoveries.push({ time: new Date().toISOString(), data: res.source, steps: res.steps, loss: res.loss, ...(opts.teacher !== undefined ? { teacher: opts.teacher } : {}), lora: res.adapters ? res.adapters.config : null, finalLoss: res.losses.length ? res.losses[res.losses.length - 1] : null });
    this.lastRecovery = {
      format: "sdmprune-recovery",
      version: 1,
      base: this.files.path,
      data: res.source,
      windows: res.windows,
      seqLen: res.seqLen,
      steps: res.steps,
      lora: res.adapters ? res.adapters.config : null,
      loss: res.loss,
      teacher: opts.teacher ?? null,
      losses: res.losses,
    };
    // scores were computed for the pre-recovery weights
    this.acc = null;
    return res;
  }

  // ------------------------------------------------------------------ saving

  /** What pruning.json holds (also useful on its own). */
  pruningRecord(): Record<string, unknown> {
    this.alive();
    const c = this.calib;
    return {
      format: "sdmprune-pruning",
      version: 1,
      source: { path: this.path, format: this.files.format },
      original: { intermediate_sizes: intermediateSizes(this.original.config), params: paramCounts(this.original.config) },
      current: { intermediate_sizes: intermediateSizes(this.current.config), params: paramCounts(this.current.config) },
      criterion: this.acc ? this.acc.criterion : null,
      settings: this.acc ? this.acc.settings : null,
      samples: this.acc ? this.acc.samples : 0,
      calibration: c
        ? {
            windows: c.windows.length,
            seqLen: c.windows[0].length,
            source: c.source,
            seed: c.provenance ? c.provenance.seed : null,
            files: c.provenance ? c.provenance.files : [],
            stories: c.stories,
            provenance: c.provenance,
            teacherTopk: c.teacher ? c.teacher.topk : null,
          }
        : null,
      keptChannels: this.history_.originalIndices(),
      keptChannelsNumbering: "original model (0-based), ascending",
      evaluations: this.evaluations,
      history: this.history_.toJSON(),
      recoveries: this.recoveries,
    };
  }

  /** Save weights (hf or gguf) plus pruning.json (and recovery.json after recover()); refuses a non-empty dir unless force; no partial output. */
  async save(dir: string, opts: SaveOptions = {}): Promise<string[]> {
    this.alive();
    const format = opts.format ?? "hf";
    if (format !== "hf" && format !== "gguf") throw new UsageError(`save: format must be "hf" or "gguf", got ${JSON.stringify(format)}`);
    const record = this.pruningRecord();
    const widths = intermediateSizes(this.current.config);
    const padded = opts.padMlp === true && widths.some((w) => w !== widths[0]);
    if (padded) record.saved = { padMlp: true, intermediate_size: Math.max(...widths), note: "every layer padded with zero channels after its kept ones (same outputs)" };
    const kind = this.history_.length > 0 ? "prune" : this.weights.recovered ? "recover" : "save";
    // A recovered model's step record is its recovery.json (the CLI's `recover` writes the same files)
    const recovery = kind === "recover" ? this.lastRecovery : null;
    const provenance = provenanceFile(dir, { kind, record: recovery ?? record }, this.lineage);
    const extraFiles: Record<string, string | object> = { "pruning.json": record, [PROVENANCE_FILE]: provenance };
    if (recovery) extraFiles["recovery.json"] = recovery;
    if (!padded) return saveModel(dir, this.current, this.tokenizer, { format, force: opts.force, dtype: opts.dtype, extraFiles });
    const { config, tensors } = padMlpWidths(this.current.config, this.current.toTensors({ lazy: true }));
    return writeModelFiles(dir, { config, tensors, tokenizer: this.tokenizer }, { format, force: opts.force, dtype: opts.dtype, extraFiles });
  }

  /** Release every tensor the session holds. */
  dispose(): void {
    if (this.disposed) return;
    this.weights.dispose();
    this.calib = null;
    this.acc = null;
    this.disposed = true;
  }
}

