import { strict as assert } from "node:assert";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { IoError, UsageError } from "../src/errors";
import { MANIFEST, checkOutputDir, writeDirAtomic, writeFileAtomic } from "../src/io/atomic";
import { readModelFiles, writeModelFiles } from "../src/io/files";
import { parseConfig } from "../src/model/config";
import { randomTensors } from "../src/model/random";
import { cli } from "./support/cli";

// Big enough (about 400 KB in f32) to overflow the 128 KiB filesystem below.
const CFG = parseConfig({
  vocab_size: 256, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, tie_word_embeddings: true,
});

/**
 * Mount a small tmpfs (a real filesystem of fixed size: writes past it fail with ENOSPC) or a read-only one.
 * Needs root (CI runs as root); elsewhere the test skips loudly rather than pass without checking anything.
 */
function mountTmpfs(ctx: Mocha.Context, dir: string, opts: string): void {
  fs.mkdirSync(dir, { recursive: true });
  // Skipped loudly (not failed) where mounting is impossible: the RLIMIT_FSIZE test below covers the same write
  // path without privileges.
  const skip = (why: string) => {
    console.warn(`\n  !!! SKIPPING: cannot mount a small tmpfs (${why}); run as root to check full-disk and read-only outputs !!!\n`);
    ctx.skip();
  };
  if (process.getuid?.() !== 0) return skip("not root");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", opts, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    skip(String((err as { stderr?: Buffer }).stderr ?? err).trim());
  }
}

function unmount(dir: string): void {
  spawnSync("umount", [dir]);
}

