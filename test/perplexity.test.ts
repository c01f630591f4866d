import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pplCommand } from "../src/cli/commands/ppl";
import { joinDocs, wikitextRows } from "../src/data/text";
import { evalWindows, saveWindows } from "../src/data/windows";
import { initEngine } from "../src/engine";
import { loadModel } from "../src/model/load";
import { CancelledError, DataError, NumericError, UsageError } from "../src/errors";
import { perplexity, pplFromText } from "../src/eval/perplexity";
import { defaultPplBatch, PPL_BATCH_BUDGET_BYTES, PPL_BATCH_WINDOWS, PPL_BATCH_WINDOWS_NATIVE, preferredPplBatch } from "../src/eval/ppl-batch";
import { CausalLM } from "../src/model/causal-lm";
import { parseConfig } from "../src/model/config";
import { randomTensors } from "../src/model/random";
import { forwardHeapBytes } from "../src/resources";
import * as tf from "@tensorflow/tfjs";
import { WORKLOADS } from "../bench/workloads";
import type { ProgressEvent } from "../src/types";
import { randomIds } from "./reference/configs";
import { captureOutput } from "./support/cli";
import { requireShared } from "./support/shared";
import { bigramLogProb, bigramScorer, CharTokenizer, FAKE_BOS } from "./support/fake-lm";

const windows = [
  [1, 5, 9, 13, 2, 7],
  [4, 4, 8, 60, 33, 3],
  [10, 20, 30, 40, 50, 63],
];

/** Mean NLL recomputed directly from the bigram definition. */
function meanNll(ws: number[][]): number {
  let s = 0;
  let n = 0;
  for (const w of ws) for (let t = 0; t + 1 < w.length; t++, n++) s -= bigramLogProb(w[t], w[t + 1]);
  return s / n;
}

describe("eval/perplexity", () => {
  it("ppl = exp(mean NLL over all seqLen − 1 predictions of all windows)", async () => {
    const r = await perplexity(bigramScorer, windows);
    const nll = meanNll(windows);
    assert.equal(r.tokens, 3 * 5);
    assert.equal(r.windows, 3);
    assert.equal(r.seqLen, 6);
    assert.ok(Math.abs(r.nll - nll) < 1e-5, `${r.nll} vs ${nll}`);
    assert.ok(Math.abs(r.ppl - Math.exp(nll)) / Math.exp(nll) < 1e-5);
    // not the mean of per-window perplexities
    const perWindow = windows.map((w) => Math.exp(meanNll([w])));
    assert.ok(Math.abs(r.ppl - perWindow.reduce((a, b) => a + b) / 3) > 1e-3);
  });

  it("does not depend on the batch size; reports progress per batch", async () => {
    const events: ProgressEvent[] = [];
    const a = await perplexity(bigramScorer, windows, { batchSize: 1, onProgress: (e) => events.push(e) });
    const b = await perplexity(bigramScorer, windows, { batchSize: 2 });
    assert.ok(Math.abs(a.nll - b.nll) < 1e-9);
    assert.deepEqual(events.map((e) => e.done), [1, 2, 3]);
    assert.ok(events.every((e) => e.total === 3 && e.phase === "eval:ppl"));
    assert.equal(events[2].tokens, 18);
    assert.equal(events[2].etaSeconds ?? 0, 0);
  });

  it("cancels between batches with CancelledError", async () => {
    const ac = new AbortController();
    let calls = 0;
    const scorer = (s: number[][]) => {
      calls++;
      ac.abort();
      return bigramScorer(s);
    };
    await assert.rejects(perplexity(scorer, windows, { batchSize: 1, signal: ac.signal }), CancelledError);
    assert.equal(calls, 1);
  });

  it("rejects bad windows and bad scorer output", async () => {
    await assert.rejects(perplexity(bigramScorer, []), DataError);
    await assert.rejects(perplexity(bigramScorer, [[1, 2], [3]]), DataError);
    await assert.rejects(perplexity(bigramScorer, [[1]]), DataError);
    await assert.rejects(perplexity(() => [new Float32Array(1)], windows), DataError);
    await assert.rejects(perplexity((s) => s.map((w) => new Float32Array(w.length - 1).fill(NaN)), windows), NumericError);
  });

  it("pplFromText: one BOS at the start, non-overlapping windows, remainder dropped", async () => {
    const tok = new CharTokenizer();
    const text = "the quick brown fox jumps over the lazy dog\n\nand again";
    const ids = tok.encode(text);
    const seqLen = 8;
    const r = await pplFromText(bigramScorer, tok, text, seqLen);
    const n = Math.floor(ids.length / seqLen);
    const ws = Array.from({ length: n }, (_, w) => ids.slice(w * seqLen, (w + 1) * seqLen));
    assert.equal(ws[0][0], FAKE_BOS);
    assert.ok(ws.slice(1).every((w) => w[0] !== FAKE_BOS));
    assert.equal(r.windows, n);
    assert.equal(r.textTokens, ids.length);
    assert.equal(r.droppedTokens, ids.length - n * seqLen);
    assert.equal(r.tokens, n * (seqLen - 1));
    assert.ok(Math.abs(r.nll - meanNll(ws)) < 1e-5);
    await assert.rejects(pplFromText(bigramScorer, tok, "   ", 4), DataError);
    await assert.rejects(pplFromText(bigramScorer, tok, "ab", 4), (e: Error) => e instanceof DataError && /3 tokens/.test(e.message));
  });
});

