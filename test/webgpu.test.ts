import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { backendInfo, initEngine } from "../src/engine";
import { accumulate } from "../src/importance";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { perplexity } from "../src/eval/perplexity";
import { TeacherCache } from "../src/teacher";
import { TINY_CONFIGS, nextTokenCE, randomIds, relError } from "./reference/configs";
import { readModelFiles } from "../src/io/files";
import { recover } from "../src/train/recover";
import { defaultChainBackend, webgpuOrSkip } from "./support/engine";
import { requireShared, STORIES260K } from "./support/shared";

/**
 * The webgpu backend against the cpu backend on the same weights and windows. On a machine without a GPU the
 * adapter is Mesa's llvmpipe through Dawn's OpenGL backend (a forced `webgpu` accepts a software adapter);
 * CI installs Mesa, so there a missing adapter fails instead of skipping.
 */
describe("webgpu backend (Dawn) agrees with cpu", function () {
  this.timeout(300_000);
  const cfg = TINY_CONFIGS["gqa+llama3+tied"];
  const windows = [1, 2].map((s) => randomIds(16, cfg.vocab_size, 20 + s));

  /** Logits, token log-probs, sd-taylor scores and perplexity of one fresh model on the active backend. */
  async function run(): Promise<{ logits: Float32Array; logProbs: number[]; scores: number[]; ppl: number }> {
    const m = CausalLM.fromTensors(cfg, randomTensors(cfg, 11, 0.3));
    try {
      const t = m.forward(windows);
      const logits = (await t.data()) as Float32Array;
      t.dispose();
      const logProbs = m.tokenLogProbs(windows).flatMap((r) => Array.from(r));
      const teacher = await TeacherCache.build(m, windows, { topk: "full" });
      const s = await accumulate(m, windows, teacher, null, { criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
      const ppl = (await perplexity((w) => m.tokenLogProbs(w), windows)).ppl;
      return { logits, logProbs, scores: s.scores().flatMap((r) => Array.from(r)), ppl };
    } finally {
      m.dispose();
    }
  }

  it("reports the adapter (vendor, device, limits, software or not) and runs forward, teacher, sd-taylor, perplexity within float32 tolerance", async function () {
    await webgpuOrSkip(this);
    const info = backendInfo();
    assert.equal(info.name, "webgpu");
    assert.ok(info.adapter, "adapter info");
    assert.ok(info.adapter.limits.maxBufferSize > 0 && info.adapter.limits.maxStorageBufferBindingSize > 0);
    assert.ok(info.summary.includes(info.adapter.device || info.adapter.description));
    const before = tf.memory().numTensors;
    const gpu = await run();
    assert.equal(tf.memory().numTensors, before, "tensors leaked on webgpu");
    await initEngine("cpu");
    const cpu = await run();
    // float32 throughout; the GPU sums in a different order (tiled products, tree reductions), so agreement is to
    // rounding, not bit for bit: the same bounds the importance tests use against the float64 reference.
    const el = relError(Array.from(gpu.logits), Array.from(cpu.logits));
    const ep = relError(gpu.logProbs, cpu.logProbs);
    const e = relError(gpu.scores, cpu.scores);
    console.log(`      ${info.summary}\n      vs cpu: logits rel ${el.rel.toExponential(2)}, log-probs ${ep.rel.toExponential(2)}, sd-taylor ${e.rel.toExponential(2)}, ppl ${gpu.ppl} vs ${cpu.ppl}`);
    assert.ok(el.rel <= 1e-5, "logits");
    assert.ok(ep.rel <= 1e-5, "token log-probs");
    assert.ok(e.rel <= 1e-4, `sd-taylor scores rel ${e.rel}`);
    assert.ok(Math.abs(gpu.ppl - cpu.ppl) / cpu.ppl <= 1e-5, `ppl ${gpu.ppl} vs ${cpu.ppl}`);
  });

  it("autograd gradients of every weight (embedding gather included) equal cpu's", async function () {
    await webgpuOrSkip(this);
    const ids = [randomIds(10, cfg.vocab_size, 8)];
    const grads = async (): Promise<{ loss: number; g: Map<string, Float32Array> }> => {
      const m = CausalLM.fromTensors(cfg, randomTensors(cfg, 21, 0.3));
      try {
        const { loss, grads } = m.gradients(ids, nextTokenCE(ids, cfg.vocab_size), () => true);
        const g = new Map<string, Float32Array>();
        for (const [k, v] of grads) g.set(k, (await v.data()) as Float32Array);
        tf.dispose([...grads.values()]);
        return { loss, g };
      } finally {
        m.dispose();
      }
    };
    const gpu = await grads();
    await initEngine("cpu");
    const cpu = await grads();
    assert.ok(Math.abs(gpu.loss - cpu.loss) <= 1e-5 * cpu.loss, `loss ${gpu.loss} vs ${cpu.loss}`);
    assert.deepEqual([...gpu.g.keys()].sort(), [...cpu.g.keys()].sort());
    let worst = 0;
    for (const [k, v] of cpu.g) {
      const e = relError(Array.from(gpu.g.get(k)!), Array.from(v)).rel;
      worst = Math.max(worst, e);
      assert.ok(e <= 1e-4, `${k}: rel ${e}`);
    }
    console.log(`      ${cpu.g.size} gradients, worst rel diff vs cpu ${worst.toExponential(2)}`);
  });

  it("greedy generation on stories260K is the cpu backend's token for token", async function () {
    requireShared(this);
    await webgpuOrSkip(this);
    const files = await readModelFiles(STORIES260K());
    const prompt = files.tokenizer!.encode("Once upon a time");
    const gen = () => {
      const m = CausalLM.fromTensors(files.config, files.tensors, "stories260K.gguf");
      try {
        return m.generate(prompt, { maxNewTokens: 24, stopAtEos: false });
      } finally {
        m.dispose();
      }
    };
    const gpu = gen();
    await initEngine("cpu");
    assert.deepEqual(gpu, gen());
  });

  it("LoRA recovery: the loss trajectory of 6 AdamW steps equals cpu's", async function () {
    await webgpuOrSkip(this);
    const data = [3, 4, 5, 6].map((s) => randomIds(12, cfg.vocab_size, 40 + s));
    const run = async (): Promise<number[]> => {
      const m = CausalLM.fromTensors(cfg, randomTensors(cfg, 5, 0.1));
      try {
        const r = await recover(m, { data, steps: 6, lr: 1e-2, batch: 2, lora: { r: 4, alpha: 8 }, seed: 3 });
        r.model.dispose();
        r.adapters?.dispose();
        return r.losses;
      } finally {
        m.dispose();
      }
    };
    const gpu = await run();
    await initEngine("cpu");
    const cpu = await run();
    const e = relError(gpu, cpu).rel;
    console.log(`      cpu ${cpu.map((x) => x.toFixed(6)).join(" ")}\n      gpu ${gpu.map((x) => x.toFixed(6)).join(" ")}; rel ${e.toExponential(2)}`);
    assert.ok(e <= 1e-5, `rel ${e}`);
  });

  it("addN of more inputs than the device binds per shader (recovery's gradient norm) equals cpu's", async function () {
    await webgpuOrSkip(this);
    const sum = async (): Promise<Float32Array> => {
      const xs = Array.from({ length: 29 }, (_, i) => tf.fill([3, 5], i + 0.25));
      const s = tf.addN(xs);
      const v = (await s.data()) as Float32Array;
      tf.dispose([s, ...xs]);
      return v;
    };
    const before = tf.memory().numTensors;
    const gpu = await sum();
    assert.equal(tf.memory().numTensors, before);
    await initEngine("cpu");
    assert.deepEqual(Array.from(gpu), Array.from(await sum()));
    assert.equal(gpu[0], (28 * 29) / 2 + 29 * 0.25);
  });

  it("the default chain never takes a software adapter (it falls through to wasm)", function () {
    const { backend, output } = defaultChainBackend();
    // a hardware adapter may legitimately win on a GPU machine; llvmpipe never may
    if (backend === "webgpu") assert.doesNotMatch(output, /llvmpipe|lavapipe|swiftshader/i);
    else assert.ok(["tensorflow", "wasm"].includes(backend), backend);
  });
});
