import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { DataError } from "../src/errors";
import { getTask, resolveDataDir, TASKS, type ChoiceDoc, type TargetDoc } from "../src/eval/tasks";
import { hellaswagPreprocess, hellaswagSplit, pyCapitalize } from "../src/eval/tasks/hellaswag";
import { requireShared } from "./support/shared";

const LIMIT = 40;

describe("eval/tasks: loaders on the shared data", function () {
  let dataDir: string;
  before(function () {
    dataDir = path.join(requireShared(this), "data");
  });

  function choiceDocs(name: string, limit: number | "all" = LIMIT): ChoiceDoc[] {
    const docs = getTask(name).load(dataDir, limit === "all" ? undefined : limit);
    assert.ok(docs.every((d) => d.kind === "choice"));
    const cs = docs as ChoiceDoc[];
    for (const d of cs) {
      assert.equal(d.requests.length, d.choices.length);
      assert.ok(Number.isInteger(d.gold) && d.gold >= 0 && d.gold < d.choices.length, `${d.id}: gold ${d.gold}`);
    }
    return cs;
  }

  it("piqa: Question/Answer prompt, two solutions, gold from the labels file", () => {
    const docs = choiceDocs("piqa");
    assert.equal(docs.length, LIMIT);
    assert.equal(docs[0].requests[0].context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
    assert.ok(docs[0].requests[0].continuation.startsWith(" Provide the guinea pig"));
    assert.equal(docs[0].choices[0], docs[0].requests[0].continuation.slice(1));
    assert.deepEqual(docs.slice(0, 3).map((d) => d.gold), [0, 1, 1]);
    assert.equal(getTask("piqa").load(dataDir).length, 1838);
  });

  it("arc_easy / arc_challenge: 3–5 choices, numeric labels matched against answerKey", () => {
    const easy = choiceDocs("arc_easy", "all");
    assert.equal(easy.length, 2376);
    const counts = new Map<number, number>();
    for (const d of easy) counts.set(d.choices.length, (counts.get(d.choices.length) ?? 0) + 1);
    assert.equal(counts.get(3), 7);
    assert.equal(counts.get(5), 4);
    assert.ok(easy[0].requests[0].context.startsWith("Question: Which statement best explains"));
    assert.ok(easy[0].requests[0].context.endsWith("\nAnswer:"));
    assert.equal(easy[0].gold, 0);
    const ch = choiceDocs("arc_challenge", "all");
    assert.equal(ch.length, 1172);
    assert.equal(ch.filter((d) => d.choices.length !== 4).length, 7);
    // gold index equals the numeric label minus one for the "1".."4" items
    const rows = fs.readFileSync(path.join(dataDir, "arc", "ARC-Easy-Test.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const numeric = rows.map((r, i) => ({ r, i })).filter(({ r }) => /^\d$/.test(r.answerKey));
    assert.equal(numeric.length, 97);
    for (const { r, i } of numeric) assert.equal(easy[i].gold, r.question.choices.findIndex((c: { label: string }) => c.label === r.answerKey));
  });

  it("openbookqa: question stem as the context, 4 choices", () => {
    const docs = choiceDocs("openbookqa");
    assert.ok(docs.every((d) => d.choices.length === 4));
    assert.ok(docs[0].requests[0].context.startsWith("A person wants to start saving money"));
    assert.ok(!docs[0].requests[0].context.includes("Question:"));
    assert.equal(docs[0].gold, 1);
    assert.equal(getTask("openbookqa").load(dataDir).length, 500);
  });

  it("boolq: passage/question prompt, no/yes, string labels", () => {
    const docs = choiceDocs("boolq");
    assert.ok(docs.every((d) => d.choices[0] === "no" && d.choices[1] === "yes"));
    assert.ok(docs[0].requests[0].context.startsWith("Ethanol fuel -- All biomass"));
    assert.ok(docs[0].requests[0].context.endsWith("\nQuestion: does ethanol take more energy make that produces?\nAnswer:"));
    const all = getTask("boolq").load(dataDir) as ChoiceDoc[];
    assert.equal(all.length, 3270);
    assert.equal(all.filter((d) => d.gold === 1).length, 2033);
  });

  it("hellaswag: 6-line llama.cpp items, lm-eval's prompt recovered (checked on the original jsonl's first 10 rows)", () => {
    const docs = choiceDocs("hellaswag");
    assert.equal(docs.length, LIMIT);
    assert.ok(docs.every((d) => d.choices.length === 4));
    assert.equal(docs[0].requests[0].context, "Roof shingle removal: A man is sitting on a roof. He");
    assert.equal(docs[0].gold, 3);
    assert.equal(docs[0].requests[3].continuation, " starts pulling up roofing on a roof.");
    // rowanz/hellaswag data/hellaswag_val.jsonl rows 1-10, the only original rows at hand
    const orig = fs.readFileSync(path.join(__dirname, "fixtures", "lm-eval", "hellaswag_val_head10.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    orig.forEach((o, i) => {
      // lm_eval/tasks/hellaswag/utils.py process_docs, from the original fields
      const query = hellaswagPreprocess(o.activity_label + ": " + o.ctx_a + " " + pyCapitalize(o.ctx_b));
      assert.equal(docs[i].requests[0].context, query, `row ${i}`);
      assert.deepEqual(hellaswagSplit(`${o.activity_label}: ${o.ctx}`), { activityLabel: o.activity_label, ctxA: o.ctx_a, ctxB: o.ctx_b });
      assert.deepEqual(docs[i].choices, o.endings.map(hellaswagPreprocess));
      assert.equal(docs[i].gold, o.label);
    });
  });

  it("hellaswag helpers follow Python: capitalize lower-cases the rest, preprocess removes [tags] once", () => {
    assert.equal(pyCapitalize("the man in the Santa hat"), "The man in the santa hat");
    assert.equal(pyCapitalize(""), "");
    assert.equal(hellaswagPreprocess(" Home: [header] How to x [title] Do y. [step] Z.  "), "Home: How to x. Do y. Z.");
    // a context that ends a sentence has an empty ctx_b (WikiHow rows)
    assert.deepEqual(hellaswagSplit("Label: First. Second one."), { activityLabel: "Label", ctxA: "First. Second one.", ctxB: "" });
    assert.deepEqual(hellaswagSplit("Label: no sentence end here"), { activityLabel: "Label", ctxA: "", ctxB: "no sentence end here" });
  });

  it("winogrande: two contexts, one shared continuation, answers 1/2", () => {
    const docs = choiceDocs("winogrande");
    for (const d of docs) {
      assert.equal(d.requests.length, 2);
      assert.equal(d.requests[0].continuation, d.requests[1].continuation);
      assert.notEqual(d.requests[0].context, d.requests[1].context);
    }
    assert.equal(docs[0].requests[0].context, "Sarah was a much better surgeon than Maria so Sarah");
    assert.equal(docs[0].requests[0].continuation, " always got the easier cases.");
    assert.equal(docs[0].gold, 1);
    const all = getTask("winogrande").load(dataDir) as ChoiceDoc[];
    assert.equal(all.length, 1267);
    assert.equal(all.filter((d) => d.gold === 0).length, 628);
  });

  it("lambada: context + \" \" + last word reproduces the text", () => {
    const docs = getTask("lambada").load(dataDir, LIMIT) as TargetDoc[];
    assert.equal(docs.length, LIMIT);
    const texts = fs.readFileSync(path.join(dataDir, "lambada", "lambada_test.jsonl"), "utf8").split("\n").slice(0, LIMIT).map((l) => JSON.parse(l).text as string);
    docs.forEach((d, i) => {
      assert.equal(d.kind, "target");
      assert.equal(d.context + d.target, texts[i]);
      assert.ok(d.target.startsWith(" ") && !d.target.slice(1).includes(" "));
    });
    assert.equal(docs[0].target, " signs");
  });

  it("every task names files that exist; a wrong folder is a DataError naming it", () => {
    for (const t of TASKS) for (const f of t.files) assert.ok(fs.existsSync(path.join(dataDir, f)), f);
    assert.throws(() => getTask("piqa").load("/nonexistent-dir", 1), (e: Error) => e instanceof DataError && e.message.includes("/nonexistent-dir"));
  });
});

describe("eval/tasks: data folder resolution", () => {
  it("dataDir argument, then SDMPRUNE_DATA, then ../shared/data from the cwd", () => {
    const saved = process.env.SDMPRUNE_DATA;
    try {
      delete process.env.SDMPRUNE_DATA;
      assert.equal(resolveDataDir(), path.resolve(process.cwd(), "..", "shared", "data"));
      process.env.SDMPRUNE_DATA = "/tmp/somewhere";
      assert.equal(resolveDataDir(), "/tmp/somewhere");
      assert.equal(resolveDataDir("rel"), path.resolve("rel"));
    } finally {
      if (saved === undefined) delete process.env.SDMPRUNE_DATA;
      else process.env.SDMPRUNE_DATA = saved;
    }
  });
});
