import { CancelledError } from "../errors";
import type { RunOptions } from "../types";

/**
 * Runs `step` on windows from..from+count−1 with progress events (tokens/s, ETA) after each window and
 * the AbortSignal checked before each one. `step` returns a short message (e.g. the loss).
 * Yields to the event loop between windows so abort handlers and progress renderers can run.
 */
export async function runWindows(phase: string, from: number, count: number, T: number, run: RunOptions, step: (w: number) => string | void): Promise<void> {
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    if (run.signal?.aborted) throw new CancelledError(`${phase} cancelled after ${i} of ${count} windows (the ${i} finished windows are kept)`);
    const msg = step(from + i);
    const secs = (Date.now() - start) / 1000;
    const tokens = (i + 1) * T;
    run.onProgress?.({
      phase,
      done: i + 1,
      total: count,
      tokens,
      tokensPerSecond: secs > 0 ? tokens / secs : undefined,
      etaSeconds: secs > 0 ? ((count - i - 1) * secs) / (i + 1) : undefined,
      message: msg || undefined,
    });
    await new Promise((r) => setImmediate(r));
  }
}
