import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { FormatError } from "../src/errors";
import { initEngine } from "../src/engine";
import { readModelFiles, writeModelFiles } from "../src/io/files";
import { readGgufHeader, readGgufTensors } from "../src/io/gguf";
import { permuteQK } from "../src/io/gguf-llama";
import { readSafetensors } from "../src/io/safetensors";
import { isLazy, readTensorAt, type TensorLocation } from "../src/io/tensor-file";
import { decodeBF16, decodeF16, encodeF16 } from "../src/io/dtypes";
import { parseConfig } from "../src/model/config";
import { loadModel } from "../src/model/load";
import { randomTensors } from "../src/model/random";
import type { TensorMap } from "../src/io/tensors";
import { writeBf16Safetensors } from "./support/bf16";

/**
 * Issue 20, load at file size: the model-file readers return lazy tensors read from disk with positioned reads one
 * at a time, with exactly the values the eager readers produce (F32, F16, BF16; single file, shards, GGUF with its
 * q/k permutation), and a file changed after its header was read is refused instead of read as another model.
 */

const CFG = parseConfig({
  vocab_size: 48, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, tie_word_embeddings: false,
});

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "sdm-lazy-"));
}

function assertSameTensors(a: TensorMap, b: TensorMap): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of a) {
    const w = b.get(k)!;
    assert.deepEqual(w.shape, v.shape, k);
    assert.deepEqual(Array.from(w.data), Array.from(v.data), k);
  }
}

