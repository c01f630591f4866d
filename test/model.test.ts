import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { ConfigError, DataError } from "../src/errors";
import { readModelFiles, type ModelFiles } from "../src/io/files";
import { isLazy } from "../src/io/tensor-file";
import { combineHooks, hookPoints, maskChannels, zeroAblate } from "../src/model/hooks";
import { CausalLM, targetLogProbs } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { referenceGreedy, referenceLogits } from "./reference/llama-ref";
import { TINY_CONFIGS, randomIds, relError } from "./reference/configs";
import { requireShared, STORIES260K } from "./support/shared";

const TOL = 1e-4;

/** log p of each row's target from float64 logits (max-shifted). */
function refLogProbs(z: number[][], targets: number[]): number[] {
  return z.map((row, r) => {
    const mx = Math.max(...row);
    return row[targets[r]] - (Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0)) + mx);
  });
}

const lseBackends: Array<"cpu" | "wasm" | "tensorflow"> = ["cpu", "wasm"];
if (process.env.SDMPRUNE_BACKEND === "tensorflow") lseBackends.push("tensorflow");
for (const backend of lseBackends) {
  describe(`targetLogProbs (${backend})`, function () {
    before(async () => {
      await initEngine(backend);
    });

    // Rows of logits centred at 0 take the two-pass path; rows centred far above (Σ exp overflows) or far below
    // (Σ exp underflows) zero must come out the same through the shifted fallback, alone or mixed in one block.
    const V = 300;
    const rowAt = (centre: number, seed: number): number[] => {
      let x = seed * 7919 + 13;
      return Array.from({ length: V }, () => {
        x = (x * 1103515245 + 12345) % 2147483648;
        return centre + ((x / 2147483648) * 2 - 1) * 12;
      });
    };
    const blocks: Record<string, number[]> = { "logits near 0": [0, 3, -5, 20], "one row at +120": [0, 120, 2, -3], "one row at −160": [1, -160, 0, 4], "all at ±200": [200, -200, 250, -210] };
    for (const [name, centres] of Object.entries(blocks)) {
      for (const axis of [1, 0] as const) {
        it(`${name}, ${axis === 1 ? "row-major [n, V]" : "vocabulary-major [V, n]"}: equals float64 log-softmax, no tensor left`, () => {
          const z = centres.map((c, r) => rowAt(c, r + 1));
          const n = z.length;
          const targets = z.map((_, r) => (r * 37 + 5) % V);
          const want = refLogProbs(z, targets);
          const before = tf.memory().numTensors;
          const block = axis === 1 ? tf.tensor2d(z) : tf.tidy(() => tf.transpose(tf.tensor2d(z)) as tf.Tensor2D);
          const flat = Int32Array.from(targets, (t, r) => (axis === 1 ? r * V + t : t * n + r));
          const got = targetLogProbs(block, flat, axis);
          assert.equal(tf.memory().numTensors, before);
          assert.ok(block.isDisposed);
          got.forEach((g, r) => assert.ok(Math.abs(g - want[r]) <= 1e-5 * Math.max(1, Math.abs(want[r])), `row ${r}: ${g} vs ${want[r]}`));
        });
      }
    }
  });
}

