import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { identifyWindows, parseShard, shardRange, windowDigest } from "../src/data/windows";
import { batchingPays, initEngine } from "../src/engine";
import { CancelledError, DataError, UsageError } from "../src/errors";
import { ExactSums, ImportanceScores } from "../src/importance";
import { parseConfig, type LlamaConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { Session } from "../src/session";
import { cli } from "./support/cli";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

const TINY: LlamaConfig = parseConfig({
  hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2,
  vocab_size: 48, tie_word_embeddings: true, rms_norm_eps: 1e-5,
});
const SD = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.2 };

function tinySession(): Session {
  return Session.fromModel(CausalLM.fromTensors(TINY, randomTensors(TINY, 7, 0.2)));
}

function randomWindows(n: number, T: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: T }, () => rng.int(0, TINY.vocab_size - 1)));
}

/** What must be equal between two runs over the same windows: exact sums, their float64 rounding, samples, windows. */
function same(a: ImportanceScores, b: ImportanceScores): void {
  const ja = a.toJSON();
  const jb = b.toJSON();
  assert.equal(ja.samples, jb.samples);
  assert.deepEqual(ja.windows, jb.windows);
  if (batchingPays()) {
    // native TensorFlow: GEMM blocking depends on the batch's row count, so per-window values move in float32's last bits
    const fa = ja.sums.flat();
    const fb = jb.sums.flat();
    fa.forEach((v, i) => assert.ok(Math.abs(v - fb[i]) <= 1e-5 * Math.abs(v), `sum ${i}: ${v} vs ${fb[i]}`));
  } else {
    assert.deepEqual(ja.exactSums, jb.exactSums);
    assert.deepEqual(ja.sums, jb.sums);
    assert.deepEqual(ja.scores, jb.scores);
  }
}

describe("exact sums", () => {
  it("any order and grouping gives the same bits; float64 is the exact sum rounded once", () => {
    const rng = new Rng(3);
    for (let t = 0; t < 200; t++) {
      const xs = Array.from({ length: 1 + rng.int(0, 30) }, () => (rng.next() - 0.3) * 2 ** rng.int(-40, 40));
      const fwd = ExactSums.zeros(1);
      xs.forEach((x) => fwd.add([x]));
      const rev = ExactSums.zeros(1);
      [...xs].reverse().forEach((x) => rev.add([x]));
      const odd = ExactSums.zeros(1);
      const even = ExactSums.zeros(1);
      xs.forEach((x, i) => (i % 2 ? odd : even).add([x]));
      even.addExact(odd);
      assert.deepEqual(rev.toHex(), fwd.toHex());
      assert.deepEqual(even.toHex(), fwd.toHex());
      assert.equal(ExactSums.fromHex(fwd.toHex(), "t").toFloat64()[0], fwd.toFloat64()[0]);
    }
    // where float64 itself is exact (integers below 2^53) the result is the plain sum; 0.1 + 0.2 rounds once
    const ints = Array.from({ length: 50 }, (_, i) => (i * 7919) % 1000);
    assert.equal(ExactSums.fromFloat64([0]).toFloat64()[0], 0);
    const s = ExactSums.zeros(1);
    ints.forEach((x) => s.add([x]));
    assert.equal(s.toFloat64()[0], ints.reduce((a, b) => a + b, 0));
    const p = ExactSums.zeros(1);
    [0.1, 0.2, -0.1].forEach((x) => p.add([x]));
    assert.equal(p.toFloat64()[0], 0.2); // naive float64: 0.1 + 0.2 - 0.1 = 0.20000000000000004
    assert.throws(() => ExactSums.fromHex(["0x1.8p3"], "f"), /hexadecimal float/);
    assert.throws(() => s.add([NaN]), /non-finite/);
  });
});

