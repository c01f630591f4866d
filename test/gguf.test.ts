import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { halfToFloat, floatToHalf, decodeF16, encodeF16 } from "../src/io/dtypes";
import { GgufType, gv, readGgufHeader, readGgufTensors, writeGguf, GGML_F16, GGML_F32 } from "../src/io/gguf";
import { configFromGguf, ggufFromModel, ggufToHfName, hfToGgufName, permuteQK, tensorsFromGguf } from "../src/io/gguf-llama";
import { parseConfig } from "../src/model/config";
import { randomTensors } from "../src/model/random";
import { requireShared, STORIES260K } from "./support/shared";

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-gguf-"));
}

describe("GGUF container", () => {
  it("reads the stories260K header: version, metadata, dims order, aligned data section", function () {
    requireShared(this);
    const h = readGgufHeader(STORIES260K());
    assert.equal(h.version, 3);
    assert.equal(Object.keys(h.metadata).length, 19);
    assert.equal(h.tensors.length, 48);
    assert.equal(h.alignment, 32);
    assert.equal(h.dataOffset % 32, 0);
    const byName = new Map(h.tensors.map((t) => [t.name, t]));
    assert.deepEqual(byName.get("token_embd.weight")!.dims, [64, 512]);
    assert.deepEqual(byName.get("blk.0.attn_k.weight")!.dims, [64, 32]);
    assert.deepEqual(byName.get("blk.0.ffn_down.weight")!.dims, [172, 64]);
    assert.equal(h.metadata["llama.attention.layer_norm_rms_epsilon"], 1e-5);
    assert.equal((h.metadata["tokenizer.ggml.tokens"] as string[]).length, 512);
    const t = readGgufTensors(h);
    // Row-major (out, in): shape is the reverse of the ggml dims.
    assert.deepEqual(t.get("blk.0.ffn_down.weight")!.shape, [64, 172]);
    assert.equal(t.get("blk.0.ffn_down.weight")!.data.length, 64 * 172);
  });

  it("builds the config from metadata (defaults: rope_theta 10000) and detects the duplicated head as tied", function () {
    requireShared(this);
    const h = readGgufHeader(STORIES260K());
    const raw = readGgufTensors(h);
    const { tensors, tied } = tensorsFromGguf(h.path, raw, 8, 4);
    assert.equal(tied, true);
    assert.equal(tensors.has("lm_head.weight"), false);
    const c = configFromGguf(h, tied, 512);
    assert.equal(c.hidden_size, 64);
    assert.equal(c.num_hidden_layers, 5);
    assert.equal(c.num_attention_heads, 8);
    assert.equal(c.num_key_value_heads, 4);
    assert.equal(c.head_dim, 8);
    assert.equal(c.intermediate_size, 172);
    assert.equal(c.vocab_size, 512);
    assert.equal(c.rope_theta, 10000);
    assert.equal(c.bos_token_id, 1);
    assert.equal(c.eos_token_id, 2);
    assert.equal(c.tie_word_embeddings, true);
  });

  it("round-trips metadata of every value type, v2 and v3, F32 and F16 tensors", () => {
    const dir = tmpDir();
    const file = path.join(dir, "a.gguf");
    const data = new Float32Array([0.1, -2.5, 3.14159, 65504, 1e-8, -0, 7, 8, 9, 10, 11, 12]);
    writeGguf(
      file,
      [
        ["u8", { type: GgufType.UINT8, value: 200 }],
        ["i8", { type: GgufType.INT8, value: -100 }],
        ["u16", { type: GgufType.UINT16, value: 60000 }],
        ["i16", { type: GgufType.INT16, value: -30000 }],
        ["u32", gv.u32(4000000000)],
        ["i32", gv.i32(-2000000000)],
        ["f32", gv.f32(0.1)],
        ["bool", gv.bool(true)],
        ["str", gv.str("héllo ▁")],
        ["u64", { type: GgufType.UINT64, value: 2n ** 60n }],
        ["i64", { type: GgufType.INT64, value: -5 }],
        ["f64", { type: GgufType.FLOAT64, value: Math.PI }],
        ["arr", gv.arr(GgufType.UINT32, [1, 2, 3])],
        ["strs", gv.arr(GgufType.STRING, ["a", "", "c"])],
      ],
      [
        { name: "a", shape: [3, 4], data, type: "f32" },
        { name: "b", shape: [3, 4], data, type: "f16" },
        { name: "n", shape: [12], data, type: "f16" },
      ],
    );
    const h = readGgufHeader(file);
    assert.deepEqual(
      { ...h.metadata },
      { u8: 200, i8: -100, u16: 60000, i16: -30000, u32: 4000000000, i32: -2000000000, f32: 0.1, bool: true, str: "héllo ▁", u64: 2n ** 60n, i64: -5, f64: Math.PI, arr: [1, 2, 3], strs: ["a", "", "c"] },
    );
    assert.equal(h.metadataArrayTypes.arr, GgufType.UINT32);
    assert.deepEqual(h.tensors.map((t) => [t.name, t.dims, t.type]), [["a", [4, 3], GGML_F32], ["b", [4, 3], GGML_F16], ["n", [12], GGML_F32]]);
    for (const t of h.tensors) assert.equal(t.offset % 32, 0);
    const t = readGgufTensors(h);
    assert.deepEqual(t.get("a")!.data, data);
    assert.deepEqual(t.get("n")!.data, data); // 1-D tensors stay F32
    const b = t.get("b")!.data;
    for (let i = 0; i < data.length; i++) assert.equal(b[i], halfToFloat(floatToHalf(data[i])));
    // The same file labelled version 2 (identical layout with u64 counts) reads the same.
    const bytes = fs.readFileSync(file);
    bytes.writeUInt32LE(2, 4);
    fs.writeFileSync(file, bytes);
    const h2 = readGgufHeader(file);
    assert.equal(h2.version, 2);
    assert.deepEqual(readGgufTensors(h2).get("a")!.data, data);
    fs.rmSync(dir, { recursive: true });
  });

  it("F16 conversion is exact on every half value and rounds to nearest even", () => {
    for (let h = 0; h < 65536; h++) {
      const f = halfToFloat(h);
      if (Number.isNaN(f)) continue;
      assert.equal(floatToHalf(f), h, `half 0x${h.toString(16)}`);
    }
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties to even (1.0); 1 + 3·2^-11 ties up to 1 + 2^-9.
    assert.equal(halfToFloat(floatToHalf(1 + 2 ** -11)), 1);
    assert.equal(halfToFloat(floatToHalf(1 + 3 * 2 ** -11)), 1 + 2 ** -9);
    assert.equal(halfToFloat(floatToHalf(70000)), Infinity);
    const v = new Float32Array([0.5, -1.25, 1e-6]);
    assert.deepEqual(Array.from(decodeF16(encodeF16(v), 3)), Array.from(v).map((x) => halfToFloat(floatToHalf(x))));
  });
});

