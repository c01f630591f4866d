import * as assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { UsageError } from "../src/errors";
import { HfTokenizer } from "../src/io/tokenizer";
import { AdamW, globalNorm } from "../src/train/optimizer";
import { batchIndices } from "../src/train/recover";
import { checkSchedule, learningRate } from "../src/train/schedule";
import { trainByteLevelBpe } from "../src/train/tokenizer-trainer";
import { unigramPerplexity } from "../src/train/unigram";

describe("training building blocks", () => {
  before(async () => {
    await initEngine("cpu");
  });

  it("cosine schedule: linear warm-up to lr, cosine down to lr·minRatio at the last step", () => {
    const s = { lr: 1e-3, steps: 110, warmup: 10, minRatio: 0.1 };
    const lrs = Array.from({ length: 110 }, (_, i) => learningRate(s, i));
    for (let i = 0; i < 10; i++) assert.ok(Math.abs(lrs[i] - (1e-3 * (i + 1)) / 10) < 1e-15);
    assert.ok(Math.abs(lrs[10] - 1e-3) < 1e-15, "peak right after warm-up");
    // halfway through the decay the cosine factor is 1/2
    assert.ok(Math.abs(learningRate(s, 60) - 1e-3 * (0.1 + 0.9 * 0.5)) < 1e-15);
    for (let i = 11; i < 110; i++) assert.ok(lrs[i] <= lrs[i - 1] + 1e-18, "non-increasing after warm-up");
    assert.ok(Math.abs(learningRate(s, 110) - 1e-4) < 1e-15);
    assert.throws(() => checkSchedule({ lr: 0, steps: 10 }), (e: Error) => e instanceof UsageError && /lr must be a positive number, got 0/.test(e.message));
    assert.throws(() => checkSchedule({ lr: -1, steps: 10 }), UsageError);
    assert.throws(() => checkSchedule({ lr: 1e-3, steps: 0 }), (e: Error) => e instanceof UsageError && /steps must be a positive integer, got 0/.test(e.message));
    assert.throws(() => checkSchedule({ lr: 1e-3, steps: 5, warmup: 6 }), /warmup/);
  });

  it("AdamW matches a float64 reference of torch.optim.AdamW (decoupled decay, bias correction)", () => {
    const p0 = [0.5, -1.25, 2.0, 0.0];
    const gs = [
      [0.1, -0.2, 0.3, 0.05],
      [-0.4, 0.1, 0.2, 0.0],
      [0.05, 0.05, -0.6, 1.0],
    ];
    const lr = 0.01;
    const wd = 0.1;
    const [b1, b2, eps] = [0.9, 0.999, 1e-8];
    // reference in float64
    const p = p0.slice();
    const m = [0, 0, 0, 0];
    const v = [0, 0, 0, 0];
    gs.forEach((g, k) => {
      const t = k + 1;
      for (let i = 0; i < 4; i++) {
        p[i] -= lr * wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= (lr * (m[i] / (1 - b1 ** t))) / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps);
      }
    });
    const w = tf.variable(tf.tensor2d(p0, [2, 2]));
    const opt = new AdamW(new Map([["w", w]]), { weightDecay: wd });
    for (const g of gs) {
      const gt = tf.tensor2d(g, [2, 2]);
      opt.step(new Map([["w", gt]]), lr);
      gt.dispose();
    }
    const got = Array.from(w.dataSync());
    got.forEach((x, i) => assert.ok(Math.abs(x - p[i]) < 1e-6, `param ${i}: ${x} vs ${p[i]}`));
    assert.equal(opt.t, 3);
    // exported moments round-trip exactly into a fresh optimizer
    const state = opt.exportState();
    const w2 = tf.variable(tf.tensor2d(got, [2, 2]));
    const opt2 = new AdamW(new Map([["w", w2]]), { weightDecay: wd });
    opt2.importState(state, opt.t);
    const g = tf.tensor2d([0.3, 0.3, 0.3, 0.3], [2, 2]);
    opt.step(new Map([["w", g]]), lr);
    opt2.step(new Map([["w", g]]), lr);
    assert.deepEqual(Array.from(w2.dataSync()), Array.from(w.dataSync()));
    tf.dispose([g, w, w2]);
    opt.dispose();
    opt2.dispose();
  });

  it("norms (rank 1) get no weight decay by default", () => {
    const n = tf.variable(tf.tensor1d([2, 2]));
    const opt = new AdamW(new Map([["norm", n]]), { weightDecay: 0.5 });
    const g = tf.zeros([2]);
    opt.step(new Map([["norm", g]]), 0.1);
    assert.deepEqual(Array.from(n.dataSync()), [2, 2]); // zero gradient, no decay: unchanged
    tf.dispose([n, g]);
    opt.dispose();
  });

  it("global gradient norm", () => {
    const a = tf.tensor1d([3, 0]);
    const b = tf.tensor2d([[0, 4]]);
    assert.ok(Math.abs(globalNorm([a, b]) - 5) < 1e-6);
    tf.dispose([a, b]);
  });

  it("seeded data order: each epoch is a permutation; the seed decides it", () => {
    const n = 10;
    const epoch0 = [0, 1, 2, 3, 4].flatMap((s) => batchIndices(n, 7, 2, 1, s, 0));
    assert.deepEqual(epoch0.slice().sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
    const epoch1 = [5, 6, 7, 8, 9].flatMap((s) => batchIndices(n, 7, 2, 1, s, 0));
    assert.deepEqual(epoch1.slice().sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i));
    assert.notDeepEqual(epoch0, epoch1, "a new permutation per epoch");
    assert.deepEqual(batchIndices(n, 7, 3, 2, 4, 1), batchIndices(n, 7, 3, 2, 4, 1));
    assert.notDeepEqual(epoch0, [0, 1, 2, 3, 4].flatMap((s) => batchIndices(n, 8, 2, 1, s, 0)));
    // accumulation: micro-batches of one step are consecutive slices of the same stream
    assert.deepEqual([...batchIndices(n, 7, 2, 2, 1, 0), ...batchIndices(n, 7, 2, 2, 1, 1)], [2, 3].flatMap((s) => batchIndices(n, 7, 2, 1, s, 0)));
  });

  it("byte-level BPE trainer: tokenizer.json loads in @huggingface/tokenizers and round-trips text", () => {
    const text = "the whale, the whale! The sea and the ship; thee and thou. Whaling ships sail the seas.\n\n".repeat(20);
    const bpe = trainByteLevelBpe([text], { vocabSize: 300 });
    // training stops early once every word of this small text is a single token
    assert.ok(bpe.vocab.size <= 300 && bpe.merges.length > 20, `${bpe.vocab.size} tokens, ${bpe.merges.length} merges`);
    assert.equal(bpe.merges.length, bpe.vocab.size - 259);
    const tok = new HfTokenizer(bpe.json);
    assert.equal(tok.vocabSize, bpe.vocab.size);
    assert.equal(tok.bosTokenId, 1);
    assert.equal(tok.eosTokenId, 2);
    const s = "The whale — and thee, Ishmael! 42 ships. ünïcödé";
    const ids = tok.encode(s);
    assert.equal(ids[0], 1);
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), s);
    // merges compress the training text: fewer tokens than bytes
    const n = tok.encode(text, { addBos: false }).length;
    assert.ok(n < Buffer.byteLength(text) / 2, `${n} tokens for ${Buffer.byteLength(text)} bytes`);
    assert.throws(() => trainByteLevelBpe([text], { vocabSize: 259 }), UsageError);
  });

  it("unigram baseline: add-one frequencies of the training tokens, scored on predicted positions", () => {
    const r = unigramPerplexity([[0, 0, 1, 1]], [[1, 0, 1]], 3);
    // counts with add-one: [3, 3, 1] / 7; predicted tokens 0 and 1
    const want = Math.exp(-(Math.log(3 / 7) + Math.log(3 / 7)) / 2);
    assert.ok(Math.abs(r.ppl - want) < 1e-12);
    assert.equal(r.tokens, 2);
  });
});
