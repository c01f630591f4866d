import { strict as assert } from "node:assert";
import { ArgError } from "../repl/args";
import type { Block, RunContext } from "../repl/blocks";
import { formatNumber } from "../repl/chart";
import { parseCommand } from "../repl/commands";
import { replWords, SessionRunner } from "../repl/runner";
import { tableText } from "../repl/table-text";
import { Session } from "../src/session";
import { Table } from "../src/table";
import { cli } from "./support/cli";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

// The REPL speaks the CLI's vocabulary (one spelling and one range convention per concept) and reaches
// the whole workflow (story ranges, target and two-stage pruning, recovery) through Session calls.

function ctx(width = 80): RunContext {
  return { signal: new AbortController().signal, onProgress: () => {}, width, ascii: true };
}
const textOf = (blocks: Block[]) => blocks.map((b) => b.text).join("\n");

describe("repl: one vocabulary with the CLI", () => {
  it("refuses old spellings and the other range conventions with the one to use", () => {
    const cases: [string, RegExp][] = [
      ["score sd-taylor --t 1", /score: --t is spelled --temperature \(as in the CLI\)/],
      ["generate hi --tokens 5", /generate: --tokens is spelled --max-new-tokens/],
      ["prune 0.2 --layers 1-3", /--layers expects START:END \(0-based, end exclusive, as in the CLI\), got "1-3"; layers 1 to 3 are 1:4/],
      ["calibrate --storie 1-20", /unknown option --storie \(did you mean --stories\?\)/],
      ["calibrate --stories 1:20", /--stories expects a story range A-B \(1-based, inclusive\)/],
      ["prune 0.2 --two-stage", /--two-stage prunes all layers uniformly/],
      ["prune --keep 10 --alpha 0.3", /--alpha and --temperature belong to --two-stage/],
      ["recover", /recover: --steps N is required/],
      ["recover --steps 2 --loss kd --stories 1-5", /--loss kd trains on the calibration windows/],
      ["eval tasks piqa --stories 1-2", /eval: --stories applies to ppl/],
    ];
    for (const [line, re] of cases) assert.throws(() => parseCommand(line), (e: unknown) => e instanceof ArgError && re.test(e.message), `${line}`);
    assert.deepEqual(parseCommand("calibrate --stories 1-200 --samples 4"), { kind: "calibrate", samples: 4, seqLen: undefined, seed: undefined, text: undefined, stories: "1-200" });
    const p = parseCommand("prune --two-stage --target 0.2 --alpha 0.4");
    assert.ok(p && p.kind === "prune" && p.twoStage && p.target === 0.2 && p.alpha === 0.4);
  });

  it("says library errors in REPL commands", () => {
    assert.equal(replWords("no importance scores: call score() (or loadScores) before prune()"), 'no importance scores: run "score CRITERION" (or "scores load FILE") before "prune"');
    assert.equal(
      replWords("all 4 calibration windows are already scored (4 samples); calibrate() with more samples, or mergeScores() from another run"),
      'all 4 calibration windows are already scored (4 samples); run "calibrate --samples N" with more windows, or "scores merge FILE" from another run',
    );
    assert.doesNotMatch(replWords('criterion "wanda" needs calibration windows: call calibrate() first'), /\(\)/);
  });

  it("charts print numbers as the library's tables do", () => {
    const t = new Table(["v"], []);
    for (const v of [0, 3, 172, 260032, 0.5, 1.23456, 4.2e-5, 123.456789, 2.5e8, -0.0123]) assert.equal(formatNumber(v), t.format(v), String(v));
  });

  it("wraps a table's last text column instead of cutting it", () => {
    const msg = "started a new accumulator (criterion changed from sd-taylor to ce-taylor); the previous sd-taylor scores (32 samples) were replaced";
    const t = new Table(["field", "value"], [["criterion", "ce-taylor"], ["accumulator", msg], ["samples", 32]], { title: "Importance scores" });
    for (const w of [60, 80, 120]) {
      const out = tableText(t, w);
      for (const l of out.split("\n")) assert.ok(l.length <= w, `${l.length} <= ${w}: ${l}`);
      assert.equal(out.split("\n").map((l) => l.slice("accumulator  ".length).trim()).join(" ").includes(msg), true, `whole message at ${w} columns:\n${out}`);
    }
  });
});