/** A pid that certainly belongs to no running process: a child that has already exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ["-e", "0"]).pid!;
}

describe("outputs: complete or absent, user files never deleted", function () {
  this.timeout(30_000);
  let tmp: string;
  let hf: string;
  const mounts: string[] = [];
  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-out-"));
    hf = path.join(tmp, "hf");
    await writeModelFiles(hf, { config: CFG, tensors: randomTensors(CFG, 3), tokenizer: null }, { format: "hf" });
  });
  afterEach(() => {
    for (const m of mounts.splice(0)) unmount(m);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("convert --format gguf onto a full filesystem exits 2 naming ENOSPC and the path, and leaves nothing", async function () {
    const mnt = path.join(tmp, "small");
    mountTmpfs(this, mnt, "size=128k");
    mounts.push(mnt);
    const out = path.join(mnt, "out");
    const r = await cli(["convert", "--model", hf, "--out", out, "--format", "gguf"]);
    assert.equal(r.code, 2, r.err + r.out);
    assert.match(r.err, /ENOSPC \(no space left on device\)/);
    assert.ok(r.err.includes(path.join(out, "model.gguf")), r.err);
    assert.deepEqual(fs.readdirSync(mnt), []);
    // The same through the library: a typed IoError with the path and the code.
    await assert.rejects(readModelFiles(hf).then((f) => writeModelFiles(out, f, { format: "hf" })), (e: Error) => {
      assert.ok(e instanceof IoError, String(e));
      assert.equal(e.code, "ENOSPC");
      assert.equal(e.path, path.join(out, "model.safetensors"));
      return true;
    });
    assert.deepEqual(fs.readdirSync(mnt), []);
  });

  it("a file-size limit hit mid-write (RLIMIT_FSIZE, needs no root): exit 2 naming EFBIG and the path, nothing left", function () {
    // The compiled CLI in a child whose file size limit is 128 KiB, with SIGXFSZ ignored so the write fails
    // with EFBIG (a short write first) instead of killing the process: the same path as a full disk.
    const bin = path.resolve(__dirname, "..", "bin", "sdmprune.js");
    if (!fs.existsSync(path.resolve(__dirname, "..", "dist", "cli", "main.js"))) throw new Error("dist/ is not built: run `node scripts/build.js` first");
    const out = path.join(tmp, "out");
    const r = spawnSync("bash", ["-c", 'ulimit -f 128; trap "" XFSZ; exec "$0" "$@"', process.execPath, bin, "convert", "--model", hf, "--out", out, "--format", "gguf"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 2, r.stderr + r.stdout);
    assert.match(r.stderr, /EFBIG \(file too large\)/);
    assert.ok(r.stderr.includes(path.join(out, "model.gguf")), r.stderr);
    assert.deepEqual(fs.readdirSync(tmp).sort(), ["hf"]);
  });

  it("a read-only output is refused before any compute (prune) and with a typed error (library)", async function () {
    const mnt = path.join(tmp, "ro");
    mountTmpfs(this, mnt, "ro,size=64k");
    mounts.push(mnt);
    const out = path.join(mnt, "pruned");
    assert.throws(() => checkOutputDir(out, false), (e: Error) => e instanceof IoError && e.code === "EROFS" && e.message.includes(mnt));
    const t0 = Date.now();
    const r = await cli(["prune", "--model", hf, "--criterion", "magnitude", "--ratio", "0.5", "--out", out]);
    assert.equal(r.code, 2, r.err + r.out);
    assert.match(r.err, /EROFS \(read-only file system\)/);
    assert.ok(Date.now() - t0 < 5000, "refused before loading the model");
    const s = await cli(["scores", "--model", hf, "--criterion", "magnitude", "--out", path.join(mnt, "s.json")]);
    assert.equal(s.code, 2, s.err + s.out);
    assert.match(s.err, /EROFS \(read-only file system\)/);
    assert.doesNotMatch(s.out, /Importance scores/, "refused before scoring");
  });

  it("--force replaces only sdmprune's own output: a folder with other files is refused and kept", async () => {
    const out = path.join(tmp, "out");
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, "notes.txt"), "mine");
    let r = await cli(["convert", "--model", hf, "--out", out, "--format", "gguf", "--force"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /not written by sdmprune/);
    assert.equal(fs.readFileSync(path.join(out, "notes.txt"), "utf8"), "mine");
    // sdmprune's own output (with its manifest) is replaced; a file added to it afterwards blocks the replacement.
    fs.rmSync(out, { recursive: true });
    r = await cli(["convert", "--model", hf, "--out", out, "--format", "gguf"]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, MANIFEST), "utf8")).files, ["model.gguf", "provenance.json"]);
    r = await cli(["convert", "--model", hf, "--out", out, "--format", "hf", "--force"]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(fs.readdirSync(out).sort(), [MANIFEST, "config.json", "model.safetensors", "provenance.json"]);
    fs.writeFileSync(path.join(out, "results.csv"), "1,2");
    r = await cli(["convert", "--model", hf, "--out", out, "--format", "gguf", "--force"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /holds files sdmprune did not write \(results\.csv\)/);
    assert.ok(fs.existsSync(path.join(out, "model.safetensors")));
    assert.deepEqual(fs.readdirSync(tmp).sort(), ["hf", "out"]);
  });

  it("temporaries of killed runs are cleaned (by pid); an output moved aside by a killed run is restored", async () => {
    const out = path.join(tmp, "out");
    const dead = deadPid();
    const staleNew = path.join(tmp, `.out.tmp-${dead}-abc`);
    const liveNew = path.join(tmp, `.out.tmp-${process.pid}-zzz`);
    fs.mkdirSync(staleNew);
    fs.writeFileSync(path.join(staleNew, "model.gguf"), "partial");
    fs.mkdirSync(liveNew);
    // Killed between "move old aside" and "move new in": only the -old copy holds the user's output.
    const staleOld = path.join(tmp, `.out.tmp-${dead}-abd-old`);
    fs.mkdirSync(staleOld);
    fs.writeFileSync(path.join(staleOld, "config.json"), "{}");
    fs.writeFileSync(path.join(staleOld, MANIFEST), JSON.stringify({ written_by: "sdmprune", files: ["config.json"] }));
    await writeDirAtomic(out, true, async (d) => fs.writeFileSync(path.join(d, "a.txt"), "new"));
    assert.deepEqual(fs.readdirSync(out).sort(), [MANIFEST, "a.txt"]);
    assert.equal(fs.existsSync(staleNew), false);
    assert.equal(fs.existsSync(staleOld), false);
    assert.equal(fs.existsSync(liveNew), true, "a live run's temporary is left alone");
    // Same for single files.
    const f = path.join(tmp, "scores.json");
    const staleFile = path.join(tmp, `.scores.json.tmp-${dead}-q`);
    fs.writeFileSync(staleFile, "half");
    await writeFileAtomic(f, (t) => fs.writeFileSync(t, "{}"));
    assert.equal(fs.existsSync(staleFile), false);
    assert.equal(fs.readFileSync(f, "utf8"), "{}");
  });

  it("without --force a non-empty folder is refused; with it, a failed write keeps the old output", async () => {
    await assert.rejects(writeDirAtomic(hf, false, async () => {}), UsageError);
    const before = fs.readFileSync(path.join(hf, "model.safetensors"));
    await assert.rejects(writeDirAtomic(hf, true, async () => { throw new Error("boom"); }), /boom/);
    assert.deepEqual(fs.readFileSync(path.join(hf, "model.safetensors")), before);
    assert.deepEqual(fs.readdirSync(tmp), ["hf"]);
  });
});
