import * as tf from "@tensorflow/tfjs";
import * as fs from "node:fs";
import * as path from "node:path";
import { joinDocs, readText, selectStories, splitTinyStories, storyRange, TINYSTORIES_SEPARATOR, wikitextText } from "./data/text";
import { calibrationWindows, loadWindows, saveWindows, validateWindows, type WindowProvenance } from "./data/windows";
import { initEngine, type BackendName } from "./engine";
import { CancelledError, DataError, FormatError, UsageError } from "./errors";
import { evaluateTasks, type EvaluationResult } from "./eval/harness";
import { modelScorer } from "./eval/model-scorer";
import { perplexity, pplFromText, type PerplexityResult } from "./eval/perplexity";
import { PruneHistory, type PruneStep } from "./history";
import { accumulate, CRITERIA, DATA_FREE, ImportanceScores, isAdditive, settingsFor, type AccumulateOptions, type Criterion } from "./importance";
import { writeFileAtomic } from "./io/atomic";
import { checkCalibration, checkContext, checkModelLoad, checkPassMemory, type ResourceOptions } from "./resources";
import { readModelConfig, type ModelFiles } from "./io/files";
import { intermediateSizes, paramCounts, withIntermediateSizes, type LlamaConfig, type ParamCounts } from "./model/config";
import type { LayerWeights, LlamaModel } from "./model/llama";
import { loadModel, saveModel } from "./model/load";
import { accounting, resolvePrune, selectChannels, sliceMlp, type PruneAccounting, type PruneSpec } from "./prune";
import { planSdmprune, STAGE1_KEEP_FRACTION, type RecipePlan } from "./recipe";
import { layerSensitivity, type SensitivityResult } from "./sensitivity";
import { distribution, keptSetAgreement } from "./stats";
import { Table, type Cell } from "./table";
import { TeacherCache, type TopK } from "./teacher";
import type { RunOptions, TextTokenizer } from "./types";
import { recoverWithData, type RecoverResult, type SessionRecoverOptions } from "./train/recover";

/**
 * The one stateful object of sdmprune: a model being pruned, its original (teacher) predictions on the
 * calibration windows, the running importance scores and the pruning history. Everything it does is a call
 * into the stateless modules (data, teacher, importance, prune, eval); surfaces (CLI, REPL, notebooks)
 * only talk to a Session.
 *
 * Weights: the model as loaded (`original`) is kept for the whole session; pruning builds new MLP tensors
 * by gathering from the current ones and shares every other tensor. `undo()` re-gathers from the original
 * with the channel map of the previous step, which reproduces that step's weights bit for bit (a gather
 * copies values; gathering twice equals gathering once with the composed indices).
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
}

export interface CalibrateOptions extends RunOptions, ResourceOptions {
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
}

export interface CalibrationInfo {
  windows: number;
  seqLen: number;
  source: "text" | "files" | "windows";
  provenance: WindowProvenance | null;
  topk: TopK | null;
  teacherBytes: number;
  teacherSeconds: number;
  /** Windows scored so far by the running accumulator (the next score() call starts here). */
  cursor: number;
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
  /** TinyStories story range for `file`, 1-based inclusive ("500-999"). */
  stories?: string;
  batchSize?: number;
}

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
  ppl: (PerplexityResult & { source: string }) | null;
  tasks: { task: string; n: number; metrics: Record<string, number | null> }[];
  average: number | null;
  /** Zero-shot settings that change the numbers (BOS, max_length, limit); null without tasks. */
  zeroShot?: { bos: boolean; maxLength: number | null; limit: number | null; averagedTasks: string[] } | null;
}

export type EvaluationTable = Table & { raw: { ppl: (PerplexityResult & { source: string }) | null; tasks: EvaluationResult | null } };
export type SensitivityTable = Table & { raw: SensitivityResult };
export type InfoTable = Table & { raw: SessionInfo };

export interface SessionInfo {
  path: string;
  format: "gguf" | "hf";
  backend: BackendName;
  params: ParamCounts;
  originalParams: ParamCounts;
  widths: number[];
  originalWidths: number[];
  calibration: CalibrationInfo | null;
  criterion: Criterion | null;
  scoredSamples: number;
  steps: number;
}

export interface SaveOptions {
  format?: "hf" | "gguf";
  force?: boolean;
  dtype?: "f32" | "f16";
}

