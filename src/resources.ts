import * as fs from "node:fs";
import * as os from "node:os";
import { ResourceError } from "./errors";

/**
 * Resource checks made before a long job starts, so that a request the model or the machine cannot serve fails
 * in a second with the figure, instead of after minutes (wasm "Aborted()", the OOM killer, a silently
 * meaningless perplexity past the trained context).
 */

export interface ResourceOptions {
  /** Run windows longer than the model's context (max_position_embeddings), e.g. for RoPE extrapolation studies. */
  allowLonger?: boolean;
  /** Run even when the memory estimate exceeds the memory available. */
  skipMemoryCheck?: boolean;
}

/** Refuse a window longer than the context the model was trained for, unless explicitly allowed. */
export function checkContext(seqLen: number, context: number, what: string, opts: ResourceOptions = {}): void {
  if (opts.allowLonger || !(seqLen > context)) return;
  throw new ResourceError(
    `${what}: sequence length ${seqLen} exceeds the model's context of ${context} tokens (max_position_embeddings / llama.context_length); ` +
      `use a shorter length, or --allow-longer (allowLonger: true) to run past the context anyway`,
  );
}

/**
 * Host memory for calibration: the windows (JS arrays of numbers, 8 bytes per token), the teacher cache (per
 * position k logits as f32, plus k int32 ids unless "full", plus one f32 log-sum-exp) and its copy of the windows.
 */
export function calibrationBytes(windows: number, seqLen: number, teacherK: number | null, full: boolean): number {
  const perPosition = 8 + (teacherK === null ? 0 : teacherK * (full ? 4 : 8) + 4 + 4);
  return windows * seqLen * perPosition;
}

/** Memory this process can still use: MemAvailable (Linux), else free memory, capped by a cgroup limit. */
export function availableBytes(): number {
  let avail = os.freemem();
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync("/proc/meminfo", "utf8"));
    if (m) avail = Number(m[1]) * 1024;
  } catch {
    // not Linux: os.freemem() is the best figure there is
  }
  const limit = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  if (limit && limit > 0 && Number.isFinite(limit)) avail = Math.min(avail, Math.max(0, limit - process.memoryUsage().rss));
  return avail;
}

export function formatBytes(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
}

/** Refuse a job whose estimated memory exceeds what is available, with both figures, unless explicitly allowed. */
export function checkMemory(bytes: number, what: string, opts: ResourceOptions = {}, available = availableBytes()): void {
  if (opts.skipMemoryCheck || bytes <= available) return;
  throw new ResourceError(
    `${what} would need about ${formatBytes(bytes)} of memory but about ${formatBytes(available)} is available; ` +
      `use fewer windows (--samples), a shorter --seq-len or a smaller --topk, or --skip-memory-check (skipMemoryCheck: true) to try anyway`,
  );
}

/**
 * The checks before calibration: window length against the context, and the memory of `samples` windows with a
 * teacher cache of `topk` entries per position (null: no teacher) plus `extraWindows` windows without one.
 */
export function checkCalibration(
  config: { max_position_embeddings: number; vocab_size: number },
  samples: number,
  seqLen: number,
  topk: number | "full" | null,
  opts: ResourceOptions,
  what = "calibration",
  extraWindows = 0,
): void {
  checkContext(seqLen, config.max_position_embeddings, what, opts);
  const V = config.vocab_size;
  const k = topk === null ? null : topk === "full" ? V : Math.min(topk, V);
  const bytes = calibrationBytes(samples, seqLen, k, topk === "full") + calibrationBytes(extraWindows, seqLen, null, false);
  checkMemory(bytes, `${what} (${samples + extraWindows} windows × ${seqLen} tokens${k === null ? "" : `, teacher top-k ${k}`})`, opts);
}
