/**
 * The wasm heap estimates of src/resources.ts (wasmModelHeapBytes + wasmHeadPackBytes + forwardPassBytes or
 * importancePassBytes) against the
 * heap the wasm backend actually grows to (issue 20). Each case runs in its own child process so the heap starts
 * fresh: a random-weight model is built in memory, then one pass runs (a perplexity batch, or calibrate + score
 * of the layerwise Taylor path with one window per pass), and the heap's size after it (the allocator reuses freed
 * blocks, so the heap is the peak of what was in use) is compared with the estimate of the model in the heap plus
 * one pass.
 *
 *   npx tsx bench/heap-estimate.ts            (about a minute on 2 cores)
 */
import { spawnSync } from "node:child_process";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { CausalLM } from "../src/model/causal-lm";
import { parseConfig, type LlamaConfig } from "../src/model/config";
import { randomTensors } from "../src/model/random";
import { forwardPassBytes, importancePassBytes, wasmHeadPackBytes, wasmModelHeapBytes } from "../src/resources";
import { Session } from "../src/session";

interface Case {
  name: string;
  kind: "forward" | "importance";
  windows: number;
  seqLen: number;
  config: Record<string, unknown>;
}

const SMALL = { vocab_size: 32000, hidden_size: 512, intermediate_size: 1536, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, tie_word_embeddings: true, max_position_embeddings: 4096 };
const WIDE = { vocab_size: 128256, hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 2, num_attention_heads: 16, num_key_value_heads: 4, tie_word_embeddings: true, max_position_embeddings: 4096 };

const CASES: Case[] = process.env.HEAP_CASE ? [JSON.parse(process.env.HEAP_CASE)] : [
  { name: "small fwd 4×128", kind: "forward", windows: 4, seqLen: 128, config: SMALL },
  { name: "small fwd 1×1024", kind: "forward", windows: 1, seqLen: 1024, config: SMALL },
  { name: "small imp 1×128", kind: "importance", windows: 1, seqLen: 128, config: SMALL },
  { name: "small imp 1×512", kind: "importance", windows: 1, seqLen: 512, config: SMALL },
  { name: "wide fwd 2×256", kind: "forward", windows: 2, seqLen: 256, config: WIDE },
  { name: "wide imp 1×256", kind: "importance", windows: 1, seqLen: 256, config: WIDE },
];

function heapBytes(): number {
  return ((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length);
}

async function child(c: Case): Promise<void> {
  await initEngine("wasm");
  const config: LlamaConfig = parseConfig(c.config);
  const model = CausalLM.fromTensors(config, randomTensors(config, 1));
  const weights = tf.memory().numBytes;
  const heap0 = heapBytes();
  const ids = (n: number) => Array.from({ length: c.seqLen }, (_, i) => (i * 7919 + n * 104729) % config.vocab_size);
  const windows = Array.from({ length: c.windows }, (_, n) => ids(n));
  if (c.kind === "forward") {
    model.tokenLogProbs(windows);
  } else {
    const s = Session.fromModel(model);
    await s.calibrate({ windows, topk: 64 });
    await s.score({ criterion: "sd-taylor", batchWindows: 1 });
  }
  const estimate = wasmModelHeapBytes(config) + wasmHeadPackBytes(config) + (c.kind === "forward" ? forwardPassBytes(config, c.windows, c.seqLen) : importancePassBytes(config, 1, c.seqLen));
  process.stdout.write(JSON.stringify({ weights, heap0, heap: heapBytes(), after: tf.memory().numBytes, estimate }) + "\n");
}

function main(): void {
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  const rows = ["| case | f32 weights MiB | heap after the pass, MiB | estimate (model in heap + pass), MiB | estimate / measured |", "|---|---|---|---|---|"];
  for (const [i, c] of CASES.entries()) {
    const r = spawnSync(process.execPath, ["--import", "tsx", __filename, "--child", String(i)], { encoding: "utf8" });
    const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
    if (r.status !== 0 || !line.startsWith("{")) {
      rows.push(`| ${c.name} | failed: ${(r.stderr ?? "").trim().split("\n").slice(-2).join(" ")} | | | |`);
      continue;
    }
    const m = JSON.parse(line) as { weights: number; heap: number; estimate: number };
    rows.push(`| ${c.name} | ${mib(m.weights)} | ${mib(m.heap)} | ${mib(m.estimate)} | ${(m.estimate / m.heap).toFixed(2)} |`);
    process.stderr.write(rows[rows.length - 1] + "\n");
  }
  process.stdout.write(rows.join("\n") + "\n");
}

const at = process.argv.indexOf("--child");
if (at >= 0) void child(CASES[Number(process.argv[at + 1])]);
else main();
