import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DataError } from "../src/errors";
import { joinDocs, readText, selectStories, splitTinyStories, storyRange, tinyStories, TINYSTORIES_SEPARATOR, wikitextRows, wikitextText } from "../src/data/text";
import { requireShared } from "./support/shared";

describe("data/text", () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-text-"))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("readText names a missing or empty file in a DataError", () => {
    const missing = path.join(dir, "nope.txt");
    assert.throws(() => readText(missing), (e: Error) => e instanceof DataError && e.message.includes(missing) && /does not exist/.test(e.message));
    const empty = path.join(dir, "empty.txt");
    fs.writeFileSync(empty, " \n\n");
    assert.throws(() => readText(empty), (e: Error) => e instanceof DataError && e.message.includes(empty) && /empty/.test(e.message));
    assert.throws(() => readText(dir), DataError);
    const ok = path.join(dir, "ok.txt");
    fs.writeFileSync(ok, "héllo\n");
    assert.equal(readText(ok), "héllo\n");
  });

  it("splits TinyStories on the separator and drops the trailing empty piece", () => {
    const text = ["A b.", "C\nd.", "E."].map((s) => s + TINYSTORIES_SEPARATOR).join("");
    assert.deepEqual(splitTinyStories(text), ["A b.", "C\nd.", "E."]);
    assert.deepEqual(splitTinyStories("A." + TINYSTORIES_SEPARATOR + "B."), ["A.", "B."]);
    assert.throws(() => splitTinyStories(TINYSTORIES_SEPARATOR), DataError);
  });

  it("story ranges: human 1-based inclusive → 0-based half-open", () => {
    assert.deepEqual(storyRange("1-200"), { from: 0, to: 200 });
    assert.deepEqual(storyRange("500–999"), { from: 499, to: 999 });
    assert.deepEqual(storyRange("3..3"), { from: 2, to: 3 });
    assert.throws(() => storyRange("0-5"), DataError);
    assert.throws(() => storyRange("7-3"), DataError);
    assert.throws(() => storyRange("abc"), DataError);
    const s = ["a", "b", "c", "d"];
    assert.deepEqual(selectStories(s, 1, 3), ["b", "c"]);
    const r = storyRange("2-4");
    assert.deepEqual(selectStories(s, r.from, r.to), ["b", "c", "d"]);
    assert.throws(() => selectStories(s, 2, 5), DataError);
    assert.throws(() => selectStories(s, 2, 2), DataError);
  });

  it("WikiText rows: lines one-to-one, blank → \"\", others keep \\n; joinDocs uses \\n\\n", () => {
    const raw = " \n = Title = \n \n Body line .\n\t\n Last .\n";
    const rows = wikitextRows(raw);
    assert.deepEqual(rows, ["", " = Title = \n", "", " Body line .\n", "", " Last .\n"]);
    assert.equal(joinDocs(rows), "\n\n = Title = \n\n\n\n\n Body line .\n\n\n\n\n Last .\n");
    assert.deepEqual(wikitextRows(raw.replace(/\n/g, "\r\n")), rows);
  });

  it("reads the shared TinyStories and WikiText files", function () {
    const shared = requireShared(this);
    const ts = path.join(shared, "data", "tinystories", "tinystories_valid_first1000.txt");
    const all = tinyStories(ts);
    assert.equal(all.length, 1000);
    assert.ok(all[0].startsWith("Spot. Spot saw the shiny car"));
    assert.ok(all.every((s) => s.length > 0 && !s.includes("<|endoftext|>")));
    const r = storyRange("500-999");
    const part = tinyStories(ts, r.from, r.to);
    assert.equal(part.length, 500);
    assert.equal(part[0], all[499]);
    assert.equal(part[499], all[998]);

    const wt = path.join(shared, "data", "wikitext-2-raw", "wiki.test.raw");
    const rows = wikitextRows(readText(wt));
    assert.equal(rows.length, 4358);
    const raw = fs.readFileSync(wt, "utf8").split("\n");
    const blank = raw.slice(0, 4358).filter((l) => l.trim() === "").length;
    assert.equal(rows.filter((r) => r === "").length, blank);
    assert.ok(rows.filter((r) => r !== "").every((r) => r.endsWith("\n")));
    assert.equal(wikitextText(wt), rows.join("\n\n"));
  });
});
