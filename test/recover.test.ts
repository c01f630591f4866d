import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { CancelledError, DataError, UsageError } from "../src/errors";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { perplexity } from "../src/eval/perplexity";
import { Session } from "../src/session";
import { TeacherCache } from "../src/teacher";
import { trainingWindows } from "../src/train/data";
import { recover, type RecoverOptions } from "../src/train/recover";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";
import { cli } from "./support/cli";
import { DEMO_HELDOUT, DEMO_MODEL_DIR } from "../src/cli/commands/demo";
import { loadModel } from "../src/model/load";

/** Windows of a learnable pattern: arithmetic sequences mod 40 with a random start and stride. */
function patternWindows(n: number, T: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const s = rng.int(0, 39);
    const d = rng.int(1, 3);
    return Array.from({ length: T }, (_, t) => 3 + ((s + d * t) % 40));
  });
}

function weightsOf(m: CausalLM): Map<string, Float32Array> {
  return new Map([...m.toTensors()].map(([k, v]) => [k, v.data]));
}

describe("recovery training loop", () => {
  const cfg = parseConfig({ vocab_size: 48, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true });
  let model: CausalLM;
  let dir: string;
  const data = patternWindows(24, 16, 1);

  before(async () => {
    await initEngine("wasm");
    model = CausalLM.fromTensors(cfg, randomTensors(cfg, 11, 0.05));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-recover-"));
  });
  after(() => {
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("bad inputs fail before any work with clear errors", async () => {
    const base: RecoverOptions = { data, steps: 2, lr: 1e-3, lora: { r: 4, alpha: 8 } };
    await assert.rejects(recover(model, { ...base, lr: 0 }), (e: Error) => e instanceof UsageError && /lr must be a positive number, got 0/.test(e.message));
    await assert.rejects(recover(model, { ...base, lr: -1e-4 }), (e: Error) => e instanceof UsageError && /lr must be a positive number, got -0.0001/.test(e.message));
    await assert.rejects(recover(model, { ...base, steps: 0 }), (e: Error) => e instanceof UsageError && /steps must be a positive integer, got 0/.test(e.message));
    await assert.rejects(recover(model, { ...base, steps: -3 }), (e: Error) => e instanceof UsageError && /steps must be a positive integer, got -3/.test(e.message));
    await assert.rejects(
      recover(model, { ...base, lora: { r: 17 } }),
      (e: Error) => e instanceof UsageError && /rank r = 17 is larger than the projection .*k_proj/.test(e.message),
    );
    await assert.rejects(recover(model, { ...base, data: [] }), (e: Error) => e instanceof DataError && /no windows \(empty text or file\?\)/.test(e.message));
    await assert.rejects(recover(model, { ...base, data: [[1, 2, 3], [1, 2]] }), (e: Error) => e instanceof DataError && /window 1 has 2 tokens, expected 3/.test(e.message));
    await assert.rejects(recover(model, { ...base, data: [[1, 2, 99]] }), (e: Error) => e instanceof DataError && /token id 99 is outside \[0, 48\)/.test(e.message));
    await assert.rejects(recover(model, { ...base, loss: "kd" }), (e: Error) => e instanceof UsageError && /needs a teacher cache/.test(e.message));
    await assert.rejects(recover(model, { ...base, batch: 0 }), /batch must be a positive integer, got 0/);
  });

  it("learns: CE falls with LoRA and with full training; the input model is left untouched", async () => {
    const before = weightsOf(model);
    const lora = await recover(model, { data, steps: 30, lr: 1e-2, batch: 4, lora: { r: 4, alpha: 8, dropout: 0.05 }, seed: 3 });
    const full = await recover(model, { data, steps: 30, lr: 3e-3, batch: 4, lora: null, seed: 3, weightDecay: 0.01 });
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    for (const [name, r] of [["lora", lora], ["full", full]] as const) {
      const first = mean(r.losses.slice(0, 5));
      const last = mean(r.losses.slice(-5));
      console.log(`      ${name}: loss ${first.toFixed(3)} → ${last.toFixed(3)} (${r.trainableParams} trainable)`);
      assert.ok(last < first - 0.1, `${name}: ${first} → ${last}`);
    }
    assert.equal(lora.trainableParams, 2 * (4 * (32 + 32) + 2 * 4 * (32 + 16) + 4 * (32 + 32)) + 2 * 4 * (32 + 64) * 2 + 2 * 4 * (64 + 32));
    const after = weightsOf(model);
    for (const [k, v] of before) assert.deepEqual(after.get(k), v, `${k} unchanged`);
    lora.model.dispose();
    lora.adapters!.dispose();
    full.model.dispose();
  });

  it("distillation from a TeacherCache pulls the student towards the teacher (loss kd)", async () => {
    const teacher = CausalLM.fromTensors(cfg, randomTensors(cfg, 99, 0.3));
    const cache = await TeacherCache.build(teacher, data, { topk: "full" });
    const kl = (m: CausalLM) => {
      // mean KL(p_teacher || q_student) over all positions, τ = 1
      const t = tf.tidy(() => {
        const zs = tf.logSoftmax(m.forward(data).reshape([-1, cfg.vocab_size]));
        const zt = tf.logSoftmax(teacher.forward(data).reshape([-1, cfg.vocab_size]));
        return tf.mean(tf.sum(tf.mul(tf.exp(zt), tf.sub(zt, zs)), -1));
      });
      const v = t.dataSync()[0];
      t.dispose();
      return v;
    };
    const r = await recover(model, { steps: 30, lr: 2e-2, batch: 4, lora: { r: 8, alpha: 16, dropout: 0 }, loss: "kd", teacher: cache });
    const k0 = kl(model);
    const k1 = kl(r.model);
    console.log(`      KL(teacher‖student): ${k0.toFixed(4)} → ${k1.toFixed(4)}`);
    assert.ok(k1 < 0.85 * k0, `${k0} → ${k1}`);
    // the logged KD loss is that KL on the training batches: first step ≈ KL of the untrained student
    assert.ok(Math.abs(r.losses[0] - k0) < 0.25 * k0);
    r.model.dispose();
    r.adapters!.dispose();
    teacher.dispose();
  });

  for (const mode of ["lora", "full"] as const) {
    it(`${mode}: interrupted after a checkpoint and resumed, it ends at the same weights as an uninterrupted run`, async () => {
      const opts: RecoverOptions = {
        data,
        steps: 8,
        lr: 5e-3,
        batch: 3,
        accumulate: 2,
        warmup: 2,
        lora: mode === "lora" ? { r: 4, alpha: 8, dropout: 0.1 } : null,
        seed: 7,
        checkpointEvery: 3,
      };
      const a = await recover(model, { ...opts, checkpointDir: path.join(dir, `${mode}-a`) });
      const ckDir = path.join(dir, `${mode}-b`);
      const ac = new AbortController();
      await assert.rejects(
        recover(model, { ...opts, checkpointDir: ckDir, signal: ac.signal, onProgress: (e) => e.done === 4 && ac.abort() }),
        (e: Error) => e instanceof CancelledError && /cancelled at step 4 of 8/.test(e.message),
      );
      const state = JSON.parse(fs.readFileSync(path.join(ckDir, "last", "state.json"), "utf8"));
      assert.equal(state.step, 3, "the last checkpoint before the interruption is step 3");
      assert.deepEqual(fs.readdirSync(ckDir), ["last"], "no temporary directories left behind");
      const b = await recover(model, { ...opts, checkpointDir: ckDir, resume: true });
      assert.equal(b.startStep, 3);
      assert.deepEqual(b.losses, a.losses, "same per-step losses");
      const wa = weightsOf(a.model);
      const wb = weightsOf(b.model);
      let maxDiff = 0;
      for (const [k, v] of wa) {
        const u = wb.get(k)!;
        for (let i = 0; i < v.length; i++) maxDiff = Math.max(maxDiff, Math.abs(v[i] - u[i]));
      }
      console.log(`      ${mode}: resumed vs uninterrupted max |Δw| = ${maxDiff}`);
      assert.equal(maxDiff, 0);
      // a checkpoint from other settings is refused, not silently mixed
      await assert.rejects(
        recover(model, { ...opts, lr: 1e-3, checkpointDir: ckDir, resume: true }),
        (e: Error) => e instanceof UsageError && /different settings \(lr: checkpoint 0.005 vs now 0.001\)/.test(e.message),
      );
      for (const r of [a, b]) {
        r.model.dispose();
        r.adapters?.dispose();
      }
    });
  }
});

describe("recovery on stories260K (shared model and data)", function () {
  // ~1–3 min on 2 shared cores (wasm): sdmprune ~30 s, 200 LoRA steps of 4×64 tokens ~60–180 s.
  this.timeout(900_000);

  it("after a 30 % sd-taylor prune, 200 LoRA steps on stories 200–499 lower TinyStories-valid ppl (stories 500–999); merged = unmerged", async function () {
    requireShared(this);
    const file = sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");
    const session = await Session.load(STORIES260K(), { backend: "wasm" });
    try {
      const V0 = session.model.config.vocab_size;
      const evalSet = trainingWindows({ file, stories: "500-999", seqLen: 128 }, session.tokenizer, V0).windows.slice(0, 48);
      const original = await perplexity((q) => session.model.tokenLogProbs(q), evalSet, { batchSize: 8 });
      // two-stage SDMPrune (stage 2 = sd-taylor against the original), calibrated on stories 1–199
      const rep = await session.sdmprune({ target: 0.3, files: file, stories: "1-199", samples: 16, seqLen: 128, seed: 0 });
      const pruned = session.model;
      const V = pruned.config.vocab_size;
      const train = trainingWindows({ file, stories: "200-499", seqLen: 64 }, session.tokenizer, V).windows;
      const before = await perplexity((q) => pruned.tokenLogProbs(q), evalSet, { batchSize: 8 });
      const t0 = Date.now();
      const r = await recover(pruned, { data: train, steps: 200, lr: 2e-3, batch: 4, lora: { r: 8, alpha: 16, dropout: 0.05 }, seed: 0 });
      const secs = (Date.now() - t0) / 1000;
      const after = await perplexity((q) => r.model.tokenLogProbs(q), evalSet, { batchSize: 8 });
      console.log(
        `      stories260K pruned 30 % (MLP widths ${rep.stage2.widthsAfter.join(",")}): TinyStories-valid ppl@128 (stories 500–999, ${before.tokens} tokens) ` +
          `unpruned ${original.ppl.toFixed(2)}, pruned ${before.ppl.toFixed(2)} → after 200 LoRA steps ${after.ppl.toFixed(2)}; train loss ${r.losses[0].toFixed(3)} → ${r.losses[r.losses.length - 1].toFixed(3)}; ${secs.toFixed(0)} s`,
      );
      assert.ok(after.ppl < before.ppl, `${before.ppl} → ${after.ppl}`);
      // merged (saved) model vs unmerged adapters (x·W + s·(x·A)·B) on the pruned model
      const probe = evalSet.slice(0, 2);
      const unmerged = tf.tidy(() => r.adapters!.logits(pruned, probe, undefined, { explicit: true }));
      const merged = r.model.forward(probe);
      const d = tf.tidy(() => tf.max(tf.abs(tf.sub(unmerged, merged))).dataSync()[0]);
      const scale = tf.tidy(() => tf.max(tf.abs(merged)).dataSync()[0]);
      // stories260K logits reach ~20, where one float32 ulp is ~2e-6: the bound is 1e-5 relative to the logit scale
      console.log(`      merged vs unmerged max |Δlogit| = ${d.toExponential(2)} (max |logit| ${scale.toFixed(1)}, relative ${(d / scale).toExponential(2)})`);
      assert.ok(d <= 1e-5 * Math.max(1, scale), `max diff ${d} for logits up to ${scale}`);
      tf.dispose([unmerged, merged]);
      r.model.dispose();
      r.adapters!.dispose();
    } finally {
      session.dispose();
    }
  });
});

describe("CLI: sdmprune recover (on the embedded demo model)", function () {
  this.timeout(300_000);
  let dir: string;
  const data = path.join(DEMO_MODEL_DIR, DEMO_HELDOUT);
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-recover-cli-"))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("LoRA recovery with distillation writes the merged model, recovery.json and PEFT adapters", async () => {
    const out = path.join(dir, "out");
    const ad = path.join(dir, "adapter");
    // a short text keeps the teacher pass (which covers every training window) quick
    const small = path.join(dir, "small.txt");
    fs.writeFileSync(small, fs.readFileSync(data, "utf8").slice(0, 4000));
    const r = await cli([
      "recover", "--model", DEMO_MODEL_DIR, "--data", small, "--steps", "3", "--seq-len", "32", "--batch", "2", "--lr", "1e-3",
      "--lora-r", "4", "--lora-alpha", "8", "--kd-from", DEMO_MODEL_DIR, "--alpha", "0.5", "--temperature", "1",
      "--adapters", ad, "--out", out, "--json", "--backend", "wasm",
    ]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.losses.length, 3);
    const rec = JSON.parse(fs.readFileSync(path.join(out, "recovery.json"), "utf8"));
    assert.equal(rec.loss, "mix");
    assert.deepEqual([rec.lora.r, rec.lora.alpha], [4, 8]);
    assert.ok(fs.existsSync(path.join(ad, "adapter_model.safetensors")) && fs.existsSync(path.join(ad, "adapter_config.json")));
    const { model } = await loadModel(out);
    model.dispose();
  });

  it("bad arguments give exit code 2 and a clear message", async () => {
    const base = ["recover", "--model", DEMO_MODEL_DIR, "--data", data, "--out", path.join(dir, "x"), "--backend", "wasm"];
    const r0 = await cli([...base, "--steps", "0"]);
    assert.equal(r0.code, 2);
    assert.match(r0.err, /steps must be a positive integer, got 0/);
    const r1 = await cli([...base, "--steps", "2", "--lr", "0"]);
    assert.equal(r1.code, 2);
    assert.match(r1.err, /lr must be a positive number, got 0/);
    const r2 = await cli([...base, "--steps", "2", "--lora-r", "1000"]);
    assert.equal(r2.code, 2);
    assert.match(r2.err, /LoRA rank r = 1000 is larger than the projection/);
    const empty = path.join(dir, "empty.txt");
    fs.writeFileSync(empty, "  \n");
    const r3 = await cli(["recover", "--model", DEMO_MODEL_DIR, "--data", empty, "--steps", "2", "--out", path.join(dir, "y"), "--backend", "wasm"]);
    assert.equal(r3.code, 2);
    assert.match(r3.err, /empty/);
    // recovery trains every weight on the backend: streamed weights are refused before anything is read
    for (const where of ["host", "disk"]) {
      const r4 = await cli([...base, "--steps", "2", "--offload", where]);
      assert.equal(r4.code, 2, r4.err);
      assert.match(r4.err, new RegExp(`recovery fine-tuning trains every weight on the tensor backend .*weightsIn "${where}" \\(--offload ${where}\\) is not supported`));
    }
    const r5 = await cli([...base, "--steps", "2", "--offload", "nowhere"]);
    assert.equal(r5.code, 2);
    assert.match(r5.err, /--offload/);
    assert.ok(!fs.existsSync(path.join(dir, "x")) && !fs.existsSync(path.join(dir, "y")), "no output written on error");
  });
});