for (const backend of ["cpu", "wasm"] as const) {
  describe(`CausalLM vs float64 reference (${backend})`, function () {
    before(async () => {
      await initEngine(backend);
    });

    for (const [name, config] of Object.entries(TINY_CONFIGS)) {
      it(`logits match the reference: ${name}`, () => {
        const tensors = randomTensors(config, 3, 0.2);
        const model = CausalLM.fromTensors(config, tensors, name);
        try {
          const T = 12;
          const seqs = [randomIds(T, config.vocab_size, 1), randomIds(T, config.vocab_size, 2)];
          const logits = model.forward(seqs);
          const got = logits.arraySync() as number[][][];
          logits.dispose();
          let worst = { rel: 0, elementwise: 0 };
          seqs.forEach((s, b) => {
            const ref = referenceLogits(config, tensors, s);
            const e = relError(got[b].flat(), ref.flatMap((r) => Array.from(r)));
            worst = { rel: Math.max(worst.rel, e.rel), elementwise: Math.max(worst.elementwise, e.elementwise) };
          });
          console.log(`      [${backend}] ${name}: max rel err ${worst.rel.toExponential(2)}, elementwise ${worst.elementwise.toExponential(2)}`);
          assert.ok(worst.rel <= TOL, `max relative error ${worst.rel} > ${TOL}`);
        } finally {
          model.dispose();
        }
      });
    }

    it("tokenLogProbs agrees with log-softmax of the reference, for mixed lengths", () => {
      const config = TINY_CONFIGS["mqa+untied+head_dim16+per-layer-I"];
      const tensors = randomTensors(config, 5, 0.2);
      const model = CausalLM.fromTensors(config, tensors);
      try {
        const seqs = [randomIds(9, config.vocab_size, 4), randomIds(5, config.vocab_size, 5), [3], randomIds(9, config.vocab_size, 6)];
        const lps = model.tokenLogProbs(seqs);
        // head chunks of 5 rows (not a divisor of 9 or 5) must give the same values
        const chunked = model.tokenLogProbs(seqs, { logitRows: 5 });
        chunked.forEach((c, i) => assert.deepEqual(c, lps[i]));
        assert.equal(lps.length, 4);
        assert.equal(lps[2].length, 0);
        seqs.forEach((s, i) => {
          if (s.length < 2) return;
          const ref = referenceLogits(config, tensors, s);
          assert.equal(lps[i].length, s.length - 1);
          const wants = refLogProbs(ref.slice(0, s.length - 1).map((row) => Array.from(row)), s.slice(1));
          for (let t = 0; t + 1 < s.length; t++) {
            const want = wants[t];
            assert.ok(Math.abs(lps[i][t] - want) <= 1e-4 * Math.max(1, Math.abs(want)), `seq ${i} pos ${t}: ${lps[i][t]} vs ${want}`);
          }
        });
      } finally {
        model.dispose();
      }
    });

    it("cached greedy generation equals greedy argmax by full recomputation", () => {
      const config = TINY_CONFIGS["gqa+llama3+tied"];
      const tensors = randomTensors(config, 7, 0.5);
      const model = CausalLM.fromTensors(config, tensors);
      try {
        const prompt = randomIds(4, config.vocab_size, 9);
        const got = model.generate(prompt, { maxNewTokens: 10, stopAtEos: false });
        assert.deepEqual(got, referenceGreedy(config, tensors, prompt, 10));
      } finally {
        model.dispose();
      }
    });

    it("sampling is determined by the seed; topK 1 is greedy", () => {
      const config = TINY_CONFIGS["gqa+llama3+tied"];
      const model = CausalLM.fromTensors(config, randomTensors(config, 7, 0.5));
      try {
        const a = model.generate([1, 2], { maxNewTokens: 12, temperature: 1, seed: 4, stopAtEos: false });
        const b = model.generate([1, 2], { maxNewTokens: 12, temperature: 1, seed: 4, stopAtEos: false });
        const c = model.generate([1, 2], { maxNewTokens: 12, temperature: 1, seed: 5, stopAtEos: false });
        assert.deepEqual(a, b);
        assert.notDeepEqual(a, c);
        const greedy = model.generate([1, 2], { maxNewTokens: 12, stopAtEos: false });
        assert.deepEqual(model.generate([1, 2], { maxNewTokens: 12, temperature: 0.7, topK: 1, seed: 9, stopAtEos: false }), greedy);
      } finally {
        model.dispose();
      }
    });

    it("hooks: a channel mask, a read-only hook and switched-off blocks match the reference with masks", () => {
      const config = TINY_CONFIGS["mqa+untied+head_dim16+per-layer-I"];
      const tensors = randomTensors(config, 11, 0.2);
      const model = CausalLM.fromTensors(config, tensors);
      try {
        const ids = [randomIds(7, config.vocab_size, 3)];
        // a 0/1 mask on layer 1 equals the reference with the same mask
        const maskHost = Float64Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? 0 : 1));
        const mask = tf.tensor1d(Float32Array.from(maskHost));
        const seen: number[][] = [];
        const logits = model.forward(ids, {
          hooks: combineHooks(
            { "layers.1.mlp.act": maskChannels(mask) },
            { "layers.1.mlp.in": (x) => void seen.push([...x.shape]), "layers.1.mlp.act": (a) => void seen.push([...a.shape]) },
          ),
        });
        const ref = referenceLogits(config, tensors, ids[0], { mlpMask: [null, maskHost, null] });
        const e = relError((logits.arraySync() as number[][][])[0].flat(), ref.flatMap((r) => Array.from(r)));
        assert.ok(e.rel <= TOL, `masked rel err ${e.rel}`);
        assert.deepEqual(seen, [[7, 48], [7, 24]]);
        // the MLP switched off on a layer equals an all-zero mask there
        const zero = tf.zeros([40]) as tf.Tensor1D;
        const l1 = model.forward(ids, { hooks: { "layers.0.mlp.out": zeroAblate } });
        const l2 = model.forward(ids, { hooks: { "layers.0.mlp.act": maskChannels(zero) } });
        assert.ok(relError(l1.dataSync(), l2.dataSync()).rel < 1e-6);
        // attention switched off changes the output (attention is live) and keeps shapes
        const l3 = model.forward(ids, { hooks: { "layers.0.attn.out": zeroAblate } });
        assert.deepEqual(l3.shape, [1, 7, config.vocab_size]);
        assert.ok(relError(l3.dataSync(), logits.dataSync()).rel > 1e-3);
        tf.dispose([mask, zero, logits, l1, l2, l3]);
      } finally {
        model.dispose();
      }
    });

    it("runWithCache captures every hook point; the last residual through the head gives the logits", () => {
      const config = TINY_CONFIGS["mqa+untied+head_dim16+per-layer-I"];
      const model = CausalLM.fromTensors(config, randomTensors(config, 5, 0.2));
      const before = tf.memory().numTensors;
      try {
        const ids = [randomIds(6, config.vocab_size, 1), randomIds(6, config.vocab_size, 2)];
        const { logits, cache } = model.runWithCache(ids);
        assert.deepEqual([...cache.keys()], hookPoints(3));
        assert.deepEqual(cache.get("layers.2.mlp.act")!.shape, [12, 56]);
        const viaHead = model.head(cache.get("resid.2")!);
        assert.ok(relError(viaHead.dataSync(), logits.dataSync()).rel < 1e-6);
        assert.throws(() => model.forward(ids, { hooks: { "layers.3.mlp.act": () => undefined } }), /unknown hook point/);
        tf.dispose([logits, viaHead, ...cache.values()]);
      } finally {
        model.dispose();
      }
    });

    it("withWeights over sliced MLP channels equals masking them, and derives per-layer widths", () => {
      const config = TINY_CONFIGS["mqa+untied+head_dim16+per-layer-I"];
      const model = CausalLM.fromTensors(config, randomTensors(config, 17, 0.2));
      try {
        const keep = Array.from({ length: 24 }, (_, i) => i).filter((i) => i % 4 !== 1);
        const maskHost = Float32Array.from({ length: 24 }, (_, i) => (keep.includes(i) ? 1 : 0));
        const ids = [randomIds(7, config.vocab_size, 2)];
        const mask = tf.tensor1d(maskHost);
        const masked = model.forward(ids, { hooks: { "layers.1.mlp.act": maskChannels(mask) } });
        const lw = model.weights.layers[1];
        const idx = tf.tensor1d(keep, "int32");
        const sliced = {
          ...lw,
          gate_proj: tf.gather(lw.gate_proj, idx, 1) as tf.Tensor2D,
          up_proj: tf.gather(lw.up_proj, idx, 1) as tf.Tensor2D,
          down_proj: tf.gather(lw.down_proj, idx, 0) as tf.Tensor2D,
        };
        const pruned = model.withWeights({ ...model.weights, layers: [model.weights.layers[0], sliced, model.weights.layers[2]] });
        assert.deepEqual(pruned.config.intermediate_size, [40, keep.length, 56]);
        const out = pruned.forward(ids);
        assert.ok(relError(out.dataSync(), masked.dataSync()).rel < 1e-6);
        assert.throws(() => model.withWeights(pruned.weights, config), (e: Error) => e instanceof ConfigError && /layers\.1\.mlp\.gate_proj/.test(e.message));
        tf.dispose([mask, masked, idx, out, sliced.gate_proj, sliced.up_proj, sliced.down_proj]);
      } finally {
        model.dispose();
      }
    });

    it("fromTensors refuses a tensor whose data does not fill its shape, naming it, and leaks no tensors", () => {
      const config = TINY_CONFIGS["mqa+untied+head_dim16+per-layer-I"];
      const tensors = randomTensors(config, 13, 0.2);
      const name = "model.layers.0.mlp.up_proj.weight";
      const t = tensors.get(name)!;
      tensors.set(name, { shape: t.shape, data: t.data.subarray(1) });
      const before = tf.memory().numTensors;
      assert.throws(() => CausalLM.fromTensors(config, tensors), (e: unknown) => e instanceof ConfigError && e.message.includes(name) && /holds \d+ values/.test(e.message));
      assert.equal(tf.memory().numTensors, before);
    });

    it("toTensors round-trips; clone and withWeights compute the same logits", () => {
      const config = TINY_CONFIGS["mqa+untied+head_dim16+per-layer-I"];
      const tensors = randomTensors(config, 13, 0.2);
      const model = CausalLM.fromTensors(config, tensors);
      const copy = model.clone();
      try {
        const back = model.toTensors();
        // The lazy form (what saving uses) downloads each tensor when it is read, and gives the same values.
        const lazy = model.toTensors({ lazy: true });
        assert.deepEqual([...back.keys()].sort(), [...tensors.keys()].sort());
        assert.deepEqual([...lazy.keys()].sort(), [...tensors.keys()].sort());
        for (const [k, t] of tensors) {
          assert.deepEqual(back.get(k)!.shape, t.shape, k);
          assert.deepEqual(back.get(k)!.data, t.data, k);
          assert.ok(isLazy(lazy.get(k)!), k);
          assert.deepEqual(lazy.get(k)!.shape, t.shape, k);
          assert.deepEqual(lazy.get(k)!.data, t.data, k);
        }
        const ids = [randomIds(6, config.vocab_size, 1)];
        const a = model.forward(ids);
        model.dispose();
        const b = copy.forward(ids);
        assert.deepEqual(a.dataSync(), b.dataSync());
        const shared = copy.withWeights(copy.weights);
        const c = shared.forward(ids);
        assert.deepEqual(c.dataSync(), b.dataSync());
        tf.dispose([a, b, c]);
      } finally {
        copy.dispose();
      }
    });
  });
}