describe("GGUF ↔ HF mapping", () => {
  it("maps tensor names both ways", () => {
    assert.equal(ggufToHfName("token_embd.weight"), "model.embed_tokens.weight");
    assert.equal(ggufToHfName("output.weight"), "lm_head.weight");
    assert.equal(ggufToHfName("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
    assert.equal(ggufToHfName("blk.0.ffn_down.weight"), "model.layers.0.mlp.down_proj.weight");
    assert.equal(ggufToHfName("blk.0.unknown.weight"), null);
    for (const n of ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]) {
      const g = `blk.3.${n}.weight`;
      assert.equal(hfToGgufName(ggufToHfName(g)!), g);
    }
  });

  it("permutes q/k rows like llama.cpp (rotate-half pairs (j, j+hd/2) → adjacent pairs) and back", () => {
    // One head of size 4: HF rows r0..r3 pair (r0,r2) and (r1,r3); GGUF stores the pairs adjacent: r0 r2 r1 r3.
    const t = { shape: [8, 1], data: new Float32Array([0, 1, 2, 3, 10, 11, 12, 13]) };
    assert.deepEqual(Array.from(permuteQK(t, 2, true).data), [0, 2, 1, 3, 10, 12, 11, 13]);
    const w = { shape: [12, 3], data: Float32Array.from({ length: 36 }, (_, i) => i) };
    assert.deepEqual(permuteQK(permuteQK(w, 2, true), 2, false).data, w.data);
  });

  it("writes llama.* keys llama.cpp reads, per-layer feed_forward_length as u32 array, key_length when head_dim differs", () => {
    const c = parseConfig({
      vocab_size: 40, hidden_size: 16, intermediate_size: [24, 20, 24], num_hidden_layers: 3,
      num_attention_heads: 2, num_key_value_heads: 1, head_dim: 12, rope_theta: 500000, rms_norm_eps: 1e-6,
      max_position_embeddings: 128,
    });
    const g = ggufFromModel(c, randomTensors(c, 3), null, "f32");
    const kv = new Map(g.kvs);
    assert.deepEqual(kv.get("llama.feed_forward_length"), { type: GgufType.ARRAY, elementType: GgufType.UINT32, value: [24, 20, 24] });
    assert.deepEqual(kv.get("llama.attention.key_length"), gv.u32(12));
    assert.deepEqual(kv.get("llama.attention.head_count_kv"), gv.u32(1));
    assert.deepEqual(kv.get("llama.rope.freq_base"), gv.f32(500000));
    assert.deepEqual(kv.get("general.architecture"), gv.str("llama"));
    assert.ok(g.tensors.some((t) => t.name === "output.weight"));
    const uniform = ggufFromModel({ ...c, intermediate_size: 24 }, randomTensors({ ...c, intermediate_size: 24 }, 3), null, "f32");
    assert.deepEqual(new Map(uniform.kvs).get("llama.feed_forward_length"), gv.u32(24));
  });
});
