import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type * as React from "react";
import { App } from "../repl/app";
import { ArgError, splitWords } from "../repl/args";
import { barChart } from "../repl/chart";
import { colorEnabled } from "../repl/color";
import { SPECS, parseCommand, helpText } from "../repl/commands";
import { complete } from "../repl/complete";
import { History, defaultHistoryFile } from "../repl/history";
import { loadInk } from "../repl/ink";
import { progressLine } from "../repl/progress";
import { SessionRunner } from "../repl/runner";
import type { ReplLibrary } from "../repl/session-api";
import type { Runner } from "../repl/blocks";
import { Session } from "../src/session";
import { DEFAULT_LORA } from "../src/train/lora";
import { DEFAULT_RECOVERY_LR } from "../src/train/recover";
import { PPL_BATCH_BUDGET_BYTES, PPL_BATCH_WINDOWS, PPL_BATCH_WINDOWS_NATIVE } from "../src/eval/ppl-batch";
import { requireShared, STORIES260K } from "./support/shared";


type Rendered = {
  lastFrame(): string | undefined;
  frames: string[];
  stdin: { write(s: string): void };
  unmount(): void;
};
let render: (el: React.ReactElement) => Rendered;

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

/** Types a line and then Enter separately (a single "line\r" chunk is read as a paste). */
async function typeLine(r: Rendered, line: string): Promise<void> {
  r.stdin.write(line);
  await tick();
  r.stdin.write("\r");
  await tick();
}

