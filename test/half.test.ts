import { strict as assert } from "node:assert";
import { webgpuOrSkip } from "./support/engine";
import * as tf from "@tensorflow/tfjs";
import { backendName, initEngine, type BackendName } from "../src/engine";
import { packedBytes, packHalf, unpackHalf, unpackHalfRows } from "../src/engine/half";
import { decodeHalfWords, halfToFloat } from "../src/io/dtypes";

/**
 * Half storage (src/engine/half.ts) on the active backend: the default pass runs it on wasm or cpu (host decode),
 * the webgpu pass of `npm test` on Dawn (the WGSL unpack). The webgpu-specific case forces webgpu itself and
 * skips loudly where Dawn has no adapter (CI installs Mesa, so there it fails instead).
 */

/** Reference F32 → F16 rounding written independently of src/io/dtypes: a search over the ordered finite halves. */
const POSITIVE = Float64Array.from({ length: 0x7c00 }, (_, h) => halfToFloatRef(h));
function halfToFloatRef(h: number): number {
  const e = h >> 10;
  const f = h & 0x3ff;
  return e === 0 ? f * 2 ** -24 : (1024 + f) * 2 ** (e - 25);
}
function halfOf(v: number): number {
  if (Number.isNaN(v)) return 0x7e00; // PyTorch's (and IEEE's) quiet NaN; the payload is not kept
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  // 65520 is halfway between the largest half (65504) and 2^16, the next step: from there on it is infinity
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (POSITIVE[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0x7bff || POSITIVE[lo] === a) return sign | lo;
  const m = (POSITIVE[lo] + POSITIVE[lo + 1]) / 2; // exact in float64; compared, never subtracted
  if (a < m) return sign | lo;
  if (a > m) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

/** Mulberry32: a seeded stream of 32-bit words. */
function words32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

async function halvesOf(data: Float32Array): Promise<number[]> {
  const p = packHalf(data, [data.length]);
  const w = (await p.data()) as Int32Array;
  p.dispose();
  return Array.from({ length: data.length }, (_, i) => (w[i >> 1] >>> (16 * (i & 1))) & 0xffff);
}

const bitsOf = (f: Float32Array): number[] => Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length));

/**
 * How many of the first `n` GPU-decoded values differ from the host decode. NaN payloads are the implementation's
 * (WGSL leaves them open; llvmpipe gives 0x7fffffff with the sign, PyTorch's .float() 0x7fffffff, numpy keeps the
 * payload): a NaN must stay a NaN, every other value exact.
 */
function halfMismatches(gpu: Float32Array, host: Float32Array, n = host.length): number {
  const g = new Uint32Array(gpu.buffer, gpu.byteOffset, n);
  const h = new Uint32Array(host.buffer, host.byteOffset, n);
  let wrong = 0;
  for (let i = 0; i < n; i++) if (Number.isNaN(host[i]) ? !Number.isNaN(gpu[i]) : g[i] !== h[i]) wrong++;
  return wrong;
}