describe("window identity and shards", () => {
  it("digests depend on every id; draws on the order; shards partition the draw contiguously", () => {
    const w = randomWindows(10, 12, 1);
    assert.match(windowDigest(w[0]), /^[0-9a-f]{16}$/);
    assert.equal(windowDigest(w[0].slice()), windowDigest(w[0]));
    const changed = w[0].slice();
    changed[11] = (changed[11] + 1) % TINY.vocab_size;
    assert.notEqual(windowDigest(changed), windowDigest(w[0]));
    const id = identifyWindows(w, 5);
    assert.notEqual(identifyWindows([...w].reverse()).draw.id, id.draw.id);
    assert.equal(id.draw.total, 10);
    for (const N of [1, 3, 4, 10]) {
      const covered: number[] = [];
      for (let i = 0; i < N; i++) {
        const [a, b] = shardRange(10, { index: i, count: N });
        assert.ok(b > a);
        for (let k = a; k < b; k++) covered.push(k);
      }
      assert.deepEqual(covered, Array.from({ length: 10 }, (_, k) => k));
    }
    assert.throws(() => shardRange(3, { index: 0, count: 4 }), DataError);
  });

  it("--shard i/N and auto (Slurm array, Kubernetes Indexed Job) parse; nothing set fails clearly", () => {
    assert.deepEqual(parseShard("2/4", {}), { index: 2, count: 4, source: "--shard" });
    assert.deepEqual(parseShard("auto", { SLURM_ARRAY_TASK_ID: "3", SLURM_ARRAY_TASK_COUNT: "4", SLURM_ARRAY_TASK_MIN: "0" }).index, 3);
    assert.deepEqual(parseShard("auto", { JOB_COMPLETION_INDEX: "1", SDMPRUNE_SHARD_COUNT: "5" }).count, 5);
    assert.throws(() => parseShard("auto", {}), (e: Error) => /SLURM_ARRAY_TASK_ID.*JOB_COMPLETION_INDEX/.test(e.message));
    assert.throws(() => parseShard("auto", { JOB_COMPLETION_INDEX: "1" }), /SDMPRUNE_SHARD_COUNT/);
    assert.throws(() => parseShard("auto", { SLURM_ARRAY_TASK_ID: "5", SLURM_ARRAY_TASK_COUNT: "4", SLURM_ARRAY_TASK_MIN: "5" }), /start at 0/);
    assert.throws(() => parseShard("4/4", {}), /index/);
    assert.throws(() => parseShard("1-4", {}), /i\/N/);
  });
});

