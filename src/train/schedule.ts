import { UsageError } from "../errors";

/**
 * Learning rate at a step: linear warm-up from 0 over `warmup` steps, then a cosine decay from `lr` to
 * `lr · minRatio` at the last step (HF `get_cosine_schedule_with_warmup` when minRatio = 0).
 * Steps are 0-based: step 0 is the first optimizer update.
 */
export interface CosineSchedule {
  lr: number;
  steps: number;
  warmup?: number;
  minRatio?: number;
}

export function checkSchedule(s: CosineSchedule): void {
  if (!(s.lr > 0) || !Number.isFinite(s.lr)) throw new UsageError(`lr must be a positive number, got ${s.lr}`);
  if (!Number.isInteger(s.steps) || s.steps <= 0) throw new UsageError(`steps must be a positive integer, got ${s.steps}`);
  const w = s.warmup ?? 0;
  if (!Number.isInteger(w) || w < 0 || w > s.steps) throw new UsageError(`warmup must be an integer in [0, steps = ${s.steps}], got ${w}`);
  const m = s.minRatio ?? 0;
  if (!(m >= 0 && m <= 1)) throw new UsageError(`minRatio must be in [0, 1], got ${m}`);
}

export function learningRate(s: CosineSchedule, step: number): number {
  const warmup = s.warmup ?? 0;
  const minRatio = s.minRatio ?? 0;
  // step + 1 so that the first update already has a non-zero rate (step 0 with lr 0 would be wasted)
  if (step < warmup) return (s.lr * (step + 1)) / warmup;
  const span = Math.max(1, s.steps - warmup);
  const progress = Math.min(1, (step - warmup) / span);
  const cos = 0.5 * (1 + Math.cos(Math.PI * progress));
  return s.lr * (minRatio + (1 - minRatio) * cos);
}