describe("eval/ppl-batch: windows per perplexity batch", function () {
  this.timeout(120_000);

  it("a random model's perplexity is the same at every batch size (1e-6 relative), no tensor left", async () => {
    await initEngine();
    // vocabulary 3000: head chunks of 1376 rows, so batches of 16 and 17 windows × 96 tokens cross a chunk boundary
    const config = parseConfig({ vocab_size: 3000, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true });
    const model = CausalLM.fromTensors(config, randomTensors(config, 3, 0.5));
    try {
      const ws = Array.from({ length: 17 }, (_, i) => randomIds(96, config.vocab_size, i + 1));
      const scorer = (s: number[][]) => model.tokenLogProbs(s);
      await perplexity(scorer, ws.slice(0, 2)); // kernels and caches built before the baseline
      const before = tf.memory().numTensors;
      const byBatch = new Map<number, number>();
      for (const b of [1, 3, PPL_BATCH_WINDOWS, PPL_BATCH_WINDOWS_NATIVE, 16, 17]) byBatch.set(b, (await perplexity(scorer, ws, { batchSize: b })).nll);
      assert.equal(tf.memory().numTensors, before);
      const ref = byBatch.get(1)!;
      assert.ok(Number.isFinite(ref) && ref > 0, `nll ${ref}`);
      for (const [b, nll] of byBatch) assert.ok(Math.abs(nll - ref) / ref < 1e-6, `batch ${b}: ${nll} vs ${ref} at batch 1`);
    } finally {
      model.dispose();
    }
  });

  it("defaults to the backend's preference, fewer windows where a batch would exceed the budget", () => {
    assert.equal(preferredPplBatch("tensorflow"), PPL_BATCH_WINDOWS_NATIVE);
    for (const b of ["wasm", "cpu", "webgpu", ""]) assert.equal(preferredPplBatch(b), PPL_BATCH_WINDOWS);
    const stories110M = parseConfig(WORKLOADS.stories110M.config);
    const llama1b = parseConfig(WORKLOADS.llama1b.config);
    // the benchmarked shape at seq 128 gets the measured preference; the 1B shape as many as the budget holds
    assert.equal(defaultPplBatch(stories110M, 128, "tensorflow"), PPL_BATCH_WINDOWS_NATIVE);
    assert.equal(defaultPplBatch(stories110M, 128, "wasm"), PPL_BATCH_WINDOWS);
    const b1 = defaultPplBatch(llama1b, 128, "tensorflow");
    assert.ok(b1 > PPL_BATCH_WINDOWS && b1 < PPL_BATCH_WINDOWS_NATIVE, `1B at 128: ${b1}`);
    // long windows: the most that fit the budget, at least 1
    for (const [config, T, backend] of [[llama1b, 128, "tensorflow"], [llama1b, 1024, "tensorflow"], [stories110M, 1024, "tensorflow"], [llama1b, 512, "wasm"], [llama1b, 4096, "tensorflow"]] as const) {
      for (const weightsIn of ["heap", "host"] as const) {
        const b = defaultPplBatch(config, T, backend, weightsIn);
        assert.ok(b >= 1 && b <= preferredPplBatch(backend));
        if (b > 1) assert.ok(forwardHeapBytes(config, b, T, weightsIn) <= PPL_BATCH_BUDGET_BYTES, `${b} × ${T}`);
        if (b < preferredPplBatch(backend)) assert.ok(forwardHeapBytes(config, b + 1, T, weightsIn) > PPL_BATCH_BUDGET_BYTES, `${b + 1} × ${T} would fit`);
      }
    }
    assert.ok(defaultPplBatch(llama1b, 1024, "tensorflow") < PPL_BATCH_WINDOWS_NATIVE);
    assert.equal(defaultPplBatch(llama1b, 4096, "tensorflow"), 1);
  });

  it("sdmprune ppl --help states the library's default", () => {
    const help = pplCommand.usage.replace(/\s+/g, " ");
    assert.match(help, new RegExp(`--batch-size N windows per forward batch \\(default ${PPL_BATCH_WINDOWS_NATIVE} on the native backend, ${PPL_BATCH_WINDOWS} on the others; fewer where one batch would need over ${PPL_BATCH_BUDGET_BYTES / 2 ** 20} MiB`));
  });
});

