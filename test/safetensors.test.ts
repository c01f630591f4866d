import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { halfToFloat, floatToHalf } from "../src/io/dtypes";
import { readSafetensors, readSafetensorsDir, readSafetensorsHeader, writeSafetensors } from "../src/io/safetensors";
import { FormatError } from "../src/errors";
import type { TensorMap } from "../src/io/tensors";

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-st-"));
}

/** A safetensors file from a raw header object and data buffer, for crafting valid and broken files. */
function craft(file: string, header: object, data: Buffer): void {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
}

const sample = (): TensorMap =>
  new Map([
    ["b.weight", { shape: [2, 3], data: new Float32Array([1, 2, 3, -4.5, 0.1, 1e-3]) }],
    ["a.bias", { shape: [3], data: new Float32Array([7, 8, 9]) }],
  ]);

describe("safetensors", () => {
  it("writes F32 with __metadata__ format pt, an 8-byte aligned header, and reads it back exactly", () => {
    const dir = tmpDir();
    const f = path.join(dir, "m.safetensors");
    writeSafetensors(f, sample());
    const h = readSafetensorsHeader(f);
    assert.deepEqual(h.metadata, { format: "pt" });
    assert.equal(h.dataOffset % 8, 0);
    assert.deepEqual(h.entries.map((e) => [e.name, e.dtype, e.shape, e.begin, e.end]), [["a.bias", "F32", [3], 0, 12], ["b.weight", "F32", [2, 3], 12, 36]]);
    const t = readSafetensors(f);
    for (const [k, v] of sample()) assert.deepEqual(t.get(k), v);
    fs.rmSync(dir, { recursive: true });
  });

  it("writes F16 (rounded to nearest) and reads F16 and BF16 into Float32Array", () => {
    const dir = tmpDir();
    const f = path.join(dir, "h.safetensors");
    writeSafetensors(f, sample(), "f16");
    const t = readSafetensors(f);
    const src = sample().get("b.weight")!.data;
    assert.deepEqual(Array.from(t.get("b.weight")!.data), Array.from(src).map((x) => halfToFloat(floatToHalf(x))));
    // BF16 = the top 16 bits of the f32 pattern.
    const vals = new Float32Array([1.5, -2, 3.140625]);
    const u = new Uint32Array(vals.buffer);
    const bf = Buffer.alloc(6);
    u.forEach((x, i) => bf.writeUInt16LE(x >>> 16, i * 2));
    const g = path.join(dir, "bf.safetensors");
    craft(g, { x: { dtype: "BF16", shape: [3], data_offsets: [0, 6] } }, bf);
    assert.deepEqual(Array.from(readSafetensors(g).get("x")!.data), [1.5, -2, 3.140625]);
    fs.rmSync(dir, { recursive: true });
  });

  it("reads sharded checkpoints through model.safetensors.index.json", () => {
    const dir = tmpDir();
    const s = sample();
    writeSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), new Map([["a.bias", s.get("a.bias")!]]));
    writeSafetensors(path.join(dir, "model-00002-of-00002.safetensors"), new Map([["b.weight", s.get("b.weight")!]]));
    fs.writeFileSync(
      path.join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: { "a.bias": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors" } }),
    );
    const { tensors, files } = readSafetensorsDir(dir);
    assert.equal(files.length, 2);
    for (const [k, v] of s) assert.deepEqual(tensors.get(k), v);
    fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { "c.weight": "model-00001-of-00002.safetensors" } }));
    assert.throws(() => readSafetensorsDir(dir), (e: Error) => e instanceof FormatError && /c\.weight/.test(e.message));
    fs.rmSync(dir, { recursive: true });
  });

  it("rejects malformed headers naming the file and tensor", () => {
    const dir = tmpDir();
    const f = path.join(dir, "bad.safetensors");
    const d = Buffer.alloc(24);
    const cases: [object | string, RegExp][] = [
      [{ x: { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] } }, /unused/], // valid baseline (read below)
      [{ x: { dtype: "F32", shape: [2, 3], data_offsets: [0, 20] } }, /tensor x: 20 bytes of data but dtype F32 × shape \[2, 3\] needs 24/],
      [{ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, y: { dtype: "F32", shape: [3], data_offsets: [4, 16] } }, /tensors x and y overlap/],
      [{ x: { dtype: "F32", shape: [2], data_offsets: [8, 4] } }, /tensor x: data_offsets/],
      [{ x: { dtype: "F32", shape: [2.5], data_offsets: [0, 8] } }, /tensor x: shape/],
      ["{not json", /not valid JSON/],
    ];
    craft(f, cases[0][0] as object, d);
    assert.equal(readSafetensors(f).get("x")!.data.length, 6);
    for (const [hdr, re] of cases.slice(1)) {
      if (typeof hdr === "string") {
        const h = Buffer.from(hdr);
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(h.length));
        fs.writeFileSync(f, Buffer.concat([len, h, d]));
      } else craft(f, hdr, d);
      assert.throws(() => readSafetensors(f), (e: Error) => e instanceof FormatError && re.test(e.message) && e.message.includes(f), String(re));
    }
    // Header length pointing past the end of the file.
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(1000n);
    fs.writeFileSync(f, Buffer.concat([len, Buffer.from("{}")]));
    assert.throws(() => readSafetensors(f), (e: Error) => e instanceof FormatError && /header length \(1000 bytes\) exceeds the file/.test(e.message));
    // Unsupported dtype is named.
    craft(f, { q: { dtype: "I8", shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(4));
    assert.throws(() => readSafetensors(f), (e: Error) => e instanceof FormatError && /tensor q has dtype I8/.test(e.message));
    fs.rmSync(dir, { recursive: true });
  });
});
