import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encodeF16, encodeF32 } from "../src/io/dtypes";
import { ggufFromModel } from "../src/io/gguf-llama";
import { openSafetensors, writeSafetensors } from "../src/io/safetensors";
import { readRangeAt } from "../src/io/tensor-file";
import { TensorStreamer } from "../src/io/tensor-stream";
import type { HostTensor, TensorMap } from "../src/io/tensors";
import { parseConfig } from "../src/model/config";
import { randomTensors } from "../src/model/random";
import { HostWeight } from "../src/model/weight-store";
import { Rng } from "../src/rng";
import { writeBf16Safetensors } from "./support/bf16";

/**
 * Saving without a tensor whole in memory (issue 20, docs/memory.md "Saving without the model in memory"): every
 * range reader (checkpoint tensors of each stored type, host weights of each storage and layout, GGUF's permuted
 * q/k) gives exactly the values of the whole-array read at any range, and the streaming writer gives the bytes of
 * the whole-tensor encoding at every chunk size, without ever reading `data` of a tensor it can read in ranges.
 */

function values(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (rng.next() - 0.5) * 3;
  return v;
}

/** Ranges to check in a tensor of `n` values with rows of `row`: edges, whole rows, rows split, single values. */
function ranges(n: number, row: number): [number, number][] {
  const out: [number, number][] = [[0, n], [0, 1], [n - 1, 1], [0, row], [row, 2 * row], [1, row], [row - 1, row + 2], [3, n - 5]];
  return out.filter(([s, m]) => m > 0 && s + m <= n);
}