describe("CausalLM.fromTensors validation", () => {
  before(async () => {
    await initEngine("cpu");
  });
  const config = TINY_CONFIGS["gqa+llama3+tied"];

  it("names a missing tensor", () => {
    const t = randomTensors(config, 1);
    t.delete("model.layers.1.mlp.up_proj.weight");
    assert.throws(() => CausalLM.fromTensors(config, t, "x.gguf"), (e: Error) => e instanceof ConfigError && /model\.layers\.1\.mlp\.up_proj\.weight/.test(e.message) && /missing/.test(e.message));
  });

  it("names a tensor whose shape disagrees with config.json, with expected and actual shapes", () => {
    const t = randomTensors(config, 1);
    t.set("model.layers.0.self_attn.k_proj.weight", { shape: [8, 32], data: new Float32Array(256) });
    assert.throws(
      () => CausalLM.fromTensors(config, t),
      (e: Error) => e instanceof ConfigError && /k_proj/.test(e.message) && /\[8,32\]/.test(e.message) && /\[16,32\]/.test(e.message),
    );
  });

  it("rejects unexpected tensors (e.g. biases) and bad token ids", () => {
    const t = randomTensors(config, 1);
    t.set("model.layers.0.self_attn.q_proj.bias", { shape: [32], data: new Float32Array(32) });
    assert.throws(() => CausalLM.fromTensors(config, t), (e: Error) => e instanceof ConfigError && /q_proj\.bias/.test(e.message));
    const m = CausalLM.fromTensors(config, randomTensors(config, 1));
    try {
      assert.throws(() => m.forward([[1, 2, 99]]), DataError);
      assert.throws(() => m.forward([[1, 2], [3]]), DataError);
    } finally {
      m.dispose();
    }
  });
});

