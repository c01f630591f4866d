import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CancelledError, DataError, UsageError } from "../src/errors";
import { encodePair, evaluateTasks, loglikelihoods } from "../src/eval/harness";
import { argmax, meanStderr, scoreChoice } from "../src/eval/metrics";
import { lambadaSplit } from "../src/eval/tasks/lambada";
import { winograndeDoc } from "../src/eval/tasks/winogrande";
import type { ChoiceDoc } from "../src/eval/tasks/types";
import type { ProgressEvent } from "../src/types";
import { initEngine } from "../src/engine";
import { modelScorer } from "../src/eval/model-scorer";
import { getTask, TASKS } from "../src/eval/tasks";
import { loadModel } from "../src/model/load";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { Rng } from "../src/rng";
import { requireShared } from "./support/shared";
import { bigramArgmax, bigramGreedy, bigramLogProb, bigramScorer, CharTokenizer } from "./support/fake-lm";

const tok = new CharTokenizer();

/** log p(continuation | context) under the bigram model, straight from the definitions (char tokenizer). */
function refLoglik(context: string, continuation: string): number {
  const trimmed = context.trimEnd();
  const cont = context.slice(trimmed.length) + continuation;
  const ids = tok.encode(trimmed + cont);
  const start = ids.length - [...cont].length;
  let s = 0;
  for (let t = start; t < ids.length; t++) s += bigramLogProb(ids[t - 1], ids[t]);
  return s;
}

function refGreedy(context: string, continuation: string): boolean {
  const ids = tok.encode(context + continuation);
  for (let t = ids.length - [...continuation].length; t < ids.length; t++) if (bigramArgmax(ids[t - 1]) !== ids[t]) return false;
  return true;
}

