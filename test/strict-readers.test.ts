import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FormatError } from "../src/errors";
import { GgufType, gv, readGgufHeader, writeGguf } from "../src/io/gguf";
import { readModelFiles, writeModelFiles } from "../src/io/files";
import { readSafetensors, readSafetensorsDir, writeSafetensors } from "../src/io/safetensors";
import { parseConfig } from "../src/model/config";
import { randomTensors } from "../src/model/random";
import { ggufParts, tensorOffsetPos } from "./support/gguf-rewrite";
import { requireShared, STORIES260K } from "./support/shared";

const CFG = parseConfig({
  vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2,
  num_key_value_heads: 1, tie_word_embeddings: true,
});

function refuses(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

async function refusesAsync(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

/** A safetensors file from a header object and a data buffer (for headers the writer never produces). */
function craftSt(file: string, header: object | Buffer, data: Buffer): void {
  const h = Buffer.isBuffer(header) ? header : Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
}

describe("strict readers: nothing read outside the model folder, no silently different model", () => {
  let tmp: string;
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-strict-"))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe("model.safetensors.index.json shard paths", () => {
    let model: string;
    let index: string;
    beforeEach(async () => {
      model = path.join(tmp, "a", "b", "model");
      await writeModelFiles(model, { config: CFG, tensors: randomTensors(CFG, 1), tokenizer: null }, { format: "hf" });
      // Shard the model: the single file renamed, an index pointing at it.
      fs.renameSync(path.join(model, "model.safetensors"), path.join(model, "model-00001-of-00001.safetensors"));
      index = path.join(model, "model.safetensors.index.json");
    });
    const withShard = (shard: unknown) => {
      const names = [...readSafetensors(path.join(model, "model-00001-of-00001.safetensors")).keys()];
      fs.writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(names.map((n, i) => [n, i === 0 ? shard : "model-00001-of-00001.safetensors"])) }));
    };

    it("a valid index loads", async () => {
      withShard("model-00001-of-00001.safetensors");
      assert.equal((await readModelFiles(model)).tensors.size, randomTensors(CFG, 1).size);
    });

    it("../x.safetensors and ../../../../etc/passwd are refused without being opened; no file bytes echoed", async () => {
      // A perfectly valid shard one folder up: before, it was read as part of the model.
      fs.copyFileSync(path.join(model, "model-00001-of-00001.safetensors"), path.join(tmp, "a", "b", "x.safetensors"));
      withShard("../x.safetensors");
      await refusesAsync(readModelFiles(model), /shard "\.\.\/x\.safetensors" is outside the model folder/);
      withShard("../../../../etc/passwd");
      refuses(() => readSafetensorsDir(model), /shard "\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd" is outside the model folder/);
      // Proof that nothing outside is opened: a FIFO outside the folder would block the reader forever if opened.
      execFileSync("mkfifo", [path.join(tmp, "a", "fifo.safetensors")]);
      withShard("../../fifo.safetensors");
      refuses(() => readSafetensorsDir(model), /outside the model folder/);
      withShard("/etc/passwd");
      refuses(() => readSafetensorsDir(model), /outside the model folder/);
    });

    it("a symlink inside the folder that points outside is refused; a Hugging Face cache snapshot linking into blobs/ loads", async () => {
      fs.copyFileSync(path.join(model, "model-00001-of-00001.safetensors"), path.join(tmp, "elsewhere.safetensors"));
      fs.symlinkSync(path.join(tmp, "elsewhere.safetensors"), path.join(model, "link.safetensors"));
      withShard("link.safetensors");
      refuses(() => readSafetensorsDir(model), /is a link to .*elsewhere\.safetensors, outside the model folder/);
      // hub cache layout: models--x/snapshots/<rev>/file -> ../../blobs/<sha>
      const repo = path.join(tmp, "models--x");
      const snap = path.join(repo, "snapshots", "abc123");
      fs.mkdirSync(path.join(repo, "blobs"), { recursive: true });
      fs.mkdirSync(snap, { recursive: true });
      for (const f of ["config.json", "model.safetensors"]) {
        const src = f === "model.safetensors" ? path.join(model, "model-00001-of-00001.safetensors") : path.join(model, f);
        fs.copyFileSync(src, path.join(repo, "blobs", `sha-${f}`));
        fs.symlinkSync(`../../blobs/sha-${f}`, path.join(snap, f));
      }
      assert.equal((await readModelFiles(snap)).tensors.size, randomTensors(CFG, 1).size);
    });

    it("a malformed index is a FormatError naming the file (not a TypeError)", () => {
      for (const body of ["[]", "null", '{"weight_map": []}', '{"weight_map": {"a": 5}}', '{"weight_map": "x"}']) {
        fs.writeFileSync(index, body);
        refuses(() => readSafetensorsDir(model), /model\.safetensors\.index\.json: (must be a JSON object|missing "weight_map"|weight_map\["a"\] must be a shard file name)/);
      }
      withShard(42);
      refuses(() => readSafetensorsDir(model), /must be a shard file name, got 42/);
    });
  });

  describe("safetensors as strict as the reference loader", () => {
    const d24 = Buffer.alloc(24);
    const x = { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] };
    it("valid baseline", () => {
      const f = path.join(tmp, "t.safetensors");
      craftSt(f, { x }, d24);
      assert.equal(readSafetensors(f).get("x")!.data.length, 6);
    });
    const cases: [string, object | Buffer, Buffer, RegExp][] = [
      ["trailing bytes after the last tensor", { x }, Buffer.alloc(28), /4 bytes after the last tensor/],
      ["a gap between tensors", { x: { dtype: "F32", shape: [1], data_offsets: [0, 4] }, y: { dtype: "F32", shape: [4], data_offsets: [8, 24] } }, d24, /tensor y: .*leave bytes \[4, 8\) .*unused/],
      ["data not starting at 0", { x: { dtype: "F32", shape: [4], data_offsets: [8, 24] } }, d24, /leave bytes \[0, 8\)/],
      ["an unknown dtype", { x: { dtype: "F33", shape: [6], data_offsets: [0, 24] } }, d24, /unknown dtype "F33"/],
      ["non-string __metadata__ values", { __metadata__: { a: 1 }, x }, d24, /__metadata__ must be a map of strings/],
      ["a header not starting with '{'", Buffer.from(` ${JSON.stringify({ x })}`), d24, /must start with '\{'/],
      ["a header that is not UTF-8", Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), d24, /not valid UTF-8/],
    ];
    for (const [what, header, data, re] of cases) {
      it(`refuses ${what}`, () => {
        const f = path.join(tmp, "t.safetensors");
        craftSt(f, header, data);
        refuses(() => readSafetensors(f), re);
      });
    }
    it("a non-safetensors file: the error does not echo its first bytes", () => {
      const f = path.join(tmp, "passwd.safetensors");
      fs.writeFileSync(f, "root:x:0:0:root:/root:/bin/bash\n");
      const n = fs.readFileSync(f).readBigUInt64LE(0).toString();
      assert.throws(() => readSafetensors(f), (e: Error) => e instanceof FormatError && !e.message.includes(n) && /header length exceeds the file/.test(e.message));
    });
  });

  describe("GGUF as strict as llama.cpp", () => {
    let base: string;
    beforeEach(async () => {
      const dir = path.join(tmp, "g");
      await writeModelFiles(dir, { config: CFG, tensors: randomTensors(CFG, 2), tokenizer: null }, { format: "gguf" });
      base = path.join(dir, "model.gguf");
    });

    it("the rewritten baseline loads as the original", async () => {
      const p = ggufParts(base);
      const f = path.join(tmp, "same.gguf");
      writeGguf(f, p.kvs, p.tensors);
      const [a, b] = [await readModelFiles(base), await readModelFiles(f)];
      for (const [k, v] of a.tensors) assert.deepEqual(b.tensors.get(k)!.data, v.data);
    });

    it("a duplicated metadata key is refused (it would silently pick one of two values)", async () => {
      const p = ggufParts(base);
      const f = path.join(tmp, "dupkey.gguf");
      writeGguf(f, [...p.kvs, ["llama.attention.layer_norm_rms_epsilon", gv.f32(0.5)]], p.tensors);
      await refusesAsync(readModelFiles(f), /duplicate metadata key "llama\.attention\.layer_norm_rms_epsilon"/);
    });

    it("a duplicated tensor name is refused", async () => {
      const p = ggufParts(base);
      const f = path.join(tmp, "duptensor.gguf");
      const t = p.tensors.find((x) => x.name === "blk.0.ffn_up.weight")!;
      writeGguf(f, p.kvs, [...p.tensors, { ...t, data: new Float32Array(t.data.length) }]);
      await refusesAsync(readModelFiles(f), /duplicate tensor name blk\.0\.ffn_up\.weight/);
    });

    it("overlapping tensor data (one tensor aliasing another's bytes) is refused", async () => {
      const buf = fs.readFileSync(base);
      const h = readGgufHeader(base);
      const [a, b] = [h.tensors[1], h.tensors[2]];
      buf.writeBigUInt64LE(BigInt(a.offset), tensorOffsetPos(buf, b.name));
      const f = path.join(tmp, "overlap.gguf");
      fs.writeFileSync(f, buf);
      await refusesAsync(readModelFiles(f), new RegExp(`tensor ${b.name.replace(/\./g, "\\.")} has data offset ${a.offset}, expected ${b.offset}`));
    });

    it("metadata of the wrong type is refused with key, expected and got", async () => {
      const p = ggufParts(base);
      const swap = (key: string, v: ReturnType<typeof gv.str>) => p.kvs.map(([k, x]) => [k, k === key ? v : x] as [string, typeof x]);
      const f = path.join(tmp, "types.gguf");
      writeGguf(f, swap("llama.block_count", gv.str("2")), p.tensors);
      await refusesAsync(readModelFiles(f), /metadata "llama\.block_count" must be a non-negative integer, got STRING \("2"\)/);
      writeGguf(f, swap("llama.rope.freq_base", gv.u32(10000)), p.tensors);
      await refusesAsync(readModelFiles(f), /"llama\.rope\.freq_base" must be FLOAT32 or FLOAT64, got UINT32/);
      writeGguf(f, [...p.kvs, ["sdmprune.rope_scaling", gv.str("{not json")]], p.tensors);
      await refusesAsync(readModelFiles(f), /"sdmprune\.rope_scaling" must be STRING holding a JSON object/);
    });

    it("an absurd array length is refused before anything is allocated", () => {
      const p = ggufParts(base);
      const f = path.join(tmp, "huge.gguf");
      writeGguf(f, [...p.kvs, ["x.list", gv.arr(GgufType.UINT8, [1, 2, 3])]], p.tensors);
      const buf = fs.readFileSync(f);
      const key = Buffer.from("x.list");
      const at = buf.indexOf(key) + key.length + 4 + 4; // type, element type
      buf.writeBigUInt64LE(2n ** 40n, at);
      fs.writeFileSync(f, buf);
      refuses(() => readGgufHeader(f), /metadata "x\.list" claims 1099511627776 elements/);
    });
  });

  describe("GGUF tokenizer against the model", () => {
    it("300 tokens for 512 embedding rows, tokens of the wrong element type, special ids outside the vocabulary", async function () {
      requireShared(this);
      const p = ggufParts(STORIES260K());
      const f = path.join(tmp, "tok.gguf");
      const edit = (key: string, fn: (v: unknown) => unknown) =>
        p.kvs.map(([k, x]) => [k, k === key ? fn(x) : x] as [string, typeof x]);
      const cut = (x: unknown) => ({ ...(x as object), value: ((x as { value: unknown[] }).value).slice(0, 300) });
      writeGguf(f, edit("tokenizer.ggml.tokens", cut), p.tensors);
      await refusesAsync(readModelFiles(f), /tokenizer\.ggml\.tokens has 300 tokens but the model has 512 embedding rows/);
      writeGguf(f, edit("tokenizer.ggml.tokens", (x) => gv.arr(GgufType.INT32, (x as { value: unknown[] }).value.map((_, i) => i))), p.tensors);
      await refusesAsync(readModelFiles(f), /"tokenizer\.ggml\.tokens" must be ARRAY of STRING, got ARRAY of INT32/);
      writeGguf(f, edit("tokenizer.ggml.eos_token_id", () => gv.u32(600)), p.tensors);
      await refusesAsync(readModelFiles(f), /tokenizer\.ggml\.eos_token_id is 600, outside the vocabulary of 512 tokens/);
    });
  });
});
