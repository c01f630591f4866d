import { FormatError, UsageError } from "../errors";
import type { WindowDraw } from "../data/windows";
import type { CausalLM } from "../model/causal-lm";
import { ExactSums } from "./exact-sum";
import { fingerprintMismatch, modelFingerprint, type ModelFingerprint } from "./fingerprint";
import { CRITERIA, isAdditive, type Criterion, type ScoreSettings } from "./types";

export const SCORES_FORMAT = "sdmprune-scores";
/**
 * Version 2 added the exact sums ("exactSums") and the identity of every summed window ("windows"), and
 * moved the calibration seed of sd-taylor/ce-taylor from "settings" to the windows' draw (see
 * docs/scores-format.md). Version 1 files are still read (for prune --scores or as a starting point) but
 * cannot be merged: they do not say which windows they summed.
 */
export const SCORES_VERSION = 2;

/** One summed window: its draw, its index in the draw and its content digest (data/windows.ts). */
export interface WindowRecord {
  draw: string;
  index: number;
  digest: string;
}

/** The "windows" field of a version-2 file: per draw, the indices and digests summed (ascending index). */
export interface WindowGroupJSON {
  draw: string;
  total: number;
  seed: number | null;
  stream: string | null;
  indices: number[];
  digests: string[];
}

/** Labels for error messages of merge (file names). */
export interface MergeLabels {
  a?: string;
  b?: string;
}

