import { gpuMemory } from "../engine";
import type { ProgressEvent } from "../types";

/**
 * Progress of long operations on stderr. Nothing is printed for a phase until it has run for one second, so
 * quick steps stay quiet. On a terminal one line is rewritten in place; otherwise (logs, CI) a line is
 * written at most every 5 s per phase plus one when the phase completes.
 */
export function stderrProgress(enabled = true): { onProgress?: (e: ProgressEvent) => void; end: () => void } {
  if (!enabled) return { end: () => {} };
  const tty = !!process.stderr.isTTY;
  const started = new Map<string, number>();
  const lastLine = new Map<string, number>();
  let open = false;
  const fmt = (e: ProgressEvent) => {
    const rate = e.tokensPerSecond ? `, ${Math.round(e.tokensPerSecond)} tok/s` : "";
    const eta = e.etaSeconds !== undefined && e.done < e.total ? `, ETA ${Math.ceil(e.etaSeconds)} s` : "";
    const msg = e.message ? ` ${e.message}` : "";
    return `${e.phase}: ${e.done}/${e.total}${rate}${eta}${msg}`;
  };
  return {
    onProgress: (e) => {
      const now = Date.now();
      if (!started.has(e.phase)) started.set(e.phase, now);
      if (now - (started.get(e.phase) as number) < 1000) return;
      const finished = e.done >= e.total;
      if (tty) {
        process.stderr.write(`\r\x1b[K${fmt(e)}`);
        open = true;
        if (finished) {
          process.stderr.write("\n");
          open = false;
        }
      } else if (finished || now - (lastLine.get(e.phase) ?? 0) >= 5000) {
        lastLine.set(e.phase, now);
        process.stderr.write(fmt(e) + "\n");
      }
    },
    end: () => {
      if (open) process.stderr.write("\n");
      open = false;
    },
  };
}

/**
 * SIGINT (Ctrl-C) and SIGTERM (what schedulers such as Slurm send before killing a job) → abort signal for
 * the duration of a command, so it stops between windows and can write what it has (e.g. a checkpoint).
 */
export function interruptSignal(): { signal: AbortSignal; release: () => void } {
  const ac = new AbortController();
  const on = () => ac.abort();
  process.once("SIGINT", on);
  process.once("SIGTERM", on);
  return {
    signal: ac.signal,
    release: () => {
      process.removeListener("SIGINT", on);
      process.removeListener("SIGTERM", on);
    },
  };
}

/**
 * On webgpu, the job's GPU memory for stderr: the most bytes in use at once and what the backend holds (with its
 * pool of freed buffers, which tfjs never gives back); "" on the other backends.
 */
export function gpuMemoryLine(): string {
  const m = gpuMemory();
  if (!m) return "";
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return `gpu memory: peak ${mib(m.peak)} in use, ${mib(m.held)} held by the backend\n`;
}
