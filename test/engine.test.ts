import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { backendName, initEngine } from "../src/engine";
import { UsageError } from "../src/errors";
import { defaultChainBackend } from "./support/engine";

/**
 * Whether a native TensorFlow package loads, checked in a child process so this one keeps its backends. npm can
 * leave an optional native package installed without its binary (its install script blocked or its download
 * failed offline); the engine then falls through to wasm, and so must this expectation.
 */
function nativeInstalled(): boolean {
  for (const p of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    const r = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(p)})`], { encoding: "utf8", cwd: path.resolve(__dirname, "..") });
    if (r.status === 0) return true;
  }
  return false;
}

describe("engine", () => {
  // these tests set SDMPRUNE_BACKEND themselves; a value given to the whole run is restored for the files after
  const given = process.env.SDMPRUNE_BACKEND;
  beforeEach(() => {
    delete process.env.SDMPRUNE_BACKEND;
  });
  afterEach(() => {
    if (given === undefined) delete process.env.SDMPRUNE_BACKEND;
    else process.env.SDMPRUNE_BACKEND = given;
  });

  it("switches between cpu and wasm within one process; initEngine is idempotent", async () => {
    assert.equal(await initEngine("wasm"), "wasm");
    assert.equal(backendName(), "wasm");
    assert.equal(await initEngine(), "wasm");
    assert.equal(await initEngine("cpu"), "cpu");
    assert.equal(tf.getBackend(), "cpu");
    assert.equal(await initEngine(), "cpu");
  });

  it("SDMPRUNE_BACKEND forces a backend; unknown names and unloadable backends fail clearly", async () => {
    process.env.SDMPRUNE_BACKEND = "wasm";
    assert.equal(await initEngine(), "wasm");
    process.env.SDMPRUNE_BACKEND = "gpu";
    await assert.rejects(initEngine(), (e: Error) => e instanceof UsageError && /SDMPRUNE_BACKEND/.test(e.message) && /gpu/.test(e.message));
    if (!nativeInstalled()) {
      process.env.SDMPRUNE_BACKEND = "tensorflow";
      await assert.rejects(initEngine(), (e: Error) => e instanceof UsageError && /tensorflow/.test(e.message) && /not installed/.test(e.message));
    }
    delete process.env.SDMPRUNE_BACKEND;
    await initEngine("cpu");
  });

  it("the default chain picks the best available backend in a fresh process", function () {
    this.timeout(60000);
    assert.equal(defaultChainBackend().backend, nativeInstalled() ? "tensorflow" : "wasm");
  });

  it("wasm has an UnsortedSegmentSum kernel that agrees with cpu", async () => {
    const x = [
      [1, 2],
      [3, 4],
      [5, 6],
      [7, 8],
    ];
    const seg = [2, 0, 2, 5];
    const results: number[][][] = [];
    for (const b of ["cpu", "wasm"] as const) {
      await initEngine(b);
      const out = tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d(x), tf.tensor1d(seg, "int32"), 4));
      results.push(out.arraySync() as number[][]);
      out.dispose();
    }
    assert.deepEqual(results[1], results[0]);
    assert.deepEqual(results[0], [
      [3, 4],
      [0, 0],
      [6, 8],
      [0, 0],
    ]);
    await initEngine("cpu");
  });

  it("wasm's replaced GatherV2 (axis 0: one heap copy per index) agrees with cpu; other axes fall back; bad indices fail", async () => {
    const cases: [string, () => tf.Tensor][] = [
      ["rows of a 2-D float32", () => tf.gather(tf.tensor2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), tf.tensor1d([2, 0, 2, 1], "int32"))],
      ["elements of a 1-D float32", () => tf.gather(tf.tensor1d([0.5, -1, 2.25, 7]), tf.tensor1d([3, 3, 0, 2], "int32"))],
      ["int32 rows, 2-D indices", () => tf.gather(tf.tensor2d([[1, 2], [3, 4]], [2, 2], "int32"), tf.tensor2d([[1, 0], [1, 1]], [2, 2], "int32"))],
      ["3-D blocks", () => tf.gather(tf.range(0, 24).reshape([4, 3, 2]), tf.tensor1d([3, 1], "int32"))],
      ["axis 1 (original kernel)", () => tf.gather(tf.tensor2d([[1, 2, 3], [4, 5, 6]]), tf.tensor1d([2, 0], "int32"), 1)],
      ["no indices", () => tf.gather(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor1d([], "int32"))],
    ];
    const got: Record<string, unknown[]> = {};
    for (const b of ["cpu", "wasm"] as const) {
      await initEngine(b);
      for (const [name, f] of cases) {
        const t = f();
        (got[name] ??= []).push({ shape: t.shape, values: Array.from(t.dataSync()) });
        t.dispose();
      }
    }
    for (const [name] of cases) assert.deepEqual(got[name][1], got[name][0], name);
    assert.deepEqual((got["rows of a 2-D float32"][0] as { values: number[] }).values, [7, 8, 9, 1, 2, 3, 7, 8, 9, 4, 5, 6]);
    await initEngine("wasm");
    assert.throws(() => tf.tidy(() => tf.gather(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor1d([0, 2], "int32")).dataSync()), /index 2/);
    await initEngine("cpu");
  });

  it("the replaced BatchMatMul gradient equals the analytic gradient (rank 2) and keeps rank-3/transposed cases", async () => {
    await initEngine("wasm");
    const A = [
      [1, -2, 0.5],
      [0.25, 3, -1],
    ];
    const B = [
      [2, 0],
      [-1, 1],
      [0.5, -3],
    ];
    const [ga, gb] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D)))([tf.tensor2d(A), tf.tensor2d(B)]);
    // d sum(AB)/dA[i][k] = Σ_j B[k][j];  d/dB[k][j] = Σ_i A[i][k]
    assert.deepEqual(ga.arraySync(), A.map(() => B.map((r) => r[0] + r[1])));
    assert.deepEqual(gb.arraySync(), B.map((_, k) => [0, 1].map(() => A[0][k] + A[1][k])));
    const [ga3] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, false, true)))([
      tf.tensor3d([A]),
      tf.tensor3d([[[2, -1, 0.5], [0, 1, -3]]]),
    ]);
    assert.deepEqual((ga3.arraySync() as number[][][])[0], ga.arraySync());
    tf.dispose([ga, gb, ga3]);
    await initEngine("cpu");
  });
});
