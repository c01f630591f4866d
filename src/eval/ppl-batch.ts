import * as tf from "@tensorflow/tfjs";
import type { LlamaConfig } from "../model/config";
import type { WeightsIn } from "../model/weight-store";
import { forwardHeapBytes } from "../resources";

/**
 * Windows per perplexity batch on the backends without a measured preference (wasm, cpu, webgpu), and the default
 * of `perplexity` itself, which sees a scorer but not the model.
 */
export const PPL_BATCH_WINDOWS = 4;

/**
 * Windows per perplexity batch on the native backend: libtensorflow's products run faster on more rows, and a batch
 * of 8 windows × 128 tokens beat 4 on stories110M (bench/NOTES.md, "Windows per ppl batch").
 */
export const PPL_BATCH_WINDOWS_NATIVE = 8;

/**
 * Most heap one default perplexity batch may take (forwardHeapBytes: the trunk's activations of the layer in
 * flight and one head chunk of logits with its temporaries). 8 windows × 128 tokens of the Llama-3.2-1B shape
 * need 0.40 GiB; a model's ppl peak then stays near its weights (bench/NOTES.md), and long windows get fewer per
 * batch rather than a pass of gigabytes.
 */
export const PPL_BATCH_BUDGET_BYTES = 512 * 2 ** 20;

/** Windows per batch a backend prefers when memory allows. */
export function preferredPplBatch(backend: string): number {
  return backend === "tensorflow" ? PPL_BATCH_WINDOWS_NATIVE : PPL_BATCH_WINDOWS;
}

function activeBackend(): string {
  try {
    return tf.getBackend() ?? "";
  } catch {
    return "";
  }
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