describe("load at file size (issue 20)", function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const mk = () => {
    const d = tmp();
    dirs.push(d);
    return d;
  };

  it("safetensors F32 and F16: lazy tensors with the eager reader's values, read afresh on each access", async () => {
    const tensors = randomTensors(CFG, 3);
    for (const dtype of ["f32", "f16"] as const) {
      const dir = path.join(mk(), "m");
      await writeModelFiles(dir, { config: CFG, tensors, tokenizer: null }, { format: "hf", dtype });
      const f = await readModelFiles(dir);
      for (const t of f.tensors.values()) assert.ok(isLazy(t));
      assertSameTensors(f.tensors, readSafetensors(path.join(dir, "model.safetensors")));
      // Not kept: every access is a new array (the reader holds nothing between uses).
      const q = f.tensors.get("model.layers.0.self_attn.q_proj.weight")!;
      assert.notEqual(q.data, q.data);
      if (dtype === "f32") assertSameTensors(f.tensors, tensors);
    }
  });

  it("BF16 and F16 decode chunk by chunk: every chunk size gives the whole-tensor decode", () => {
    const dir = mk();
    const t = randomTensors(CFG, 5).get("model.layers.1.mlp.down_proj.weight")!;
    const n = t.data.length;
    for (const dtype of ["BF16", "F16"] as const) {
      const file = path.join(dir, `x-${dtype}.bin`);
      const bytes = dtype === "F16" ? Buffer.from(encodeF16(t.data)) : Buffer.alloc(n * 2);
      if (dtype === "BF16") {
        const u32 = new Uint32Array(Float32Array.from(t.data).buffer);
        for (let i = 0; i < n; i++) bytes.writeUInt16LE(u32[i] >>> 16, i * 2);
      }
      // 10 bytes before the tensor: positioned reads must honour the offset.
      fs.writeFileSync(file, Buffer.concat([Buffer.alloc(10, 7), bytes]));
      const st = fs.statSync(file);
      const loc: TensorLocation = { file, name: "x", dtype, shape: t.shape, position: 10, fileSize: st.size, mtimeMs: st.mtimeMs };
      const whole = dtype === "F16" ? decodeF16(bytes, n) : decodeBF16(bytes, n);
      for (const chunk of [2, 6, 7, 64, 1000, n * 2, 1 << 26]) {
        assert.deepEqual(Array.from(readTensorAt(loc, chunk)), Array.from(whole), `${dtype}, chunk ${chunk} bytes`);
      }
    }
  });

  it("BF16 single file and sharded checkpoints load lazily with the values of the BF16 data", async () => {
    const tensors = randomTensors(CFG, 4);
    const dir = mk();
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...CFG, model_type: "llama" }));
    writeBf16Safetensors(path.join(dir, "model.safetensors"), tensors);
    const single = await readModelFiles(dir);
    const expect: TensorMap = new Map(
      [...tensors].map(([k, v]) => {
        const u32 = new Uint32Array(Float32Array.from(v.data).buffer);
        for (let i = 0; i < u32.length; i++) u32[i] &= 0xffff0000;
        return [k, { shape: v.shape, data: new Float32Array(u32.buffer) }];
      }),
    );
    assertSameTensors(single.tensors, expect);

    // The same tensors in two shards with an index.
    const sharded = mk();
    fs.copyFileSync(path.join(dir, "config.json"), path.join(sharded, "config.json"));
    const names = [...tensors.keys()].sort();
    const halves = [names.slice(0, 9), names.slice(9)];
    const weightMap: Record<string, string> = {};
    halves.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeBf16Safetensors(path.join(sharded, file), new Map(part.map((n) => [n, tensors.get(n)!])));
      for (const n of part) weightMap[n] = file;
    });
    fs.writeFileSync(path.join(sharded, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
    const s = await readModelFiles(sharded);
    for (const t of s.tensors.values()) assert.ok(isLazy(t));
    assertSameTensors(s.tensors, expect);
  });

  it("GGUF: lazy tensors with the q/k permutation applied per tensor; the tied-copy check compares bytes in chunks", async () => {
    const tensors = randomTensors(CFG, 6);
    const dir = path.join(mk(), "g");
    await writeModelFiles(dir, { config: CFG, tensors, tokenizer: null }, { format: "gguf", dtype: "f16" });
    const file = path.join(dir, "model.gguf");
    const f = await readModelFiles(file);
    assert.equal(f.config.tie_word_embeddings, false);
    const eager = readGgufTensors(readGgufHeader(file));
    for (const [k, t] of f.tensors) assert.ok(isLazy(t), k);
    const q = eager.get("blk.1.attn_q.weight")!;
    const k = eager.get("blk.1.attn_k.weight")!;
    assert.deepEqual(Array.from(f.tensors.get("model.layers.1.self_attn.q_proj.weight")!.data), Array.from(permuteQK(q, 4, false).data));
    assert.deepEqual(Array.from(f.tensors.get("model.layers.1.self_attn.k_proj.weight")!.data), Array.from(permuteQK(k, 2, false).data));
    // Round trip through f16: each value is the f16 rounding of the original.
    const up = f.tensors.get("model.layers.0.mlp.up_proj.weight")!.data;
    assert.deepEqual(Array.from(up), Array.from(decodeF16(encodeF16(tensors.get("model.layers.0.mlp.up_proj.weight")!.data), up.length)));

    // A head stored as an exact copy of the embedding is recognised as tied without reading either whole.
    const tied = path.join(mk(), "t");
    const withCopy = new Map(tensors);
    withCopy.set("lm_head.weight", { shape: tensors.get("model.embed_tokens.weight")!.shape, data: tensors.get("model.embed_tokens.weight")!.data });
    await writeModelFiles(tied, { config: CFG, tensors: withCopy, tokenizer: null }, { format: "gguf" });
    const t = await readModelFiles(path.join(tied, "model.gguf"));
    assert.equal(t.config.tie_word_embeddings, true);
    assert.equal(t.tensors.has("lm_head.weight"), false);
  });

  it("a file changed after its header was read is refused, not read as another model", async () => {
    const dir = path.join(mk(), "m");
    await writeModelFiles(dir, { config: CFG, tensors: randomTensors(CFG, 7), tokenizer: null }, { format: "hf" });
    const f = await readModelFiles(dir);
    const file = path.join(dir, "model.safetensors");
    fs.appendFileSync(file, Buffer.alloc(8));
    assert.throws(
      () => f.tensors.get("model.norm.weight")!.data,
      (e: Error) => e instanceof FormatError && /changed after its header was read/.test(e.message),
    );
  });

  it("a model loaded from lazy tensors equals the one built from the same tensors in memory", async () => {
    await initEngine("cpu");
    const tensors = randomTensors(CFG, 8);
    const dir = path.join(mk(), "m");
    await writeModelFiles(dir, { config: CFG, tensors, tokenizer: null }, { format: "hf" });
    const before = tf.memory().numTensors;
    const { model } = await loadModel(dir);
    try {
      assertSameTensors(model.toTensors(), tensors);
    } finally {
      model.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
  });
});