describe("repl: the workflow through Session calls on stories260K", function () {
  this.timeout(180000);
  let runner: SessionRunner;
  let text: string;
  const run = async (line: string, width = 80) => textOf(await runner.execute(parseCommand(line)!, ctx(width)));

  before(async function () {
    requireShared(this);
    text = sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");
    runner = new SessionRunner({ openSession: (p) => Session.load(p) });
    await run(`load ${STORIES260K()}`);
  });
  after(() => runner?.close());

  it("calibrates on a story range, prunes by ratio and by target; the layers chart is scaled to the original width", async () => {
    const c = await run(`calibrate --text ${text} --stories 1-100 --samples 4 --seq-len 32 --seed 0`);
    assert.match(c, /stories 1-100/);
    const s = runner.current as unknown as Session;
    assert.equal(s.pruningRecord().calibration && (s.pruningRecord().calibration as { stories: string }).stories, "1-100");
    await run("score ce-taylor");
    await run("prune 0.3");
    const widths = s.info().raw.widths;
    const chart = await run("layers");
    const lines = chart.split("\n");
    const at = lines.findIndex((l) => l.startsWith("MLP channels kept per layer"));
    const bars = lines.slice(at + 1, at + 1 + widths.length);
    const full = 80 - 2 - `${widths[0]}/172`.length - 4; // label "L0", note "120/172", separators
    for (const [l, line] of bars.entries()) {
      assert.ok(line.includes(`${widths[l]}/172`), line);
      const len = (line.match(/#+/)?.[0] ?? "").length;
      assert.equal(len, Math.round((full * widths[l]) / 172), `bar ${l} is ${widths[l]}/172 of the full width, not full: ${line}`);
    }
    await run("undo");
    const t = await run("prune --target 0.2");
    assert.match(t, /Pruning step 1/);
    const removed = 1 - s.info().raw.params.total / s.info().raw.originalParams.total;
    assert.ok(Math.abs(removed - 0.2) < 0.02, `target 0.2 removed ${removed}`);
    await assert.rejects(runner.execute(parseCommand("prune --two-stage --target 0.2")!, ctx()), /prune --two-stage starts from the original model, but 1 pruning step\(s\) are applied/);
    await run("undo");
  });

  it("eval ppl with --stories gives the CLI's perplexity under the same named protocol", async () => {
    const e = await run(`eval ppl ${text} --stories 500-510 --seq-len 32`, 200);
    const c = await cli(["ppl", "--model", STORIES260K(), "--text", text, "--stories", "500-510", "--seq-len", "32", "--json"]);
    const j = JSON.parse(c.out);
    assert.match(e, /protocol documents: stories 500-510 of 1000 joined/);
    assert.ok(e.includes(new Table(["v"], [[j.ppl]]).format(j.ppl)), `${e}\n${j.ppl}`);
  });

  it("runs the two-stage recipe and recovery; undo after recovery is refused in REPL words", async () => {
    const r = await run("prune --two-stage --target 0.2");
    assert.match(r, /SDMPrune \(two stages\)/);
    const s = runner.current as unknown as Session;
    assert.equal(s.info().raw.steps, 2);
    const rec = await run(`recover --steps 2 --data ${text} --stories 200-220 --seq-len 32`, 120);
    assert.match(rec, /merged into the weights/);
    await assert.rejects(runner.execute(parseCommand("undo")!, ctx()), (e: Error) => /"undo" is not available after "recover"/.test(e.message) && !/\(\)/.test(e.message));
  });
});