describe("eval/harness: loglikelihood requests", () => {
  it("encodePair moves trailing whitespace of the context to the continuation (lm-eval _encode_pair)", () => {
    const a = encodePair(tok, "Answer: ", "yes");
    assert.deepEqual(a.contextIds, tok.encode("Answer:"));
    assert.deepEqual(a.continuationIds, tok.encode(" yes", { addBos: false }));
    const b = encodePair(tok, "Answer:", " yes");
    assert.deepEqual(b, a);
    const c = encodePair(tok, "Q\n\n", "x");
    assert.deepEqual(c.continuationIds, tok.encode("\n\nx", { addBos: false }));
    const e = encodePair(tok, "", "hi");
    assert.deepEqual(e, { contextIds: [tok.bosTokenId], continuationIds: tok.encode("hi", { addBos: false }) });
  });

  it("continuation tokens are whole[len(encode(context)):], so a merge across the boundary is kept", () => {
    // "ab" is a single token: encode("xab") = [BOS, x, AB] while encode("xa") = [BOS, x, a]
    const merging = {
      ...tok,
      vocabSize: 64,
      bosTokenId: 1,
      eosTokenId: 2,
      encode: (text: string, o?: { addBos?: boolean }) => {
        const out: number[] = o?.addBos === false ? [] : [1];
        for (let i = 0; i < text.length; i++) {
          if (text.startsWith("ab", i)) {
            out.push(63);
            i++;
          } else out.push(3 + (text.charCodeAt(i) % 60));
        }
        return out;
      },
      decode: () => "",
      toJSON: () => ({}),
    };
    const p = encodePair(merging, "xxa", "bc");
    assert.deepEqual(p.contextIds, [1, 3 + (120 % 60), 3 + (120 % 60), 3 + (97 % 60)]);
    assert.deepEqual(p.continuationIds, [3 + (99 % 60)]); // whole = [1, x, x, AB, c]: the 4th token onwards
  });

  it("sums continuation log-probs and reports greedy matches, independent of batch size and order", async () => {
    const reqs = [
      { context: "Question: what?\nAnswer:", continuation: " a long answer here" },
      { context: "short", continuation: " x" },
      { context: "ctx ", continuation: "yes" },
      { context: "mid length context", continuation: " no" },
    ];
    const r1 = await loglikelihoods({ logProbs: bigramScorer, greedy: bigramGreedy }, tok, reqs, { batchSize: 1, needGreedy: true });
    const r3 = await loglikelihoods(bigramScorer, tok, reqs, { batchSize: 3 });
    reqs.forEach((q, i) => {
      assert.ok(Math.abs(r1[i].loglik - refLoglik(q.context, q.continuation)) < 1e-4, `request ${i}`);
      assert.ok(Math.abs(r3[i].loglik - r1[i].loglik) < 1e-9);
      assert.equal(r1[i].tokens, [...q.context.slice(q.context.trimEnd().length) + q.continuation].length);
      assert.equal(r1[i].greedy, refGreedy(q.context.trimEnd(), q.context.slice(q.context.trimEnd().length) + q.continuation));
      assert.equal(r3[i].greedy, null);
    });
    await assert.rejects(loglikelihoods(bigramScorer, tok, reqs, { needGreedy: true }), DataError);
  });

  it("greedy is true exactly when every continuation token is the argmax", async () => {
    // build a continuation that follows the bigram argmax chain from the context's last token
    const ctx = tok.encode("go");
    const chain = [ctx[ctx.length - 1]];
    for (let i = 0; i < 3; i++) chain.push(bigramArgmax(chain[chain.length - 1]));
    const seq = [...ctx, ...chain.slice(1)];
    const g = bigramGreedy([seq])[0].greedy;
    assert.deepEqual([...g.slice(-3)], [1, 1, 1]);
  });

  it("maxLength cuts sequences from the left like lm-eval", async () => {
    let seen: number[][] = [];
    const spy = (s: number[][]) => {
      seen = s;
      return bigramScorer(s);
    };
    const r = await loglikelihoods(spy, tok, [{ context: "abcdefghij", continuation: "kl" }], { maxLength: 5 });
    assert.equal(seen[0].length, 6);
    assert.deepEqual(seen[0], tok.encode("abcdefghijkl").slice(-6));
    assert.ok(Math.abs(r[0].loglik - refLoglik("abcdefghij", "kl")) < 1e-4);
    // BOS + 12 characters = 13 tokens, 6 kept: 7 cut; a request that fits is not cut
    assert.equal(r[0].truncated, 7);
    const fits = await loglikelihoods(bigramScorer, tok, [{ context: "abc", continuation: "d" }], { maxLength: 5 });
    assert.equal(fits[0].truncated, 0);
    // HFLM asserts the continuation fits max_length; scoring part of it would be a different number
    await assert.rejects(loglikelihoods(bigramScorer, tok, [{ context: "a", continuation: "bcdefgh" }], { maxLength: 5 }), DataError);
  });

  it("addBos false encodes without BOS (add_bos_token=False); keepTokens returns encodePair's ids", async () => {
    const on = await loglikelihoods(bigramScorer, tok, [{ context: "ab ", continuation: "c" }], { keepTokens: true });
    assert.deepEqual(on[0].contextIds, tok.encode("ab"));
    assert.deepEqual(on[0].continuationIds, tok.encode(" c", { addBos: false }));
    const off = await loglikelihoods(bigramScorer, tok, [{ context: "ab ", continuation: "c" }], { keepTokens: true, addBos: false });
    assert.deepEqual(off[0].contextIds, tok.encode("ab", { addBos: false }));
    assert.ok(Math.abs(off[0].loglik - on[0].loglik) > 0 || off[0].contextIds!.length !== on[0].contextIds!.length);
    const plain = await loglikelihoods(bigramScorer, tok, [{ context: "ab ", continuation: "c" }]);
    assert.equal(plain[0].contextIds, undefined);
  });

  it("cancels between batches", async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(loglikelihoods(bigramScorer, tok, [{ context: "a", continuation: "b" }], { signal: ac.signal }), CancelledError);
  });
});

