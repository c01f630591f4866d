import type { ProgressEvent } from "../src/types";

/**
 * Runs a library call with an onProgress hook and returns the wall time of each unit (window, or batch of
 * ppl windows). A progress event that covers several units (the library batches windows on the native
 * backend) counts as that many units of the batch's average time.
 */
export async function perUnit<T>(f: (onProgress: (e: ProgressEvent) => void) => Promise<T>): Promise<{ seconds: number[]; value: T }> {
  const seconds: number[] = [];
  let last = performance.now();
  let done = 0;
  const value = await f((e) => {
    const now = performance.now();
    const k = Math.max(1, e.done - done);
    done = e.done;
    for (let i = 0; i < k; i++) seconds.push((now - last) / 1000 / k);
    last = now;
  });
  return { seconds, value };
}
