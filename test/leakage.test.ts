import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { findLeakage, leakedWindows, numberRanges } from "../src/data/leakage";
import { Rng } from "../src/rng";
import { Session } from "../src/session";
import { SessionRunner } from "../repl/runner";
import { cli } from "./support/cli";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

const STORIES = () => sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");

describe("leakage: calibration text in evaluation text", () => {
  it("finds windows whose token runs occur in the evaluation stream, exactly, and nothing in disjoint text", () => {
    const rng = new Rng(5);
    const evalIds = Array.from({ length: 5000 }, () => rng.int(0, 499));
    const inside = [7, ...evalIds.slice(1200, 1247)]; // first token differs (a BOS), the rest is evaluation text
    const outside = Array.from({ length: 48 }, () => rng.int(0, 499));
    const nearMiss = [7, ...evalIds.slice(300, 347)];
    nearMiss[40] = (nearMiss[40] + 1) % 500; // one token off: not verbatim
    assert.deepEqual(leakedWindows([outside, inside, nearMiss, inside], evalIds, 47), [1, 3]);
    const r = findLeakage({ calibration: { windows: [outside, inside], docs: null, label: "cal" }, evaluation: { ids: evalIds, docs: null, label: "ev" } });
    assert.deepEqual(r.windows, [1]);
    assert.equal(r.windowRun, 47);
    assert.match(r.message!, /1 of 2 calibration windows occur verbatim in the evaluation text \(47-token runs; windows 2\)/);
    const clean = findLeakage({ calibration: { windows: [outside], docs: null, label: "cal" }, evaluation: { ids: evalIds, docs: null, label: "ev" } });
    assert.equal(clean.message, null);
  });

  it("names shared documents by their numbers in each file, and shared long lines of undivided texts", () => {
    const docs = Array.from({ length: 10 }, (_, i) => `Story number ${i} about a cat and a dog who were friends.`);
    const r = findLeakage({
      calibration: { windows: [], docs: docs.slice(0, 6), label: "cal", firstDoc: 0 },
      evaluation: { ids: null, docs: docs.slice(4, 10), label: "ev", firstDoc: 4 },
    });
    assert.deepEqual(r.documents, [[5, 5], [6, 6]]);
    assert.match(r.message!, /2 of 6 calibration documents are also evaluation documents \(calibration 5-6; evaluation 5-6\)/);
    const line = "This is a long line of text that appears in both of the files.";
    const lines = findLeakage({ calibration: { windows: [], docs: [`a\n${line}\nshort`], label: "c" }, evaluation: { ids: null, docs: [`${line}\nshort\nz`], label: "e" } });
    assert.equal(lines.lines, 1); // "short" is below the line length
    assert.equal(numberRanges([1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
  });

  it("Session.evaluate warns (table note, record, session.warnings) for overlapping stories, not for held-out ones", async function () {
    requireShared(this);
    this.timeout(120_000);
    const s = await Session.load(STORIES260K());
    try {
      await s.calibrate({ files: STORIES(), stories: "1-100", samples: 6, seqLen: 32, seed: 0, teacher: false });
      const held = await s.evaluate({ ppl: { file: STORIES(), stories: "201-260", seqLen: 32 } });
      assert.equal(held.raw.leakage!.message, null);
      assert.equal(s.warnings.length, 0);
      const ev = await s.evaluate({ ppl: { file: STORIES(), stories: "51-160", seqLen: 32 } });
      const lk = ev.raw.leakage!;
      assert.deepEqual(lk.documents.map((d) => d[0]), Array.from({ length: 50 }, (_, i) => 51 + i));
      assert.ok(lk.documents.every(([c, e]) => c === e), "same file, same numbering");
      assert.ok(lk.windows !== null && lk.windows.length > 0, "some of the 6 windows come from stories 51-100");
      assert.match(lk.message!, /50 of 100 calibration documents are also evaluation documents \(calibration 51-100; evaluation 51-100\)/);
      assert.ok(ev.notes.some((n) => n.startsWith("WARNING: calibration text overlaps")));
      assert.equal(s.warnings.length, 1);
      const rec = s.pruningRecord() as { evaluations: { warnings?: string[] }[] };
      assert.equal(rec.evaluations[0].warnings, undefined);
      assert.equal(rec.evaluations[1].warnings![0], lk.message);
      // the saved model's pruning.json lets a later session draw the same windows again and find the same overlap
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-leak-saved-"));
      try {
        await s.save(dir, { force: true });
        const t = await Session.load(dir);
        try {
          const again = t.leakage({ file: STORIES(), stories: "51-160", seqLen: 32 })!;
          assert.deepEqual(again.windows, lk.windows);
          assert.deepEqual(again.documents, lk.documents);
          assert.equal(t.leakage({ file: STORIES(), stories: "201-260", seqLen: 32 })!.message, null);
        } finally {
          t.dispose();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      s.dispose();
    }
  });

  it("CLI prune --eval-text on the calibration stories prints a warning; the REPL shows it after calibrate + eval", async function () {
    requireShared(this);
    this.timeout(180_000);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-leak-"));
    try {
      const args = ["prune", "--model", STORIES260K(), "--ratio", "0.2", "--criterion", "ce-taylor", "--text", STORIES(), "--stories", "1-40", "--samples", "4", "--seq-len", "32", "--out", out, "--force", "--eval-seq-len", "32"];
      const bad = await cli([...args, "--eval-text", STORIES(), "--eval-stories", "1-30"]);
      assert.equal(bad.code, 0, bad.err);
      assert.match(bad.err, /warning: calibration text overlaps the evaluation text .*30 of 40 calibration documents are also evaluation documents \(calibration 1-30; evaluation 1-30\)/);
      const good = await cli([...args, "--eval-text", STORIES(), "--eval-stories", "41-70"]);
      assert.equal(good.code, 0, good.err);
      assert.doesNotMatch(good.err, /warning: calibration text overlaps/);
      // eval of the saved model: the calibration recorded in pruning.json is drawn again and compared
      const rec = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8"));
      assert.equal(rec.calibration.stories, "1-40");
      const ev = await cli(["eval", "--model", out, "--ppl", STORIES(), "--stories", "21-45", "--seq-len", "32", "--json"]);
      assert.equal(ev.code, 0, ev.err);
      assert.match(ev.err, /warning: calibration text overlaps the evaluation text \(the calibration recorded in .*pruning\.json \(4 windows, seed 0, stories 1-40\).*20 of 40 calibration documents are also evaluation documents \(calibration 21-40; evaluation 21-40\)/);
      assert.equal(JSON.parse(ev.out).warnings.length, 1);
      const held = await cli(["eval", "--model", out, "--ppl", STORIES(), "--stories", "41-60", "--seq-len", "32"]);
      assert.equal(held.code, 0, held.err);
      assert.doesNotMatch(held.err, /warning/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
    // a small TinyStories file keeps the REPL's whole-file calibrate and eval quick
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-leak-repl-"));
    const small = path.join(dir, "stories.txt");
    fs.writeFileSync(small, fs.readFileSync(STORIES(), "utf8").split("<|endoftext|>").slice(0, 60).join("<|endoftext|>"));
    const runner = new SessionRunner({ openSession: (p) => Session.load(p) });
    try {
      const ctx = { onProgress: () => {}, signal: new AbortController().signal, width: 200, ascii: true };
      await runner.execute({ kind: "load", path: STORIES260K() }, ctx);
      await runner.execute({ kind: "calibrate", samples: 4, seqLen: 32, seed: 0, text: small }, ctx);
      const blocks = await runner.execute({ kind: "eval", ppl: small, seqLen: 32 }, ctx);
      assert.match(JSON.stringify(blocks), /WARNING: calibration text overlaps the evaluation text/);
    } finally {
      runner.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
