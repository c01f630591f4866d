import { UsageError } from "./errors";
import { intermediateSizes, paramCounts, type LlamaConfig } from "./model/config";
import { floorCount, roundKeep } from "./prune";

/**
 * The two-stage SDMPrune recipe (docs/method.md, "Pipeline" and "Recipe numbers") as numbers: stage-1 width, the final K for a target
 * parameter ratio, and the paper's (α, τ) per target.
 *
 * Stage 1 (pitfall 6): the reference keeps floor(3.9 · hidden) = 7987 of 8192 channels on LLaMA-3.2-1B,
 * which presumes intermediate ≈ 4 · hidden and exceeds the width of models like stories260K (172 < 249.6).
 * We define stage 1 as a keep FRACTION of each layer's width: K₁ = floor(0.975 · I_l) (7987/8192 = 0.97498;
 * on LLaMA-3.2-1B floor(0.975 · 8192) = 7987, the same K as the reference).
 */
export const STAGE1_KEEP_FRACTION = 0.975;

export interface PaperSetting {
  /** Share of total parameters removed (tied embedding counted once). */
  target: number;
  /** `mlp_ratio` the scripts used for LLaMA-3.2-1B (K = floor(hidden · mlp_ratio)). */
  mlpRatio: number;
  alpha: number;
  temperature: number;
  source: string;
}

/** scripts/prune.sh of the reference (seed 0, LLaMA-3.2-1B). The 20 % row uses the script's 2.741 (pitfall 8). */
export const PAPER_TABLE: readonly PaperSetting[] = [
  { target: 0.2, mlpRatio: 2.741, alpha: 0.4, temperature: 0.2, source: "scripts/prune.sh (20 %; code comment says 2.774)" },
  { target: 0.3, mlpRatio: 2.161, alpha: 0.42, temperature: 0.5, source: "scripts/prune.sh (30 %)" },
  { target: 0.4, mlpRatio: 1.548, alpha: 0.1, temperature: 0.2, source: "scripts/prune.sh (40 %)" },
];

/** The paper row with the nearest target (ties → the lower target). */
export function paperSettings(target: number): PaperSetting {
  let best = PAPER_TABLE[0];
  for (const row of PAPER_TABLE) if (Math.abs(row.target - target) < Math.abs(best.target - target) - 1e-12) best = row;
  return best;
}

/** Stage-1 kept channels per layer: floor(0.975 · width), at least 1. */
export function stage1Keep(widths: number[]): number[] {
  return widths.map((w) => Math.max(1, floorCount(w * STAGE1_KEEP_FRACTION)));
}

/**
 * Per-layer K that removes the share `target` of the model's total parameters (paper counting), by removing
 * the same number r of channels from every layer: r = round(target · total / (3 · hidden · layers)).
 * Nearest rather than floor/ceil, because the paper's own settings land on both sides of the target
 * (20.51 %, 29.96 %, 39.95 %).
 */
export function keepForTarget(config: LlamaConfig, target: number): number[] {
  if (typeof target !== "number" || !Number.isFinite(target) || target <= 0 || target >= 1) {
    throw new UsageError(`target must be a share of total parameters with 0 < target < 1, got ${target}`);
  }
  const widths = intermediateSizes(config);
  const total = paramCounts(config).total;
  const perChannel = 3 * config.hidden_size;
  const r = Math.round((target * total) / (perChannel * widths.length));
  const keep = widths.map((w) => w - r);
  const minW = Math.min(...widths);
  if (keep.some((k) => k < 1)) {
    const maxShare = (perChannel * widths.reduce((a, w) => a + w - 1, 0)) / total;
    throw new UsageError(
      `target ${target}: removing that share needs ${r} channels per layer but the narrowest layer has ${minW}; MLP pruning can remove at most ${(100 * maxShare).toFixed(2)} % of this model's parameters`,
    );
  }
  return keep;
}

