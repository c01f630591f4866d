import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { initEngine } from "../src/engine";
import { DataError, FormatError, NumericError, UsageError } from "../src/errors";
import { parseConfig, type LlamaConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { Session } from "../src/session";
import { requireShared, STORIES260K } from "./support/shared";

const TINY: LlamaConfig = parseConfig({
  hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2,
  vocab_size: 48, tie_word_embeddings: true, rms_norm_eps: 1e-5,
});

function windows(n: number, T: number, seed: number, maxId = TINY.vocab_size - 1): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: T }, () => rng.int(0, maxId)));
}

function session(seed = 7, poisonToken: number | null = null): Session {
  // An untied head keeps a poisoned embedding row out of the logits, so only windows holding the token fail.
  const config = poisonToken === null ? TINY : { ...TINY, tie_word_embeddings: false };
  const t = randomTensors(config, seed, 0.2);
  if (poisonToken !== null) t.get("model.embed_tokens.weight")!.data[poisonToken * TINY.hidden_size] = NaN;
  return Session.fromModel(CausalLM.fromTensors(config, t));
}

/** The assertion helper for "clear error": class and a message pattern. */
function fails(fn: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e.constructor.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

async function failsAsync(p: Promise<unknown>, cls: new (...a: never[]) => Error, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e.constructor.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

describe("Session: bad inputs give clear errors and change nothing", function () {
  let dir: string;
  before(async () => {
    await initEngine();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-bad-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("prune: ratio outside (0, 1), keep above the width, layer range outside the model, no scores", async () => {
    const s = session();
    try {
      fails(() => s.prune({ ratio: 0.5 }), UsageError, /call score\(\)/);
      await s.calibrate({ windows: windows(2, 8, 1), teacher: false });
      await s.score({ criterion: "ce-taylor" });
      const scoresBefore = s.scores!.scores();
      for (const ratio of [0, 1, -0.2, 1.5]) fails(() => s.prune({ ratio }), UsageError, /0 < ratio < 1/);
      fails(() => s.prune({ keep: 25 }), UsageError, /keep 25 channels but its current width is 24/);
      fails(() => s.prune({ keep: 10, layers: [2, 4] }), UsageError, /\[2, 4\) is outside the model's layers \[0, 3\)/);
      fails(() => s.prune({ keep: 10, layers: [-1, 2] }), UsageError, /outside/);
      fails(() => s.prune({ ratio: 0.5, keep: 3 }), UsageError, /exactly one of ratio, keep, mlpRatio/);
      assert.equal(s.history.raw.length, 0);
      assert.deepEqual(s.info().raw.widths, [24, 24, 24]);
      assert.deepEqual(s.scores!.scores(), scoresBefore);
      fails(() => s.undo(), UsageError, /nothing to undo/);
    } finally {
      s.dispose();
    }
  });

  it("calibration windows with token ids ≥ vocab size (array or file), wrong shapes", async () => {
    const s = session();
    try {
      const bad = windows(2, 8, 1);
      bad[1][5] = TINY.vocab_size;
      await failsAsync(s.calibrate({ windows: bad }), DataError, /window 1, position 5: token id 48 is out of range \(vocab size 48\)/);
      const file = path.join(dir, "bad-windows.json");
      fs.writeFileSync(file, JSON.stringify({ windows: bad }));
      await failsAsync(s.calibrate({ windows: file }), DataError, /bad-windows\.json: window 1, position 5: token id 48/);
      await failsAsync(s.calibrate({ windows: [[1, 2, 3], [1, 2]] }), DataError, /window 1 has 2 tokens, expected 3/);
      await failsAsync(s.calibrate({ windows: [] }), DataError, /empty/);
      assert.equal(s.calibrationWindows, null);
      await failsAsync(s.score({ criterion: "sd-taylor" }), UsageError, /call calibrate\(\) first/);
    } finally {
      s.dispose();
    }
  });

  it("a NaN loss during scoring stops, names the sample and leaves the accumulator as it was", async () => {
    const poison = TINY.vocab_size - 1;
    const w = windows(4, 8, 5, poison - 1); // ids below the poisoned token …
    w[2][3] = poison; // … except in sample 2
    const s = session(7, poison);
    try {
      await s.calibrate({ windows: w, teacher: false });
      await s.score({ criterion: "ce-taylor", samples: 2 });
      const before = s.scores!.scores();
      await failsAsync(s.score({ criterion: "ce-taylor" }), NumericError, /sample 2\b/);
      assert.equal(s.scores!.samples, 2);
      assert.deepEqual(s.scores!.scores(), before);
      assert.equal(s.info().raw.calibration!.cursor, 2);
    } finally {
      s.dispose();
    }
  });

  it("merging mismatched score files (criterion, settings, model) and malformed files is refused", async () => {
    const w = windows(4, 8, 6);
    const a = session(7);
    const other = session(8);
    try {
      await a.calibrate({ windows: w });
      await a.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
      await a.saveScores(path.join(dir, "sd.json"));
      await a.score({ criterion: "sd-taylor", alpha: 0.1, temperature: 0.2 });
      await a.saveScores(path.join(dir, "sd-alpha01.json"));
      await a.score({ criterion: "ce-taylor" });
      await a.saveScores(path.join(dir, "ce.json"));
      await other.calibrate({ windows: w });
      await other.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
      await other.saveScores(path.join(dir, "other-model.json"));
      fs.writeFileSync(path.join(dir, "broken.json"), "{not json");
      fs.writeFileSync(path.join(dir, "no-scores.json"), JSON.stringify({ criterion: "sd-taylor", samples: 1, settings: {} }));

      await a.loadScores(path.join(dir, "sd.json"));
      const before = a.scores!.scores();
      await failsAsync(a.mergeScores(path.join(dir, "ce.json")), UsageError, /criterion "sd-taylor" with "ce-taylor"/);
      await failsAsync(a.mergeScores(path.join(dir, "sd-alpha01.json")), UsageError, /different settings/);
      await failsAsync(a.mergeScores(path.join(dir, "other-model.json")), UsageError, /different model \(weightHash/);
      await failsAsync(a.mergeScores(path.join(dir, "broken.json")), FormatError, /broken\.json is not valid JSON/);
      await failsAsync(a.mergeScores(path.join(dir, "no-scores.json")), FormatError, /no-scores\.json/);
      await failsAsync(a.mergeScores(path.join(dir, "missing.json")), DataError, /cannot read scores file/);
      assert.equal(a.scores!.samples, 4);
      assert.deepEqual(a.scores!.scores(), before);
      // scores of the unpruned model do not apply after pruning
      a.prune({ keep: 20 });
      await failsAsync(a.loadScores(path.join(dir, "sd.json")), UsageError, /intermediate_sizes/);
    } finally {
      a.dispose();
      other.dispose();
    }
  });

  it("save refuses an occupied directory and leaves it untouched; sdmprune refuses a pruned session", async () => {
    const s = session();
    try {
      const out = path.join(dir, "occupied");
      fs.mkdirSync(out);
      fs.writeFileSync(path.join(out, "keep.txt"), "mine");
      await failsAsync(s.save(out), UsageError, /already exists and is not empty/);
      assert.deepEqual(fs.readdirSync(out), ["keep.txt"]);
      await s.score({ criterion: "magnitude" });
      s.prune({ keep: 20 });
      await failsAsync(s.sdmprune({ target: 0.2, text: "x" }), UsageError, /undo them first/);
    } finally {
      s.dispose();
    }
  });

  describe("with a tokenizer (stories260K)", function () {
    let s: Session;
    before(async function () {
      requireShared(this);
      s = await Session.load(STORIES260K());
    });
    after(() => s?.dispose());

    it("empty or too-short calibration text", async () => {
      await failsAsync(s.calibrate({ text: "   \n " }), DataError, /calibration text is empty/);
      await failsAsync(s.calibrate({ text: "Once upon a time.", samples: 2, seqLen: 64 }), DataError, /too short: \d+ tokens, need at least 64/);
      const empty = path.join(dir, "empty.txt");
      fs.writeFileSync(empty, "");
      await failsAsync(s.calibrate({ files: empty }), DataError, /empty\.txt is empty/);
      await failsAsync(s.calibrate({ text: "a", windows: [[1, 2]] }), UsageError, /exactly one of text, files, windows/);
      assert.equal(s.calibrationWindows, null);
      await failsAsync(s.sdmprune({ target: 0.01, text: "Once upon a time." }), UsageError, /not below the stage-1 width/);
      await failsAsync(s.evaluate({ ppl: { text: "Hi.", seqLen: 64 } }), DataError, /too short/);
    });

    it("a perplexity spec names one source, for evaluate, leakage and compare alike", async () => {
      const file = path.join(dir, "eval.txt");
      fs.writeFileSync(file, "Once upon a time there was a cat.\n");
      const both = { text: "Once upon a time.", file };
      await failsAsync(s.evaluate({ ppl: both }), UsageError, /ppl: give exactly one of text, file, windows \(got text, file\)/);
      fails(() => s.leakage(both), UsageError, /ppl: give exactly one of text, file, windows/);
      // compare tokenizes the evaluation text itself; the spec is checked before any calibration
      await failsAsync(s.compare({ criteria: ["random"], ratios: [0.3], seeds: [0], calibration: { text: "Once upon a time." }, ppl: both }), UsageError, /ppl: give exactly one of text, file, windows/);
      fails(() => s.leakage({ windows: [[1, 2, 3]], protocol: "wikitext" }), UsageError, /protocol and stories apply to text/);
    });
  });
});