describe("eval/harness: metrics", () => {
  it("acc = argmax loglik, acc_norm = argmax loglik / character length of the choice", () => {
    const doc: ChoiceDoc = { kind: "choice", id: "x", requests: [], choices: ["no", "a much longer answer"], gold: 1 };
    const r = scoreChoice(doc, [-10, -12]);
    assert.equal(r.pred, 0); // -10 > -12
    assert.equal(r.predNorm, 1); // -10/2 = -5 < -12/20 = -0.6
    assert.equal(argmax([1, 3, 3]), 1);
    const s = meanStderr([1, 0, 1, 1]);
    assert.equal(s.mean, 0.75);
    assert.ok(Math.abs((s.stderr as number) - Math.sqrt(0.25 / 4)) < 1e-12);
    assert.equal(meanStderr([1]).stderr, null);
  });

  it("acc_norm counts code points like Python len; an empty choice divides by zero like numpy", () => {
    // "😀😀" is 2 characters but 4 UTF-16 units, and the two counts pick different winners here
    const emoji: ChoiceDoc = { kind: "choice", id: "e", requests: [], choices: ["😀😀", "abc"], gold: 0 };
    assert.equal(scoreChoice(emoji, [-4, -5]).predNorm, 1); // code points: -2 vs -1.67; UTF-16 units: -1 vs -1.67
    const empty: ChoiceDoc = { kind: "choice", id: "z", requests: [], choices: ["", "abc"], gold: 1 };
    assert.equal(scoreChoice(empty, [-1, -2]).predNorm, 1); // -1/0 = -inf
    assert.equal(scoreChoice(empty, [0, -2]).predNorm, 0); // 0/0 = NaN: numpy argmax picks the NaN
    assert.equal(argmax([1, NaN, 3, NaN]), 1);
  });

  it("task names: lm-eval's, with the old alias", () => {
    assert.equal(getTask("lambada").name, "lambada_openai");
    assert.deepEqual(getTask("lambada_openai").metrics, ["acc", "perplexity"]);
    assert.throws(() => getTask("lambada_standard"), UsageError);
  });

  it("winogrande partial scoring: option substituted for _, shared continuation after the blank", () => {
    const d = winograndeDoc("w", "The trophy didn't fit in the case because _ was too big.", ["the trophy", "the case"], 0);
    assert.deepEqual(d.requests, [
      { context: "The trophy didn't fit in the case because the trophy", continuation: " was too big." },
      { context: "The trophy didn't fit in the case because the case", continuation: " was too big." },
    ]);
    const end = winograndeDoc("e", "He gave it to _", ["Ann", "Bob"], 1);
    assert.deepEqual(end.requests.map((q) => q.continuation), [" ", " "]);
    assert.throws(() => winograndeDoc("n", "no blank", ["a", "b"], 0), DataError);
  });

  it("lambada target split: last space-separated word", () => {
    assert.deepEqual(lambadaSplit("he said to\n\nthe man"), { context: "he said to\n\nthe", target: " man" });
    assert.deepEqual(lambadaSplit("a b\nc"), { context: "a", target: " b\nc" });
    assert.throws(() => lambadaSplit("single"), DataError);
  });
});