describe("half storage: float32 weights packed as IEEE halves", function () {
  this.timeout(120_000);
  let baseline = 0;
  before(async () => {
    await initEngine();
  });
  beforeEach(() => {
    baseline = tf.memory().numTensors;
  });
  afterEach(() => {
    assert.equal(tf.memory().numTensors, baseline, "tensors leaked");
  });

  it("rounds as PyTorch's .half(): IEEE bit patterns at the edges (ties to even, subnormals, overflow, NaN)", async () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff], // largest finite half
      [65519, 0x7bff],
      [65520, 0x7c00], // the tie above 65504 rounds to even: infinity
      [1e6, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // its half: tie to even, zero
      [1.5 * 2 ** -25, 0x0001],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -14 - 2 ** -25, 0x0400], // the largest subnormal's tie carries into the normal range
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [1 + 2 ** -11, 0x3c00], // tie, even below
      [1 + 3 * 2 ** -11, 0x3c02], // tie, even above
      [-0, 0x8000],
      [-1e-8, 0x8000],
      [NaN, 0x7e00],
    ];
    const got = await halvesOf(Float32Array.from(cases.map((c) => c[0])));
    cases.forEach(([v, h], i) => assert.equal(got[i], h, `${v}: 0x${got[i].toString(16)}, expected 0x${h.toString(16)}`));
    // the table's expectations are those of the reference search too
    cases.forEach(([v, h]) => assert.equal(halfOf(Math.fround(v)), h, `reference for ${v}`));
  });

  it("rounds every tie and 40 000 random float32 values as an independent nearest-even search does", async () => {
    const next = words32(7);
    const vals: number[] = [];
    // every midpoint between neighbouring finite halves is a float32 (12 significant bits): all the ties
    for (let h = 0; h < 0x7bff; h++) vals.push((POSITIVE[h] + POSITIVE[h + 1]) / 2);
    // random signs and mantissas, exponents from 2^-27 (below the subnormal range) to 2^18 (overflow)
    for (let i = 0; i < 40_000; i++) {
      const exp = 100 + (next() % 46);
      vals.push(new Float32Array(new Uint32Array([(next() & 0x807fffff) | (exp << 23)]).buffer)[0]);
    }
    const data = Float32Array.from(vals);
    const got = await halvesOf(data);
    let wrong = 0;
    data.forEach((v, i) => {
      if (got[i] !== halfOf(v)) {
        if (wrong++ < 5) console.log(`      ${v}: 0x${got[i].toString(16)} vs reference 0x${halfOf(v).toString(16)}`);
      }
    });
    assert.equal(wrong, 0, `${wrong} of ${data.length} rounded differently from the reference`);
  });

  it("round trip is exact for every half value, packed in half the bytes; odd lengths and any shape", async () => {
    // every non-NaN half, then three odd lengths
    const all = Float32Array.from({ length: 65536 }, (_, h) => halfToFloat(h)).filter((v) => !Number.isNaN(v));
    for (const [data, shape] of [
      [all, [all.length]],
      [all.subarray(0, 7), [7]],
      [all.subarray(1000, 1015), [3, 5]],
      [all.subarray(40000, 40001), [1]],
    ] as Array<[Float32Array, number[]]>) {
      const before = tf.memory().numBytes;
      const p = packHalf(data, shape);
      assert.equal(p.dtype, "int32");
      assert.equal(p.size, Math.ceil(data.length / 2));
      assert.equal(tf.memory().numBytes - before, packedBytes(shape));
      const u = unpackHalf(p, shape);
      assert.deepEqual(u.shape, shape);
      assert.equal(u.dtype, "float32");
      const back = (await u.data()) as Float32Array;
      tf.dispose([p, u]);
      assert.deepEqual(bitsOf(back), bitsOf(data), `shape [${shape}] on ${backendName()}`);
    }
    assert.equal(packedBytes([2048, 8192]), 2048 * 8192 * 2);
  });

  it("is a constant inside a taped function: gradients of the other inputs equal those through the float32 weight", async () => {
    const next = words32(11);
    const w = Float32Array.from({ length: 6 * 5 }, () => Math.fround(((next() % 2001) - 1000) / 1024)); // all exact halves
    const x = tf.tensor2d(Float32Array.from({ length: 3 * 6 }, (_, i) => Math.sin(i)), [3, 6]);
    const p = packHalf(w, [6, 5]);
    const wf = tf.tensor2d(w, [6, 5]);
    const viaHalf = tf.grad((xv: tf.Tensor) => tf.square(tf.matMul(xv as tf.Tensor2D, unpackHalf(p, [6, 5]) as tf.Tensor2D)).sum())(x);
    const viaF32 = tf.grad((xv: tf.Tensor) => tf.square(tf.matMul(xv as tf.Tensor2D, wf)).sum())(x);
    assert.deepEqual(Array.from(await viaHalf.data()), Array.from(await viaF32.data()));
    tf.dispose([x, p, wf, viaHalf, viaF32]);
  });

  it("unpacks rows of a row-packed matrix (a run or a list of rows, odd widths padded per row) exactly, words of any bit pattern", async () => {
    // random words: a word's low half must survive (tfjs's own Gather/Slice on webgpu pass int32 through float32
    // and lose it), so the expected values are decoded on the host from the very words
    const next = words32(5);
    for (const cols of [7, 8, 1]) {
      const R = 37;
      const wc = Math.ceil(cols / 2);
      const words = Int32Array.from({ length: R * wc }, () => next() & 0x7bff7bff); // finite halves only: NaN payloads are the GPU's
      const host = (r: number): number[] => Array.from(decodeHalfWords(words.subarray(r * wc, (r + 1) * wc), cols));
      const p = tf.tensor2d(words, [R, wc], "int32");
      const run = unpackHalfRows(p, cols, { from: 5, count: 9 });
      const ids = tf.tensor1d([36, 0, 3, 3, 20], "int32");
      const picked = unpackHalfRows(p, cols, ids);
      assert.deepEqual(run.shape, [9, cols]);
      assert.deepEqual(Array.from(await run.data()), Array.from({ length: 9 }, (_, i) => host(5 + i)).flat(), `run, ${cols} columns on ${backendName()}`);
      assert.deepEqual(Array.from(await picked.data()), [36, 0, 3, 3, 20].flatMap(host), `rows, ${cols} columns on ${backendName()}`);
      assert.throws(() => unpackHalfRows(p, cols, { from: 30, count: 8 }), /rows 30..37 of 37/);
      tf.dispose([p, run, ids, picked]);
    }
    const f = tf.zeros([3]);
    assert.throws(() => unpackHalfRows(f, 4, { from: 0, count: 1 }), /expected the int32 words/);
    f.dispose();
  });

  it("refuses a shape that does not fit the data or the words", () => {
    assert.throws(() => packHalf(new Float32Array(6), [2, 4]), /holds 8 elements, data has 6/);
    const p = packHalf(new Float32Array(5), [5]);
    try {
      assert.throws(() => unpackHalf(p, [7]), /needs 4 words, the packed tensor has 3/);
      const f = tf.zeros([3]);
      assert.throws(() => unpackHalf(f, [5]), /expected the int32 words/);
      f.dispose();
    } finally {
      p.dispose();
    }
  });

  it("webgpu: the WGSL unpack2x16float decode (whole tensors and rows) equals the host decode bit for bit (NaN stays NaN), every half pattern, odd length, a 2048 × 8192 matrix", async function () {
    const prev: BackendName = backendName();
    await webgpuOrSkip(this);
    try {
      baseline = tf.memory().numTensors;
      // all 65536 patterns (NaNs with payloads, infinities, subnormals) two to a word, then an odd count
      const all = Int32Array.from({ length: 32768 }, (_, i) => (2 * i) | ((2 * i + 1) << 16));
      // and a 2048 × 8192 matrix (a 1B model's MLP weight) of random words: 131 072 workgroups of 128 (one
      // invocation per float), twice what a dispatch dimension takes, so the backend lays them out in 2-D and the
      // shader's index must follow
      const next = words32(3);
      const big = Int32Array.from({ length: 2048 * 4096 }, () => next() | 0);
      for (const [words, shape] of [
        [all, [256, 256]],
        [all, [65535]],
        [all, [3]],
        [big, [2048, 8192]],
      ] as Array<[Int32Array, number[]]>) {
        const n = shape.reduce((a, b) => a * b, 1);
        const p = tf.tensor1d(words.subarray(0, Math.ceil(n / 2)), "int32");
        const u = unpackHalf(p, shape);
        const gpu = (await u.data()) as Float32Array;
        tf.dispose([p, u]);
        const host = decodeHalfWords(words, n);
        const wrong = halfMismatches(gpu, host, n);
        assert.equal(wrong, 0, `${wrong} of ${n} halves decoded differently on the GPU`);
      }
      // the row kernel on the same matrix, read as 2048 rows of 8192: one invocation per float, 131 072 workgroups
      {
        const p = tf.tensor2d(big, [2048, 4096], "int32");
        const u = unpackHalfRows(p, 8192, { from: 0, count: 2048 });
        const gpu = (await u.data()) as Float32Array;
        tf.dispose([p, u]);
        const host = decodeHalfWords(big, 2048 * 8192);
        const wrong = halfMismatches(gpu, host);
        assert.equal(wrong, 0, `${wrong} of ${host.length} halves unpacked by rows differently on the GPU`);
      }
      assert.equal(tf.memory().numTensors, baseline, "tensors leaked on webgpu");
    } finally {
      await initEngine(prev);
    }
  });
});
