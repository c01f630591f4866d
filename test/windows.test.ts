import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { calibrationWindows, evalWindows, loadWindows, saveWindows, sha256File, validateWindows } from "../src/data/windows";
import { DataError, FormatError } from "../src/errors";
import { Rng } from "../src/rng";
import { CharTokenizer, FAKE_BOS, FAKE_VOCAB } from "./support/fake-lm";

/** Documents of seeded random letters with lengths spread around seqLen. */
function makeDocs(n: number, seed: number): string[] {
  const r = new Rng(seed);
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int(5, 60);
    let s = "";
    for (let k = 0; k < len; k++) s += String.fromCharCode(97 + r.int(0, 25));
    docs.push(s);
  }
  return docs;
}

/** Index of `needle` as a contiguous slice of `hay`, or -1. */
function findSlice(hay: number[], needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let k = 0; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

describe("data/windows", () => {
  const tok = new CharTokenizer();
  const docs = makeDocs(200, 5);
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-win-"))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("documents mode: same seed+stream → same windows; other seed or stream → different", () => {
    const base = { docs, tokenizer: tok, samples: 20, seqLen: 32, seed: 0 };
    const a = calibrationWindows({ ...base, stream: "stage1" });
    const b = calibrationWindows({ ...base, stream: "stage1" });
    const c = calibrationWindows({ ...base, stream: "stage2" });
    const d = calibrationWindows({ ...base, stream: "stage1", seed: 1 });
    assert.equal(a.provenance.mode, "documents");
    assert.equal(a.windows.length, 20);
    assert.deepEqual(a.windows, b.windows);
    assert.notDeepEqual(a.windows, c.windows);
    assert.notDeepEqual(a.windows, d.windows);
    assert.equal(a.provenance.seed, 0);
    assert.equal(a.provenance.stream, "stage1");
    assert.equal(a.provenance.seqLen, 32);
    assert.equal(a.provenance.samples, 20);
  });

  it("documents mode: each window is a slice of one long document's tokens, never its last token", () => {
    const { windows, provenance } = calibrationWindows({ docs, tokenizer: tok, samples: 30, seqLen: 32, seed: 3, stream: "s" });
    const long = docs.map((d) => tok.encode(d)).filter((ids) => ids.length > 32);
    assert.ok(provenance.documentsSeen >= 30 && provenance.documentsSeen <= docs.length);
    const used = new Set<number>();
    for (const w of windows) {
      assert.equal(w.length, 32);
      // letters make collisions between documents practically impossible, so the owner is unique
      const owners = long.map((ids, i) => ({ i, at: findSlice(ids, w) })).filter((o) => o.at >= 0);
      assert.equal(owners.length, 1);
      const { i, at } = owners[0];
      assert.ok(at <= long[i].length - 32 - 1, `offset ${at} must be ≤ len − seqLen − 1 = ${long[i].length - 33}`);
      assert.equal(w[0] === FAKE_BOS, at === 0);
      assert.ok(!used.has(i), "one window per document");
      used.add(i);
    }
  });

  it("auto falls back to stream mode when too few documents are long enough; documents mode refuses", () => {
    const short = makeDocs(10, 9);
    const r = calibrationWindows({ docs: short, tokenizer: tok, samples: 8, seqLen: 50, seed: 0 });
    assert.equal(r.provenance.mode, "stream");
    assert.match(r.provenance.fallback ?? "", /more than 50 tokens/);
    const joined = tok.encode(short.join("\n\n"));
    for (const w of r.windows) assert.ok(findSlice(joined, w) >= 0);
    assert.throws(
      () => calibrationWindows({ docs: short, tokenizer: tok, samples: 8, seqLen: 50, seed: 0, mode: "documents" }),
      (e: Error) => e instanceof DataError && /not enough documents/.test(e.message),
    );
  });

  it("stream mode over one text: seeded offsets in [0, len − seqLen]", () => {
    const text = makeDocs(5, 1).join(" ");
    const ids = tok.encode(text);
    const a = calibrationWindows({ text, tokenizer: tok, samples: 50, seqLen: ids.length - 3, seed: 11 });
    const b = calibrationWindows({ text, tokenizer: tok, samples: 50, seqLen: ids.length - 3, seed: 11 });
    assert.deepEqual(a.windows, b.windows);
    const offsets = new Set(a.windows.map((w) => findSlice(ids, w)));
    for (const o of offsets) assert.ok(o >= 0 && o <= 3);
    assert.ok(offsets.size > 1, "several offsets drawn");
    // exactly one window fits
    const one = calibrationWindows({ text, tokenizer: tok, samples: 2, seqLen: ids.length, seed: 0 });
    assert.deepEqual(one.windows, [ids, ids]);
  });

  it("errors: empty text, text shorter than one window", () => {
    assert.throws(() => calibrationWindows({ text: "  \n", tokenizer: tok, samples: 1, seqLen: 4, seed: 0 }), (e: Error) => e instanceof DataError && /empty/.test(e.message));
    assert.throws(() => calibrationWindows({ docs: [], tokenizer: tok, samples: 1, seqLen: 4, seed: 0 }), DataError);
    assert.throws(
      () => calibrationWindows({ text: "abc", tokenizer: tok, samples: 1, seqLen: 10, seed: 0 }),
      (e: Error) => e instanceof DataError && e.message.includes("4 tokens") && e.message.includes("10"),
    );
    assert.throws(() => calibrationWindows({ text: "abc", tokenizer: tok, samples: 0, seqLen: 2, seed: 0 }), DataError);
  });

  it("provenance records the source files' sha256", () => {
    const f = path.join(dir, "docs.txt");
    fs.writeFileSync(f, docs.join("\n"));
    const r = calibrationWindows({ docs, tokenizer: tok, samples: 4, seqLen: 16, seed: 0, files: [f] });
    assert.deepEqual(r.provenance.files, [{ path: f, sha256: sha256File(f) }]);
    assert.match(r.provenance.files[0].sha256, /^[0-9a-f]{64}$/);
  });

  it("saveWindows/loadWindows round-trip and validate", async () => {
    const r = calibrationWindows({ docs, tokenizer: tok, samples: 6, seqLen: 16, seed: 2, stream: "x" });
    const f = path.join(dir, "w.json");
    await saveWindows(f, r.windows, r.provenance);
    const back = loadWindows(f, { vocabSize: FAKE_VOCAB });
    assert.deepEqual(back.windows, r.windows);
    assert.deepEqual(back.provenance, r.provenance);
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes(".tmp-")), []);

    const write = (o: unknown) => {
      fs.writeFileSync(f, typeof o === "string" ? o : JSON.stringify(o));
      return f;
    };
    assert.throws(() => loadWindows(write({ windows: [[1, 2], [3, 64]] }), { vocabSize: 64 }), (e: Error) => e instanceof DataError && /window 1, position 1/.test(e.message) && /64/.test(e.message) && e.message.includes(f));
    assert.throws(() => loadWindows(write({ windows: [[1, 2], [3]] })), (e: Error) => e instanceof DataError && /window 1 has 1 tokens, expected 2/.test(e.message));
    assert.deepEqual(loadWindows(write({ windows: [[1, 2], [3]] }), { ragged: true }).windows, [[1, 2], [3]]);
    assert.throws(() => loadWindows(write({ windows: [[1, 2.5]] })), (e: Error) => e instanceof DataError && /window 0, position 1/.test(e.message));
    assert.throws(() => loadWindows(write({ windows: [[1, -1]] })), DataError);
    assert.throws(() => loadWindows(write({ windows: [] })), DataError);
    assert.throws(() => loadWindows(write({ windows: [5] })), (e: Error) => e instanceof DataError && /window 0/.test(e.message));
    assert.throws(() => loadWindows(write([[1, 2]])), FormatError);
    assert.throws(() => loadWindows(write("{not json")), FormatError);
    assert.throws(() => loadWindows(path.join(dir, "missing.json")), DataError);
    assert.throws(() => validateWindows([[0, 1]], { vocabSize: 1 }), DataError);
  });

  it("evalWindows: non-overlapping, remainder dropped", () => {
    const ids = Array.from({ length: 23 }, (_, i) => i);
    const w = evalWindows(ids, 5);
    assert.equal(w.length, 4);
    assert.deepEqual(w.flat(), ids.slice(0, 20));
    assert.deepEqual(w[1], [5, 6, 7, 8, 9]);
    assert.deepEqual(evalWindows(ids, 23), [ids]);
    assert.throws(() => evalWindows(ids, 24), (e: Error) => e instanceof DataError && /23 tokens/.test(e.message));
    assert.throws(() => evalWindows(ids, 1), DataError);
  });
});
