import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { UsageError } from "../src/errors";
import { readSafetensorsHeader } from "../src/io/safetensors";
import { parseConfig, withIntermediateSizes } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { loadAdapters, saveAdapters } from "../src/train/adapters";
import { LoraAdapters, modulePath } from "../src/train/lora";

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Give B random values so the adapters change the model (a fresh adapter has B = 0). */
function randomizeB(ad: LoraAdapters, seed: number): void {
  const rng = new Rng(seed);
  for (const b of ad.B.values()) {
    const d = new Float32Array(b.size);
    for (let i = 0; i < d.length; i++) d[i] = 0.05 * rng.normal();
    tf.tidy(() => b.assign(tf.tensor(d, b.shape)));
  }
}

describe("LoRA adapters", () => {
  // GQA and non-uniform MLP widths (as after pruning) so every shape path is exercised
  const cfg = withIntermediateSizes(
    parseConfig({ vocab_size: 50, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true }),
    [48, 40],
  );
  let model: CausalLM;
  let dir: string;
  const ids = [
    [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45],
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  ];

  before(async () => {
    await initEngine("cpu");
    model = CausalLM.fromTensors(cfg, randomTensors(cfg, 3, 0.1));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-lora-"));
  });
  after(() => {
    model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("starts at the base model (B = 0), and merged vs unmerged logits agree within 1e-5", () => {
    const ad = LoraAdapters.create(model, { r: 4, alpha: 8, dropout: 0 }, 1);
    const base = model.forward(ids);
    const fresh = tf.tidy(() => ad.logits(model, ids));
    assert.ok(maxAbsDiff(base, fresh) < 1e-6, "fresh adapters leave the logits unchanged");
    randomizeB(ad, 2);
    // unmerged: x·W + s·(x·A)·B per projection; merged: x·(W + s·A·B) saved into a new model
    const unmerged = tf.tidy(() => ad.logits(model, ids, undefined, { explicit: true }));
    const mergedModel = ad.merge(model);
    const merged = mergedModel.forward(ids);
    const d = maxAbsDiff(unmerged, merged);
    console.log(`      merged vs unmerged max |Δlogit| = ${d.toExponential(2)} (change from base ${maxAbsDiff(base, merged).toFixed(3)})`);
    assert.ok(d <= 1e-5, `max diff ${d}`);
    assert.ok(maxAbsDiff(base, merged) > 1e-2, "the adapters do change the model");
    tf.dispose([base, fresh, unmerged, merged]);
    mergedModel.dispose();
    ad.dispose();
  });

  it("the linear seam x·W + s·(x·A)·B (used with dropout) equals the model's layer on merged weights", () => {
    const ad = LoraAdapters.create(model, { r: 4, alpha: 16, dropout: 0 }, 5);
    randomizeB(ad, 6);
    const B = ids.length;
    const T = ids[0].length;
    const h0 = model.embed(tf.tensor2d(ids, [B, T], "int32"));
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const [viaModel, explicit] = tf.tidy(() => {
        const branches = Object.fromEntries(ad.config.targets.map((p) => [p, { A: ad.A.get(modulePath(l, p))!, B: ad.B.get(modulePath(l, p))! }]));
        return [model.layer(l, h0, B, T, ad.effectiveLayer(model, l)), model.layer(l, h0, B, T, undefined, { lora: { branches: branches as never, scale: ad.scale } })];
      });
      const d = maxAbsDiff(viaModel, explicit);
      assert.ok(d <= 1e-5, `layer ${l}: max diff ${d}`);
      tf.dispose([viaModel, explicit]);
    }
    h0.dispose();
    ad.dispose();
  });

  it("dropout: element-wise masks on the LoRA input, fixed by the Rng, inactive at evaluation", () => {
    const ad = LoraAdapters.create(model, { r: 4, alpha: 8, dropout: 0.5 }, 1);
    randomizeB(ad, 3);
    const evalA = tf.tidy(() => ad.logits(model, ids));
    const evalB = tf.tidy(() => ad.logits(model, ids));
    const d1 = tf.tidy(() => ad.logits(model, ids, new Rng(9)));
    const d2 = tf.tidy(() => ad.logits(model, ids, new Rng(9)));
    const d3 = tf.tidy(() => ad.logits(model, ids, new Rng(10)));
    assert.equal(maxAbsDiff(evalA, evalB), 0);
    assert.equal(maxAbsDiff(d1, d2), 0, "same seed, same masks");
    assert.ok(maxAbsDiff(d1, d3) > 1e-4, "another seed, other masks");
    assert.ok(maxAbsDiff(d1, evalA) > 1e-4, "dropout changes the training forward");
    tf.dispose([evalA, evalB, d1, d2, d3]);
    ad.dispose();
  });

  it("saves PEFT-style adapters (names, torch layout, adapter_config.json) and loads them back", async () => {
    const ad = LoraAdapters.create(model, { r: 4, alpha: 16, dropout: 0.05 }, 1);
    randomizeB(ad, 4);
    const out = path.join(dir, "adapter");
    const files = await saveAdapters(out, ad, { baseModel: "random-test" });
    assert.deepEqual(files.map((f) => path.basename(f)).sort(), ["adapter_config.json", "adapter_model.safetensors"]);
    const cfgJson = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8"));
    assert.equal(cfgJson.peft_type, "LORA");
    assert.equal(cfgJson.r, 4);
    assert.equal(cfgJson.lora_alpha, 16);
    assert.equal(cfgJson.lora_dropout, 0.05);
    assert.deepEqual(cfgJson.target_modules, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]);
    const h = readSafetensorsHeader(path.join(out, "adapter_model.safetensors"));
    const shapes = new Map(h.entries.map((e) => [e.name, e.shape]));
    assert.equal(shapes.size, 2 * 7 * 2);
    // torch layout: lora_A [r, in], lora_B [out, r]; k_proj out = nKV·hd = 16; layer 1 MLP width 40
    assert.deepEqual(shapes.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), [4, 32]);
    assert.deepEqual(shapes.get("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight"), [16, 4]);
    assert.deepEqual(shapes.get("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"), [4, 40]);
    assert.deepEqual(shapes.get("base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight"), [40, 4]);
    const back = loadAdapters(out, model);
    const a = tf.tidy(() => ad.logits(model, ids));
    const b = tf.tidy(() => back.logits(model, ids));
    assert.equal(maxAbsDiff(a, b), 0);
    await assert.rejects(saveAdapters(out, ad), UsageError, "refuses to overwrite without force");
    tf.dispose([a, b]);
    back.dispose();
    ad.dispose();
  });

  it("rejects a rank larger than a projection, and bad alpha/dropout/targets, with clear errors", () => {
    // layer 1's smallest projection is k_proj/v_proj [32 → 16]: rank 17 is too large
    assert.throws(
      () => LoraAdapters.create(model, { r: 17 }, 0),
      (e: Error) => e instanceof UsageError && /rank r = 17 is larger than the projection model\.layers\.0\.self_attn\.k_proj/.test(e.message) && /rank ≤ 16/.test(e.message),
    );
    assert.throws(() => LoraAdapters.create(model, { r: 0 }, 0), (e: Error) => e instanceof UsageError && /positive integer, got 0/.test(e.message));
    assert.throws(() => LoraAdapters.create(model, { alpha: -1 }, 0), /alpha must be a positive number/);
    assert.throws(() => LoraAdapters.create(model, { dropout: 1 }, 0), /dropout must be in \[0, 1\)/);
    assert.throws(() => LoraAdapters.create(model, { targets: ["qkv" as never] }, 0), /unknown LoRA target "qkv"/);
    // rank 16 fits every projection
    LoraAdapters.create(model, { r: 16 }, 0).dispose();
  });
});
