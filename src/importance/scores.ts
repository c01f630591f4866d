import { FormatError, UsageError } from "../errors";
import type { LlamaModel } from "../model/llama";
import { fingerprintMismatch, modelFingerprint, type ModelFingerprint } from "./fingerprint";
import { CRITERIA, isAdditive, type Criterion, type ScoreSettings } from "./types";

export const SCORES_FORMAT = "sdmprune-scores";

/**
 * Per-layer, per-channel importance accumulators for one model, one criterion and one set of settings.
 *
 * `sums[l][i]` holds (float64):
 * - sd-taylor / ce-taylor: Σ_s mean_k |W_g⊙G_g + W_u⊙G_u + (W_d⊙G_d)ᵀ| over the accumulated samples;
 * - llm-pruner(-vector), wanda, magnitude, random: the final score (computed in one call).
 *
 * `scores()` normalisation (ranking-equivalent to the references): Taylor criteria return sums / samples
 * (the mean per-sample score; the SDMPrune reference reports 100 · samples times this, accumulated in
 * bf16); the others return the sums unchanged.
 */
export class ImportanceScores {
  private constructor(
    readonly criterion: Criterion,
    readonly settings: Readonly<ScoreSettings>,
    private fp: ModelFingerprint,
    private readonly sumsData: Float64Array[],
    private nSamples: number,
    private nAccumulations: number,
  ) {}

  /** An empty accumulator for `model`. */
  static create(model: LlamaModel, criterion: Criterion, settings: ScoreSettings): ImportanceScores {
    if (!CRITERIA.includes(criterion)) throw new UsageError(`unknown criterion "${criterion}", expected one of ${CRITERIA.join(", ")}`);
    const fp = modelFingerprint(model);
    return new ImportanceScores(criterion, normaliseSettings(settings), fp, fp.intermediate_sizes.map((I) => new Float64Array(I)), 0, 0);
  }

  get samples(): number {
    return this.nSamples;
  }
  /** Number of accumulate calls (and merged accumulators) that contributed. */
  get accumulations(): number {
    return this.nAccumulations;
  }
  get modelFingerprint(): ModelFingerprint {
    return this.fp;
  }
  /** Read-only views of the raw accumulators. */
  get sums(): readonly Float64Array[] {
    return this.sumsData;
  }
  get additive(): boolean {
    return isAdditive(this.criterion);
  }

  /** Throws UsageError unless these scores belong to `model` (same shapes, widths and weight hash). */
  checkModel(model: LlamaModel): void {
    const why = fingerprintMismatch(this.fp, modelFingerprint(model));
    if (why) throw new UsageError(`importance scores were computed on a different model (${why})`);
  }

  /** Throws UsageError unless more can be added with these settings. Used by accumulate before any work. */
  checkCompatible(criterion: Criterion, settings: ScoreSettings): void {
    if (criterion !== this.criterion) throw new UsageError(`scores were accumulated with criterion "${this.criterion}", not "${criterion}"`);
    const a = JSON.stringify(this.settings);
    const b = JSON.stringify(normaliseSettings(settings));
    if (a !== b) throw new UsageError(`scores were accumulated with settings ${a}, not ${b}`);
    if (!this.additive && this.nAccumulations > 0) {
      throw new UsageError(`criterion "${this.criterion}" is not additive over samples: compute it in one call (it was already computed)`);
    }
  }

  /** Adds one contribution (internal: used by accumulate). */
  add(perLayer: Float64Array[], samples: number): void {
    if (perLayer.length !== this.sumsData.length) throw new UsageError(`expected ${this.sumsData.length} layers, got ${perLayer.length}`);
    perLayer.forEach((v, l) => {
      const s = this.sumsData[l];
      if (v.length !== s.length) throw new UsageError(`layer ${l}: expected ${s.length} channels, got ${v.length}`);
    });
    perLayer.forEach((v, l) => {
      const s = this.sumsData[l];
      for (let i = 0; i < s.length; i++) s[i] += v[i];
    });
    this.nSamples += samples;
  }

  /** Marks the end of one accumulate call. */
  finishAccumulation(): void {
    this.nAccumulations++;
  }

  /** Per layer, per channel scores (see the class comment for the normalisation). */
  scores(): number[][] {
    if (this.nAccumulations === 0 && this.nSamples === 0) throw new UsageError(`no scores accumulated yet (criterion "${this.criterion}")`);
    const div = this.additive ? this.nSamples : 1;
    if (div === 0) throw new UsageError(`no samples accumulated yet (criterion "${this.criterion}")`);
    return this.sumsData.map((s) => Array.from(s, (v) => v / div));
  }