describe("streamed saving: range readers and the tensor streamer", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-tstream-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const R = 6;
  const C = 10;
  const src: HostTensor = { shape: [R, C], data: values(R * C, 1) };
  // internal layout of a linear is [in, out] = the transpose of the file's [out, in]
  const internal = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) internal[c * R + r] = src.data[r * C + c];
  /** `src` as read from an F32 checkpoint (written in before()). */
  let file: HostTensor;
  before(() => {
    const f = path.join(dir, "w.safetensors");
    writeSafetensors(f, new Map([["w", src]]), "f32");
    file = openSafetensors(f).get("w")!;
  });

  it("checkpoint tensors (F32, F16, BF16) read any range as the whole read, with every chunk size", () => {
    const files: [string, TensorMap][] = [];
    for (const dtype of ["f32", "f16"] as const) {
      const f = path.join(dir, `${dtype}.safetensors`);
      writeSafetensors(f, new Map([["w", src]]), dtype);
      files.push([dtype, openSafetensors(f)]);
    }
    const bf = path.join(dir, "bf16.safetensors");
    writeBf16Safetensors(bf, new Map([["w", src]]));
    files.push(["bf16", openSafetensors(bf)]);
    for (const [dtype, m] of files) {
      const t = m.get("w")!;
      assert.ok(t.readInto, `${dtype}: a checkpoint tensor reads ranges`);
      const whole = t.data;
      for (const [s, n] of ranges(R * C, C)) {
        const into = new Float32Array(n + 2).subarray(1, n + 1); // an offset view, as a writer's chunk may be
        t.readInto!(s, into);
        assert.deepEqual(Array.from(into), Array.from(whole.subarray(s, s + n)), `${dtype} [${s}, ${s + n})`);
      }
    }
    // the half-precision read buffer is reused across chunks of 2, 6 and 64 bytes: same values
    const h = openSafetensors(path.join(dir, "f16.safetensors")).get("w")!;
    const loc = { file: path.join(dir, "f16.safetensors"), name: "w", dtype: "F16" as const, shape: [R, C], position: 0, fileSize: 0, mtimeMs: 0 };
    const st = fs.statSync(loc.file);
    const hdr = fs.readFileSync(loc.file).readBigUInt64LE(0);
    Object.assign(loc, { position: 8 + Number(hdr), fileSize: st.size, mtimeMs: st.mtimeMs });
    for (const chunk of [2, 6, 64]) {
      const into = new Float32Array(37);
      readRangeAt(loc, 11, into, chunk);
      assert.deepEqual(Array.from(into), Array.from(h.data.subarray(11, 48)), `chunk ${chunk} bytes`);
    }
    assert.throws(() => readRangeAt(loc, R * C - 2, new Float32Array(3)), /outside its 60 values/);
  });

  it("host weights (f32 and f16, held or read from disk, linear or not) read any range as hfValues", () => {
    const weights: [string, HostWeight, boolean][] = [];
    for (const dtype of ["float32", "float16"] as const) {
      weights.push(
        [`${dtype} held linear`, HostWeight.of([C, R], internal, dtype), true],
        [`${dtype} held [V, H]`, HostWeight.of([R, C], src.data, dtype), false],
        [`${dtype} disk linear`, HostWeight.onDisk(file, true, dtype), true],
        [`${dtype} disk [V, H]`, HostWeight.onDisk(file, false, dtype), false],
      );
    }
    for (const [what, w, linear] of weights) {
      const read = w.hfRange(linear);
      assert.ok(read, `${what}: reads ranges`);
      const whole = w.hfValues(linear, true);
      const row = linear ? w.shape[0] : w.shape[1];
      for (const [s, n] of ranges(whole.length, row)) {
        const into = new Float32Array(n);
        read!(s, into);
        assert.deepEqual(Array.from(into), Array.from(whole.subarray(s, s + n)), `${what} [${s}, ${s + n})`);
      }
    }
    // a disk weight asked for in the other layout has no range reader (hfValues transposes it whole)
    assert.equal(HostWeight.onDisk(file, true).hfRange(false), null);
  });

  it("pruning selects (rows, columns) from held and disk weights as from the whole array, or keeps them on disk; float16 from a file in chunks", () => {
    const pick: Record<0 | 1, number[]> = { 0: [0, 3, 7, 9], 1: [1, 2, 5] }; // internal [C, R] = [10, 6]
    for (const dtype of ["float32", "float16"] as const) {
      const ref = HostWeight.of([C, R], internal, dtype); // what select gave before: from the whole values
      const whole = ref.values();
      for (const axis of [0, 1] as const) {
        const idx = pick[axis];
        const want = axis === 0 ? idx.flatMap((r) => Array.from(whole.subarray(r * R, (r + 1) * R))) : Array.from({ length: C }, (_, r) => idx.map((j) => whole[r * R + j])).flat();
        for (const [what, w] of [["held", ref], ["disk", HostWeight.onDisk(file, true, dtype)]] as const) {
          const got = w.select(idx, axis, dtype);
          assert.equal(got.where, "host");
          assert.equal(got.dtype, dtype);
          assert.deepEqual(got.shape, axis === 0 ? [idx.length, R] : [C, idx.length]);
          assert.deepEqual(Array.from(got.values()), want, `${dtype} ${what} axis ${axis}`);
        }
      }
    }
    // a model reading its layers from disk keeps a pruned weight there (read through the kept channels), also
    // pruned twice; its values, Hugging Face values and ranges are those of the held selection
    for (const dtype of ["float32", "float16"] as const) {
      const held = HostWeight.of([C, R], internal, dtype);
      const disk = HostWeight.onDisk(file, true, dtype);
      for (const axis of [0, 1] as const) {
        const idx = pick[axis];
        const again = [2, 0];
        const wantW = held.select(idx, axis, dtype).select(again, axis, dtype);
        const once = disk.select(idx, axis, dtype, true);
        const got = once.select(again, axis, dtype, true);
        assert.equal(once.where, "disk");
        assert.equal(got.where, "disk");
        assert.equal(got.bytes, 0);
        assert.deepEqual(got.shape, wantW.shape);
        assert.deepEqual(Array.from(got.values()), Array.from(wantW.values()), `${dtype} axis ${axis} values`);
        const hf = wantW.hfValues(true, true);
        assert.deepEqual(Array.from(got.hfValues(true, true)), Array.from(hf));
        const read = got.hfRange(true)!;
        for (const [s0, n] of ranges(hf.length, got.shape[0])) {
          const into = new Float32Array(n);
          read(s0, into);
          assert.deepEqual(Array.from(into), Array.from(hf.subarray(s0, s0 + n)), `${dtype} axis ${axis} [${s0}, ${s0 + n})`);
        }
        // and selecting it into memory (a host model's path) gives the same
        assert.deepEqual(Array.from(once.select(again, axis, dtype).values()), Array.from(wantW.values()));
      }
    }
    const half = HostWeight.halfFrom([R, C], file);
    assert.deepEqual(Array.from(half.values()), Array.from(HostWeight.of([R, C], src.data, "float16").values()));
    assert.equal(half.bytes, R * C * 2);
  });

  it("the streamer writes the whole-tensor encoding at every chunk size without reading data", () => {
    const t = { shape: [R, C], data: values(R * C, 2) };
    const ranged: HostTensor = {
      shape: t.shape,
      get data(): Float32Array {
        throw new Error("data read whole");
      },
      readInto: (s, into) => into.set(t.data.subarray(s, s + into.length)),
    };
    for (const half of [false, true]) {
      const want = Buffer.from(half ? encodeF16(t.data) : encodeF32(t.data));
      for (const chunk of [1, 7, C, 2 * C + 3, 1 << 20]) {
        for (const [what, x] of [["ranges", ranged], ["whole", t]] as const) {
          const f = path.join(dir, "s.bin");
          const fd = fs.openSync(f, "w");
          const wrote = new TensorStreamer(chunk).write(fd, x, half, f, "t");
          fs.closeSync(fd);
          assert.equal(wrote, want.length);
          assert.ok(fs.readFileSync(f).equals(want), `${what}, ${half ? "f16" : "f32"}, chunk ${chunk}`);
        }
      }
    }
    const fd = fs.openSync(path.join(dir, "bad.bin"), "w");
    try {
      assert.throws(() => new TensorStreamer().write(fd, { shape: [3, 3], data: new Float32Array(8) }, false, "bad.bin", "safetensors writer: tensor x"), /tensor x has 8 values for shape \[3, 3\]/);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("GGUF's permuted q/k read in ranges as permuteQK gives them whole", () => {
    const cfg = parseConfig({ vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true });
    const plain = randomTensors(cfg, 3, 0.3);
    const withRanges: TensorMap = new Map();
    for (const [k, t] of plain) withRanges.set(k, { shape: t.shape, data: t.data, readInto: (s, into) => into.set(t.data.subarray(s, s + into.length)) });
    const g = ggufFromModel(cfg, withRanges, null, "f32");
    let permuted = 0;
    for (const wt of g.tensors) {
      if (!wt.readInto) continue;
      const whole = wt.data;
      for (const [s, n] of ranges(whole.length, wt.shape[wt.shape.length - 1])) {
        const into = new Float32Array(n);
        wt.readInto(s, into);
        assert.deepEqual(Array.from(into), Array.from(whole.subarray(s, s + n)), `${wt.name} [${s}, ${s + n})`);
      }
      if (/attn_[qk]\.weight/.test(wt.name)) permuted++;
    }
    assert.equal(permuted, 2, "attn_q and attn_k stream too");
  });
});