async function waitFor(r: Rendered, pred: (frame: string) => boolean, what: string, timeoutMs = 60000): Promise<string> {
  const t0 = Date.now();
  for (;;) {
    const f = r.lastFrame() ?? "";
    if (pred(f)) return f;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; last frame:\n${f}`);
    await tick(20);
  }
}

/** No job is running (the job view shows this hint until it ends). */
const idle = (f: string) => !f.includes("(Ctrl-C to cancel)") && !f.includes("cancelling…");

/** The text on the prompt line being edited (the last prompt on screen), without the cursor cell. */
function promptOf(f: string): string | null {
  const ls = f.split("\n");
  for (let i = ls.length - 1; i >= 0; i--) if (/^sdmprune>( |$)/.test(ls[i])) return ls[i].slice("sdmprune> ".length).trimEnd();
  return null;
}

describe("repl: command grammar", () => {
  it("recover's help states the library's defaults (the REPL passes unset flags through to them)", () => {
    const spec = SPECS.find((x) => x.name === "recover")!;
    const stated = (help: string): number => Number(/\(default ([0-9.e+-]+)\)/.exec(help)?.[1]);
    assert.equal(stated(spec.flags.lr.help), DEFAULT_RECOVERY_LR);
    assert.equal(stated(spec.flags["lora-r"].help), DEFAULT_LORA.r);
    assert.match(spec.details.join(" "), new RegExp(`r ${DEFAULT_LORA.r}, alpha ${DEFAULT_LORA.alpha}`));
  });
  it("eval's --batch-size help states the library's default perplexity batch", () => {
    const help = SPECS.find((x) => x.name === "eval")!.flags["batch-size"].help;
    assert.match(help, new RegExp(`default ${PPL_BATCH_WINDOWS_NATIVE} on the native backend, ${PPL_BATCH_WINDOWS} on the others; fewer where a batch would need over ${PPL_BATCH_BUDGET_BYTES / 2 ** 20} MiB`));
    assert.equal((parseCommand("eval ppl a.txt --batch-size 3") as { batchSize?: number }).batchSize, 3);
    assert.throws(() => parseCommand("eval tasks piqa --batch-size 3"), /--batch-size applies to ppl/);
  });
  it("splits words with quotes and escapes", () => {
    assert.deepEqual(
      splitWords(`load "my dir/model.gguf" a\\ b 'x y'`).map((w) => w.text),
      ["load", "my dir/model.gguf", "a b", "x y"],
    );
    assert.throws(() => splitWords(`load "open`), /unterminated double quote/);
  });

  it("parses every command form into typed values", () => {
    assert.deepEqual(parseCommand("calibrate --samples 8 --seq-len=64 --seed -3 --text t.txt"), {
      kind: "calibrate",
      samples: 8,
      seqLen: 64,
      seed: -3,
      text: "t.txt",
      stories: undefined,
    });
    assert.deepEqual(parseCommand("score sd-taylor --alpha 0.5 --temperature 2 --samples 4"), { kind: "score", criterion: "sd-taylor", alpha: 0.5, temperature: 2, samples: 4 });
    const prune = { kind: "prune", ratio: undefined, keep: undefined, target: undefined, twoStage: false, layers: undefined, allocation: undefined, alpha: undefined, temperature: undefined };
    assert.deepEqual(parseCommand("prune 0.25 --layers 1:4"), { ...prune, ratio: 0.25, layers: [1, 4] });
    assert.deepEqual(parseCommand("prune --keep 100"), { ...prune, keep: 100 });
    assert.deepEqual(parseCommand("eval ppl a.txt tasks arc_easy,piqa --limit 5"), { kind: "eval", ppl: "a.txt", tasks: ["arc_easy", "piqa"], limit: 5, seqLen: undefined, stories: undefined, protocol: undefined, batchSize: undefined });
    assert.deepEqual(parseCommand('generate "Once upon" a time --max-new-tokens 5'), { kind: "generate", prompt: "Once upon a time", maxNewTokens: 5, temperature: undefined, seed: undefined });
    assert.deepEqual(parseCommand("save out --gguf"), { kind: "save", dir: "out", gguf: true, force: false, padMlp: false });
    assert.deepEqual(parseCommand("scores merge s.json"), { kind: "scores", action: "merge", file: "s.json", files: ["s.json"] });
    assert.deepEqual(parseCommand("scores merge a.json b.json"), { kind: "scores", action: "merge", file: "a.json", files: ["a.json", "b.json"] });
    assert.deepEqual(parseCommand("scores save s.json"), { kind: "scores", action: "save", file: "s.json", files: ["s.json"] });
    assert.deepEqual(parseCommand("quit"), { kind: "exit" });
    assert.equal(parseCommand("   "), null);
  });

  it("says what was expected on bad arguments", () => {
    const cases: [string, RegExp][] = [
      ["prune 2", /prune: RATIO expects a number with 0 < r < 1, got "2"/],
      ["prune", /prune: expected RATIO .*, --keep K or --target R, got nothing/],
      ["prune 0.2 --keep 3", /either RATIO, --keep K or --target R, not both/],
      ["calibrate --samples abc", /calibrate: --samples expects a positive integer, got "abc"/],
      ["calibrate --samples", /--samples expects a positive integer, got nothing/],
      ["calibrate --bogus 1", /calibrate: unknown option --bogus; expected --text, --stories, --samples, --seq-len, --seed/],
      ["score", /score: expected a CRITERION \(sd-taylor, /],
      ["score sd-taylor --alpha 2", /--alpha expects a number in \[0, 1\], got 2/],
      ["prune 0.2 --layers 3:1", /START:END with START < END, got "3:1"/],
      ["scores frob x", /scores: expected save, load or merge, got "frob"/],
      ["eval", /eval: expected "ppl FILE" and\/or "tasks a,b", got nothing/],
      ["undo now", /undo: unexpected argument "now"/],
      ["scroe sd-taylor", /unknown command "scroe" \(did you mean "score"\?\)/],
    ];
    for (const [line, re] of cases) assert.throws(() => parseCommand(line), (e: unknown) => e instanceof ArgError && re.test(e.message), line);
  });

  it("has help for every command that shows its usage and options", () => {
    const all = helpText();
    for (const s of SPECS) {
      assert.ok(all.includes(`  ${s.name} `), `overview lists ${s.name}`);
      const one = helpText(s.name);
      assert.ok(one.startsWith(`usage: ${s.usage}`), s.name);
      for (const f of Object.keys(s.flags)) assert.ok(one.includes(`--${f}`), `${s.name} help shows --${f}`);
    }
    for (const text of [all, ...SPECS.map((sp) => helpText(sp.name))])
      for (const line of text.split("\n")) assert.ok(line.length <= 80, `help fits 80 columns: ${line}`);
  });
});