  /** An independent copy (e.g. to accumulate into without touching this one). */
  clone(): ImportanceScores {
    return new ImportanceScores(this.criterion, this.settings, cloneFp(this.fp), this.sumsData.map((s) => s.slice()), this.nSamples, this.nAccumulations);
  }

  /**
   * Sum of two accumulators (a new object; neither input changes). UsageError if criterion, settings or
   * model differ, or the criterion is not additive.
   */
  merge(other: ImportanceScores): ImportanceScores {
    if (other.criterion !== this.criterion) throw new UsageError(`cannot merge scores of criterion "${this.criterion}" with "${other.criterion}"`);
    if (!this.additive) throw new UsageError(`criterion "${this.criterion}" is not additive over samples and cannot be merged`);
    const a = JSON.stringify(this.settings);
    const b = JSON.stringify(other.settings);
    if (a !== b) throw new UsageError(`cannot merge scores with different settings: ${a} vs ${b}`);
    const why = fingerprintMismatch(this.fp, other.fp);
    if (why) throw new UsageError(`cannot merge scores of different models (${why})`);
    const sums = this.sumsData.map((s, l) => {
      const o = other.sumsData[l];
      const r = new Float64Array(s.length);
      for (let i = 0; i < s.length; i++) r[i] = s[i] + o[i];
      return r;
    });
    return new ImportanceScores(this.criterion, this.settings, cloneFp(this.fp), sums, this.nSamples + other.nSamples, this.nAccumulations + other.nAccumulations);
  }

  /**
   * Keep only surviving channels, in the given order (kept[l] = indices into the current layer l), so
   * scores follow the model through pruning. Returns a new object whose fingerprint has the new widths.
   */
  reindex(kept: number[][]): ImportanceScores {
    if (!Array.isArray(kept) || kept.length !== this.sumsData.length) {
      throw new UsageError(`reindex: expected kept indices for ${this.sumsData.length} layers, got ${Array.isArray(kept) ? kept.length : typeof kept}`);
    }
    const sums = kept.map((idx, l) => {
      const s = this.sumsData[l];
      const seen = new Set<number>();
      const r = new Float64Array(idx.length);
      idx.forEach((i, j) => {
        if (!Number.isInteger(i) || i < 0 || i >= s.length) throw new UsageError(`reindex: layer ${l} index ${i} is outside [0, ${s.length})`);
        if (seen.has(i)) throw new UsageError(`reindex: layer ${l} index ${i} appears twice`);
        seen.add(i);
        r[j] = s[i];
      });
      return r;
    });
    const fp = cloneFp(this.fp);
    fp.intermediate_sizes = kept.map((k) => k.length);
    return new ImportanceScores(this.criterion, this.settings, fp, sums, this.nSamples, this.nAccumulations);
  }

  toJSON(): {
    format: string;
    version: number;
    criterion: Criterion;
    samples: number;
    settings: ScoreSettings;
    scores: number[][];
    sums: number[][];
    accumulations: number;
    modelFingerprint: ModelFingerprint;
  } {
    let scores: number[][];
    try {
      scores = this.scores();
    } catch {
      scores = this.sumsData.map((s) => Array.from(s, () => 0));
    }
    return {
      format: SCORES_FORMAT,
      version: 1,
      criterion: this.criterion,
      samples: this.nSamples,
      settings: { ...this.settings },
      scores,
      sums: this.sumsData.map((s) => Array.from(s)),
      accumulations: this.nAccumulations,
      modelFingerprint: cloneFp(this.fp),
    };
  }

