import type { LlamaConfig } from "../model/config";
import type { WeightsIn } from "../model/weight-store";
import { activeBackend, forwardHeapBytes } from "../resources";

/**
 * Windows per perplexity batch on the backends without a measured preference (wasm, cpu, webgpu), and the default
 * of `perplexity` itself, which sees a scorer but not the model.
 */
export const PPL_BATCH_WINDOWS = 4;

/**
 * Windows per perplexity batch on the native backend: libtensorflow's products (85 % of a ppl batch's kernel time)
 * run faster on more rows. 16 windows × 128 tokens against 8 and 4, best of 3 interleaved rounds: stories15M 4367 /
 * 4048 / 3415 tok/s, stories110M 728 / 682 / 647 (bench/NOTES.md, "Windows per ppl batch").
 */
export const PPL_BATCH_WINDOWS_NATIVE = 16;

/**
 * Most heap one default perplexity batch may take (forwardHeapBytes: the trunk's activations of the layer in
 * flight and one head chunk of logits with its temporaries). The Llama-3.2-1B shape gets 10 windows × 128 tokens
 * (0.48 GiB), so its ppl peak stays near its weights (1.18× at 8, bench/NOTES.md); stories110M gets 16 (0.29 GiB);
 * long windows get fewer per batch rather than a pass of gigabytes.
 */
export const PPL_BATCH_BUDGET_BYTES = 512 * 2 ** 20;

/** Windows per batch a backend prefers when memory allows. */
export function preferredPplBatch(backend: string): number {
  return backend === "tensorflow" ? PPL_BATCH_WINDOWS_NATIVE : PPL_BATCH_WINDOWS;
}

/**
 * Default windows per perplexity batch (the Session's, the CLI's `--batch-size` and the REPL's): the backend's
 * preference, lowered while one batch of `seqLen`-token windows would need more than PPL_BATCH_BUDGET_BYTES, down
 * to 1. The result does not depend on it (each window's log-probs are its own; only float rounding differs).
 */
export function defaultPplBatch(config: LlamaConfig, seqLen: number, backend = activeBackend(), weightsIn: WeightsIn = "heap"): number {
  let b = preferredPplBatch(backend);
  while (b > 1 && forwardHeapBytes(config, b, seqLen, weightsIn) > PPL_BATCH_BUDGET_BYTES) b--;
  return b;
}
