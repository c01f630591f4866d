/**
 * Does the wasm heap stay flat when a streamed model uploads, uses and disposes its layers over and over
 * (docs/memory.md, "Layer streaming", need 4)? tfjs-backend-wasm runs each product with a weight as an XNNPACK
 * fully-connected operator that keeps a packed copy of the weight; if disposing the weight did not free that
 * operator, every layer visit would leave a packed copy behind and the heap would grow by about a layer per visit.
 *
 * Builds a streamed random model (hidden 1024, MLP 4096, 4 layers, vocabulary 32000: 58 MiB per layer), then runs
 * `passes` forward passes (tokenLogProbs, 1 × 128 tokens) and `passes` importance passes (sd-taylor, top-64
 * teacher), printing the heap size (HEAPU8.length, which only grows) and the tensors alive after each.
 *
 *   npx tsx bench/stream-heap.ts [--passes 6]
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { layerWeightBytes, streamedHeapBytes } from "../src/resources";
import { Session } from "../src/session";

function heapBytes(): number {
  return (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { passes: { type: "string", default: "6" } } });
  const passes = Number(values.passes);
  await initEngine("wasm");
  const config = parseConfig({ vocab_size: 32000, hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 4, num_attention_heads: 16, num_key_value_heads: 4, tie_word_embeddings: true, max_position_embeddings: 4096 });
  const model = CausalLM.fromTensors(config, randomTensors(config, 1), "random", { weightsIn: "host" });
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  console.log(`layer ${mib(layerWeightBytes(config))} MiB, streamed heap estimate ${mib(streamedHeapBytes(config))} MiB; heap at start ${mib(heapBytes())} MiB`);
  const window = Array.from({ length: 128 }, (_, i) => (i * 7919) % config.vocab_size);
  for (let p = 0; p < passes; p++) {
    model.tokenLogProbs([window]);
    console.log(`forward ${p + 1}: heap ${mib(heapBytes())} MiB, tensors ${tf.memory().numTensors} (${mib(tf.memory().numBytes)} MiB)`);
  }
  const s = Session.fromModel(model);
  for (let p = 0; p < passes; p++) {
    await s.calibrate({ windows: [window], topk: 64 });
    await s.score({ criterion: "sd-taylor" });
    console.log(`importance ${p + 1}: heap ${mib(heapBytes())} MiB, tensors ${tf.memory().numTensors} (${mib(tf.memory().numBytes)} MiB)`);
  }
  s.dispose();
}

void main();
