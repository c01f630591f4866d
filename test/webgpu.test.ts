import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { backendInfo, initEngine } from "../src/engine";
import { accumulate } from "../src/importance";
import { LlamaModel } from "../src/model/llama";
import { randomTensors } from "../src/model/random";
import { perplexity } from "../src/eval/perplexity";
import { TeacherCache } from "../src/teacher";
import { TINY_CONFIGS, randomIds, relError } from "./reference/configs";

/**
 * The webgpu backend against the cpu backend on the same weights and windows. On a machine without a GPU the
 * adapter is Mesa's llvmpipe through Dawn's OpenGL backend (a forced `webgpu` accepts a software adapter);
 * CI installs Mesa, so there a missing adapter fails instead of skipping.
 */
async function webgpuOrSkip(ctx: Mocha.Context): Promise<void> {
  try {
    await initEngine("webgpu");
  } catch (e) {
    if (process.env.CI) throw e;
    console.warn(`\n  !!! SKIPPING: webgpu backend unavailable (${(e as Error).message}) !!!\n`);
    ctx.skip();
  }
}

describe("webgpu backend (Dawn) agrees with cpu", function () {
  this.timeout(300_000);
  const cfg = TINY_CONFIGS["gqa+llama3+tied"];
  const windows = [1, 2].map((s) => randomIds(16, cfg.vocab_size, 20 + s));

  /** Logits, token log-probs, sd-taylor scores and perplexity of one fresh model on the active backend. */
  async function run(): Promise<{ logits: Float32Array; logProbs: number[]; scores: number[]; ppl: number }> {
    const m = LlamaModel.fromTensors(cfg, randomTensors(cfg, 11, 0.3));
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

  it("the default chain never takes a software adapter (it falls through to wasm)", function () {
    const code = `require(${JSON.stringify(path.resolve(__dirname, "../src/engine/index.ts"))}).initEngine().then((b) => console.log("BACKEND=" + b))`;
    const env = { ...process.env };
    delete env.SDMPRUNE_BACKEND;
    const r = spawnSync(process.execPath, ["--import", "tsx", "-e", code], { env, encoding: "utf8" });
    const m = /BACKEND=(\w+)/.exec(r.stdout);
    assert.ok(m, `no backend reported: ${r.stderr}`);
    // a hardware adapter may legitimately win on a GPU machine; llvmpipe never may
    if (m[1] === "webgpu") assert.doesNotMatch(r.stderr + r.stdout, /llvmpipe|lavapipe|swiftshader/i);
    else assert.ok(["tensorflow", "wasm"].includes(m[1]), m[1]);
  });
});