describe("eval/harness: evaluateTasks on hand-made data", () => {
  let dir: string;
  const arcItems = [
    { stem: "Pick one", choices: ["ox", "a very long and unlikely answer text"], key: "B" },
    { stem: "Which?", choices: ["q", "zzzz zzzz", "hello there"], key: "1", labels: ["1", "2", "3"] },
    { stem: "More", choices: ["x", "yy", "an answer", "another answer here", "e"], key: "D" },
  ];
  const wino = [
    { sentence: "Ann helped Bob because _ was kind.", option1: "Ann", option2: "Bob", answer: "1" },
    { sentence: "The cat chased the dog until _ ran away.", option1: "the cat", option2: "the dog", answer: "2" },
  ];
  const lamb = ["once upon a time there was a cat", "the end of the story is near"];

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-tasks-"));
    fs.mkdirSync(path.join(dir, "arc"));
    const lines = arcItems.map((it, i) => {
      const labels = it.labels ?? "ABCDE".slice(0, it.choices.length).split("");
      return JSON.stringify({ id: `q${i}`, question: { stem: it.stem, choices: it.choices.map((text, k) => ({ text, label: labels[k] })) }, answerKey: it.key });
    });
    fs.writeFileSync(path.join(dir, "arc", "ARC-Easy-Test.jsonl"), lines.join("\n") + "\n");
    fs.mkdirSync(path.join(dir, "winogrande"));
    fs.writeFileSync(path.join(dir, "winogrande", "dev.jsonl"), wino.map((w, i) => JSON.stringify({ qID: `w${i}`, ...w })).join("\n") + "\n");
    fs.mkdirSync(path.join(dir, "lambada"));
    fs.writeFileSync(path.join(dir, "lambada", "lambada_test.jsonl"), lamb.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("matches metrics recomputed from the definitions (acc and acc_norm disagree on purpose)", async () => {
    const events: ProgressEvent[] = [];
    const res = await evaluateTasks({ logProbs: bigramScorer, greedy: bigramGreedy }, tok, {
      tasks: ["arc_easy", "winogrande", "lambada"],
      dataDir: dir,
      batchSize: 2,
      onProgress: (e) => events.push(e),
    });
    // ARC
    const gold = [1, 0, 3];
    let acc = 0;
    let accNorm = 0;
    let disagree = 0;
    const preds: [number, number][] = [];
    arcItems.forEach((it, i) => {
      const ll = it.choices.map((c) => refLoglik(`Question: ${it.stem}\nAnswer:`, " " + c));
      const p = argmax(ll);
      const pn = argmax(ll.map((l, k) => l / it.choices[k].length));
      if (p !== pn) disagree++;
      preds.push([p, pn]);
      acc += p === gold[i] ? 1 : 0;
      accNorm += pn === gold[i] ? 1 : 0;
    });
    assert.ok(disagree > 0, "the hand-made items make acc and acc_norm pick differently");
    const arc = res.tasks.find((t) => t.task === "arc_easy")!;
    assert.equal(arc.n, 3);
    assert.equal(arc.metrics.acc, acc / 3);
    assert.equal(arc.metrics.acc_norm, accNorm / 3);
    assert.deepEqual(arc.items.map((it) => "pred" in it && [it.pred, it.predNorm]), preds);
    // WinoGrande
    let wacc = 0;
    wino.forEach((w) => {
      const blank = w.sentence.indexOf("_");
      const cont = " " + w.sentence.slice(blank + 1).trim();
      const ll = [w.option1, w.option2].map((o) => refLoglik(w.sentence.slice(0, blank) + o, cont));
      wacc += argmax(ll) === Number(w.answer) - 1 ? 1 : 0;
    });
    const wg = res.tasks.find((t) => t.task === "winogrande")!;
    assert.equal(wg.metrics.acc, wacc / 2);
    assert.deepEqual(Object.keys(wg.metrics), ["acc"]);
    // LAMBADA
    const lls = lamb.map((t) => {
      const { context, target } = lambadaSplit(t);
      return { ll: refLoglik(context, target), g: refGreedy(context, target) };
    });
    const lb = res.tasks.find((t) => t.task === "lambada_openai")!;
    assert.equal(lb.metrics.acc, lls.filter((x) => x.g).length / 2);
    const ppl = Math.exp(-(lls[0].ll + lls[1].ll) / 2);
    assert.ok(Math.abs((lb.metrics.perplexity as number) - ppl) / ppl < 1e-5);
    // table: headline first per task, n column, average over averaged tasks only
    const recs = res.table.toRecords();
    assert.deepEqual(recs.filter((r) => r.task === "arc_easy").map((r) => r.metric), ["acc_norm", "acc"]);
    assert.ok(recs.every((r) => String(r.task).startsWith("average") || r.n === (r.task === "arc_easy" ? 3 : 2)));
    assert.equal(res.average, ((accNorm / 3) + wacc / 2) / 2);
    assert.deepEqual(res.averagedTasks, ["arc_easy", "winogrande"]);
    assert.equal(recs[recs.length - 2].task, "average (paper)");
    // the acc average covers every task with acc, lambada_openai included
    assert.deepEqual(res.averages[1], { name: "acc", value: (acc / 3 + wacc / 2 + (lb.metrics.acc as number)) / 3, tasks: ["arc_easy", "winogrande", "lambada_openai"], metrics: ["acc", "acc", "acc"] });
    assert.ok(res.notes.some((n) => n.includes("arc_easy acc_norm, winogrande acc")));
    // progress counts items (3 ARC, 2 WinoGrande, 2 LAMBADA), not their 10 + 4 + 2 requests
    assert.equal(events[events.length - 1].done, 3 + 2 + 2);
    assert.equal(events[events.length - 1].total, 7);
    assert.ok(events.every((e, i) => e.done <= e.total && (i === 0 || e.done >= events[i - 1].done)));
    assert.ok(res.table.toText().includes("arc_easy"));
  });

  it("logSamples: one record per item with requests, token ids, log-likelihoods and the item's metrics", async () => {
    const res = await evaluateTasks({ logProbs: bigramScorer, greedy: bigramGreedy }, tok, { tasks: ["arc_easy", "lambada"], dataDir: dir, logSamples: true, bos: false });
    const arc = res.tasks[0];
    const s = arc.samples!;
    assert.equal(s.length, 3);
    s.forEach((rec, i) => {
      const it = arc.items[i] as { logliks: number[]; pred: number; predNorm: number; gold: number };
      assert.equal(rec.doc_id, i);
      assert.equal(rec.target, it.gold);
      assert.deepEqual(rec.loglikelihoods, it.logliks);
      assert.equal(rec.acc, it.pred === it.gold ? 1 : 0);
      assert.equal(rec.acc_norm, it.predNorm === it.gold ? 1 : 0);
      assert.equal(rec.arguments.length, arcItems[i].choices.length);
      rec.arguments.forEach(([c, x], k) => {
        assert.equal(c, `Question: ${arcItems[i].stem}\nAnswer:`);
        assert.equal(x, " " + arcItems[i].choices[k]);
        assert.deepEqual(rec.context_ids[k], tok.encode(c, { addBos: false }));
        assert.deepEqual([...rec.context_ids[k], ...rec.continuation_ids[k]], tok.encode(c + x, { addBos: false }));
      });
      assert.ok(rec.is_greedy.every((g) => typeof g === "boolean"));
    });
    const lb = res.tasks[1].samples!;
    assert.equal(lb[0].target, " cat");
    assert.equal(lb[0].perplexity, lb[0].loglikelihoods[0]);
    assert.equal(res.settings.bos, false);
    assert.ok(res.notes.some((n) => n.includes("no BOS")));
    const none = await evaluateTasks(bigramScorer, tok, { tasks: ["arc_easy"], dataDir: dir });
    assert.equal(none.tasks[0].samples, undefined);
  });

  it("limit, unknown task, missing data, no greedy scorer", async () => {
    const r = await evaluateTasks(bigramScorer, tok, { tasks: ["arc_easy", "lambada"], dataDir: dir, limit: 1 });
    assert.equal(r.tasks[0].n, 1);
    assert.equal(r.tasks[1].metrics.acc, null);
    assert.ok(typeof r.tasks[1].metrics.perplexity === "number");
    await assert.rejects(evaluateTasks(bigramScorer, tok, { tasks: ["nope"], dataDir: dir }), UsageError);
    await assert.rejects(evaluateTasks(bigramScorer, tok, { tasks: ["piqa"], dataDir: dir }), (e: Error) => e instanceof DataError && /piqa/.test(e.message));
    await assert.rejects(evaluateTasks(bigramScorer, tok, { tasks: ["arc_easy"], dataDir: dir, limit: 0 }), DataError);
  });
});

describe("eval/harness: stories260K end to end", function () {
  this.timeout(300_000);

  it("evaluateTasks with limit 5 per task: accuracies in [0, 1], n matches, ppl finite", async function () {
    const shared = requireShared(this);
    await initEngine();
    const { model, tokenizer } = await loadModel(path.join(shared, "models", "stories260K.gguf"));
    try {
      assert.ok(tokenizer);
      const names = TASKS.map((t) => t.name);
      const res = await evaluateTasks(modelScorer(model), tokenizer, { tasks: names, limit: 5, dataDir: path.join(shared, "data"), maxLength: 512 });
      assert.deepEqual(res.tasks.map((t) => t.task), names);
      for (const t of res.tasks) {
        assert.equal(t.n, 5, t.task);
        assert.equal(t.items.length, 5);
        for (const [m, v] of Object.entries(t.metrics)) {
          if (m === "perplexity") assert.ok(typeof v === "number" && Number.isFinite(v) && v > 1, `${t.task} ppl ${v}`);
          else assert.ok(typeof v === "number" && v >= 0 && v <= 1 && Number.isInteger(v * 5), `${t.task} ${m} ${v}`);
        }
      }
      // every choice log-likelihood is a finite negative number
      for (const t of res.tasks) for (const it of t.items) {
        const lls = "logliks" in it ? it.logliks : [it.loglik];
        assert.ok(lls.every((l) => Number.isFinite(l) && l < 0), t.task);
      }
      const recs = res.table.toRecords();
      assert.ok(recs.filter((r) => !String(r.task).startsWith("average")).every((r) => r.n === 5));
      assert.equal(res.averagedTasks.length, 6);
      assert.ok(res.table.toText().includes("winogrande"));
    } finally {
      model.dispose();
    }
  });
});

describe("eval/model-scorer: padded batches", () => {
  it("matches tokenLogProbs and the argmax of forward on ragged sequences (random tiny model)", async () => {
    await initEngine();
    const cfg = parseConfig({
      vocab_size: 48, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2,
      num_key_value_heads: 1, tie_word_embeddings: true,
    });
    const model = CausalLM.fromTensors(cfg, randomTensors(cfg, 7, 0.3));
    try {
      const rng = new Rng(4);
      const seqs = [9, 3, 17, 1, 9, 12].map((n) => Array.from({ length: n }, () => rng.int(0, 47)));
      const scorer = modelScorer(model, { maxBatchRows: 40 });
      const got = scorer.greedy!(seqs);
      const want = model.tokenLogProbs(seqs);
      seqs.forEach((s, i) => {
        assert.equal(got[i].logProbs.length, Math.max(0, s.length - 1));
        for (let t = 0; t < want[i].length; t++) assert.ok(Math.abs(got[i].logProbs[t] - want[i][t]) < 1e-5, `seq ${i} pos ${t}`);
        if (s.length < 2) return;
        const logits = model.forward([s]);
        const am = logits.argMax(-1).arraySync() as number[][];
        logits.dispose();
        for (let t = 0; t + 1 < s.length; t++) assert.equal(got[i].greedy[t], am[0][t] === s[t + 1] ? 1 : 0);
      });
      assert.throws(() => scorer.logProbs([[1, 48]]), DataError);
    } finally {
      model.dispose();
    }
  });
});
