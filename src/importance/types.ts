import type { WindowIdentity } from "../data/windows";
import type { CausalLM } from "../model/causal-lm";
import type { TeacherCache, TopK } from "../teacher";
import type { RunOptions } from "../types";

/**
 * Channel-importance criteria for MLP intermediate channels (channel i = gate/up output i = down input i).
 * - "sd-taylor": SDMPrune, |Taylor| of (1−α)·CE + α·KD per sample, Σ_s mean_k |·| (docs/method.md, "Importance").
 * - "ce-taylor": the same with α = 0 (stage-1 warm start; no teacher).
 * - "llm-pruner": LLM-Pruner param_first, one batch-mean CE gradient, Σ_k |W⊙G| per module, modules summed.
 * - "llm-pruner-vector": LLM-Pruner vectorize, |Σ_k W⊙G| per module, modules summed.
 * - "magnitude": Σ|W| over the group (gate column, up column, down row in [in,out] layout).
 * - "wanda": |W| · ‖input activation‖₂ over the group, summed.
 * - "random": seeded uniform scores.
 */
export type Criterion = "sd-taylor" | "ce-taylor" | "llm-pruner" | "llm-pruner-vector" | "magnitude" | "wanda" | "random";

export const CRITERIA: readonly Criterion[] = ["sd-taylor", "ce-taylor", "llm-pruner", "llm-pruner-vector", "magnitude", "wanda", "random"];

/**
 * Criteria whose accumulator is a plain sum over samples (Σ_s of a per-sample vector): they can be
 * accumulated in several calls and merged. The others are not additive (LLM-Pruner takes |·| of a
 * batch-mean gradient, Wanda takes √ of summed squares, magnitude/random use no data) and are computed
 * in one call.
 */
export function isAdditive(c: Criterion): boolean {
  return c === "sd-taylor" || c === "ce-taylor";
}

/** Everything besides the model that changes the numbers; merge refuses accumulators whose settings differ. */
export interface ScoreSettings {
  /** KD weight (sd-taylor; 0 for ce-taylor), null where no loss mix applies. */
  alpha: number | null;
  /** Teacher temperature (sd-taylor), else null. */
  temperature: number | null;
  /** Teacher cache entries per position (sd-taylor), else null. */
  topk: TopK | null;
  /** Calibration window length (data-free criteria: null). */
  seqLen: number | null;
  /**
   * Seed of "random"; for llm-pruner(-vector) and wanda the calibration seed as given (null when unknown).
   * Null for sd-taylor/ce-taylor: their seed belongs to the windows' draw, so runs on different draws merge.
   */
  seed: number | null;
}

export interface AccumulateOptions extends RunOptions {
  criterion: Criterion;
  /** KD weight α for sd-taylor (ce-taylor forces 0). */
  alpha?: number;
  /** Teacher temperature τ for sd-taylor. */
  temperature?: number;
  /** First window and number of windows to use (default: all windows from `from`). */
  from?: number;
  count?: number;
  /** Calibration seed (recorded with the draw, or in the settings of non-additive criteria) and seed of the random criterion. */
  seed?: number;
  /**
   * Identity of `windows` (parallel to it): their draw, index in the draw and digest, recorded with the
   * scores so merges can refuse windows counted twice. Default: `windows` is a whole draw of its own.
   */
  identity?: WindowIdentity;
  /** Taylor only: "layerwise" (default; one layer's gradients alive at a time) or "straightforward" (model.gradients over all MLP weights). */
  path?: "layerwise" | "straightforward";
  /**
   * Layerwise path: MiB of forward activations kept per pass for the backward sweep (default
   * resources.defaultKeepActivationsMiB: 2 GiB minus the float32 weights, within 128 MiB … 1 GiB; 128 MiB on wasm); layers past the
   * budget are recomputed from their input there (slower, one layer's activations at a time).
   */
  keepActivationsMiB?: number;
  /**
   * Layerwise path: windows run through the network together (default, where batching pays: as many as
   * keepActivationsMiB holds with every layer saved, or with one layer's activations when layers beyond it are
   * recomputed, at most 8; one elsewhere). Scores are per sample either way; cancellation and progress then
   * step by whole batches.
   */
  batchWindows?: number;
}

/** What one criterion family implementation receives. */
export interface CriterionContext {
  model: CausalLM;
  windows: number[][];
  from: number;
  count: number;
  teacher: TeacherCache | null;
  opts: AccumulateOptions;
  settings: ScoreSettings;
}

/**
 * Adds per-layer, per-channel contributions covering `samples` windows into the accumulator. Additive
 * criteria call it once per window, in window order from `from` (so a cancellation leaves only whole samples
 * added, and the k-th call is window from + k); the others once.
 */
export type ScoreSink = (perLayer: Float64Array[], samples: number) => void;

export interface CriterionImpl {
  run(ctx: CriterionContext, sink: ScoreSink): Promise<void>;
}