describe("repl: completion, history, charts, progress, colour", () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-repl-"));
    fs.mkdirSync(path.join(dir, "models"));
    fs.writeFileSync(path.join(dir, "models", "tiny.gguf"), "");
    fs.writeFileSync(path.join(dir, "models", "tinier.gguf"), "");
    fs.writeFileSync(path.join(dir, "notes.txt"), "");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("completes commands, options, fixed words and paths", () => {
    assert.deepEqual(complete("cal", 3, dir)?.candidates, ["calibrate "]);
    assert.deepEqual(complete("sc", 2, dir)?.candidates, ["score", "scores"]);
    assert.equal(complete("sc", 2, dir)?.common, "score");
    assert.deepEqual(complete("calibrate --se", 14, dir)?.candidates, ["--seq-len", "--seed"]);
    assert.deepEqual(complete("score sd-t", 10, dir)?.candidates, ["sd-taylor "]);
    assert.deepEqual(complete("load mo", 7, dir)?.candidates, ["models/"]);
    const c = complete("load models/ti", 14, dir);
    assert.deepEqual(c?.candidates, ["models/tinier.gguf", "models/tiny.gguf"]);
    assert.equal(c?.common, "models/tin");
    assert.equal(c?.start, 5);
    assert.deepEqual(complete("calibrate --text no", 19, dir)?.candidates, ["notes.txt "]);
    assert.deepEqual(complete("eval ppl no", 11, dir)?.candidates, ["notes.txt "]);
    assert.equal(complete("calibrate --samples ", 20, dir), null);
  });

  it("persists history in XDG_CONFIG_HOME/sdmprune/history", () => {
    const file = defaultHistoryFile({ XDG_CONFIG_HOME: dir });
    assert.equal(file, path.join(dir, "sdmprune", "history"));
    assert.equal(defaultHistoryFile({ HOME: "/home/x" } as NodeJS.ProcessEnv).endsWith(path.join(".config", "sdmprune", "history")), true);
    const h = new History(file);
    h.add("load a.gguf");
    h.add("load a.gguf");
    h.add("prune 0.2");
    assert.deepEqual(new History(file).entries, ["load a.gguf", "prune 0.2"]);
  });

  it("scales bar charts to the width", () => {
    const bars = [1, 4, 2].map((v, i) => ({ label: `L${i}`, value: v }));
    for (const w of [30, 80, 120]) {
      const lines = barChart(bars, w, { ascii: true });
      for (const l of lines) assert.ok(l.length <= w, `${l.length} <= ${w}`);
      const lens = lines.map((l) => (l.match(/#+/)?.[0].length ?? 0));
      assert.equal(lens[1], w - 2 - 1 - 4, "largest bar fills the space left by label (2), value (1) and separators (4)");
      assert.equal(lens[0], Math.round(lens[1] / 4));
    }
  });

  it("formats progress with samples, tokens/s and ETA", () => {
    const l = progressLine({ phase: "score", done: 2, total: 8, tokens: 500 }, 5, 80, true);
    assert.match(l, /^score \[#+\.+\]  25% 2\/8  100 tok\/s  ETA 15s$/);
    assert.ok(l.length <= 80);
    assert.match(progressLine({ phase: "teacher", done: 1, total: 4, tokensPerSecond: 1234.4, etaSeconds: 75 }, 1, 80), /1,234 tok\/s  ETA 1m15s/);
  });

  it("turns colour off with NO_COLOR or without a TTY", () => {
    assert.equal(colorEnabled({ isTTY: true }, {}), true);
    assert.equal(colorEnabled({ isTTY: true }, { NO_COLOR: "1" }), false);
    assert.equal(colorEnabled({ isTTY: false }, {}), false);
  });
});

describe("repl: Ink app", function () {
  this.timeout(120000);
  before(async () => {
    await loadInk(false);
    ({ render } = (await import("ink-testing-library")) as unknown as { render: typeof render });
  });

  const lib: ReplLibrary = { openSession: (p) => Session.load(p) };

  function start(runner = new SessionRunner(lib)) {
    const r = render(<App runner={runner} history={new History(null)} color={false} columns={80} />);
    return { r, runner };
  }

  it("shows help, errors for an unknown command and a bad argument, and keeps going", async () => {
    const { r, runner } = start();
    try {
      await waitFor(r, (f) => f.includes("sdmprune>"), "prompt");
      await typeLine(r, "help");
      let f = await waitFor(r, (x) => x.includes("commands (help COMMAND for details):"), "help");
      for (const s of SPECS) assert.ok(f.includes(`  ${s.name}`), s.name);
      await typeLine(r, "help score");
      f = await waitFor(r, (x) => x.includes("usage: score CRITERION"), "help score");
      assert.ok(f.includes("--alpha A"));
      await typeLine(r, "frobnicate now");
      f = await waitFor(r, (x) => x.includes('error: unknown command "frobnicate"'), "unknown command error");
      await typeLine(r, "prune 1.5");
      f = await waitFor(r, (x) => x.includes('error: prune: RATIO expects a number with 0 < r < 1, got "1.5"'), "bad argument error");
      await typeLine(r, "undo");
      f = await waitFor(r, (x) => x.includes('error: no model loaded; use "load PATH" first'), "no model error");
      // still alive: a further command is answered
      await typeLine(r, "help undo");
      f = await waitFor(r, (x) => x.includes("usage: undo"), "help after errors");
      assert.ok(idle(f));
      for (const line of f.split("\n")) assert.ok(line.length <= 80, `fits 80 columns: ${line}`);
    } finally {
      r.unmount();
      runner.close();
    }
  });

  it("recalls history with the arrow keys and completes with Tab", async () => {
    const { r, runner } = start();
    try {
      await waitFor(r, (f) => f.includes("sdmprune>"), "prompt");
      await typeLine(r, "help load");
      await waitFor(r, (f) => f.includes("usage: load PATH"), "help load");
      await typeLine(r, "help save");
      await waitFor(r, (f) => f.includes("usage: save DIR"), "help save");
      r.stdin.write("\x1b[A"); // up
      await waitFor(r, (f) => promptOf(f) === "help save", "recalled last line");
      r.stdin.write("\x1b[A");
      await waitFor(r, (f) => promptOf(f) === "help load", "recalled first line");
      r.stdin.write("\x1b[B"); // down, down: back to the (empty) line being edited
      await waitFor(r, (f) => promptOf(f) === "help save", "down once");
      r.stdin.write("\x1b[B");
      await waitFor(r, (f) => promptOf(f) === "", "empty line");
      r.stdin.write("calib");
      await tick();
      r.stdin.write("\t");
      await waitFor(r, (f) => promptOf(f) === "calibrate", "completed command");
    } finally {
      r.unmount();
      runner.close();
    }
  });

  it("cancels a running job with Ctrl-C and exits on a second Ctrl-C at the idle prompt", async () => {
    // A stand-in runner whose job only ends through its AbortSignal, as the Session's long operations do.
    const seen: string[] = [];
    const runner: Runner = {
      async execute(cmd, ctx) {
        seen.push(cmd.kind);
        if (cmd.kind !== "score") return [{ kind: "text", text: `ran ${cmd.kind}` }];
        ctx.onProgress({ phase: "score", done: 1, total: 10, tokens: 64 });
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        throw Object.assign(new Error("score cancelled after 1 of 10 windows"), { name: "CancelledError" });
      },
      status: () => null,
      close: () => seen.push("close"),
    };
    let exited = 0;
    const r = render(<App runner={runner} history={new History(null)} color={false} columns={80} onExit={() => exited++} />);
    try {
      await waitFor(r, (f) => f.includes("sdmprune>"), "prompt");
      await typeLine(r, "score sd-taylor");
      await waitFor(r, (f) => /score \[#*\.*\] +10% 1\/10/.test(f) && f.includes("(Ctrl-C to cancel)"), "progress");
      r.stdin.write("\x03");
      let f = await waitFor(r, (x) => x.includes("cancelled: score cancelled after 1 of 10 windows") && idle(x), "cancelled");
      assert.equal(exited, 0, "a Ctrl-C that cancels a job does not exit");
      await typeLine(r, "history");
      f = await waitFor(r, (x) => x.includes("ran history"), "next command answered");
      r.stdin.write("\x03");
      f = await waitFor(r, (x) => x.includes("press Ctrl-C again to exit"), "exit hint");
      assert.equal(exited, 0);
      r.stdin.write("\x03");
      await waitFor(r, () => exited === 1, "exit");
      assert.deepEqual(seen, ["score", "history", "close"]);
    } finally {
      r.unmount();
    }
  });

  it("runs calibrate + score on stories260K with a progress frame, then layers, prune and undo", async function () {
    requireShared(this);
    const { r, runner } = start();
    try {
      await waitFor(r, (f) => f.includes("sdmprune>"), "prompt");
      await typeLine(r, `load ${STORIES260K()}`);
      await waitFor(r, (f) => f.includes("MLP widths original") && idle(f), "model loaded");
      const session = runner.current!;
      const I = session.info().raw.originalWidths;
      const L = I.length;

      await typeLine(r, "calibrate --samples 6 --seq-len 32 --seed 1");
      let f = await waitFor(r, (x) => x.includes("teacher seconds") && idle(x), "calibration table");
      assert.match(f, /windows\s+6\n/);
      assert.match(f, /seq len\s+32\n/);

      const before = r.frames.length;
      await typeLine(r, "score sd-taylor --alpha 0.5 --temperature 1");
      f = await waitFor(r, (x) => x.includes("Importance scores") && idle(x), "score table");
      if (process.env.DEBUG_REPL) console.log(r.frames.slice(before).filter((x) => /ETA|running/.test(x)).map((x) => x.split("\n").slice(-4).join("\n")));
      const progress = r.frames.slice(before).find((x) => /score \[#*\.*\] +\d+% [1-6]\/6/.test(x));
      assert.ok(progress, "a progress frame with samples done / total was shown");
      assert.match(progress!, /ETA /);
      const info = session.info().raw;
      assert.equal(info.criterion, "sd-taylor");
      assert.equal(info.scoredSamples, 6);
      assert.match(f, new RegExp(`samples \\(total\\)\\s+${info.scoredSamples}\\n`));
      assert.match(f, /sd-taylor ×6/, "status line shows criterion and samples");

      await typeLine(r, "layers");
      f = await waitFor(r, (x) => x.includes("mean sd-taylor score per layer") && idle(x), "layers chart");
      const means = session.scoreSummary().rows.map((row) => Number(row[row.length - 1]));
      const chart = f.slice(f.indexOf("mean sd-taylor score per layer")).split("\n").slice(1, L + 1);
      const barLen = chart.map((l) => l.match(/#*/g)!.join("").length);
      const top = means.indexOf(Math.max(...means));
      assert.equal(Math.max(...barLen), barLen[top], "the layer with the largest mean score has the longest bar");
      for (let l = 0; l < L; l++) {
        assert.ok(chart[l].startsWith(`L${l} │`), chart[l]);
        assert.ok(Math.abs(barLen[l] - (barLen[top] * means[l]) / means[top]) <= 1, `bar ${l} proportional to its mean`);
        assert.ok(f.includes(`L${l} │`) && f.includes(`${I[l]}/${I[l]}`));
      }

      await typeLine(r, "prune 0.2");
      f = await waitFor(r, (x) => x.includes("Pruning step 1") && idle(x), "prune table");
      const pruned = session.info().raw.widths;
      assert.deepEqual(pruned, I.map((w) => Math.floor(w * 0.8 + 1e-9)));
      assert.ok(f.includes(`widths after: ${pruned.join(", ")}`));

      await typeLine(r, "undo");
      f = await waitFor(r, (x) => x.includes("undid step 1") && idle(x), "undo");
      assert.deepEqual(session.info().raw.widths, I);
      assert.ok(f.includes(`MLP widths back to ${I.join(", ")}`));
      await typeLine(r, "history");
      f = await waitFor(r, (x) => x.includes("Pruning history") && idle(x), "history");
      assert.equal(session.info().raw.steps, 0);
      assert.ok(f.includes("(no pruning steps yet)"));

      // --layers S:E is end-exclusive, as in the CLI and the library: only layers 1 and 2 are pruned.
      await typeLine(r, "prune --keep 100 --layers 1:3");
      f = await waitFor(r, (x) => x.includes("Pruning step 1") && idle(x), "prune --layers");
      const partial = I.map((w, l) => (l >= 1 && l <= 2 ? 100 : w));
      assert.deepEqual(session.info().raw.widths, partial);
      assert.match(f, new RegExp(`MLP ${partial.join(",")}`), "status line lists the per-layer widths");
      await typeLine(r, "undo");
      await waitFor(r, (x) => (x.match(/undid step 1/g) ?? []).length === 2 && idle(x), "second undo");
      assert.deepEqual(session.info().raw.widths, I);
    } finally {
      r.unmount();
      runner.close();
    }
  });
});