  /** Validates a parsed scores JSON; FormatError naming the field on any problem. */
  static fromJSON(raw: unknown, source = "scores"): ImportanceScores {
    const bad = (msg: string): never => {
      throw new FormatError(`${source}: ${msg}`);
    };
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) bad("expected a JSON object");
    const r = raw as Record<string, unknown>;
    if (r.format !== undefined && r.format !== SCORES_FORMAT) bad(`field "format" must be "${SCORES_FORMAT}", got ${JSON.stringify(r.format)}`);
    if (typeof r.criterion !== "string" || !CRITERIA.includes(r.criterion as Criterion)) {
      bad(`field "criterion" must be one of ${CRITERIA.join(", ")}, got ${JSON.stringify(r.criterion)}`);
    }
    const criterion = r.criterion as Criterion;
    const samples = r.samples;
    if (typeof samples !== "number" || !Number.isInteger(samples) || samples < 0) bad(`field "samples" must be a non-negative integer, got ${JSON.stringify(samples)}`);
    const accumulations = r.accumulations === undefined ? 1 : r.accumulations;
    if (typeof accumulations !== "number" || !Number.isInteger(accumulations) || accumulations < 0) bad(`field "accumulations" must be a non-negative integer`);
    const s = r.settings as Record<string, unknown>;
    if (typeof s !== "object" || s === null || Array.isArray(s)) bad(`field "settings" must be an object`);
    const numOrNull = (k: string, pred: (v: number) => boolean): number | null => {
      const v = s[k];
      if (v === undefined || v === null) return null;
      if (typeof v !== "number" || !pred(v)) bad(`field "settings.${k}" has an invalid value ${JSON.stringify(v)}`);
      return v as number;
    };
    const topkRaw = s.topk;
    if (!(topkRaw === undefined || topkRaw === null || topkRaw === "full" || (Number.isInteger(topkRaw) && (topkRaw as number) > 0))) {
      bad(`field "settings.topk" must be a positive integer, "full" or null, got ${JSON.stringify(topkRaw)}`);
    }
    const settings: ScoreSettings = {
      alpha: numOrNull("alpha", (v) => v >= 0 && v <= 1),
      temperature: numOrNull("temperature", (v) => v > 0),
      topk: (topkRaw ?? null) as ScoreSettings["topk"],
      seqLen: numOrNull("seqLen", (v) => Number.isInteger(v) && v >= 2),
      seed: numOrNull("seed", Number.isFinite),
    };
    const fpRaw = r.modelFingerprint as Record<string, unknown>;
    if (typeof fpRaw !== "object" || fpRaw === null) bad(`field "modelFingerprint" is missing`);
    for (const k of ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim"]) {
      if (!Number.isInteger(fpRaw[k]) || (fpRaw[k] as number) < 1) bad(`field "modelFingerprint.${k}" must be a positive integer, got ${JSON.stringify(fpRaw[k])}`);
    }
    if (typeof fpRaw.weightHash !== "string") bad(`field "modelFingerprint.weightHash" must be a string`);
    const L = fpRaw.num_hidden_layers as number;
    const widths = fpRaw.intermediate_sizes;
    if (!Array.isArray(widths) || widths.length !== L || widths.some((v) => !Number.isInteger(v) || v < 1)) {
      bad(`field "modelFingerprint.intermediate_sizes" must list ${L} positive widths`);
    }
    const fp = cloneFp(fpRaw as unknown as ModelFingerprint);
    const matrix = (field: string, required: boolean): Float64Array[] | null => {
      const m = r[field];
      if (m === undefined && !required) return null;
      if (!Array.isArray(m) || m.length !== L) bad(`field "${field}" must have ${L} layers, got ${Array.isArray(m) ? m.length : typeof m}`);
      return (m as unknown[]).map((row, l) => {
        if (!Array.isArray(row) || row.length !== fp.intermediate_sizes[l]) {
          bad(`field "${field}[${l}]" must have ${fp.intermediate_sizes[l]} channels, got ${Array.isArray(row) ? row.length : typeof row}`);
        }
        const out = new Float64Array(fp.intermediate_sizes[l]);
        (row as unknown[]).forEach((v, i) => {
          if (typeof v !== "number" || !Number.isFinite(v)) bad(`field "${field}[${l}][${i}]" must be a finite number, got ${JSON.stringify(v)}`);
          out[i] = v as number;
        });
        return out;
      });
    };
    const scores = matrix("scores", true) as Float64Array[];
    let sums = matrix("sums", false);
    if (!sums) {
      // a file with scores only (e.g. written by another tool): rebuild the accumulator from them
      const mul = isAdditive(criterion) ? (samples as number) : 1;
      sums = scores.map((row) => row.map((v) => v * mul));
    }
    return new ImportanceScores(criterion, normaliseSettings(settings), fp, sums, samples as number, accumulations as number);
  }
}

function normaliseSettings(s: ScoreSettings): ScoreSettings {
  // fixed key order, so JSON.stringify compares settings
  return { alpha: s.alpha ?? null, temperature: s.temperature ?? null, topk: s.topk ?? null, seqLen: s.seqLen ?? null, seed: s.seed ?? null };
}

function cloneFp(f: ModelFingerprint): ModelFingerprint {
  return { ...f, intermediate_sizes: f.intermediate_sizes.slice() };
}