/**
 * Per-layer, per-channel importance accumulators for one model, one criterion and one set of settings.
 *
 * `sums[l][i]` holds (kept exactly, see exact-sum.ts, and read as the exact value rounded once to float64):
 * - sd-taylor / ce-taylor: Σ_s mean_k |W_g⊙G_g + W_u⊙G_u + (W_d⊙G_d)ᵀ| over the accumulated samples;
 * - llm-pruner(-vector), wanda, magnitude, random: the final score (computed in one call).
 * Exact sums make the result independent of how the windows were split and in which order they were added,
 * so shards, workers and resumed runs merge into the bits of one run. The summed windows are recorded
 * (draw, index, digest) so a merge can refuse windows counted twice.
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
    private readonly exact: ExactSums[],
    private nSamples: number,
    private nAccumulations: number,
    /** Summed windows in the order added; null when unknown (a version-1 file). */
    private readonly records: WindowRecord[] | null,
    private readonly draws: Map<string, WindowDraw>,
  ) {}

  /** An empty accumulator for `model`. */
  static create(model: CausalLM, criterion: Criterion, settings: ScoreSettings): ImportanceScores {
    if (!CRITERIA.includes(criterion)) throw new UsageError(`unknown criterion "${criterion}", expected one of ${CRITERIA.join(", ")}`);
    const fp = modelFingerprint(model);
    return new ImportanceScores(criterion, normaliseSettings(settings), fp, fp.intermediate_sizes.map((I) => ExactSums.zeros(I)), 0, 0, [], new Map());
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
  /** The accumulators rounded to float64 (each the exact sum rounded once; do not modify). */
  get sums(): readonly Float64Array[] {
    return this.exact.map((e) => e.toFloat64());
  }
  /** The summed windows (draw, index, digest) in the order added; null when unknown (version-1 file). */
  get windows(): readonly WindowRecord[] | null {
    return this.records;
  }
  /** The draws the summed windows come from. */
  get windowDraws(): ReadonlyMap<string, WindowDraw> {
    return this.draws;
  }
  /** Whether window `index` of draw `draw` is already summed. */
  hasWindow(draw: string, index: number): boolean {
    if (!this.records) return false;
    // records only grow (add, merge), so the set takes in what was appended since the last look: O(1) per window
    for (; this.keyed < this.records.length; this.keyed++) this.keys.add(`${this.records[this.keyed].draw}/${this.records[this.keyed].index}`);
    return this.keys.has(`${draw}/${index}`);
  }
  /** Lookup set of "draw/index" of the first `keyed` records. */
  private readonly keys = new Set<string>();
  private keyed = 0;
  get additive(): boolean {
    return isAdditive(this.criterion);
  }

  /** Throws UsageError unless these scores belong to `model` (same shapes, widths and weight hash). */
  checkModel(model: CausalLM): void {
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

  /**
   * Adds one contribution (internal: used by accumulate), exactly. `windows` names the windows it covers
   * (one for an additive criterion's per-window call); a window already summed is refused.
   */
  add(perLayer: Float64Array[], samples: number, windows: { draw: WindowDraw; index: number; digest: string }[] = []): void {
    if (perLayer.length !== this.exact.length) throw new UsageError(`expected ${this.exact.length} layers, got ${perLayer.length}`);
    perLayer.forEach((v, l) => {
      const s = this.exact[l];
      if (v.length !== s.length) throw new UsageError(`layer ${l}: expected ${s.length} channels, got ${v.length}`);
    });
    for (const w of windows) {
      if (this.hasWindow(w.draw.id, w.index)) throw new UsageError(`window ${w.index} of draw ${w.draw.id} (digest ${w.digest}) is already in these scores`);
    }
    perLayer.forEach((v, l) => this.exact[l].add(v));
    this.nSamples += samples;
    for (const w of windows) {
      this.noteDraw(w.draw);
      this.records?.push({ draw: w.draw.id, index: w.index, digest: w.digest });
    }
  }

  private noteDraw(d: WindowDraw): void {
    const have = this.draws.get(d.id);
    if (!have) this.draws.set(d.id, { ...d });
    else if (have.total !== d.total) throw new UsageError(`draw ${d.id} has ${have.total} windows in one file and ${d.total} in another`);
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
    return this.sums.map((s) => Array.from(s, (v) => v / div));
  }

  /** An independent copy (e.g. to accumulate into without touching this one). */
  clone(): ImportanceScores {
    return new ImportanceScores(
      this.criterion,
      this.settings,
      cloneFp(this.fp),
      this.exact.map((e) => e.clone()),
      this.nSamples,
      this.nAccumulations,
      this.records ? this.records.map((r) => ({ ...r })) : null,
      new Map([...this.draws].map(([k, d]) => [k, { ...d }])),
    );
  }

  /**
   * Sum of two accumulators (a new object; neither input changes), exact: merging shards in any grouping
   * gives the bits of one run. UsageError if criterion, settings or model differ, the criterion is not
   * additive, either side does not record its windows, or they share a window: the same index of the same
   * draw, or the same content from different draws (a window drawn twice by ONE draw counts twice, as in
   * the run that drew it). The error names the first shared window (index in each file and digest).
   */
  /** Throws the UsageError that merge(other) would, or returns when they can be merged. */
  checkMergeable(other: ImportanceScores, labels: MergeLabels = {}): void {
    const A = labels.a ?? "the running scores";
    const B = labels.b ?? "the other scores";
    if (other.criterion !== this.criterion) throw new UsageError(`cannot merge scores of criterion "${this.criterion}" with "${other.criterion}" (${A} with ${B})`);
    if (!this.additive) throw new UsageError(`criterion "${this.criterion}" is not additive over samples and cannot be merged`);
    const a = JSON.stringify(this.settings);
    const b = JSON.stringify(other.settings);
    if (a !== b) throw new UsageError(`cannot merge scores with different settings: ${a} (${A}) vs ${b} (${B})`);
    const why = fingerprintMismatch(this.fp, other.fp);
    if (why) throw new UsageError(`cannot merge scores of different models (${A} vs ${B}: ${why})`);
    for (const [x, label] of [[this, A], [other, B]] as const) {
      if (!x.records) throw new UsageError(`${label} does not record which windows it summed (scores format version 1): merging could count windows twice; recompute it with this version`);
    }
    const shared = firstSharedWindow(this.records as WindowRecord[], other.records as WindowRecord[]);
    if (shared) {
      const [p, q] = shared;
      const where = (r: WindowRecord) => `window ${r.index} of draw ${r.draw}`;
      throw new UsageError(
        `${A} and ${B} share a window (digest ${p.digest}): ${where(p)} in ${A}, ${where(q)} in ${B}; merged scores would count it twice ` +
          `(merge disjoint windows, e.g. the --shard i/N runs of one draw)`,
      );
    }
  }

  merge(other: ImportanceScores, labels: MergeLabels = {}): ImportanceScores {
    this.checkMergeable(other, labels);
    const out = this.clone();
    out.exact.forEach((e, l) => e.addExact(other.exact[l]));
    out.nSamples += other.nSamples;
    out.nAccumulations += other.nAccumulations;
    for (const d of other.draws.values()) out.noteDraw(d);
    out.records!.push(...(other.records as WindowRecord[]).map((r) => ({ ...r })));
    return out;
  }

  /**
   * Keep only surviving channels, in the given order (kept[l] = indices into the current layer l), so
   * scores follow the model through pruning. Returns a new object whose fingerprint has the new widths.
   */
  reindex(kept: number[][]): ImportanceScores {
    if (!Array.isArray(kept) || kept.length !== this.exact.length) {
      throw new UsageError(`reindex: expected kept indices for ${this.exact.length} layers, got ${Array.isArray(kept) ? kept.length : typeof kept}`);
    }
    const sums = kept.map((idx, l) => {
      const n = this.exact[l].length;
      const seen = new Set<number>();
      idx.forEach((i) => {
        if (!Number.isInteger(i) || i < 0 || i >= n) throw new UsageError(`reindex: layer ${l} index ${i} is outside [0, ${n})`);
        if (seen.has(i)) throw new UsageError(`reindex: layer ${l} index ${i} appears twice`);
        seen.add(i);
      });
      return this.exact[l].pick(idx);
    });
    const c = this.clone();
    const fp = cloneFp(this.fp);
    fp.intermediate_sizes = kept.map((k) => k.length);
    return new ImportanceScores(this.criterion, this.settings, fp, sums, this.nSamples, this.nAccumulations, c.records, c.draws);
  }

  /** The "windows" field: per draw (sorted by id), the summed indices ascending with their digests. */
  windowGroups(): WindowGroupJSON[] | null {
    if (!this.records) return null;
    const by = new Map<string, WindowRecord[]>();
    for (const r of this.records) {
      const g = by.get(r.draw);
      if (g) g.push(r);
      else by.set(r.draw, [r]);
    }
    return [...by.keys()].sort().map((id) => {
      const rs = (by.get(id) as WindowRecord[]).slice().sort((x, y) => x.index - y.index);
      const d = this.draws.get(id) as WindowDraw;
      return { draw: id, total: d.total, seed: d.seed, stream: d.stream, indices: rs.map((r) => r.index), digests: rs.map((r) => r.digest) };
    });
  }

  toJSON(): {
    format: string;
    version: number;
    criterion: Criterion;
    samples: number;
    settings: ScoreSettings;
    scores: number[][];
    sums: number[][];
    exactSums: string[][];
    windows: WindowGroupJSON[] | null;
    accumulations: number;
    modelFingerprint: ModelFingerprint;
  } {
    let scores: number[][];
    try {
      scores = this.scores();
    } catch {
      scores = this.exact.map((s) => Array.from({ length: s.length }, () => 0));
    }
    return {
      format: SCORES_FORMAT,
      version: SCORES_VERSION,
      criterion: this.criterion,
      samples: this.nSamples,
      settings: { ...this.settings },
      scores,
      sums: this.sums.map((s) => Array.from(s)),
      exactSums: this.exact.map((e) => e.toHex()),
      windows: this.windowGroups(),
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
    const version = r.version === undefined ? 1 : r.version;
    if (version !== 1 && version !== SCORES_VERSION) {
      bad(`field "version" is ${JSON.stringify(version)}; this sdmprune reads versions 1 and ${SCORES_VERSION} (a newer sdmprune wrote it?)`);
    }
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
    // version 1 kept the calibration seed of additive criteria in the settings; it belongs to the draw now
    if (version === 1 && isAdditive(criterion)) settings.seed = null;
    if (version !== 1 && isAdditive(criterion) && settings.seed !== null) bad(`field "settings.seed" must be null for ${criterion} (the seed belongs to "windows")`);
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
    let exact: ExactSums[];
    let records: WindowRecord[] | null = null;
    const draws = new Map<string, WindowDraw>();
    if (version === 1) {
      exact = sums.map((row) => ExactSums.fromFloat64(row));
    } else {
      const ex = r.exactSums;
      if (!Array.isArray(ex) || ex.length !== L) bad(`field "exactSums" must have ${L} layers`);
      exact = (ex as unknown[]).map((row, l) => {
        if (!Array.isArray(row) || row.length !== fp.intermediate_sizes[l]) bad(`field "exactSums[${l}]" must have ${fp.intermediate_sizes[l]} channels`);
        return ExactSums.fromHex(row as unknown[], `${source}: field "exactSums[${l}]"`);
      });
      exact.forEach((e, l) => {
        const f = e.toFloat64();
        const i = f.findIndex((v, k) => v !== (sums as Float64Array[])[l][k]);
        if (i >= 0) bad(`field "sums[${l}][${i}]" is ${(sums as Float64Array[])[l][i]} but "exactSums[${l}][${i}]" rounds to ${f[i]} (edited file?)`);
      });
      records = parseWindowGroups(r.windows, bad, draws);
      if (records.length !== samples && isAdditive(criterion)) bad(`field "windows" lists ${records.length} windows but "samples" is ${samples}`);
    }
    return new ImportanceScores(criterion, normaliseSettings(settings), fp, exact, samples as number, accumulations as number, records, draws);
  }
}

const HEX16 = /^[0-9a-f]{16}$/;

function parseWindowGroups(raw: unknown, bad: (msg: string) => never, draws: Map<string, WindowDraw>): WindowRecord[] {
  if (!Array.isArray(raw)) bad(`field "windows" must be a list of draws`);
  const out: WindowRecord[] = [];
  (raw as unknown[]).forEach((g0, k) => {
    const f = `windows[${k}]`;
    if (typeof g0 !== "object" || g0 === null || Array.isArray(g0)) bad(`field "${f}" must be an object`);
    const g = g0 as Record<string, unknown>;
    if (typeof g.draw !== "string" || !HEX16.test(g.draw)) bad(`field "${f}.draw" must be 16 hex digits, got ${JSON.stringify(g.draw)}`);
    if (draws.has(g.draw as string)) bad(`field "${f}.draw": draw ${g.draw} is listed twice`);
    if (!Number.isInteger(g.total) || (g.total as number) < 1) bad(`field "${f}.total" must be a positive integer`);
    if (!(g.seed === null || (typeof g.seed === "number" && Number.isFinite(g.seed)))) bad(`field "${f}.seed" must be a number or null`);
    if (!(g.stream === null || typeof g.stream === "string")) bad(`field "${f}.stream" must be a string or null`);
    const idx = g.indices;
    const dig = g.digests;
    if (!Array.isArray(idx) || !Array.isArray(dig) || idx.length !== dig.length) bad(`fields "${f}.indices" and "${f}.digests" must be lists of equal length`);
    let prev = -1;
    (idx as unknown[]).forEach((i, j) => {
      if (!Number.isInteger(i) || (i as number) <= prev || (i as number) >= (g.total as number)) bad(`field "${f}.indices[${j}]" must be an integer in (${prev}, ${g.total}) (ascending), got ${JSON.stringify(i)}`);
      prev = i as number;
      const d = (dig as unknown[])[j];
      if (typeof d !== "string" || !HEX16.test(d)) bad(`field "${f}.digests[${j}]" must be 16 hex digits, got ${JSON.stringify(d)}`);
      out.push({ draw: g.draw as string, index: i as number, digest: d as string });
    });
    draws.set(g.draw as string, { id: g.draw as string, total: g.total as number, seed: g.seed as number | null, stream: g.stream as string | null });
  });
  return out;
}

/**
 * The first window of `b` (in b's order) that `a` already has: the same index of the same draw, or the same
 * digest from another draw. Null when disjoint.
 */
function firstSharedWindow(a: readonly WindowRecord[], b: readonly WindowRecord[]): [WindowRecord, WindowRecord] | null {
  const byKey = new Map<string, WindowRecord>();
  const byDigest = new Map<string, WindowRecord[]>();
  for (const r of a) {
    byKey.set(`${r.draw}/${r.index}`, r);
    const l = byDigest.get(r.digest);
    if (l) l.push(r);
    else byDigest.set(r.digest, [r]);
  }
  for (const q of b) {
    const same = byKey.get(`${q.draw}/${q.index}`);
    if (same) return [same, q];
    const other = (byDigest.get(q.digest) ?? []).find((p) => p.draw !== q.draw);
    if (other) return [other, q];
  }
  return null;
}

function normaliseSettings(s: ScoreSettings): ScoreSettings {
  // fixed key order, so JSON.stringify compares settings
  return { alpha: s.alpha ?? null, temperature: s.temperature ?? null, topk: s.topk ?? null, seqLen: s.seqLen ?? null, seed: s.seed ?? null };
}

function cloneFp(f: ModelFingerprint): ModelFingerprint {
  return { ...f, intermediate_sizes: f.intermediate_sizes.slice() };
}
