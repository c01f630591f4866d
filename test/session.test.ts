import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { batchingPays, initEngine } from "../src/engine";
import { CancelledError, UsageError } from "../src/errors";
import { modelFingerprint } from "../src/importance";
import { parseConfig, paramCounts, type LlamaConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { keepForTarget, stage1Keep } from "../src/recipe";
import { Rng } from "../src/rng";
import { Session } from "../src/session";
import { relError } from "./reference/configs";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

const TINY: LlamaConfig = parseConfig({
  hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2,
  vocab_size: 48, tie_word_embeddings: true, rms_norm_eps: 1e-5,
});

function tinySession(seed = 7): Session {
  return Session.fromModel(CausalLM.fromTensors(TINY, randomTensors(TINY, seed, 0.2)));
}

function randomWindows(n: number, T: number, seed: number, V = TINY.vocab_size): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: T }, () => rng.int(0, V - 1)));
}

/** Every weight of the model, HF names → raw float bits. */
function weightBits(m: CausalLM): Map<string, Uint32Array> {
  const out = new Map<string, Uint32Array>();
  for (const [k, v] of m.toTensors()) out.set(k, new Uint32Array(v.data.buffer.slice(0)));
  return out;
}

function assertSameBits(a: Map<string, Uint32Array>, b: Map<string, Uint32Array>): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of a) assert.ok(Buffer.from(v.buffer).equals(Buffer.from(b.get(k)!.buffer)), `tensor ${k} differs`);
}

function logitBits(m: CausalLM, windows: number[][]): Buffer {
  const t = m.forward(windows);
  const b = Buffer.from((t.dataSync() as Float32Array).slice().buffer);
  t.dispose();
  return b;
}

