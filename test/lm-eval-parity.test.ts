import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import type { SampleRecord } from "../src/eval/harness";
import { cli } from "./support/cli";
import { requireShared } from "./support/shared";

/**
 * `sdmprune eval --log-samples` against lm-evaluation-harness 0.4.13 on the same items: the fixtures in
 * test/fixtures/lm-eval/ were written by scripts/lm-eval/reference.py (lm-eval's own task YAMLs, data loading
 * pointed at local copies of shared/data, HFLM with add_bos_token as recorded in the .meta.json).
 * Every request string, token id, truncation, prediction, is_greedy and acc/acc_norm must be equal;
 * log-likelihoods may differ by float rounding (float32 here, torch float32 there) up to 1e-3.
 */

const FIXTURES = path.join(__dirname, "fixtures", "lm-eval");
const TOL = 1e-3;

interface Meta {
  settings: { add_bos_token: boolean; limit: number; max_length: number };
  results: Record<string, Record<string, number>>;
}

function readJsonl<T>(file: string): T[] {
  const buf = fs.readFileSync(file);
  const text = (file.endsWith(".gz") ? zlib.gunzipSync(buf) : buf).toString("utf8");
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

type Ref = Omit<SampleRecord, "id" | "pred" | "pred_norm">;

function compare(name: string, ours: SampleRecord[], ref: Ref[]): { requests: number; maxDiff: number } {
  assert.equal(ours.length, ref.length, `${name}: item count`);
  const key = (r: { task: string; doc_id: number }) => `${r.task}/${r.doc_id}`;
  const byKey = new Map(ours.map((r) => [key(r), r]));
  let requests = 0;
  let maxDiff = 0;
  for (const want of ref) {
    const got = byKey.get(key(want));
    const where = `${name} ${key(want)}`;
    assert.ok(got, `${where}: missing from --log-samples`);
    assert.deepEqual(got.target, want.target, `${where}: target`);
    assert.deepEqual(got.arguments, want.arguments, `${where}: request strings`);
    assert.deepEqual(got.context_ids, want.context_ids, `${where}: context token ids`);
    assert.deepEqual(got.continuation_ids, want.continuation_ids, `${where}: continuation token ids`);
    assert.deepEqual(got.truncated, want.truncated, `${where}: left truncation`);
    assert.deepEqual(got.is_greedy, want.is_greedy, `${where}: is_greedy`);
    want.loglikelihoods.forEach((ll, k) => {
      const d = Math.abs(got.loglikelihoods[k] - ll);
      maxDiff = Math.max(maxDiff, d);
      assert.ok(d <= TOL, `${where} request ${k}: log-likelihood ${got.loglikelihoods[k]} vs lm-eval ${ll}`);
    });
    assert.equal(got.acc, want.acc, `${where}: acc`);
    if (want.acc_norm !== undefined) assert.equal(got.acc_norm, want.acc_norm, `${where}: acc_norm`);
    if (want.perplexity !== undefined) assert.ok(Math.abs((got.perplexity as number) - want.perplexity) <= TOL, `${where}: perplexity item`);
    requests += want.arguments.length;
  }
  return { requests, maxDiff };
}

interface EvalJson {
  tasks: { task: string; n: number; metrics: Record<string, number>; truncated_requests: number }[];
  settings: { bos: boolean; maxLength: number; limit: number };
  notes: string[];
}

async function runParity(ctx: Mocha.Context, name: string, model: (shared: string) => string): Promise<void> {
  const shared = requireShared(ctx);
  const meta = JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.meta.json`), "utf8")) as Meta;
  const ref = readJsonl<Ref>(path.join(FIXTURES, `${name}.samples.jsonl.gz`));
  const tasks = [...new Set(ref.map((r) => r.task))];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-parity-"));
  try {
    const file = path.join(dir, "samples.jsonl");
    const r = await cli([
      "eval", "--model", model(shared), "--tasks", tasks.join(","), "--limit", String(meta.settings.limit),
      "--data-dir", path.join(shared, "data"), "--bos", meta.settings.add_bos_token ? "on" : "off", "--log-samples", file, "--json",
    ]);
    assert.equal(r.code, 0, r.err);
    const out = JSON.parse(r.out) as EvalJson;
    assert.equal(out.settings.maxLength, meta.settings.max_length, "max_length as HFLM resolves it");
    assert.equal(out.settings.bos, meta.settings.add_bos_token);
    assert.ok(out.notes.some((n) => n.startsWith("hellaswag:") || !tasks.includes("hellaswag")));
    assert.ok(out.notes.some((n) => n.includes("not comparable with full-set numbers")));
    const { requests, maxDiff } = compare(name, readJsonl<SampleRecord>(file), ref);
    // per-task aggregates equal lm-eval's (acc and acc_norm exactly; perplexity to float rounding)
    for (const t of out.tasks) {
      const want = meta.results[t.task];
      assert.equal(t.n, meta.settings.limit);
      for (const m of ["acc", "acc_norm"]) if (`${m},none` in want) assert.equal(t.metrics[m], want[`${m},none`], `${name} ${t.task} ${m}`);
      if ("perplexity,none" in want) assert.ok(Math.abs(t.metrics.perplexity / want["perplexity,none"] - 1) < 1e-3, `${name} ${t.task} perplexity`);
    }
    ctx.test!.title += ` (${ref.length} items, ${requests} requests, max |Δll| ${maxDiff.toExponential(1)}, ${out.tasks.reduce((s, t) => s + t.truncated_requests, 0)} truncated)`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("lm-eval parity: --log-samples equals lm-eval 0.4.13 item by item", function () {
  this.timeout(300_000);

  it("stories260K (GGUF; lm-eval ran its HF conversion), add_bos_token=True", async function () {
    await runParity(this, "stories260K", (shared) => path.join(shared, "models", "stories260K.gguf"));
  });

  it("demo model (max_length 512: long BoolQ requests cut from the left), add_bos_token=True", async function () {
    await runParity(this, "demo", () => path.join(__dirname, "..", "models", "demo"));
  });

  it("stories260K with --bos off (add_bos_token=False)", async function () {
    await runParity(this, "stories260K-bos-off", (shared) => path.join(shared, "models", "stories260K.gguf"));
  });
});

describe("sdmprune eval: zero-shot flags", () => {
  it("refuses a bad --bos and task-only flags without --tasks", async () => {
    const bad = await cli(["eval", "--model", "x.gguf", "--tasks", "piqa", "--bos", "maybe"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /--bos must be on or off, got "maybe"/);
    const noTasks = await cli(["eval", "--model", "x.gguf", "--ppl", "t.txt", "--log-samples", "s.jsonl"]);
    assert.notEqual(noTasks.code, 0);
    assert.match(noTasks.err, /--log-samples applies to --tasks/);
  });
});
