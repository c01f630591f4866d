import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readModelFiles } from "../src/io/files";
import { paramCounts } from "../src/model/config";
import { spawnCli as cli } from "./support/cli";
import { requireShared, STORIES260K } from "./support/shared";

// These run the compiled CLI (dist/ is built by the test runner before the suite: `npx tsc -p tsconfig.build.json`).
const ROOT = path.resolve(__dirname, "..");


describe("CLI: info, convert, generate", () => {
  let tmp: string;
  before(function () {
    if (!fs.existsSync(path.join(ROOT, "dist", "cli", "commands", "generate.js"))) {
      throw new Error("dist/ is not built: run `npx tsc -p tsconfig.build.json` first");
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-cli-"));
  });
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

  it("info prints config, parameter counts and the backend", async function () {
    requireShared(this);
    const r = cli("info", "--model", STORIES260K());
    assert.equal(r.code, 0, r.err);
    const counts = paramCounts((await readModelFiles(STORIES260K())).config);
    assert.match(r.out, /backend:\s+(tensorflow|webgpu|wasm|cpu)/);
    assert.match(r.out, /hidden_size:\s+64/);
    assert.match(r.out, /heads:\s+8 \(kv 4, head_dim 8\)/);
    assert.ok(r.out.includes(`${counts.total.toLocaleString("en-US")} total`), r.out);
    assert.ok(r.out.includes(`mlp:        ${counts.mlp.toLocaleString("en-US")}`), r.out);
  });

  it("convert gguf → hf → gguf; refuses an existing directory unless --force; generate matches the llama2.c reference", function () {
    requireShared(this);
    const hf = path.join(tmp, "hf");
    let r = cli("convert", "--model", STORIES260K(), "--out", hf, "--format", "hf");
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(fs.readdirSync(hf).sort(), [".sdmprune-manifest.json", "config.json", "model.safetensors", "provenance.json", "tokenizer.json", "tokenizer_config.json"]);
    r = cli("convert", "--model", STORIES260K(), "--out", hf, "--format", "hf");
    assert.equal(r.code, 2);
    assert.match(r.err, /already exists.*--force/);
    r = cli("convert", "--model", hf, "--out", hf, "--format", "gguf", "--dtype", "f16", "--force");
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(fs.readdirSync(hf).sort(), [".sdmprune-manifest.json", "model.gguf", "provenance.json"]);
    r = cli("generate", "--model", hf, "--prompt", "Once upon a time", "--max-new-tokens", "32");
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /backend: (tensorflow|webgpu|wasm|cpu)/);
    // Greedy stories260K continues exactly as llama2.c does (f16 weights do not change the argmax here).
    assert.ok(r.out.startsWith("Once upon a time, there was a little girl named Lily. She loved to play outside in the park."), r.out);
  });

  it("generate samples reproducibly with --seed and rejects bad flags", function () {
    requireShared(this);
    const a = cli("generate", "--model", STORIES260K(), "--prompt", "Tom", "--max-new-tokens", "12", "--temperature", "1", "--seed", "7");
    const b = cli("generate", "--model", STORIES260K(), "--prompt", "Tom", "--max-new-tokens", "12", "--temperature", "1", "--seed", "7");
    assert.equal(a.code, 0, a.err);
    assert.equal(a.out, b.out);
    assert.ok(a.out.startsWith("Tom"));
    const bad = cli("generate", "--model", STORIES260K(), "--prompt", "x", "--max-new-tokens", "1.5");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--max-new-tokens must be a non-negative integer, got "1.5"/);
    const missing = cli("convert", "--model", path.join(tmp, "nope.gguf"), "--out", path.join(tmp, "o"), "--format", "hf");
    assert.equal(missing.code, 2);
    assert.match(missing.err, /nope\.gguf does not exist/);
  });
});