describe("Session: incremental pruning and undo", function () {
  before(async () => {
    await initEngine();
  });

  it("releaseOriginal gives back the original's pruned MLP tensors; the pruned model still computes the same; undo and calibrate are refused", async () => {
    const windows = randomWindows(4, 12, 2);
    const base = tf.memory().numTensors;
    const s = tinySession();
    try {
      await s.calibrate({ windows });
      await s.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.5 });
      s.prune({ ratio: 0.25 });
      const logits = logitBits(s.model, windows);
      const bits = weightBits(s.model);
      const before = tf.memory().numTensors;
      s.releaseOriginal();
      // three MLP tensors in each of the three (pruned) layers
      assert.equal(before - tf.memory().numTensors, 3 * TINY.num_hidden_layers);
      assertSameBits(weightBits(s.model), bits);
      assert.ok(logitBits(s.model, windows).equals(logits), "logits changed");
      assert.throws(() => s.undo(), (e: Error) => e instanceof UsageError && /releaseOriginal/.test(e.message));
      await assert.rejects(s.calibrate({ windows }), (e: Error) => e instanceof UsageError && /original model/.test(e.message));
      s.prune({ keep: 10 }); // pruning further needs only the current model
      assert.equal(s.model.config.intermediate_size, 10);
    } finally {
      s.dispose();
    }
    assert.equal(tf.memory().numTensors, base);
  });

  it("releaseOriginal before pruning: each layer's old MLP is freed as it is sliced, and the pruned weights equal a kept-original run's bit for bit", async () => {
    const windows = randomWindows(4, 12, 3);
    const base = tf.memory().numTensors;
    const a = tinySession();
    const b = tinySession();
    try {
      for (const s of [a, b]) {
        await s.calibrate({ windows });
        await s.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.5 });
      }
      a.releaseOriginal();
      // cached constants (RoPE tables, masks) are dropped with a replaced model: start both without them
      b.model.disposeCaches();
      const growth = (s: Session): number => {
        const n0 = tf.memory().numTensors;
        s.prune({ ratio: 0.25 });
        s.prune({ keep: 12 });
        return tf.memory().numTensors - n0;
      };
      const grewA = growth(a);
      const grewB = growth(b);
      assertSameBits(weightBits(a.model), weightBits(b.model));
      // b still holds the original's three MLP tensors per layer beside its pruned ones; a does not
      assert.equal(grewB - grewA, 3 * TINY.num_hidden_layers);
    } finally {
      a.dispose();
      b.dispose();
    }
    assert.equal(tf.memory().numTensors, base);
  });

  it("prune → prune → undo → prune equals one prune, bit for bit (weights and logits); undo to the start restores the original", async () => {
    const windows = randomWindows(6, 12, 1);
    const a = tinySession();
    const b = tinySession();
    const original = weightBits(a.model);
    try {
      for (const s of [a, b]) {
        await s.calibrate({ windows });
        await s.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.5 });
      }
      const scores0 = a.scores!.scores();
      a.prune({ ratio: 0.25 }); // 24 → 18
      const afterFirst = weightBits(a.model);
      a.prune({ keep: 10 });
      a.undo();
      assertSameBits(weightBits(a.model), afterFirst);
      a.prune({ keep: 10 });
      b.prune({ keep: 10 });
      assert.deepEqual(a.model.config.intermediate_size, 10);
      assertSameBits(weightBits(a.model), weightBits(b.model));
      assert.ok(logitBits(a.model, windows).equals(logitBits(b.model, windows)), "logits differ");
      // channel map to the original numbering agrees, and scores were re-indexed to the survivors
      assert.deepEqual(a.originalIndices(), b.originalIndices());
      const kept0 = a.originalIndices()[0];
      assert.deepEqual(a.scores!.scores()[0], kept0.map((i) => scores0[0][i]));
      assert.equal(a.history.raw.length, 2);
      a.undo();
      a.undo();
      assertSameBits(weightBits(a.model), original);
      assert.deepEqual(a.scores!.scores(), scores0);
      assert.throws(() => a.undo(), /nothing to undo/);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it("scores merged from two halves of the calibration set equal the scores of the whole set", async () => {
    const windows = randomWindows(8, 10, 2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-merge-"));
    const whole = tinySession();
    const halves = tinySession();
    try {
      await whole.calibrate({ windows });
      await whole.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
      await halves.calibrate({ windows: windows.slice(0, 4) });
      await halves.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
      await halves.saveScores(path.join(dir, "a.json"));
      await halves.calibrate({ windows: windows.slice(4) });
      await halves.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
      await halves.saveScores(path.join(dir, "b.json"));
      await halves.loadScores(path.join(dir, "a.json"));
      const merged = await halves.mergeScores(path.join(dir, "b.json"));
      assert.equal(merged.samples, 8);
      const w = whole.scores!.scores();
      const m = merged.scores();
      let maxRel = 0;
      w.forEach((row, l) => row.forEach((v, i) => (maxRel = Math.max(maxRel, Math.abs(v - m[l][i]) / Math.abs(v)))));
      // the native backend scores several windows per pass, and its GEMM rounding depends on the row count
      assert.ok(maxRel < (batchingPays() ? 1e-5 : 1e-12), `max relative difference ${maxRel}`);
      // continuing in two calls on one calibration equals one call (same summation order: identical)
      const cont = tinySession();
      try {
        await cont.calibrate({ windows });
        const r1 = await cont.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.2, samples: 3 });
        const r2 = await cont.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
        assert.equal(r1.started, true);
        assert.equal(r2.started, false);
        assert.equal(r2.added, 5);
        if (batchingPays()) assert.ok(relError(cont.scores!.scores().flat(), w.flat()).rel <= 1e-5);
        else assert.deepEqual(cont.scores!.scores(), w);
        // new settings → new accumulator, and the report says so
        const r3 = await cont.score({ criterion: "sd-taylor", alpha: 0.1, temperature: 0.2, samples: 2 });
        assert.equal(r3.started, true);
        assert.match(r3.message, /new accumulator.*settings changed/);
        assert.equal(cont.scores!.samples, 2);
      } finally {
        cont.dispose();
      }
    } finally {
      whole.dispose();
      halves.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("long operations report progress and stop between samples on abort, keeping whole samples", async () => {
    const s = tinySession();
    try {
      const phases = new Set<string>();
      await s.calibrate({ windows: randomWindows(6, 8, 4), onProgress: (e) => phases.add(e.phase) });
      const ac = new AbortController();
      await assert.rejects(
        s.score({
          criterion: "sd-taylor",
          batchWindows: 2,
          signal: ac.signal,
          onProgress: (e) => {
            phases.add(e.phase);
            if (e.done === 2) ac.abort();
          },
        }),
        (e: Error) => e instanceof CancelledError,
      );
      assert.equal(s.scores!.samples, 2);
      assert.equal(s.info().raw.calibration!.cursor, 2);
      const r = await s.score({ criterion: "sd-taylor" }); // continues with windows 2..5
      assert.equal(r.added, 4);
      await s.sensitivity({ onProgress: (e) => phases.add(e.phase) });
      await s.evaluate({ ppl: { windows: s.calibrationWindows! }, onProgress: (e) => phases.add(e.phase) });
      for (const p of ["teacher", "sensitivity", "eval:ppl"]) assert.ok(phases.has(p), `no progress from ${p}: ${[...phases].join(", ")}`);
      assert.ok([...phases].some((p) => p.startsWith("score") || p.includes("taylor")), [...phases].join(", "));
      const ac2 = new AbortController();
      ac2.abort();
      await assert.rejects(s.sensitivity({ signal: ac2.signal }), CancelledError);
    } finally {
      s.dispose();
    }
  });

  it("global allocation and layer ranges prune only what they say", async () => {
    const s = tinySession();
    try {
      await s.calibrate({ windows: randomWindows(3, 8, 3), teacher: false });
      await s.score({ criterion: "magnitude" });
      const r = s.prune({ keep: 12, layers: [1, 3], allocation: "global" });
      const w = s.info().raw.widths;
      assert.equal(w[0], 24);
      assert.equal(w[1] + w[2], 24);
      assert.equal(r.accounting.channelsRemoved, 24);
      assert.equal(r.accounting.paramsRemoved, 3 * 16 * 24);
    } finally {
      s.dispose();
    }
  });
});

describe("Session on stories260K", function () {
  this.timeout(120000);
  let stories: string;
  before(async function () {
    requireShared(this);
    stories = sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");
    await initEngine();
  });

  it("tensor count returns to baseline after calibrate → score → prune → evaluate, and to zero after dispose", async () => {
    const n0 = tf.memory().numTensors;
    const s = await Session.load(STORIES260K());
    const nModel = tf.memory().numTensors - n0;
    assert.equal(nModel, 9 * 5 + 2); // tied head: embed + final norm + 9 per layer
    try {
      await s.calibrate({ files: stories, stories: "1-200", samples: 8, seqLen: 64, seed: 0 });
      await s.score({ criterion: "sd-taylor" });
      const r = s.prune({ ratio: 0.2 });
      assert.deepEqual(r.widthsAfter, [137, 137, 137, 137, 137]);
      const e = await s.evaluate({ ppl: { windows: s.calibrationWindows!.slice(0, 4) } });
      assert.ok(e.raw.ppl!.ppl > 1 && Number.isFinite(e.raw.ppl!.ppl));
      s.model.disposeCaches();
      // the original MLP tensors are kept for undo: 3 sliced tensors per pruned layer on top of the loaded model
      assert.equal(tf.memory().numTensors - n0, nModel + 3 * 5);
      s.undo();
      s.model.disposeCaches();
      assert.equal(tf.memory().numTensors - n0, nModel);
    } finally {
      s.dispose();
    }
    assert.equal(tf.memory().numTensors, n0);
  });

  it("sdmprune: stage 1 keeps floor(0.975·172) = 167, stage 2 reaches the target with the original model as teacher; save writes pruning.json", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-save-"));
    const s = await Session.load(STORIES260K());
    try {
      const originalFp = modelFingerprint(s.model);
      const r = await s.sdmprune({ target: 0.28, files: stories, stories: "1-200", samples: 4, seqLen: 64, seed: 3 });
      assert.deepEqual(r.plan.stage1Keep, stage1Keep([172, 172, 172, 172, 172]));
      assert.equal(r.plan.stage1Keep[0], 167);
      assert.deepEqual(r.stage2.widthsAfter, keepForTarget(s.originalConfig, 0.28));
      assert.deepEqual([r.plan.alpha, r.plan.temperature], [0.42, 0.5]); // nearest paper row: 30 %
      const share = r.stage2.accounting.totalParamsRemovedShare;
      assert.ok(Math.abs(share - 0.28) <= (3 * 64 * 5) / 2 / paramCounts(s.originalConfig).total + 1e-12);
      // stage 2 used the unpruned model's predictions, on windows other than stage 1's
      assert.equal(s.teacher!.fingerprint.weightHash, originalFp.weightHash);
      assert.deepEqual(s.teacher!.fingerprint.intermediate_sizes, [172, 172, 172, 172, 172]);
      assert.notDeepEqual(r.provenance.stage1, r.provenance.stage2);
      assert.notDeepEqual(s.calibrationWindows![0], null);
      assert.equal(s.history.raw.length, 2);
      assert.equal(s.history.raw[0].criterion, "ce-taylor");
      assert.equal(s.history.raw[1].criterion, "sd-taylor");

      await s.evaluate({ ppl: { windows: s.calibrationWindows!.slice(0, 2) } });
      const out = path.join(dir, "pruned");
      await s.save(out, { format: "hf" });
      const rec = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8"));
      assert.deepEqual(rec.keptChannels, s.originalIndices());
      assert.equal(rec.keptChannels[0].length, r.stage2.widthsAfter[0]);
      assert.ok(rec.keptChannels[0].every((v: number, i: number, a: number[]) => i === 0 || a[i - 1] < v));
      assert.equal(rec.calibration.seed, 3);
      assert.equal(rec.calibration.files[0].sha256.length, 64);
      assert.equal(rec.evaluations.length, 1);
      assert.equal(rec.history.length, 2);
      // the saved model reloads with the pruned widths and gives the same logits
      const back = await Session.load(out);
      try {
        assert.deepEqual(back.model.config.intermediate_size, r.stage2.widthsAfter[0]);
        const w = s.calibrationWindows!.slice(0, 1);
        const x = s.model.forward(w);
        const y = back.model.forward(w);
        const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(x, y))).dataSync()[0]);
        tf.dispose([x, y]);
        assert.ok(diff < 1e-4, `reloaded logits differ by ${diff}`);
      } finally {
        back.dispose();
      }
      assert.match(s.generate("Once upon a time", { maxNewTokens: 5 }), /\S/);
    } finally {
      s.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
