import { strict as assert } from "node:assert";
import { webgpuOrSkip } from "./support/engine";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { backendName, gpuMemory, initEngine, type BackendName } from "../src/engine";
import { packedBytes } from "../src/engine/half";
import { UsageError } from "../src/errors";
import { floatToHalf, halfToFloat } from "../src/io/dtypes";
import { intermediateSizes, parseConfig, type LlamaConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { loadModel, saveModel } from "../src/model/load";
import { randomTensors } from "../src/model/random";
import { Session } from "../src/session";
import { randomIds, relError } from "./reference/configs";
import { cli } from "./support/cli";
import { scoresOf } from "./support/scores";
import { requireShared, STORIES260K } from "./support/shared";

/**
 * float16 weights on the GPU (weightsIn "heap", hostFloat "float16"; docs/memory.md "float16 weights on the GPU"):
 * every weight but the final norm is held on the webgpu backend as packed halves (half the bytes) and each decoder
 * layer is unpacked to float32 for its step. It computes what the host float16 storage computes (the same rounded
 * weights) within float32 rounding, stays within 1e-3 of float32 (issue 20's rule for half storage), prunes
 * (odd widths: a word holds two neighbouring columns), saves the rounded weights, undoes, releases, and leaves no
 * tensor behind. Runs on webgpu only (llvmpipe without a GPU; CI installs Mesa, so there a missing adapter fails).
 */

// an odd intermediate size: gate/up rows end in a padded half, and pruning keeps odd and even widths
const cfg: LlamaConfig = parseConfig({
  vocab_size: 600, // three head chunks of 256 rows
  hidden_size: 32,
  intermediate_size: 47,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
});
const T = 12;
const windows = [1, 2, 3].map((s) => randomIds(T, cfg.vocab_size, s));
const sd = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.5 };
const HALF = { weightsIn: "heap" as const, hostFloat: "float16" as const };

/** Backend bytes the model's weights take: what loading it added to tf.memory(). */
function loaded(make: () => CausalLM): { model: CausalLM; bytes: number } {
  const before = tf.memory().numBytes;
  const model = make();
  return { model, bytes: tf.memory().numBytes - before };
}