export interface RecipePlan {
  target: number | null;
  alpha: number;
  temperature: number;
  /** Where α/τ came from: "paper table (target 0.3)" or "user". */
  settingsSource: string;
  stage1Keep: number[];
  finalKeep: number[];
  /** Share of total parameters removed after stage 1 and after stage 2 (against the original). */
  stage1Share: number;
  finalShare: number;
  /** Final widths were rounded to a multiple of this (null: not rounded). */
  roundTo: number | null;
}

function removedShare(config: LlamaConfig, keep: number[]): number {
  const widths = intermediateSizes(config);
  const removed = widths.reduce((a, w, l) => a + 3 * config.hidden_size * (w - keep[l]), 0);
  return removed / paramCounts(config).total;
}

/**
 * Plan the recipe on the original config. Exactly one of target / keep / mlpRatio; α and τ default to the
 * paper row nearest to the target (for keep/mlpRatio: nearest to the resulting share).
 */
export function planSdmprune(
  original: LlamaConfig,
  opts: { target?: number; keep?: number; mlpRatio?: number; roundTo?: number; alpha?: number; temperature?: number },
): RecipePlan {
  const given = (["target", "keep", "mlpRatio"] as const).filter((k) => opts[k] !== undefined);
  if (given.length !== 1) throw new UsageError(`sdmprune: give exactly one of target, keep, mlpRatio (got ${given.length ? given.join(", ") : "none"})`);
  const widths = intermediateSizes(original);
  let finalKeep: number[];
  if (opts.target !== undefined) finalKeep = keepForTarget(original, opts.target);
  else if (opts.keep !== undefined) {
    if (!Number.isInteger(opts.keep) || opts.keep < 1) throw new UsageError(`sdmprune: keep must be a positive integer, got ${opts.keep}`);
    finalKeep = widths.map(() => opts.keep!);
  } else {
    const m = opts.mlpRatio!;
    if (!Number.isFinite(m) || m <= 0) throw new UsageError(`sdmprune: mlpRatio must be a positive number, got ${m}`);
    finalKeep = widths.map(() => floorCount(original.hidden_size * m));
  }
  if (opts.roundTo !== undefined) finalKeep = finalKeep.map((k, l) => roundKeep(k, opts.roundTo!, widths[l]));
  const s1 = stage1Keep(widths);
  finalKeep.forEach((k, l) => {
    if (k < 1) throw new UsageError(`sdmprune: layer ${l} would keep ${k} channels; at least 1 is required`);
    if (k >= s1[l]) {
      throw new UsageError(
        `sdmprune: the final width ${k} of layer ${l} is not below the stage-1 width ${s1[l]} (= floor(${STAGE1_KEEP_FRACTION}·${widths[l]})); ask for a larger target or use prune() directly`,
      );
    }
  });
  const finalShare = removedShare(original, finalKeep);
  const row = paperSettings(opts.target ?? finalShare);
  for (const [name, v] of [["alpha", opts.alpha], ["temperature", opts.temperature]] as const) {
    if (v !== undefined && (!Number.isFinite(v) || (name === "alpha" ? v < 0 || v > 1 : v <= 0))) {
      throw new UsageError(`sdmprune: ${name} must be ${name === "alpha" ? "in [0, 1]" : "positive"}, got ${v}`);
    }
  }
  const user = opts.alpha !== undefined || opts.temperature !== undefined;
  return {
    target: opts.target ?? null,
    alpha: opts.alpha ?? row.alpha,
    temperature: opts.temperature ?? row.temperature,
    settingsSource: user
      ? `user${opts.alpha === undefined || opts.temperature === undefined ? ` + paper table (target ${row.target})` : ""}`
      : `paper table (target ${row.target}: α ${row.alpha}, τ ${row.temperature})`,
    stage1Keep: s1,
    finalKeep,
    stage1Share: removedShare(original, s1),
    finalShare,
    roundTo: opts.roundTo ?? null,
  };
}
