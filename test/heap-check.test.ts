import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { ResourceError } from "../src/errors";
import { writeModelFiles } from "../src/io/files";
import { paramCounts, parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import {
  WASM_HEAP_BYTES, WASM_HEAP_RESERVE, checkModelLoad, checkPassMemory, forwardPassBytes, importancePassBytes, streamedHeapBytes, wasmModelHeapBytes,
  wasmHeadPackBytes, weightBytes,
} from "../src/resources";
import { Session } from "../src/session";
import { cli } from "./support/cli";

/**
 * Issue 20, past the wasm heap: work that cannot fit the wasm backend's 4 GiB heap is refused before it starts,
 * from the config and file headers alone, with the figures and what would fit — never "memory access out of
 * bounds" minutes later. The big configs here are never allocated.
 */

/** Llama-3.2-1B's shape (1.236 B parameters, tied head). */
const LLAMA_1B = parseConfig({
  vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32,
  num_key_value_heads: 8, head_dim: 64, tie_word_embeddings: true, max_position_embeddings: 131072, rope_theta: 500000,
});
/** Layers of 4.3 G parameters each: too big for the wasm heap even one at a time. */
const HUGE_LAYER = parseConfig({
  vocab_size: 128256, tie_word_embeddings: true, max_position_embeddings: 131072, rope_theta: 500000, hidden_size: 16384, intermediate_size: 65536, num_attention_heads: 128, num_key_value_heads: 8, head_dim: 128, num_hidden_layers: 2 });
/** The same layers, 2 of them: 0.38 B parameters, which fits. */
const TWO_LAYERS = { ...LLAMA_1B, num_hidden_layers: 2 };
const GIB = 2 ** 30;

function isResource(re: RegExp) {
  return (e: Error) => {
    assert.ok(e instanceof ResourceError, `expected ResourceError, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    assert.doesNotMatch(e.message, /out of bounds/);
    return true;
  };
}

describe("wasm heap checks (issue 20)", function () {
  this.timeout(60_000);

  it("the estimate is computed from the config: weights, packed copies, the tied head's transposed embedding", () => {
    const p = paramCounts(LLAMA_1B);
    assert.ok(Math.abs(p.total - 1.2358e9) < 1e6, `1B-shaped config has ${p.total} parameters`);
    assert.equal(weightBytes(LLAMA_1B), 4 * p.total);
    // weights + a packed copy of every linear weight + the tied head's transposed embedding
    assert.equal(wasmModelHeapBytes(LLAMA_1B), 4 * (p.total + p.attention + p.mlp + p.embeddings));
    assert.equal(wasmHeadPackBytes(LLAMA_1B), 4 * p.embeddings);
    const untied = { ...TWO_LAYERS, tie_word_embeddings: false };
    const q = paramCounts(untied);
    assert.equal(wasmModelHeapBytes(untied), 4 * (q.total + q.attention + q.mlp));
    assert.equal(wasmHeadPackBytes(untied), 4 * q.lm_head);
    // Passes grow with windows and length; the importance pass holds more than the forward one.
    assert.ok(forwardPassBytes(LLAMA_1B, 2, 128) > forwardPassBytes(LLAMA_1B, 1, 128));
    assert.ok(forwardPassBytes(LLAMA_1B, 1, 1024) > forwardPassBytes(LLAMA_1B, 1, 128));
    assert.ok(importancePassBytes(LLAMA_1B, 1, 128) > forwardPassBytes(LLAMA_1B, 1, 128));
  });

  it("a 1B model on wasm is streamed from host memory; held in the heap it is refused with the figures; it is resident elsewhere", () => {
    assert.equal(checkModelLoad(LLAMA_1B, "wasm", "model.safetensors", {}, 64 * GIB), "host");
    assert.equal(checkModelLoad(TWO_LAYERS, "wasm", "model.safetensors", {}, 64 * GIB), "heap", "what fits stays resident");
    assert.throws(
      () => checkModelLoad(LLAMA_1B, "wasm", "model.safetensors", { weightsIn: "heap" }, 64 * GIB),
      isResource(/1\.24 B parameters are 4\.6 GiB as float32, and on the wasm backend a model held in the heap needs about 9\.2 GiB of it to run .*more than the 4\.0 GiB heap holds.*--offload host.*@tensorflow\/tfjs-node.*--skip-memory-check/),
    );
    // streamed, the heap holds one layer with its copies and a head chunk
    assert.ok(wasmModelHeapBytes(LLAMA_1B, "host") < 1.5 * GIB, `${wasmModelHeapBytes(LLAMA_1B, "host")}`);
    assert.equal(wasmModelHeapBytes(LLAMA_1B, "host"), streamedHeapBytes(LLAMA_1B));
    // a layer too big to stream is refused with its size
    assert.throws(() => checkModelLoad(HUGE_LAYER, "wasm", "m", {}, 1024 * GIB), isResource(/streaming one layer at a time needs about .* GiB of heap \(the largest layer, .* GiB/));
    // host memory: the streamed weights must fit the host too; float16 storage or disk are named
    assert.throws(() => checkModelLoad(LLAMA_1B, "wasm", "m", {}, 4 * GIB), isResource(/held in host memory as float32.*--offload-dtype f16.*--offload disk/));
    assert.equal(checkModelLoad(LLAMA_1B, "wasm", "m", { hostFloat: "float16" }, 5 * GIB), "host");
    assert.equal(checkModelLoad(LLAMA_1B, "wasm", "m", { weightsIn: "disk" }, 3 * GIB), "disk");
    assert.equal(checkModelLoad(LLAMA_1B, "wasm", "m", { skipMemoryCheck: true }, 64 * GIB), "host", "skipping the checks does not put it back in the heap");
    assert.equal(checkModelLoad(LLAMA_1B, "wasm", "m", { skipMemoryCheck: true, weightsIn: "heap" }, 64 * GIB), "heap");
    assert.equal(checkModelLoad(LLAMA_1B, "tensorflow", "m", {}, 64 * GIB), "heap");
    // work that trains every weight (recover) holds them on the backend: never streamed, refused with its reason
    const residentFor = "recovery trains every weight";
    assert.equal(checkModelLoad(LLAMA_1B, "tensorflow", "m", { residentFor }, 64 * GIB), "heap");
    assert.throws(() => checkModelLoad(LLAMA_1B, "tensorflow", "m", { residentFor, weightsIn: "disk" }, 64 * GIB), /m: recovery trains every weight, so the weights must be held there .*weightsIn "disk" \(--offload disk\) is not supported/);
    assert.throws(() => checkModelLoad(LLAMA_1B, "wasm", "m", { residentFor }, 64 * GIB), (e: Error) => isResource(/Recovery trains every weight, so it cannot stream them; the native backend/)(e) && !/--offload host/.test(e.message));
    // Host memory bounds every backend: the weights plus the largest tensor in flight twice.
    assert.throws(() => checkModelLoad(LLAMA_1B, "tensorflow", "m", {}, 4 * GIB), isResource(/loading 1\.24 B parameters \(4\.6 GiB held as float32\) would need about 6\.6 GiB of memory but about 4\.0 GiB is available; use a machine with more memory.*--offload disk/));
  });

  it("a pass that cannot fit names the windows per pass and the length that would, and the native backend", () => {
    const resident = weightBytes(TWO_LAYERS);
    const cap = WASM_HEAP_BYTES - WASM_HEAP_RESERVE;
    assert.ok(wasmModelHeapBytes(TWO_LAYERS) + forwardPassBytes(TWO_LAYERS, 1, 128) < cap, "2 layers at 1 × 128 fit");
    // Fits: returns the plan.
    const plan = checkPassMemory(TWO_LAYERS, "forward", 1, 128, "perplexity", {}, "wasm", resident)!;
    assert.equal(plan.need, plan.resident + plan.pass);
    assert.ok(plan.need <= plan.capacity);
    // 8 windows of 2048 tokens do not fit: fewer windows, or shorter ones, with the figures.
    assert.throws(
      () => checkPassMemory(TWO_LAYERS, "forward", 8, 2048, "perplexity", {}, "wasm", resident),
      isResource(/perplexity on the wasm backend would need about \d+\.\d GiB of its 4\.0 GiB heap: .*for one pass of 8 windows × 2048 tokens; what would fit: .*(window|tokens).*@tensorflow\/tfjs-node/),
    );
    // Not checked on the native backend (host memory is checked with the calibration) or when skipped.
    assert.equal(checkPassMemory(TWO_LAYERS, "forward", 8, 2048, "perplexity", {}, "tensorflow", resident), null);
    assert.ok(checkPassMemory(TWO_LAYERS, "forward", 8, 2048, "perplexity", { skipMemoryCheck: true }, "wasm", resident));
  });

  it("CLI: ppl and eval on wasm refuse a 1B-shaped config held in the heap, and one whose layer cannot stream, exit 2, before reading any weight", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-heap-cli-"));
    try {
      const small = parseConfig({ vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true });
      const m = path.join(dir, "m");
      await writeModelFiles(m, { config: small, tensors: randomTensors(small, 1), tokenizer: null }, { format: "hf" });
      fs.writeFileSync(path.join(m, "config.json"), JSON.stringify({ ...LLAMA_1B, model_type: "llama" }));
      const w = path.join(dir, "w.json");
      fs.writeFileSync(w, JSON.stringify({ windows: [[1, 2, 3, 4]] }));
      const prev = tf.getBackend();
      try {
        // the weights beside the 1B config are a tiny model's: reading any of them would fail on its shape, so
        // the refusals below show the check runs before any weight is read (no timing in tests)
        let r = await cli(["ppl", "--model", m, "--windows", w, "--backend", "wasm", "--offload", "heap"]);
        assert.equal(r.code, 2, r.err);
        assert.match(r.err, /1\.24 B parameters are 4\.6 GiB as float32.*9\.2 GiB of it.*--offload host.*@tensorflow\/tfjs-node/);
        r = await cli(["eval", "--model", m, "--ppl", w, "--backend", "wasm", "--offload", "heap"]);
        assert.equal(r.code, 2, r.err);
        assert.match(r.err, /9\.2 GiB of it/);
        fs.writeFileSync(path.join(m, "config.json"), JSON.stringify({ ...HUGE_LAYER, model_type: "llama" }));
        r = await cli(["ppl", "--model", m, "--windows", w, "--backend", "wasm"]);
        assert.equal(r.code, 2, r.err);
        assert.match(r.err, /streaming one layer at a time needs about/);
      } finally {
        if (prev) await initEngine(prev as "cpu" | "wasm" | "tensorflow");
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("calibration on wasm: windows whose importance pass cannot fit the heap are refused before the teacher runs", async () => {
    const prev = tf.getBackend();
    await initEngine("wasm");
    const small = parseConfig({ vocab_size: 48, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true, max_position_embeddings: 64 });
    const s = Session.fromModel(CausalLM.fromTensors(small, randomTensors(small, 2)));
    try {
      // 1 window of 32768 tokens: its attention scores alone are 4 heads × 32768² floats, far past the heap.
      const long = [Array.from({ length: 32768 }, (_, i) => i % 48)];
      await assert.rejects(
        s.calibrate({ windows: long, allowLonger: true }),
        isResource(/calibration on the wasm backend would need about \d+\.\d GiB of its 4\.0 GiB heap.*1 window × 32768 tokens; what would fit: windows of at most \d+ tokens/),
      );
      assert.equal(s.calibrationWindows, null);
      // Short windows pass the check and run.
      await s.calibrate({ windows: [long[0].slice(0, 32)], topk: 8 });
    } finally {
      s.dispose();
      if (prev) await initEngine(prev as "cpu" | "wasm" | "tensorflow");
    }
  });

  it("Session.load refuses a checkpoint whose config exceeds the heap without reading its weights", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-heap-"));
    try {
      // A real (tiny) checkpoint, then a config.json claiming the 1B shape: the refusal comes from the config
      // alone, before any tensor is read or validated against it.
      const small = parseConfig({ vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true });
      const m = path.join(dir, "m");
      await writeModelFiles(m, { config: small, tensors: randomTensors(small, 1), tokenizer: null }, { format: "hf" });
      fs.writeFileSync(path.join(m, "config.json"), JSON.stringify({ ...LLAMA_1B, model_type: "llama" }));
      const prev = tf.getBackend();
      const before = tf.memory().numBytes;
      try {
        await assert.rejects(Session.load(m, { backend: "wasm", weightsIn: "heap" }), isResource(/4\.6 GiB as float32.*wasm/));
        assert.equal(tf.memory().numBytes, before, "nothing was allocated");
      } finally {
        if (prev) await initEngine(prev as "cpu" | "wasm" | "tensorflow");
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