interface CalibrationState {
  windows: number[][];
  provenance: WindowProvenance | null;
  source: "text" | "files" | "windows";
  /** Documents the windows were drawn from, for sdmprune's fresh windows (null for given windows). */
  docs: string[] | null;
  files: string[];
  /** Original-model predictions on `windows` (null when calibrate was asked for none). */
  teacher: TeacherCache | null;
  teacherSeconds: number;
  cursor: number;
}

function withRaw<R>(t: Table, raw: R): Table & { raw: R } {
  return Object.assign(t, { raw });
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function defaultTopk(vocab: number): TopK {
  return vocab <= 4096 ? "full" : 64;
}

const MLP_KEYS = ["gate_proj", "up_proj", "down_proj"] as const;

export class Session {
  private current: LlamaModel;
  private readonly history_: PruneHistory;
  private calib: CalibrationState | null = null;
  private acc: ImportanceScores | null = null;
  /** Accumulator before each pruning step (restored by undo). */
  private readonly accStack: (ImportanceScores | null)[] = [];
  private readonly evaluations: EvaluationRecord[] = [];
  private disposed = false;
  /** Non-MLP tensors of a recovered model (recover()); MLP tensors are released like pruned ones. */
  private recoveredOwned: tf.Tensor[] = [];

  private constructor(
    readonly path: string,
    readonly backend: BackendName,
    /** The model as loaded; never modified. Owns every tensor the current model shares with it. */
    private readonly original: LlamaModel,
    readonly tokenizer: TextTokenizer | null,
    readonly files: Omit<ModelFiles, "tensors">,
  ) {
    this.current = original;
    this.history_ = new PruneHistory(intermediateSizes(original.config));
  }

  /** Load a .gguf file or a Hugging Face directory (initialises the tensor backend first). */
  static async load(modelPath: string, opts: LoadOptions = {}): Promise<Session> {
    const backend = await initEngine(opts.backend);
    checkModelLoad(readModelConfig(modelPath), backend, modelPath, opts);
    const { model, tokenizer, files } = await loadModel(modelPath);
    return new Session(files.path, backend, model, tokenizer, files);
  }

  /** Wrap an in-memory model (tests, notebooks). The session takes ownership of the model's tensors. */
  static fromModel(model: LlamaModel, tokenizer: TextTokenizer | null = null, source = "(in memory)"): Session {
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

  /** The current (possibly pruned) model. Do not dispose it; the session owns it. */
  get model(): LlamaModel {
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
      cursor: c.cursor,
    };
  }

  info(): InfoTable {
    this.alive();
    const widths = intermediateSizes(this.current.config);
    const originalWidths = intermediateSizes(this.original.config);
    const raw: SessionInfo = {
      path: this.path,
      format: this.files.format,
      backend: this.backend,
      params: paramCounts(this.current.config),
      originalParams: paramCounts(this.original.config),
      widths,
      originalWidths,
      calibration: this.calibrationInfo(),
      criterion: this.acc ? this.acc.criterion : null,
      scoredSamples: this.acc ? this.acc.samples : 0,
      steps: this.history_.length,
    };
    const p = raw.params;
    const o = raw.originalParams;
    const c = raw.calibration;
    const rows: Cell[][] = [
      ["model", `${raw.path} (${raw.format})`],
      ["backend", raw.backend],
      ["params", `${p.total.toLocaleString("en-US")} of ${o.total.toLocaleString("en-US")} (${((100 * (o.total - p.total)) / o.total).toFixed(2)} % removed)`],
      ["  embeddings / lm_head", `${p.embeddings.toLocaleString("en-US")} / ${p.lm_head.toLocaleString("en-US")}${this.current.config.tie_word_embeddings ? " (tied)" : ""}`],
      ["  attention / MLP / norms", `${p.attention.toLocaleString("en-US")} / ${p.mlp.toLocaleString("en-US")} / ${p.norms.toLocaleString("en-US")}`],
      ["MLP widths now", widths.join(", ")],
      ["MLP widths original", originalWidths.join(", ")],
      [
        "calibration",
        c
          ? `${c.windows} windows × ${c.seqLen} tokens (${c.source}${c.provenance ? `, seed ${c.provenance.seed}, ${c.provenance.mode}` : ""}); teacher top-k ${c.topk}, ${(c.teacherBytes / 2 ** 20).toFixed(1)} MiB`
          : "none (call calibrate)",
      ],
      ["scores", this.acc ? `${this.acc.criterion}, ${this.acc.samples} samples, settings ${JSON.stringify(this.acc.settings)}` : "none"],
      ["pruning steps", raw.steps],
    ];
    return withRaw(new Table(["field", "value"], rows, { title: "Session" }), raw);
  }

  // ------------------------------------------------------------------ calibration

  private readSource(opts: { text?: string; files?: string | string[]; stories?: string }): { docs: string[]; files: string[]; source: "text" | "files" } {
    if (opts.text !== undefined && opts.files !== undefined) throw new UsageError("give text or files, not both");
    let docs: string[];
    let files: string[] = [];
    let source: "text" | "files";
    const split = (t: string): string[] => (t.includes(TINYSTORIES_SEPARATOR) ? splitTinyStories(t) : [t]);
    if (opts.text !== undefined) {
      if (typeof opts.text !== "string" || opts.text.trim() === "") throw new DataError("calibration text is empty");
      docs = split(opts.text);
      source = "text";
    } else {
      files = (Array.isArray(opts.files) ? opts.files : [opts.files as string]).map((f) => path.resolve(f));
      if (files.length === 0) throw new UsageError("files: expected at least one file");
      docs = files.flatMap((f) => split(readText(f)));
      source = "files";
    }
    if (opts.stories !== undefined) {
      const r = storyRange(opts.stories);
      docs = selectStories(docs, r.from, r.to);
    }
    docs = docs.filter((d) => d.trim() !== "");
    if (docs.length === 0) throw new DataError("calibration text is empty (no non-blank documents)");
    return { docs, files, source };
  }

  /**
   * Build calibration windows (seeded; or take given windows) and the teacher cache from the ORIGINAL model
   * (also after pruning: the original weights are kept). Replaces any previous calibration and starts a new
   * score accumulator (`scoresReset` says whether scores were dropped).
   */
  async calibrate(opts: CalibrateOptions): Promise<CalibrationInfo & { scoresReset: boolean; table(): Table }> {
    this.alive();
    const given = (["text", "files", "windows"] as const).filter((k) => opts[k] !== undefined);
    if (given.length !== 1) throw new UsageError(`calibrate: give exactly one of text, files, windows (got ${given.length ? given.join(", ") : "none"})`);
    const V = this.original.config.vocab_size;
    let windows: number[][];
    let provenance: WindowProvenance | null = null;
    let docs: string[] | null = null;
    let files: string[] = [];
    let source: CalibrationState["source"];
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
      checkCalibration(this.original.config, windows.length, windows[0]?.length ?? 0, opts.teacher === false ? null : (opts.topk ?? defaultTopk(V)), opts);
    } else {
      if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; calibrate with token windows instead of text`);
      const src = this.readSource(opts);
      docs = src.docs;
      files = src.files;
      source = src.source;
      const seqLen = opts.seqLen ?? 128;
      if (!Number.isInteger(seqLen) || seqLen < 2) throw new UsageError(`seqLen must be an integer ≥ 2, got ${seqLen}`);
      checkCalibration(this.original.config, opts.samples ?? 32, seqLen, opts.teacher === false ? null : (opts.topk ?? defaultTopk(V)), opts);
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
    const topk = opts.topk ?? defaultTopk(V);
    const t0 = Date.now();
    const teacher = opts.teacher === false ? null : await TeacherCache.build(this.original, windows, { topk }, opts);
    this.original.disposeCaches();
    this.calib = { windows, provenance, source, docs, files, teacher, teacherSeconds: (Date.now() - t0) / 1000, cursor: 0 };
    // New windows start a new accumulator: continuing would silently count windows twice if the same set came back.
    const scoresReset = this.acc !== null;
    this.acc = null;
    const info = this.calibrationInfo()!;
    return {
      ...info,
      scoresReset,
      table: () =>
        new Table(
          ["field", "value"],
          [
            ["windows", info.windows],
            ["seq len", info.seqLen],
            ["source", info.source],
            ["seed", provenance ? provenance.seed : null],
            ["mode", provenance ? provenance.mode : null],
            ["files", files.length ? files.map((f) => path.basename(f)).join(", ") : null],
            ["teacher top-k", info.topk === null ? "none" : String(info.topk)],
            ["teacher cache MiB", info.teacherBytes / 2 ** 20],
            ["teacher seconds", info.teacherSeconds],
          ],
          { title: "Calibration", digits: 2 },
        ),
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
    const accOpts: AccumulateOptions = { criterion, alpha, temperature, seed, batchWindows: opts.batchWindows, onProgress: opts.onProgress, signal: opts.signal };
    const settings = settingsFor(accOpts, seqLen, teacher); // validates alpha/temperature before any work

    // Does the running accumulator continue?
    let prev = this.acc;
    let why: string | null = null;
    if (prev) {
      if (prev.criterion !== criterion) why = `criterion changed from ${prev.criterion} to ${criterion}`;
      else if (!additive) why = `criterion ${criterion} is computed in one call`;
      else if (JSON.stringify(prev.settings) !== JSON.stringify(settings)) why = `settings changed from ${JSON.stringify(prev.settings)} to ${JSON.stringify(settings)}`;
    }
    const started = !prev || why !== null;
    const message = !prev
      ? `started a new ${criterion} accumulator`
      : why
        ? `started a new accumulator (${why}); the previous ${prev.criterion} scores (${prev.samples} samples) were replaced`
        : `continued the ${criterion} accumulator`;
    if (started) prev = null;
    const from = started || !additive ? 0 : c ? c.cursor : 0;
    let count: number | undefined;
    if (!dataFree) {
      const max = c!.windows.length - from;
      if (max <= 0) {
        throw new UsageError(`all ${c!.windows.length} calibration windows are already scored (${prev?.samples ?? 0} samples); calibrate() with more samples, or mergeScores() from another run`);
      }
      count = opts.samples ?? max;
      if (!Number.isInteger(count) || count < 1 || count > max) {
        throw new UsageError(`samples must be an integer in [1, ${max}] (${max} calibration windows not yet scored), got ${count}`);
      }
    }
    // Work on a copy so a failure leaves the running accumulator untouched.
    const work = prev ? prev.reindex(prev.sums.map((s) => range(s.length))) : ImportanceScores.create(this.current, criterion, settings);
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
      result = await accumulate(this.current, c ? c.windows : [], teacher, work, { ...accOpts, from, count });
    } catch (e) {
      if (e instanceof CancelledError && additive && work.samples > prevSamples) {
        // the whole samples finished before the cancel are kept
        this.acc = work;
        if (c) c.cursor = from + (work.samples - prevSamples);
      }
      throw e;
    }
    this.acc = result;
    if (c && !dataFree) c.cursor = additive ? from + (count as number) : c.windows.length;
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
      table: () =>
        new Table(
          ["field", "value"],
          [
            ["criterion", criterion],
            ["settings", JSON.stringify(recorded)],
            ["samples (total)", samples],
            ["samples added", added],
            ["accumulator", message],
            ["kept-set overlap at 20 % removal vs before (mean over layers)", stability ? stability.reduce((x, y) => x + y, 0) / stability.length : null],
            ["seconds", seconds],
          ],
          { title: "Importance scores" },
        ),
    };
  }

  /** Write the running scores as JSON ({"criterion", "samples", "settings", "scores", ...}), atomically. */
  async saveScores(file: string): Promise<void> {
    this.alive();
    if (!this.acc) throw new UsageError("no scores to save (call score first)");
    const body = JSON.stringify(this.acc.toJSON());
    await writeFileAtomic(file, (tmp) => fs.writeFileSync(tmp, body));
  }

  private readScores(file: string): ImportanceScores {
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
      if ((e as { code?: string }).code) throw new DataError(`cannot read scores file ${file}: ${(e as Error).message}`);
      throw new FormatError(`scores file ${file} is not valid JSON: ${(e as Error).message}`);
    }
    const s = ImportanceScores.fromJSON(raw, file);
    s.checkModel(this.current);
    return s;
  }

  /** Replace the running scores by a scores file (must belong to the current model). */
  async loadScores(file: string): Promise<ImportanceScores> {
    this.alive();
    this.acc = this.readScores(file);
    if (this.calib) this.calib.cursor = 0;
    return this.acc;
  }

  /**
   * Add a scores file to the running scores (sum of accumulators and sample counts). Refuses another model,
   * criterion or settings. Without running scores this is loadScores.
   */
  async mergeScores(file: string): Promise<ImportanceScores> {
    this.alive();
    const other = this.readScores(file);
    this.acc = this.acc ? this.acc.merge(other) : other;
    return this.acc;
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
    const s = this.acc.scores();
    const rows = s.map((v, l) => {
      const d = distribution(v);
      return [l, v.length, d.min, d.q1, d.median, d.q3, d.max, d.mean];
    });
    return new Table(["layer", "channels", "min", "q1", "median", "q3", "max", "mean"], rows, { title: `${this.acc.criterion} scores (${this.acc.samples} samples)` });
  }

  // ------------------------------------------------------------------ pruning

  private mlpOf(model: LlamaModel, l: number): Pick<LayerWeights, "gate_proj" | "up_proj" | "down_proj"> {
    const lw = model.weights.layers[l];
    return { gate_proj: lw.gate_proj, up_proj: lw.up_proj, down_proj: lw.down_proj };
  }

  /** Dispose MLP tensors of layer l of the current model unless the original owns them. */
  private releaseMlp(lw: Pick<LayerWeights, "gate_proj" | "up_proj" | "down_proj">, l: number): void {
    const o = this.original.weights.layers[l];
    for (const k of MLP_KEYS) if (lw[k] !== o[k]) lw[k].dispose();
  }

  /** Swap in new MLP tensors for some layers (null = keep); disposes replaced non-original tensors. */
  private replaceMlp(next: (Pick<LayerWeights, "gate_proj" | "up_proj" | "down_proj"> | null)[]): void {
    const old = this.current;
    const w = old.weights;
    const layers = w.layers.map((lw, l) => (next[l] ? { ...lw, ...next[l]! } : lw));
    const widths = layers.map((lw) => lw.gate_proj.shape[1]);
    const model = old.withWeights({ embed_tokens: w.embed_tokens, layers, norm: w.norm, lm_head: w.lm_head }, withIntermediateSizes(old.config, widths));
    next.forEach((n, l) => {
      if (n) this.releaseMlp(this.mlpOf(old, l), l);
    });
    // cached constants (RoPE tables, masks, transposed tied head) belong to the model object being replaced
    old.disposeCaches();
    this.current = model;
  }

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
    const plan = resolvePrune(opts, before.hidden_size, intermediateSizes(this.original.config), widths);
    const kept = selectChannels(this.acc.scores(), plan, widths);
    const sliced = kept.map((idx, l) => (idx ? sliceMlp(this.current.weights.layers[l], idx) : null));
    const keptFull = kept.map((idx, l) => idx ?? range(widths[l]));
    const nextAcc = this.acc.reindex(keptFull);
    this.replaceMlp(sliced);
    const after = this.current.config;
    const acct = accounting(this.original.config, before, after);
    this.accStack.push(this.acc);
    this.acc = nextAcc;
    const step = this.history_.push({
      rule: plan.rule,
      criterion: this.accStack[this.accStack.length - 1]!.criterion,
      settings: { ...this.accStack[this.accStack.length - 1]!.settings, calibration: this.calib?.provenance ?? null },
      samples: this.accStack[this.accStack.length - 1]!.samples,
      layers: plan.layers,
      allocation: plan.allocation,
      widthsBefore: widths,
      widthsAfter: intermediateSizes(after),
      kept,
      accounting: acct,
      label: opts.label,
    });
    return pruneReport(step);
  }

  /** Undo the last pruning step; weights are restored bit for bit and the scores as they were. */
  undo(): PruneStep {
    this.alive();
    if (this.recoveredOwned.length > 0) throw new UsageError("undo() is not available after recover(): the recovered weights cannot be re-derived from the original; reload the model to start over");
    const step = this.history_.pop();
    if (!step) throw new UsageError("nothing to undo: no pruning steps");
    const maps = this.history_.originalIndices();
    const origWidths = intermediateSizes(this.original.config);
    const next = step.kept.map((k, l) => {
      if (!k) return null;
      if (maps[l].length === origWidths[l]) return this.mlpOf(this.original, l);
      return sliceMlp(this.original.weights.layers[l], maps[l]);
    });
    this.replaceMlp(next);
    this.acc = this.accStack.pop() ?? null;
    return step;
  }

  /**
   * The two-stage SDMPrune recipe (METHOD.md §1): stage 1 removes 2.5 % of each layer's channels by
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
    let src: { docs: string[]; files: string[] };
    if (opts.text !== undefined || opts.files !== undefined) src = this.readSource(opts);
    else if (this.calib?.docs) src = { docs: this.calib.docs, files: this.calib.files };
    else throw new UsageError("sdmprune draws fresh windows for each stage: give text or files (or calibrate() from text first)");
    const samples = opts.samples ?? this.calib?.windows.length ?? 32;
    const seqLen = opts.seqLen ?? (this.calib ? this.calib.windows[0].length : 128);
    const seed = opts.seed ?? this.calib?.provenance?.seed ?? 0;
    checkCalibration(this.original.config, samples, seqLen, opts.topk ?? defaultTopk(this.original.config.vocab_size), opts, "sdmprune", samples);
    const draw = (stream: string) => calibrationWindows({ docs: src.docs, tokenizer: this.tokenizer!, samples, seqLen, seed, stream, files: src.files });
    const w1 = draw("sdmprune/stage1");
    const w2 = draw("sdmprune/stage2");
    const topk = opts.topk ?? defaultTopk(this.original.config.vocab_size);
    const phase = (name: string) => (opts.onProgress ? { ...opts, onProgress: (e: Parameters<NonNullable<RunOptions["onProgress"]>>[0]) => opts.onProgress!({ ...e, phase: `${name}:${e.phase}` }) } : opts);

    // Teacher for stage 2 = the original model, cached before anything is pruned.
    const t0 = Date.now();
    const teacher2 = await TeacherCache.build(this.original, w2.windows, { topk }, phase("stage2"));
    const teacherSeconds = (Date.now() - t0) / 1000;
    this.original.disposeCaches();
    const savedCalib = this.calib;
    const savedAcc = this.acc;
    try {
      // Stage 1: ce-taylor, no teacher.
      this.calib = { windows: w1.windows, provenance: w1.provenance, source: src.files.length ? "files" : "text", docs: src.docs, files: src.files, teacher: null, teacherSeconds: 0, cursor: 0 };
      this.acc = null;
      await this.score({ criterion: "ce-taylor", ...phase("stage1") });
      const stage1 = this.prune({ keep: plan.stage1Keep, label: `sdmprune stage 1 (ce-taylor, keep ${STAGE1_KEEP_FRACTION} of width)` });
      // Stage 2: sd-taylor on the stage-1 model against the original teacher, fresh windows.
      this.calib = { windows: w2.windows, provenance: w2.provenance, source: src.files.length ? "files" : "text", docs: src.docs, files: src.files, teacher: teacher2, teacherSeconds, cursor: 0 };
      this.acc = null;
      await this.score({ criterion: "sd-taylor", alpha: plan.alpha, temperature: plan.temperature, ...phase("stage2") });
      const stage2 = this.prune({ keep: plan.finalKeep, label: `sdmprune stage 2 (sd-taylor α ${plan.alpha}, τ ${plan.temperature}; ${plan.settingsSource})` });
      return {
        plan,
        stage1,
        stage2,
        provenance: { stage1: w1.provenance, stage2: w2.provenance },
        table: () => {
          const t = stage2.table();
          return new Table(
            ["stage", "criterion", "windows", "K (layer 0)", "params after", "% model removed", "% MLP removed"],
            [
              ["1", "ce-taylor", w1.windows.length, plan.stage1Keep[0], stage1.accounting.paramsAfter, 100 * stage1.accounting.totalParamsRemovedShare, 100 * stage1.accounting.mlpParamsRemovedShare],
              ["2", `sd-taylor (α ${plan.alpha}, τ ${plan.temperature})`, w2.windows.length, plan.finalKeep[0], stage2.accounting.paramsAfter, 100 * stage2.accounting.totalParamsRemovedShare, 100 * stage2.accounting.mlpParamsRemovedShare],
            ],
            {
              title: "SDMPrune (two stages)",
              digits: 2,
              notes: [
                `target ${plan.target ?? "–"}; α/τ from ${plan.settingsSource}; seed ${seed}, ${samples} windows × ${seqLen} tokens per stage (streams sdmprune/stage1, sdmprune/stage2)`,
                `teacher = original model (top-k ${topk}); stage 1 keeps floor(${STAGE1_KEEP_FRACTION}·width) per layer`,
                ...t.notes,
              ],
            },
          );
        },
      };
    } catch (e) {
      // leave the session as it was: undo any stage that completed, restore calibration and scores
      while (this.history_.length > 0) this.undo();
      this.calib = savedCalib;
      this.acc = savedAcc;
      throw e;
    }
  }

  // ------------------------------------------------------------------ evaluation

  private scorer() {
    const model = this.current;
    return (seqs: number[][]) => model.tokenLogProbs(seqs);
  }

  private async pplOf(spec: PplSpec, run: RunOptions): Promise<PerplexityResult & { source: string }> {
    const given = (["text", "file", "windows"] as const).filter((k) => spec[k] !== undefined);
    if (given.length !== 1) throw new UsageError(`ppl: give exactly one of text, file, windows (got ${given.length ? given.join(", ") : "none"})`);
    const seqLen = spec.seqLen ?? 128;
    const popts = { ...run, batchSize: spec.batchSize };
    if (spec.windows !== undefined) {
      const V = this.current.config.vocab_size;
      const windows = typeof spec.windows === "string" ? loadWindows(spec.windows, { vocabSize: V }).windows : validateWindows(spec.windows, { vocabSize: V, source: "ppl windows" });
      checkContext(windows[0].length, this.current.config.max_position_embeddings, "perplexity", spec);
      checkPassMemory(this.current.config, "forward", Math.min(spec.batchSize ?? 4, windows.length), windows[0].length, "perplexity", spec);
      const r = await perplexity(this.scorer(), windows, popts);
      return { ...r, source: typeof spec.windows === "string" ? spec.windows : `${windows.length} given windows` };
    }
    if (!this.tokenizer) throw new DataError(`${this.path} has no tokenizer; evaluate perplexity on token windows instead`);
    let text: string;
    let source: string;
    if (spec.file !== undefined) {
      const f = spec.file;
      const raw = readText(f);
      if (/\.raw$/.test(f)) {
        text = wikitextText(f);
        source = `${path.basename(f)} (WikiText rows)`;
      } else if (raw.includes(TINYSTORIES_SEPARATOR)) {
        let stories = splitTinyStories(raw);
        if (spec.stories) {
          const r = storyRange(spec.stories);
          stories = selectStories(stories, r.from, r.to);
        }
        text = joinDocs(stories);
        source = `${path.basename(f)} (stories ${spec.stories ?? "all"})`;
      } else {
        text = raw;
        source = path.basename(f);
      }
    } else {
      text = spec.text as string;
      source = "text";
    }
    checkContext(seqLen, this.current.config.max_position_embeddings, "perplexity", spec);
    checkPassMemory(this.current.config, "forward", spec.batchSize ?? 4, seqLen, "perplexity", spec);
    const r = await pplFromText(this.scorer(), this.tokenizer, text, seqLen, popts);
    return { ...r, source };
  }

  /**
   * Perplexity (METHOD.md §10 protocol; seq len reported) and zero-shot tasks on the current model. The
   * result is recorded and written into pruning.json by save().
   */
  async evaluate(opts: EvaluateOptions): Promise<EvaluationTable> {
    this.alive();
    if (!opts.ppl && !opts.tasks) throw new UsageError("evaluate: give ppl and/or tasks");
    const run: RunOptions = { onProgress: opts.onProgress, signal: opts.signal };
    const ppl = opts.ppl ? await this.pplOf(opts.ppl, run) : null;
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
    const rows: Cell[][] = [];
    const notes: string[] = [];
    if (ppl) {
      rows.push([`ppl: ${ppl.source}`, `ppl@${ppl.seqLen}`, ppl.ppl, ppl.tokens, null]);
      notes.push(`perplexity: ${ppl.windows} non-overlapping windows of ${ppl.seqLen} tokens, ${ppl.tokens} predicted tokens (seq len ${ppl.seqLen})`);
    }
    if (tasks) {
      rows.push(...tasks.table.rows);
      notes.push(...tasks.table.notes);
    }
    const params = paramCounts(this.current.config).total;
    notes.push(`model: ${params.toLocaleString("en-US")} params after ${this.history_.length} pruning step(s)`);
    this.evaluations.push({
      time: new Date().toISOString(),
      step: this.history_.length,
      params,
      ppl,
      tasks: tasks ? tasks.tasks.map((t) => ({ task: t.task, n: t.n, metrics: { ...t.metrics } as Record<string, number | null> })) : [],
      average: tasks ? tasks.average : null,
      zeroShot: tasks ? { bos: tasks.settings.bos, maxLength: tasks.settings.maxLength, limit: tasks.settings.limit, averagedTasks: tasks.averagedTasks } : null,
    });
    return withRaw(new Table(["task", "metric", "value", "n", "stderr"], rows, { title: "Evaluation", notes }), { ppl, tasks });
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
   * model on the calibration windows, which are then the data). The trained model, LoRA merged, becomes the
   * current model; earlier pruning steps can no longer be undone.
   */
  async recover(opts: SessionRecoverOptions): Promise<RecoverResult & { source: string }> {
    this.alive();
    const res = await recoverWithData(this.current, this.tokenizer, this.teacher, opts);
    const old = this.current;
    if (old !== this.original) {
      old.weights.layers.forEach((lw, l) => this.releaseMlp(lw, l));
      old.disposeCaches();
    }
    for (const t of this.recoveredOwned) t.dispose();
    const w = res.model.weights;
    this.recoveredOwned = [w.embed_tokens, w.norm, ...(w.lm_head ? [w.lm_head] : []), ...w.layers.flatMap((lw) => [lw.input_layernorm, lw.q_proj, lw.k_proj, lw.v_proj, lw.o_proj, lw.post_attention_layernorm])];
    this.current = res.model;
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
            provenance: c.provenance,
            teacherTopk: c.teacher ? c.teacher.topk : null,
          }
        : null,
      keptChannels: this.history_.originalIndices(),
      keptChannelsNumbering: "original model (0-based), ascending",
      evaluations: this.evaluations,
      history: this.history_.toJSON(),
    };
  }

  /** Save weights (hf or gguf) plus pruning.json; refuses a non-empty dir unless force; no partial output. */
  async save(dir: string, opts: SaveOptions = {}): Promise<string[]> {
    this.alive();
    const format = opts.format ?? "hf";
    if (format !== "hf" && format !== "gguf") throw new UsageError(`save: format must be "hf" or "gguf", got ${JSON.stringify(format)}`);
    return saveModel(dir, this.current, this.tokenizer, { format, force: opts.force, dtype: opts.dtype, extraFiles: { "pruning.json": this.pruningRecord() } });
  }

  /** Release every tensor the session holds. */
  dispose(): void {
    if (this.disposed) return;
    if (this.current !== this.original) {
      this.current.weights.layers.forEach((lw, l) => this.releaseMlp(lw, l));
      this.current.disposeCaches();
    }
    for (const t of this.recoveredOwned) t.dispose();
    this.recoveredOwned = [];
    this.original.dispose();
    this.calib = null;
    this.acc = null;
    this.disposed = true;
  }
}

/** Fraction of the channels `a` keeps at keepFrac that `b` also keeps. */
function pruneReport(step: PruneStep): PruneReport {
  const a = step.accounting;
  return {
    step,
    accounting: a,
    widthsBefore: step.widthsBefore,
    widthsAfter: step.widthsAfter,
    table: () =>
      new Table(
        ["", "before", "after", "removed", "% of MLP", "% of model"],
        [
          ["MLP channels", a.channelsBefore, a.channelsAfter, a.channelsRemoved, 100 * a.stepMlpShare, null],
          ["parameters", a.paramsBefore, a.paramsAfter, a.paramsRemoved, 100 * a.stepMlpShare, 100 * a.stepTotalShare],
        ],
        {
          title: `Pruning step ${step.step}${step.label ? ` (${step.label})` : ""}: ${step.rule}`,
          digits: 2,
          notes: [
            `layers [${step.layers[0]}, ${step.layers[1]}), ${step.allocation}; criterion ${step.criterion ?? "–"} (${step.samples} samples)`,
            `widths after: ${step.widthsAfter.join(", ")}`,
            `cumulative vs original: ${(100 * a.mlpParamsRemovedShare).toFixed(2)} % of MLP params, ${(100 * a.totalParamsRemovedShare).toFixed(2)} % of all params (tied embedding counted once)`,
          ],
        },
      ),
  };
}