describe("Session: shards merge into one run, overlaps refused, checkpoints resume exactly", function () {
  this.timeout(120000);
  let dir: string;
  const windows = randomWindows(9, 10, 2);
  before(async () => {
    await initEngine();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-shards-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function scored(shard?: { index: number; count: number }, file?: string): Promise<ImportanceScores> {
    const s = tinySession();
    try {
      await s.calibrate({ windows, shard });
      await s.score(SD);
      if (file) await s.saveScores(file);
      return s.scores!.clone();
    } finally {
      s.dispose();
    }
  }

  it("3 shards saved and merged (any order) equal one run; merging refuses a file twice and shared windows", async () => {
    const n0 = tf.memory().numTensors;
    const one = await scored();
    const files = [0, 1, 2].map((i) => path.join(dir, `s${i}.json`));
    for (let i = 0; i < 3; i++) await scored({ index: i, count: 3 }, files[i]);
    const m = tinySession();
    try {
      const merged = await m.mergeScores([files[2], files[0], files[1]]);
      same(merged, one);
      // the merged scores rank channels like one run, and prune uses them
      m.prune({ ratio: 0.25 });
      assert.equal(m.model.config.intermediate_size, 18);
    } finally {
      m.dispose();
    }
    const m2 = tinySession();
    try {
      await assert.rejects(m2.mergeScores([files[0], path.join(dir, ".", "s0.json")]), (e: Error) => e instanceof UsageError && /given twice/.test(e.message));
      const wholeFile = path.join(dir, "whole.json");
      const w = tinySession();
      await w.calibrate({ windows });
      await w.score(SD);
      await w.saveScores(wholeFile);
      w.dispose();
      await m2.mergeScores(files[1]);
      // shard 1 holds windows 3..5 of the draw: the whole run shares window 3 with it
      const d3 = windowDigest(windows[3]);
      await assert.rejects(m2.mergeScores(wholeFile), (e: Error) => e instanceof UsageError && e.message.includes(`digest ${d3}`) && /window 3 of draw/.test(e.message));
    } finally {
      m2.dispose();
    }
    assert.equal(tf.memory().numTensors, n0);
  });

  it("other draws merge whatever their seed; the same content from another draw is an overlap; version-1 files do not merge", async () => {
    const a = tinySession();
    try {
      await a.calibrate({ windows: windows.slice(0, 4) });
      await a.score(SD);
      const fa = path.join(dir, "a.json");
      await a.saveScores(fa);
      await a.calibrate({ windows: windows.slice(4) });
      await a.score(SD);
      const fb = path.join(dir, "b.json");
      await a.saveScores(fb);
      await a.calibrate({ windows: [windows[6], ...randomWindows(2, 10, 99)] });
      await a.score(SD);
      const fc = path.join(dir, "c.json");
      await a.saveScores(fc);
      const b = tinySession();
      try {
        const m = await b.mergeScores([fa, fb]);
        assert.equal(m.samples, 9);
        assert.equal(m.windowGroups()!.length, 2);
        // the same windows as one run, grouped differently: the same exact sums
        if (!batchingPays()) assert.deepEqual(m.toJSON().exactSums, (await scored()).toJSON().exactSums);
        await assert.rejects(b.mergeScores(fc), (e: Error) => e.message.includes(`digest ${windowDigest(windows[6])}`));
        const v1 = JSON.parse(fs.readFileSync(fc, "utf8"));
        v1.version = 1;
        delete v1.exactSums;
        delete v1.windows;
        const f1 = path.join(dir, "v1.json");
        fs.writeFileSync(f1, JSON.stringify(v1));
        await assert.rejects(b.mergeScores(f1), (e: Error) => /version 1/.test(e.message));
        v1.version = 3;
        fs.writeFileSync(f1, JSON.stringify(v1));
        await assert.rejects(b.loadScores(f1), /version.*3/);
      } finally {
        b.dispose();
      }
    } finally {
      a.dispose();
    }
  });

  it("a run cancelled after k windows resumes from its checkpoint to exactly the uninterrupted scores", async () => {
    const one = await scored();
    const ck = path.join(dir, "ck.json");
    const s = tinySession();
    try {
      await s.calibrate({ windows });
      const ac = new AbortController();
      await assert.rejects(
        s.score({ ...SD, batchWindows: 1, checkpoint: { file: ck, everyWindows: 2 }, signal: ac.signal, onProgress: (e) => e.phase === "score" && e.done >= 5 && ac.abort() }),
        (e: Error) => e instanceof CancelledError && e.message.includes(ck),
      );
      assert.equal(JSON.parse(fs.readFileSync(ck, "utf8")).samples, 5);
    } finally {
      s.dispose();
    }
    // a fresh session (another process in real use): load the checkpoint, score the rest
    const r = tinySession();
    try {
      await r.calibrate({ windows });
      await r.loadScores(ck);
      assert.equal(r.info().raw.calibration!.cursor, 5);
      const rep = await r.score({ ...SD, resume: true });
      assert.equal(rep.added, 4);
      same(r.scores!, one);
      // resume refuses scores of other windows or settings
      await r.calibrate({ windows: randomWindows(3, 10, 5) });
      await r.loadScores(ck);
      await assert.rejects(r.score({ ...SD, resume: true }), /not one of this calibration's windows/);
      await r.calibrate({ windows });
      await r.loadScores(ck);
      await assert.rejects(r.score({ ...SD, alpha: 0.5, resume: true }), /cannot be continued.*settings/);
    } finally {
      r.dispose();
    }
  });
});

describe("CLI on stories260K: shards, merge, prune --scores, workers, SIGTERM and --resume", function () {
  this.timeout(300000);
  let dir: string;
  let model: string;
  let text: string;
  const cal = () => ["--model", model, "--text", text, "--stories", "1-200", "--samples", "8", "--seq-len", "32", "--seed", "3"];
  const exact = (f: string) => {
    const j = JSON.parse(fs.readFileSync(f, "utf8"));
    return { exactSums: j.exactSums, windows: j.windows, samples: j.samples, sums: j.sums };
  };
  const cmp = (a: string, b: string) => {
    if (batchingPays()) {
      const x = exact(a);
      const y = exact(b);
      assert.deepEqual(x.windows, y.windows);
      x.sums.flat().forEach((v: number, i: number) => assert.ok(Math.abs(v - y.sums.flat()[i]) <= 1e-5 * Math.abs(v)));
    } else assert.deepEqual(exact(a), exact(b));
  };

  before(async function () {
    requireShared(this);
    model = STORIES260K();
    text = sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-shards-cli-"));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it("4 shards + scores merge equal one run; prune --scores takes the merge; overlaps are refused", async () => {
    const one = path.join(dir, "one.json");
    let r = await cli(["scores", ...cal(), "--out", one]);
    assert.equal(r.code, 0, r.err);
    const parts: string[] = [];
    for (let i = 0; i < 4; i++) {
      parts.push(path.join(dir, `s${i}.json`));
      r = await cli(["scores", ...cal(), "--shard", `${i}/4`, "--out", parts[i]]);
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(fs.readFileSync(parts[i], "utf8")).samples, 2);
    }
    const merged = path.join(dir, "merged.json");
    r = await cli(["scores", "merge", ...parts.reverse(), "--out", merged]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /8 of 8 windows of draw [0-9a-f]{16} \(seed 3\)/);
    cmp(merged, one);
    r = await cli(["scores", "merge", one, parts[0], "--out", path.join(dir, "bad.json")]);
    assert.equal(r.code, 2);
    assert.match(r.err, /share a window \(digest [0-9a-f]{16}\): window 6 of draw/);
    r = await cli(["scores", "merge", parts[0], parts[0], "--out", path.join(dir, "bad.json")]);
    assert.match(r.err, /given twice/);
    r = await cli(["prune", "--model", model, "--scores", merged, "--ratio", "0.2", "--out", path.join(dir, "pruned")]);
    assert.equal(r.code, 0, r.err);
    r = await cli(["scores", ...cal(), "--shard", "auto", "--out", path.join(dir, "x.json")]);
    assert.equal(r.code, 2);
    assert.match(r.err, /SLURM_ARRAY_TASK_ID/);
  });

  it("--workers 2 equals one process", async () => {
    const one = path.join(dir, "one.json");
    const w = path.join(dir, "w.json");
    const ck = path.join(dir, "wck.json");
    let r = await cli(["scores", ...cal(), "--workers", "2", "--checkpoint", ck, "--out", w]);
    assert.equal(r.code, 0, r.err);
    cmp(w, one);
    assert.ok(fs.existsSync(`${ck}.worker-0-of-2`) && fs.existsSync(`${ck}.worker-1-of-2`));
    // checkpoints of 2 workers are not silently ignored by a run of another layout
    r = await cli(["scores", ...cal(), "--checkpoint", ck, "--resume", "--out", w]);
    assert.equal(r.code, 2);
    assert.match(r.err, /resume with --workers 2/);
    r = await cli(["scores", ...cal(), "--workers", "2", "--checkpoint", ck, "--resume", "--out", w]);
    assert.equal(r.code, 0, r.err);
    cmp(w, one);
  });

  it("SIGTERM writes the checkpoint; the same command with --resume ends with one run's scores", async function () {
    const bin = path.join(__dirname, "..", "bin", "sdmprune.js");
    if (!fs.existsSync(path.join(__dirname, "..", "dist", "cli", "main.js"))) this.skip(); // run `node scripts/build.js` first
    const args = ["--model", model, "--text", text, "--stories", "1-400", "--samples", "40", "--seq-len", "64", "--seed", "1"];
    const full = path.join(dir, "full.json");
    let r = await cli(["scores", ...args, "--out", full]);
    assert.equal(r.code, 0, r.err);
    const ck = path.join(dir, "ck.json");
    const out = path.join(dir, "resumed.json");
    const child = spawn(process.execPath, [bin, "scores", ...args, "--out", out, "--checkpoint", ck, "--checkpoint-every", "2"], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += String(d)));
    const code = await new Promise<number | null>((resolve) => {
      const poll = setInterval(() => {
        if (fs.existsSync(ck)) {
          clearInterval(poll);
          child.kill("SIGTERM");
        }
      }, 50);
      child.on("exit", (c) => {
        clearInterval(poll);
        resolve(c);
      });
    });
    assert.equal(code, 2, err);
    assert.match(err, /score cancelled: \d+ windows were added/);
    const k = JSON.parse(fs.readFileSync(ck, "utf8")).samples;
    assert.ok(k >= 2 && k < 40, `checkpoint holds ${k} windows`);
    assert.ok(!fs.existsSync(out));
    r = await cli(["scores", ...args, "--out", out, "--checkpoint", ck]);
    assert.match(r.err, /exists: give --resume/);
    r = await cli(["scores", ...args, "--out", out, "--checkpoint", ck, "--resume"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, new RegExp(`resuming from .*\\(${k} of 40 windows done\\)`));
    cmp(out, full);
  });
});
