import { CancelledError } from "./errors";
import type { ProgressEvent, RunOptions } from "./types";

/**
 * Progress and cancellation bookkeeping for one long operation: units done out of a total, tokens/s and ETA
 * for ProgressEvents, and abort checks between units. One instance can span several loops (all tasks of an
 * evaluation) so the ETA covers the whole run. `done` may start above 0 (a resumed run); rate and ETA then
 * count only what this instance saw.
 */
export class Progress {
  private readonly start = Date.now();
  private tokenCount = 0;
  private units = 0;
  private count: number;

  constructor(
    private readonly opts: RunOptions,
    readonly phase: string,
    readonly total: number,
    done = 0,
  ) {
    this.count = done;
  }

  /** Tokens processed by this instance. */
  get tokens(): number {
    return this.tokenCount;
  }

  /** Units done so far, including any the run resumed from. */
  get done(): number {
    return this.count;
  }

  /**
   * Throws CancelledError (with `message`, default "<phase> cancelled") if the signal fired. Yields to the event
   * loop first so abort handlers and progress renderers can run.
   */
  async checkpoint(message?: string): Promise<void> {
    if (this.opts.signal || this.opts.onProgress) await new Promise<void>((r) => setImmediate(r));
    if (this.opts.signal?.aborted) throw new CancelledError(message ?? `${this.phase} cancelled`);
  }

  /** Count `units` more items done and `tokens` more tokens processed, and report. */
  advance(units: number, tokens: number, message?: string): void {
    this.count += units;
    this.units += units;
    this.tokenCount += tokens;
    if (!this.opts.onProgress) return;
    const secs = (Date.now() - this.start) / 1000;
    const e: ProgressEvent = { phase: this.phase, done: this.count, total: this.total, tokens: this.tokenCount };
    if (secs > 0) {
      e.tokensPerSecond = this.tokenCount / secs;
      if (this.units > 0) e.etaSeconds = (secs / this.units) * (this.total - this.count);
    }
    if (message) e.message = message;
    this.opts.onProgress(e);
  }
}

/**
 * Runs `step` on windows from..from+count−1, reporting progress after each window and checking the AbortSignal
 * before each one, so a cancelled run has only whole windows behind it. `step` returns a short message (e.g. the loss).
 */
export async function runWindows(phase: string, from: number, count: number, T: number, run: RunOptions, step: (w: number) => string | void): Promise<void> {
  await runWindowBatches(phase, from, count, T, run, 1, (w) => step(w));
}

/** As runWindows, `batch` windows per step: step(w0, n) handles windows w0..w0+n−1 (n < batch only at the end). */
export async function runWindowBatches(
  phase: string,
  from: number,
  count: number,
  T: number,
  run: RunOptions,
  batch: number,
  step: (w0: number, n: number) => string | void,
): Promise<void> {
  const progress = new Progress(run, phase, count);
  for (let i = 0; i < count; i += batch) {
    await progress.checkpoint(`${phase} cancelled after ${i} of ${count} windows (the ${i} finished windows are kept)`);
    const n = Math.min(batch, count - i);
    const msg = step(from + i, n);
    progress.advance(n, n * T, msg || undefined);
  }
}