describe("cli: sdmprune ppl", function () {
  this.timeout(300_000);

  async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    return captureOutput(() => pplCommand.run(args));
  }

  it("WikiText rows and saved windows on stories260K agree with the library", async function () {
    const shared = requireShared(this);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-ppl-cli-"));
    try {
      const raw = fs.readFileSync(path.join(shared, "data", "wikitext-2-raw", "wiki.test.raw"), "utf8").split("\n").slice(0, 40).join("\n") + "\n";
      const file = path.join(dir, "wiki.raw");
      fs.writeFileSync(file, raw);
      const model = path.join(shared, "models", "stories260K.gguf");
      const r = await runCli(["--model", model, "--text", file, "--wikitext", "--seq-len", "128", "--json"]);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out);
      await initEngine();
      const m = await loadModel(model);
      try {
        const ids = m.tokenizer!.encode(joinDocs(wikitextRows(raw)), { addBos: true });
        const ws = evalWindows(ids, 128);
        const lib = await perplexity((s) => m.model.tokenLogProbs(s), ws);
        assert.equal(j.seqLen, 128);
        assert.equal(j.windows, ws.length);
        assert.equal(j.tokens, ws.length * 127);
        assert.ok(Math.abs(j.ppl - lib.ppl) / lib.ppl < 1e-6, `${j.ppl} vs ${lib.ppl}`);
        assert.ok(["tensorflow", "webgpu", "wasm", "cpu"].includes(j.backend));

        const wf = path.join(dir, "w.json");
        await saveWindows(wf, ws.slice(0, 3));
        const t = await runCli(["--model", model, "--windows", wf]);
        assert.equal(t.code, 0, t.err);
        const lib3 = await perplexity((s) => m.model.tokenLogProbs(s), ws.slice(0, 3));
        assert.match(t.out, new RegExp(`ppl:\\s+${lib3.ppl.toFixed(4)}`));
        assert.match(t.out, /seq len:\s+128/);
        assert.match(t.out, /windows:\s+3/);
        assert.match(t.out, /backend:\s+\w+/);
        await assert.rejects(runCli(["--model", model, "--windows", wf, "--seq-len", "64"]), (e: Error) => e instanceof UsageError && /128 tokens/.test(e.message));
      } finally {
        m.model.dispose();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("usage errors name the problem", async () => {
    // --seq-len defaults to 128 with --text, as in eval --ppl; a bad protocol is named
    await assert.rejects(runCli(["--model", "m.gguf", "--text", "t.txt", "--protocol", "lines"]), (e: Error) => e instanceof UsageError && /--protocol must be documents, wikitext or file/.test(e.message));
    await assert.rejects(runCli(["--model", "m.gguf", "--text", "t.txt", "--windows", "w.json", "--seq-len", "8"]), (e: Error) => e instanceof UsageError && /exactly one of --text/.test(e.message));
    await assert.rejects(runCli(["--model", "m.gguf", "--text", "t.txt", "--seq-len", "1"]), UsageError);
    await assert.rejects(runCli(["--model", "m.gguf", "--text", "/nonexistent/t.txt", "--seq-len", "8"]), (e: Error) => e instanceof DataError && /does not exist/.test(e.message));
  });
});
