import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { initEngine } from "../src/engine";
import { readText } from "../src/data/text";
import { pplFromText } from "../src/eval/perplexity";
import { intermediateSizes } from "../src/model/config";
import { loadModel } from "../src/model/load";
import { ensureBuilt } from "./support/build";
import { requireShared, STORIES260K } from "./support/shared";
import { requireTmux, tmuxPane } from "./support/tmux";

/**
 * Drives the real binary (`node bin/sdmprune.js repl`) in a tmux pane at 80 columns, the way a person
 * over SSH would: keys are sent as text and Enter separately, each after the previous output is on screen.
 */
const ROOT = path.resolve(__dirname, "..");
const SESSION = `sdmprune-e2e-${process.pid}`;
const { tmux, visible, waitFor, idle, send, run } = tmuxPane(SESSION);

describe("repl end-to-end under tmux", function () {
  this.timeout(600000);
  let tmp: string;

  before(async function () {
    requireShared(this);
    await initEngine();
    requireTmux(this);
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sdmprune-e2e-"));
  });

  after(() => {
    spawnSync("tmux", ["kill-session", "-t", SESSION]);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("loads, calibrates, scores, prunes, evaluates, saves a GGUF that loads, cancels with Ctrl-C, exits", async () => {
    const model = STORIES260K();
    const textFile = path.join(tmp, "short.txt");
    fs.writeFileSync(textFile, "Once upon a time there was a little girl named Lily. She loved to play outside with her dog.\n\nOne day she found a big red ball in the park. She was very happy.\n");
    const outDir = path.join(tmp, "pruned");
    const config = path.join(tmp, "config");
    // CI=1 is passed on: the REPL must still paint live frames in a terminal (Ink suppresses them in CI).
    const timing = path.join(tmp, "timing.json");
    const cmd = `cd ${JSON.stringify(ROOT)} && env XDG_CONFIG_HOME=${JSON.stringify(config)} SDMPRUNE_REPL_TIMING=${JSON.stringify(timing)} node bin/sdmprune.js repl; echo "REPL-EXITED-$?"; sleep 600`;
    const t0 = Date.now();
    tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "40", cmd);
    await waitFor((s) => /^sdmprune>/m.test(s), "first prompt", 60000, visible);
    const firstPaintMs = Date.now() - t0;
    const inside = JSON.parse(fs.readFileSync(timing, "utf8")) as { firstPaintMs: number; cpuMs: number };
    console.log(
      `      first paint of the prompt (not asserted): ${firstPaintMs} ms from tmux start to prompt on screen; ` +
        `${inside.firstPaintMs} ms after node started, ${inside.cpuMs} ms CPU; load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`,
    );

    let s = await run(`load ${model}`, "MLP widths original");
    const original = intermediateSizes((await loadModel(model)).model.config);
    assert.ok(s.includes(`MLP widths original        ${original.join(", ")}`), "load shows the model's widths");
    s = await run("calibrate --samples 8 --seq-len 32", "teacher seconds");
    assert.match(s, /windows\s+8\n/);
    assert.match(visible(), /calib 8×32/, "status line shows the calibration");
    s = await run("score sd-taylor", "Importance scores");
    assert.match(s, /samples \(total\)\s+8\n/);
    s = await run("prune 0.2", "Pruning step 1");
    const expected = original.map((w) => Math.floor(w * 0.8 + 1e-9));
    assert.ok(s.includes(`widths after: ${expected.join(", ")}`), "prune shows the new widths");
    s = await run(`eval ppl ${textFile} --seq-len 16`, "ppl@16");
    const shownPpl = Number(/ppl@16\s+([\d.]+)/.exec(s)![1]);
    assert.ok(shownPpl > 1, `perplexity shown: ${shownPpl}`);
    s = await run(`save ${outDir} --gguf`, "saved");
    assert.ok(s.includes(path.join(outDir, "model.gguf")));

    // Ctrl-C during scoring: a longer calibration, then cancel once scoring shows progress.
    await run("calibrate --samples 32 --seq-len 64", "teacher seconds");
    await send("score sd-taylor");
    await waitFor((v) => /score \[.*\]\s+\d+% \d+\/32/.test(v), "scoring progress", 60000, visible);
    const tc = Date.now();
    tmux("send-keys", "-t", SESSION, "C-c");
    s = await waitFor((v) => v.includes("cancelled: score cancelled") && idle(visible()), "cancellation", 60000);
    console.log(`      Ctrl-C during scoring: back at the prompt after ${Date.now() - tc} ms (not asserted)`);
    s = await run("history", "Pruning history");
    const hist = s.slice(s.lastIndexOf("Pruning history"));
    assert.match(hist, /rule\s+ratio 0\.2/, "the session still answers history with the step made before");

    await send("exit");
    await waitFor((v) => v.includes("REPL-EXITED-0"), "exit", 30000, visible);

    // The saved model loads and is the pruned one: its widths, and the perplexity the REPL showed.
    const saved = await loadModel(path.join(outDir, "model.gguf"));
    try {
      assert.deepEqual(intermediateSizes(saved.model.config), expected);
      const r = await pplFromText((seqs) => saved.model.tokenLogProbs(seqs), saved.tokenizer!, readText(textFile), 16);
      assert.ok(Math.abs(r.ppl - shownPpl) <= 1e-3 * shownPpl, `saved model ppl ${r.ppl} vs shown ${shownPpl}`);
    } finally {
      saved.model.dispose();
    }
    assert.ok(fs.existsSync(path.join(outDir, "pruning.json")));
    // History was persisted in the config dir.
    const h = fs.readFileSync(path.join(config, "sdmprune", "history"), "utf8").split("\n");
    for (const c of ["calibrate --samples 8 --seq-len 32", "score sd-taylor", "prune 0.2", "exit"]) assert.ok(h.includes(c), `history has ${c}`);
  });
});