describe("float16 weights on the GPU (webgpu)", function () {
  this.timeout(300_000);
  let baseline = 0;
  // the backend the files before this one left active, restored after it (cpu when none was initialised)
  let prev: BackendName = "cpu";
  before(async function () {
    try {
      prev = backendName();
    } catch {
      // not initialised yet
    }
    await webgpuOrSkip(this);
    baseline = tf.memory().numTensors;
  });
  after(async () => {
    try {
      assert.equal(tf.memory().numTensors, baseline, "every tensor disposed");
    } finally {
      await initEngine(prev);
    }
  });

  it("holds every weight but the final norm as packed halves (half the GPU bytes) and computes what host float16 storage computes", async () => {
    // scale 0.02 (the usual initialisation), as streaming.test.ts's float16 check
    const tensors = randomTensors(cfg, 11, 0.02);
    const f32 = loaded(() => CausalLM.fromTensors(cfg, tensors));
    const half = loaded(() => CausalLM.fromTensors(cfg, tensors, "random", HALF));
    const host16 = CausalLM.fromTensors(cfg, tensors, "random", { weightsIn: "host", hostFloat: "float16" });
    try {
      assert.equal(half.model.weightsIn, "heap");
      assert.equal(half.model.hostFloat, "float16");
      assert.ok(half.model.streamed);
      // every weight packed row by row (an odd row padded to whole words), plus the float32 final norm
      let expected = 4 * cfg.hidden_size;
      for (const n of half.model.parameterNames()) {
        if (n === "model.norm.weight") continue;
        const s = tensors.get(n)!.shape;
        // internal layout: linears [in, out]; the embedding and the head [V, H]
        const rows = s.length === 1 ? 1 : n.includes("embed_tokens") || n === "lm_head.weight" ? s[0] : s[1];
        const cols = s.length === 1 ? s[0] : n.includes("embed_tokens") || n === "lm_head.weight" ? s[1] : s[0];
        expected += s.length === 1 ? packedBytes([cols]) : rows * packedBytes([cols]);
      }
      assert.equal(half.bytes, expected);
      const ratio = half.bytes / f32.bytes;
      console.log(`      GPU bytes of the weights: ${half.bytes} packed vs ${f32.bytes} float32 (${ratio.toFixed(3)}×)`);
      assert.ok(ratio > 0.49 && ratio < 0.52, `ratio ${ratio}`);

      // logits: the host float16 model's (same rounded weights) to float32 rounding; float32's within 1e-3
      const a = f32.model.forward(windows);
      const b = half.model.forward(windows);
      const c = host16.forward(windows);
      const [la, lb, lc] = [a.dataSync(), b.dataSync(), c.dataSync()];
      tf.dispose([a, b, c]);
      const eHost = relError(lb, lc).rel;
      const eF32 = relError(lb, la).rel;
      assert.ok(eHost < 1e-5, `logits vs host float16: rel ${eHost}`);
      assert.ok(eF32 < 1e-3 && eF32 > 0, `logits vs float32: rel ${eF32}`);
      const lp = (m: CausalLM) => m.tokenLogProbs(windows).flatMap((x) => Array.from(x));
      assert.ok(relError(lp(half.model), lp(host16)).rel < 1e-5);
      assert.deepEqual(half.model.generate([1, 2, 3], { maxNewTokens: 4, stopAtEos: false }), host16.generate([1, 2, 3], { maxNewTokens: 4, stopAtEos: false }));

      // sd-taylor scores: the layer-wise backward unpacks each layer again
      const s32 = await scoresOf(f32.model, windows, sd);
      const sHost = await scoresOf(host16, windows, sd);
      const before = tf.memory().numTensors;
      const sHalf = await scoresOf(half.model, windows, sd);
      assert.equal(tf.memory().numTensors, before, "an unpacked layer lives only while it runs");
      const es = relError(sHalf, s32).rel;
      console.log(`      vs float32: logits rel ${eF32.toExponential(2)}, sd-taylor rel ${es.toExponential(2)}; vs host float16: logits ${eHost.toExponential(2)}, sd-taylor ${relError(sHalf, sHost).rel.toExponential(2)}`);
      assert.ok(relError(sHalf, sHost).rel < 1e-5, `scores vs host float16 rel ${relError(sHalf, sHost).rel}`);
      // issue 20's 1e-3 is checked on a trained model (stories260K, below); this untrained one with an odd width
      // moves by a few 1e-3 (as host float16 storage does, whose scores these equal)
      assert.ok(es < 1e-2 && es > 0, `scores vs float32 rel ${es}`);

      // what a writer gets: each value the float16 rounding of the original, in the Hugging Face layout
      for (const name of ["model.layers.1.mlp.gate_proj.weight", "model.layers.0.mlp.down_proj.weight", "lm_head.weight", "model.layers.0.input_layernorm.weight"]) {
        const saved = half.model.toTensors().get(name)!.data;
        assert.deepEqual(Array.from(saved), Array.from(tensors.get(name)!.data, (v) => halfToFloat(floatToHalf(v))), name);
      }
      // fingerprints read a prefix without unpacking a layer: the rounded values
      assert.deepEqual(Array.from(half.model.parameterPrefix("model.layers.0.mlp.up_proj.weight", 50)), Array.from(host16.parameterPrefix("model.layers.0.mlp.up_proj.weight", 50)));
      // the head rows the streamed importance head loss takes: gathered on the GPU, no read-back
      const ids = [599, 0, 300, 300];
      const hr = half.model.headRowsTensor(ids);
      assert.deepEqual(Array.from(hr.dataSync()), Array.from(host16.headRows(ids)));
      hr.dispose();
      const cl = half.model.clone();
      cl.dispose();
      assert.ok(relError(lp(half.model), lp(host16)).rel < 1e-5, "a clone's dispose leaves the model whole");
    } finally {
      f32.model.dispose();
      half.model.dispose();
      host16.dispose();
    }
  });

  it("refuses what needs every weight resident as float32, with the reason", () => {
    const m = CausalLM.fromTensors(cfg, randomTensors(cfg, 3, 0.3), "random", HALF);
    try {
      assert.throws(
        () => m.gradients(windows.slice(0, 1), (z) => tf.sum(z) as tf.Scalar, (n) => n.includes("mlp")),
        (e: Error) => e instanceof UsageError && /packed halves on the GPU.*needs every weight resident as float32/.test(e.message),
      );
    } finally {
      m.dispose();
    }
  });

  it("through a Session: scores, prunes to odd widths, saves the rounded weights, undoes, releases; reports GPU memory", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-half-gpu-"));
    try {
      const src = path.join(dir, "model");
      const m = CausalLM.fromTensors(cfg, randomTensors(cfg, 5, 0.3));
      await saveModel(src, m, null, { format: "hf" });
      m.dispose();
      const run = async (opts: { weightsIn: "heap" | "host"; hostFloat: "float16" }) => {
        const s = await Session.load(src, { backend: "webgpu", ...opts });
        try {
          const info = s.info();
          assert.equal(info.raw.weightsIn, opts.weightsIn);
          assert.equal(info.raw.hostFloat, "float16");
          assert.ok(info.raw.gpuMemory && info.raw.gpuMemory.peak >= info.raw.gpuMemory.inUse && info.raw.gpuMemory.held >= info.raw.gpuMemory.inUse);
          await s.calibrate({ windows, topk: 8 });
          await s.score(sd);
          const scores = s.scores!.scores().flatMap((r) => Array.from(r));
          const before = s.model.tokenLogProbs(windows.slice(0, 1))[0];
          s.prune({ keep: 31 });
          const pruned = s.model.tokenLogProbs(windows.slice(0, 1))[0];
          const out = path.join(dir, `out-${opts.weightsIn}`);
          await s.save(out, { format: "hf" });
          s.prune({ keep: 20 });
          s.undo();
          s.undo();
          const undone = s.model.tokenLogProbs(windows.slice(0, 1))[0];
          return { scores, before, pruned, undone, out, widths: s.info().raw.widths, table: s.info().toString() };
        } finally {
          s.dispose();
        }
      };
      const gpu = await run(HALF);
      const host = await run({ weightsIn: "host", hostFloat: "float16" });
      assert.match(gpu.table, /on the GPU as float16.*saves, the float16-rounded weights/);
      assert.match(gpu.table, /GPU memory .* in use, peak .* held by the backend/);
      assert.ok(relError(gpu.scores, host.scores).rel < 1e-5, `scores vs host float16 rel ${relError(gpu.scores, host.scores).rel}`);
      assert.ok(relError(gpu.pruned, host.pruned).rel < 1e-5);
      assert.deepEqual(gpu.widths, [47, 47], "undo restores the widths");
      assert.ok(relError(gpu.undone, gpu.before).rel < 1e-6, "undo restores the weights");
      // the saved model holds the rounded weights the session computed with: equal to host float16's file, and
      // reloaded as float32 it gives the pruned session's log-probabilities
      assert.ok(fs.readFileSync(path.join(gpu.out, "model.safetensors")).equals(fs.readFileSync(path.join(host.out, "model.safetensors"))), "same file as host float16 storage");
      const back = (await loadModel(gpu.out)).model;
      try {
        assert.deepEqual(intermediateSizes(back.config), [31, 31]);
        const e = relError(back.tokenLogProbs(windows.slice(0, 1))[0], gpu.pruned).rel;
        assert.ok(e < 1e-5, `reloaded rel ${e}`);
      } finally {
        back.dispose();
      }

      // the CLI: --offload heap --offload-dtype f16 gives host float16's perplexity; on cpu it is refused, exit 2
      const wfile = path.join(dir, "w.json");
      fs.writeFileSync(wfile, JSON.stringify({ windows }));
      const ppl = async (...extra: string[]) => cli(["ppl", "--model", src, "--windows", wfile, "--json", ...extra]);
      const rg = await ppl("--backend", "webgpu", "--offload", "heap", "--offload-dtype", "f16");
      const rh = await ppl("--backend", "webgpu", "--offload", "host", "--offload-dtype", "f16");
      assert.equal(rg.code, 0, rg.err);
      assert.match(rg.err, /gpu memory: peak [\d.]+ MiB in use, [\d.]+ MiB held by the backend/);
      assert.ok(Math.abs(JSON.parse(rg.out).ppl - JSON.parse(rh.out).ppl) / JSON.parse(rh.out).ppl < 1e-5);
      const rc = await ppl("--backend", "cpu", "--offload", "heap", "--offload-dtype", "f16");
      assert.equal(rc.code, 2);
      assert.match(rc.err, /need the webgpu backend, this is cpu/);
      await initEngine("webgpu");

      // releaseOriginal: the original MLP's packed halves are freed as pruning replaces them
      const s = await Session.load(src, { backend: "webgpu", ...HALF });
      try {
        await s.calibrate({ windows, topk: 8 });
        await s.score(sd);
        s.releaseOriginal(); // also drops the model's cached constants (RoPE tables, masks)
        const full = tf.memory().numBytes;
        s.prune({ keep: 24 });
        const after = tf.memory().numBytes;
        const mlpBefore = 2 * (2 * cfg.hidden_size * packedBytes([47]) + 47 * packedBytes([cfg.hidden_size]));
        const mlpAfter = 2 * (2 * cfg.hidden_size * packedBytes([24]) + 24 * packedBytes([cfg.hidden_size]));
        assert.equal(full - after, mlpBefore - mlpAfter, "the original MLP freed, only the pruned one held");
        assert.throws(() => s.undo(), /releaseOriginal/);
      } finally {
        s.dispose();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stories260K: sd-taylor scores within 1e-3 (relative) of float32", async function () {
    requireShared(this);
    const full = (await loadModel(STORIES260K())).model;
    const half = (await loadModel(STORIES260K(), HALF)).model;
    try {
      const w = [1, 2].map((s) => randomIds(32, full.config.vocab_size, s));
      const e = relError(await scoresOf(full, w, sd, 32), await scoresOf(half, w, sd, 32)).rel;
      const m = gpuMemory()!;
      console.log(`      stories260K sd-taylor rel ${e.toExponential(2)}; GPU memory in use ${m.inUse} B, peak ${m.peak} B, held ${m.held} B`);
      assert.ok(e < 1e-3 && e > 0, `float16 scores rel ${e}`);
    } finally {
      full.dispose();
      half.dispose();
    }
  });

  it("is refused on a backend that cannot unpack on the device, naming the host float16 storage instead", async () => {
    await initEngine("cpu");
    assert.throws(() => CausalLM.fromTensors(cfg, randomTensors(cfg, 1, 0.1), "m", HALF), (e: Error) => e instanceof UsageError && /need the webgpu backend, this is cpu.*weightsIn "host", --offload host --offload-dtype f16/.test(e.message));
    await initEngine("webgpu");
  });
});
