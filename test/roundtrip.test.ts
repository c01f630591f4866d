import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine";
import { readModelFiles, writeModelFiles } from "../src/io/files";
import { GgufType, readGgufHeader } from "../src/io/gguf";
import { halfToFloat, floatToHalf } from "../src/io/dtypes";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { loadModel, saveModel } from "../src/model/load";
import { randomTensors } from "../src/model/random";
import { requireShared, STORIES260K } from "./support/shared";

function maxAbsDiff(a: CausalLM, b: CausalLM, ids: number[][]): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a.forward(ids), b.forward(ids)))).dataSync()[0]);
}

/** Untied head, GQA (4 heads / 2 kv), per-layer MLP widths, head_dim ≠ hidden/heads, llama3 RoPE scaling. */
const RANDOM = parseConfig({
  vocab_size: 64, hidden_size: 24, intermediate_size: [40, 16, 32], num_hidden_layers: 3,
  num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, rms_norm_eps: 1e-6, rope_theta: 500000,
  rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
  tie_word_embeddings: false, max_position_embeddings: 64, bos_token_id: 1, eos_token_id: 2,
});

describe("round trips GGUF ↔ HF", () => {
  let tmp: string;
  before(async () => {
    await initEngine();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-rt-"));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("stories260K: GGUF → HF dir → GGUF keeps logits (≤ 1e-5), tensors, config and tokenizer", async function () {
    requireShared(this);
    const src = await loadModel(STORIES260K());
    const ids = [src.tokenizer!.encode("Once upon a time, there was a little girl named Lily."), src.tokenizer!.encode("The end of the story is near, said Tom!")];
    ids[1] = ids[1].slice(0, ids[0].length);
    while (ids[1].length < ids[0].length) ids[1].push(3 + ids[1].length);
    const hfDir = path.join(tmp, "s-hf");
    const written = await saveModel(hfDir, src.model, src.tokenizer, { format: "hf" });
    assert.deepEqual(written.map((w) => path.basename(w)).sort(), ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    const cfg = JSON.parse(fs.readFileSync(path.join(hfDir, "config.json"), "utf8"));
    assert.deepEqual(cfg.architectures, ["LlamaForCausalLM"]);
    assert.equal(cfg.intermediate_size, 172);
    assert.equal(cfg.tie_word_embeddings, true);
    assert.equal(cfg.torch_dtype, "float32");
    const hf = await loadModel(hfDir);
    assert.equal(hf.files.format, "hf");
    assert.deepEqual({ ...hf.files.config, original: null }, src.files.config);
    const dHf = maxAbsDiff(src.model, hf.model, ids);
    assert.ok(dHf <= 1e-5, `GGUF→HF max |Δlogit| ${dHf}`);
    for (const line of ["Once upon a time", " = Robert Boulter = ", "naïve café 😀"]) assert.deepEqual(hf.tokenizer!.encode(line), src.tokenizer!.encode(line));

    const ggDir = path.join(tmp, "s-gguf");
    await saveModel(ggDir, hf.model, hf.tokenizer, { format: "gguf" });
    const gg = await loadModel(ggDir); // a directory holding one .gguf
    assert.equal(gg.files.format, "gguf");
    const dGg = maxAbsDiff(src.model, gg.model, ids);
    assert.ok(dGg <= 1e-5, `HF→GGUF max |Δlogit| ${dGg}`);
    // Bit-identical weights through both conversions, q/k included (the RoPE row permutation is inverted exactly).
    const a = src.model.toTensors(), b = gg.model.toTensors();
    for (const [k, v] of a) assert.deepEqual(b.get(k)!.data, v.data, k);
    assert.deepEqual(gg.tokenizer!.toJSON(), src.tokenizer!.toJSON());
    for (const m of [src, hf, gg]) m.model.dispose();
  });

  it("random untied/GQA/per-layer-width model: HF → GGUF → HF keeps logits and every tensor", async () => {
    const tensors = randomTensors(RANDOM, 11, 0.3);
    const hfDir = path.join(tmp, "r-hf");
    await writeModelFiles(hfDir, { config: RANDOM, tensors, tokenizer: null }, { format: "hf" });
    const cfg = JSON.parse(fs.readFileSync(path.join(hfDir, "config.json"), "utf8"));
    assert.deepEqual(cfg.intermediate_size, [40, 16, 32]); // non-uniform widths as a per-layer list
    const hf = await readModelFiles(hfDir);
    assert.deepEqual({ ...hf.config, original: null }, RANDOM);
    for (const [k, v] of tensors) assert.deepEqual(hf.tensors.get(k), v, k);

    const ggDir = path.join(tmp, "r-gguf");
    await writeModelFiles(ggDir, hf, { format: "gguf" });
    const h = readGgufHeader(path.join(ggDir, "model.gguf"));
    assert.equal(h.metadataTypes["llama.feed_forward_length"], GgufType.ARRAY);
    assert.equal(h.metadataArrayTypes["llama.feed_forward_length"], GgufType.UINT32);
    assert.deepEqual(h.metadata["llama.feed_forward_length"], [40, 16, 32]);
    assert.equal(h.metadata["llama.attention.key_length"], 8);
    assert.ok(h.tensors.some((t) => t.name === "output.weight"));
    assert.ok(h.tensors.some((t) => t.name === "rope_freqs.weight"));
    const gg = await readModelFiles(path.join(ggDir, "model.gguf"));
    assert.deepEqual(gg.config, RANDOM);
    for (const [k, v] of tensors) assert.deepEqual(gg.tensors.get(k), v, k);

    const m0 = CausalLM.fromTensors(RANDOM, tensors);
    const m1 = CausalLM.fromTensors(gg.config, gg.tensors);
    const ids = [[1, 5, 9, 33, 60, 2, 17, 8, 8, 40, 41, 42, 3, 7, 11, 63, 0, 21, 22, 23]];
    const d = maxAbsDiff(m0, m1, ids);
    assert.ok(d <= 1e-5, `max |Δlogit| ${d}`);
    const back = path.join(tmp, "r-hf2");
    await writeModelFiles(back, gg, { format: "hf" });
    const again = await readModelFiles(back);
    for (const [k, v] of tensors) assert.deepEqual(again.tensors.get(k), v, k);
    m0.dispose();
    m1.dispose();
  });

  it("padMlp writes a uniform-width GGUF (zero channels) with the same logits", async () => {
    const tensors = randomTensors(RANDOM, 13, 0.3);
    const dir = path.join(tmp, "pad");
    await writeModelFiles(dir, { config: RANDOM, tensors, tokenizer: null }, { format: "gguf", padMlp: true });
    const h = readGgufHeader(path.join(dir, "model.gguf"));
    assert.equal(h.metadata["llama.feed_forward_length"], 40);
    const r = await readModelFiles(dir);
    assert.equal(r.config.intermediate_size, 40);
    assert.deepEqual(r.tensors.get("model.layers.1.mlp.down_proj.weight")!.shape, [24, 40]);
    const m0 = CausalLM.fromTensors(RANDOM, tensors);
    const m1 = CausalLM.fromTensors(r.config, r.tensors);
    const d = maxAbsDiff(m0, m1, [[1, 4, 9, 16, 25, 36, 49, 63]]);
    assert.ok(d <= 1e-5, `max |Δlogit| ${d}`);
    m0.dispose();
    m1.dispose();
  });

  it("f16 output stores every weight rounded to the nearest half (HF and GGUF)", async () => {
    const tensors = randomTensors(RANDOM, 5, 0.3);
    for (const format of ["hf", "gguf"] as const) {
      const dir = path.join(tmp, `f16-${format}`);
      await writeModelFiles(dir, { config: RANDOM, tensors, tokenizer: null }, { format, dtype: "f16" });
      const r = await readModelFiles(dir);
      for (const [k, v] of tensors) {
        const got = r.tensors.get(k)!.data;
        // GGUF keeps 1-D norms in F32, as llama.cpp's converter does.
        const exact = format === "gguf" && v.shape.length === 1;
        for (let i = 0; i < v.data.length; i += 7) assert.equal(got[i], exact ? v.data[i] : halfToFloat(floatToHalf(v.data[i])), `${format} ${k}[${i}]`);
      }
      if (format === "hf") assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")).torch_dtype, "float16");
    }
  });
});
