/** One-line progress text for a running job (bar, samples done, tokens/s, ETA), scaled to the width. */
import type { ProgressEvent } from "../src/types";
import { bar } from "./chart";


export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/**
 * ETA from the event when the library gives it, otherwise from the rate so far (elapsed time per item
 * done); tokens/s likewise from `tokens` and the elapsed time when not given.
 */
export function progressLine(e: ProgressEvent, elapsedSeconds: number, width: number, ascii = false): string {
  const total = Math.max(0, e.total);
  const done = Math.max(0, Math.min(e.done, total || e.done));
  const frac = total > 0 ? done / total : 0;
  const rate = e.tokensPerSecond ?? (e.tokens !== undefined && elapsedSeconds > 0 ? e.tokens / elapsedSeconds : undefined);
  const eta = e.etaSeconds ?? (done > 0 && total > done ? (elapsedSeconds / done) * (total - done) : done >= total && total > 0 ? 0 : undefined);
  const parts = [`${done}/${total}`];
  if (rate !== undefined && Number.isFinite(rate)) parts.push(`${Math.round(rate).toLocaleString("en-US")} tok/s`);
  parts.push(`ETA ${eta === undefined ? "?" : formatDuration(eta)}`);
  if (e.message) parts.push(e.message);
  const tail = parts.join("  ");
  const pct = `${String(Math.floor(frac * 100)).padStart(3)}%`;
  const head = e.phase;
  const cells = Math.max(6, Math.min(40, width - head.length - pct.length - tail.length - 6));
  const b = bar(frac, cells, ascii).padEnd(cells, ascii ? "." : "░");
  return `${head} [${b}] ${pct} ${tail}`.slice(0, Math.max(width, 1));
}