describe("Session.recover", function () {
  this.timeout(120_000);
  it("trains the session's current model, makes it current, blocks undo, and frees its tensors on dispose", async () => {
    await initEngine("wasm");
    const cfg = parseConfig({ vocab_size: 48, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true });
    const baseline = tf.memory().numTensors;
    const session = Session.fromModel(CausalLM.fromTensors(cfg, randomTensors(cfg, 11, 0.05)));
    const data = patternWindows(16, 16, 2);
    const before = await session.evaluate({ ppl: { windows: data } });
    const events: number[] = [];
    const r = await session.recover({ data, steps: 20, lr: 1e-2, batch: 4, lora: { r: 4, alpha: 8 }, seed: 1, onProgress: (e) => events.push(e.done) });
    assert.deepEqual(events, Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(session.model, r.model);
    const after = await session.evaluate({ ppl: { windows: data } });
    console.log(`      session ppl on the training windows ${before.raw.ppl!.ppl.toFixed(2)} → ${after.raw.ppl!.ppl.toFixed(2)}`);
    assert.ok(after.raw.ppl!.ppl < before.raw.ppl!.ppl);
    assert.throws(() => session.undo(), UsageError);
    await assert.rejects(session.recover({ data: [], steps: 1, lr: 1e-3 }), DataError);
    await assert.rejects(session.recover({ data, steps: 1, lr: 1e-3, loss: "kd" }), (e: Error) => e instanceof UsageError && /calibrate\(\) first/.test(e.message));
    r.adapters!.dispose();
    session.dispose();
    assert.ok(tf.memory().numTensors - baseline < 10, `${tf.memory().numTensors - baseline} tensors left`);
  });
});

describe("Session.recover from a teacher model", function () {
  this.timeout(300_000);
  it("caches the teacher's predictions on the training windows (default top-k) and trains like recover() with that cache", async () => {
    await initEngine("wasm");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-recover-teacher-"));
    try {
      const small = path.join(dir, "small.txt");
      fs.writeFileSync(small, fs.readFileSync(path.join(DEMO_MODEL_DIR, DEMO_HELDOUT), "utf8").slice(0, 3000));
      const baseline = tf.memory().numTensors;
      const opts = { steps: 2, lr: 1e-3, batch: 2, lora: { r: 4, alpha: 8 }, seed: 3 };
      const session = await Session.load(DEMO_MODEL_DIR, { backend: "wasm" });
      const res = await session.recover({ ...opts, data: { file: small, seqLen: 32 }, teacher: DEMO_MODEL_DIR, alpha: 0.25 });
      assert.equal(res.loss, "mix");
      res.adapters!.dispose();
      // the same run by hand: windows, a cache of the teacher on them with the default top-k, recover()
      const { model, tokenizer } = await loadModel(DEMO_MODEL_DIR);
      const teacherModel = (await loadModel(DEMO_MODEL_DIR)).model;
      const { windows } = trainingWindows({ file: small, seqLen: 32 }, tokenizer, model.config.vocab_size);
      assert.equal(res.windows, windows.length);
      const V = model.config.vocab_size;
      const cache = await TeacherCache.build(teacherModel, windows, { topk: V <= 4096 ? "full" : 64 });
      teacherModel.dispose();
      const manual = await recover(model, { ...opts, data: windows, teacher: cache, loss: "mix", alpha: 0.25 });
      assert.deepEqual(res.losses, manual.losses);
      manual.model.dispose();
      manual.adapters!.dispose();
      model.dispose();
      // alpha picks the loss; out of [0, 1] is refused before any training
      await assert.rejects(session.recover({ ...opts, data: { file: small, seqLen: 32 }, teacher: DEMO_MODEL_DIR, alpha: 1.5 }), (e: Error) => e instanceof UsageError && /alpha must be in \[0, 1\], got 1.5/.test(e.message));
      await assert.rejects(session.recover({ ...opts, teacher: DEMO_MODEL_DIR }), (e: Error) => e instanceof UsageError && /needs data/.test(e.message));
      session.dispose();
      assert.ok(tf.memory().numTensors - baseline < 10, `${tf.memory().numTensors - baseline} tensors left`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
