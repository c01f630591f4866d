import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError, FormatError, UsageError } from "../src/errors";
import { readModelFiles, writeModelFiles } from "../src/io/files";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors";
import { parseConfig } from "../src/model/config";
import { randomTensors } from "../src/model/random";
import { requireShared, STORIES260K } from "./support/shared";

const CFG = parseConfig({
  vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2,
  num_key_value_heads: 1, tie_word_embeddings: true,
});

/** A minimal GGUF v3 holding one tensor of the given ggml type (for types the writer cannot produce). */
function craftGguf(file: string, tensorName: string, ggmlType: number, dims: number[], dataBytes: number): void {
  const parts: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s: string) => { u64(Buffer.byteLength(s)); parts.push(Buffer.from(s)); };
  parts.push(Buffer.from("GGUF"));
  u32(3);
  u64(1);
  u64(1);
  str("general.architecture");
  u32(8);
  str("llama");
  str(tensorName);
  u32(dims.length);
  dims.forEach(u64);
  u32(ggmlType);
  u64(0);
  const head = Buffer.concat(parts);
  const pad = Buffer.alloc((32 - (head.length % 32)) % 32);
  fs.writeFileSync(file, Buffer.concat([head, pad, Buffer.alloc(dataBytes, 0x11)]));
}

function listing(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

describe("bad inputs: clear errors, no partial output", () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-bad-"));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("truncated GGUF: names the file and the first tensor past the end", async function () {
    requireShared(this);
    const file = path.join(tmp, "cut.gguf");
    fs.writeFileSync(file, fs.readFileSync(STORIES260K()).subarray(0, 600_000));
    await assert.rejects(readModelFiles(file), (e: Error) => {
      assert.ok(e instanceof FormatError);
      assert.match(e.message, /cut\.gguf: truncated GGUF file: tensor blk\.\d\.\w+\.weight \(F32, dims \[\d+, \d+\]\) needs bytes \[\d+, \d+\) but the file has 600000 bytes/);
      return true;
    });
    // Cut inside the metadata.
    fs.writeFileSync(file, fs.readFileSync(STORIES260K()).subarray(0, 3000));
    await assert.rejects(readModelFiles(file), /cut\.gguf: truncated GGUF file: (value of|array|tensor|metadata).*3000 bytes/);
  });

  it("wrong magic and unsupported version", async () => {
    const file = path.join(tmp, "x.gguf");
    fs.writeFileSync(file, Buffer.from("GGML\x03\x00\x00\x00" + "\0".repeat(40), "latin1"));
    await assert.rejects(readModelFiles(file), (e: Error) => e instanceof FormatError && /x\.gguf: not a GGUF file: magic is "GGML"/.test(e.message));
    fs.writeFileSync(file, Buffer.from("GGUF\x01\x00\x00\x00" + "\0".repeat(40), "latin1"));
    await assert.rejects(readModelFiles(file), (e: Error) => e instanceof FormatError && /GGUF version 1 is not supported/.test(e.message));
  });

  it("quantized tensor: 'not supported: tensor blk.0.attn_q.weight has type Q4_0'", async () => {
    const file = path.join(tmp, "q.gguf");
    craftGguf(file, "blk.0.attn_q.weight", 2, [32, 2], 36); // two Q4_0 blocks of 32 values (18 bytes each)
    await assert.rejects(readModelFiles(file), (e: Error) => {
      assert.ok(e instanceof FormatError);
      assert.match(e.message, /q\.gguf: not supported: tensor blk\.0\.attn_q\.weight has type Q4_0/);
      return true;
    });
  });

  it("safetensors header offset beyond the end of the file", async () => {
    await writeModelFiles(path.join(tmp, "m"), { config: CFG, tensors: randomTensors(CFG, 1), tokenizer: null }, { format: "hf" });
    const st = path.join(tmp, "m", "model.safetensors");
    const bytes = fs.readFileSync(st);
    fs.writeFileSync(st, bytes.subarray(0, bytes.length - 100)); // cuts into the last tensor in name order
    await assert.rejects(readModelFiles(path.join(tmp, "m")), (e: Error) => {
      assert.ok(e instanceof FormatError);
      assert.ok(e.message.includes(st));
      assert.match(e.message, /tensor model\.layers\.1\.self_attn\.v_proj\.weight: data_offsets \[\d+, \d+\] extend beyond the end of the file/);
      return true;
    });
  });

  it("shape that disagrees with config.json, and a missing tensor", async () => {
    const dir = path.join(tmp, "m");
    await writeModelFiles(dir, { config: CFG, tensors: randomTensors(CFG, 1), tokenizer: null }, { format: "hf" });
    const cfgFile = path.join(dir, "config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, intermediate_size: 20 }));
    await assert.rejects(readModelFiles(dir), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[24, 16\] but the config implies \[20, 16\]/);
      assert.ok(e.message.includes(dir));
      return true;
    });
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    const st = path.join(dir, "model.safetensors");
    const t = readSafetensors(st);
    t.delete("model.layers.1.mlp.up_proj.weight");
    writeSafetensors(st, t);
    await assert.rejects(readModelFiles(dir), (e: Error) => e instanceof ConfigError && /missing tensor model\.layers\.1\.mlp\.up_proj\.weight \(expected shape \[24, 16\]\)/.test(e.message));
  });

  it("existing output directory: refused unless force; a failed write leaves neither partial output nor temp files", async () => {
    const dir = path.join(tmp, "out");
    const m = { config: CFG, tensors: randomTensors(CFG, 1), tokenizer: null };
    await writeModelFiles(dir, m, { format: "hf" });
    const before = fs.readFileSync(path.join(dir, "model.safetensors"));
    await assert.rejects(writeModelFiles(dir, m, { format: "gguf" }), (e: Error) => e instanceof UsageError && /out already exists/.test(e.message));
    assert.deepEqual(listing(dir), [".sdmprune-manifest.json", "config.json", "model.safetensors"]);
    // A failing write with force keeps the old content intact.
    const broken = { ...m, tensors: new Map(m.tensors) };
    broken.tensors.delete("model.norm.weight");
    await assert.rejects(writeModelFiles(dir, broken, { format: "gguf", force: true }), /missing tensor model\.norm\.weight/);
    assert.deepEqual(fs.readFileSync(path.join(dir, "model.safetensors")), before);
    // A failing write into a new directory creates nothing.
    const fresh = path.join(tmp, "fresh");
    await assert.rejects(writeModelFiles(fresh, { ...broken }, { format: "hf" }), ConfigError);
    // An error raised while the temporary directory is being filled (a bad extra file name) leaves no trace either.
    await assert.rejects(writeModelFiles(fresh, m, { format: "hf", extraFiles: { "../evil": "x" } }), UsageError);
    assert.equal(fs.existsSync(fresh), false);
    assert.deepEqual(listing(tmp), ["out"]);
    // With force the directory is replaced.
    const files = await writeModelFiles(dir, m, { format: "gguf", force: true });
    assert.deepEqual(files, [path.join(dir, "model.gguf")]);
    assert.deepEqual(listing(dir), [".sdmprune-manifest.json", "model.gguf"]);
    assert.deepEqual(listing(tmp), ["out"]);
  });
});
