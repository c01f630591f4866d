import { CancelledError } from "../errors";
import type { ProgressEvent, RunOptions } from "../types";

/**
 * Shared bookkeeping for batched evaluation loops: cancellation between batches, tokens/s and ETA. One instance
 * can span several loops (all tasks of an evaluation) so the ETA covers the whole run.
 */
export class BatchProgress {
  private readonly start = Date.now();
  private tokens = 0;
  private done = 0;

  constructor(
    private readonly opts: RunOptions,
    private readonly phase: string,
    private readonly total: number,
  ) {}

  /** Throw CancelledError if the signal fired; yields to the event loop first so an abort can arrive. */
  async checkpoint(): Promise<void> {
    if (this.opts.signal) await new Promise<void>((r) => setImmediate(r));
    if (this.opts.signal?.aborted) throw new CancelledError(`${this.phase} cancelled`);
  }

  /** Count `units` more items done and `tokens` more tokens processed, and report. */
  advance(units: number, tokens: number, message?: string): void {
    this.done += units;
    this.tokens += tokens;
    if (!this.opts.onProgress) return;
    const secs = (Date.now() - this.start) / 1000;
    const e: ProgressEvent = { phase: this.phase, done: this.done, total: this.total, tokens: this.tokens };
    if (secs > 0) {
      e.tokensPerSecond = this.tokens / secs;
      if (this.done > 0) e.etaSeconds = (secs / this.done) * (this.total - this.done);
    }
    if (message) e.message = message;
    this.opts.onProgress(e);
  }
}