describe("stories260K (shared GGUF)", function () {
  const EXPECTED = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";
  // docs/formats.md, "stories260K": "Once upon a time" with BOS; the continuation is llama2.c's documented greedy output.
  const PROMPT_IDS = [1, 403, 407, 261, 378];
  let files: ModelFiles;

  before(async function () {
    requireShared(this);
    files = await readModelFiles(STORIES260K());
  });

  for (const backend of ["cpu", "wasm"] as const) {
    it(`greedy generation reproduces the reference story (${backend})`, async function () {
      await initEngine(backend);
      const tok = files.tokenizer!;
      const prompt = tok.encode("Once upon a time");
      assert.deepEqual(prompt, PROMPT_IDS);
      const model = CausalLM.fromTensors(files.config, files.tensors, "stories260K.gguf");
      try {
        const n = 40;
        const t0 = process.hrtime.bigint();
        const out = model.generate(prompt, { maxNewTokens: n, stopAtEos: false });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const text = tok.decode([...prompt, ...out], { skipSpecialTokens: true }).trimStart();
        console.log(`      [${backend}] ${(ms / n).toFixed(1)} ms/token: ${JSON.stringify(text.slice(0, 90))}…`);
        assert.ok(text.startsWith(EXPECTED), `got ${JSON.stringify(text)}`);
      } finally {
        model.dispose();
      }
    });

    it(`logits match the float64 reference (${backend})`, async function () {
      await initEngine(backend);
      const model = CausalLM.fromTensors(files.config, files.tensors, "stories260K.gguf");
      try {
        const seq = files.tokenizer!.encode("Once upon a time, there was a little girl named Lily. She loved to play outside.");
        const logits = model.forward([seq]);
        const ref = referenceLogits(files.config, files.tensors, seq);
        const e = relError(logits.dataSync(), ref.flatMap((r) => Array.from(r)));
        logits.dispose();
        console.log(`      [${backend}] stories260K T=${seq.length}: max rel err ${e.rel.toExponential(2)}, elementwise ${e.elementwise.toExponential(2)}`);
        assert.ok(e.rel <= TOL, `max relative error ${e.rel}`);
      } finally {
        model.dispose();
      }
    });
  }
});
