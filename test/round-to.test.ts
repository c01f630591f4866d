import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { initEngine } from "../src/engine";
import { UsageError } from "../src/errors";
import { parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { randomTensors } from "../src/model/random";
import { resolvePrune, roundKeep } from "../src/prune";
import { planSdmprune } from "../src/recipe";
import { Session } from "../src/session";
import { cli } from "./support/cli";
import { requireShared, STORIES260K } from "./support/shared";

describe("prune: round-to", () => {
  it("rounds K to the nearest multiple of N, halves up, never 0 and never above the width", () => {
    // brute force: the multiple of n in [n, floor(w/n)·n] nearest to k, ties to the larger
    for (const n of [1, 3, 8, 64]) {
      for (const w of [n, 2 * n + 1, 172, 8192]) {
        if (w < n) continue;
        for (let k = 1; k <= w; k += Math.max(1, Math.floor(w / 97))) {
          const cands: number[] = [];
          for (let m = n; m <= w; m += n) cands.push(m);
          const best = cands.reduce((a, b) => (Math.abs(b - k) < Math.abs(a - k) || (Math.abs(b - k) === Math.abs(a - k) && b > a) ? b : a));
          assert.equal(roundKeep(k, n, w), best, `k ${k} n ${n} w ${w}`);
        }
      }
    }
    assert.equal(roundKeep(3, 8, 172), 8); // never 0
    assert.equal(roundKeep(172, 8, 172), 168); // never above the width
    assert.equal(roundKeep(4, 8, 172), 8); // half rounds up
    assert.throws(() => roundKeep(4, 8, 7), /width 7 cannot keep a multiple of 8/);
    assert.throws(() => roundKeep(4, 0, 7), UsageError);
  });

  it("applies to ratio, keep and mlpRatio, records the rule, and refuses global allocation", () => {
    const w = [172, 172];
    const p = resolvePrune({ ratio: 0.2, roundTo: 8 }, 64, w, w);
    assert.deepEqual(p.keep, [136, 136]); // floor(172·0.8) = 137 → 136
    assert.equal(p.roundTo, 8);
    assert.match(p.rule, /rounded to a multiple of 8 \(K = 136\)/);
    assert.deepEqual(resolvePrune({ keep: 100, roundTo: 64 }, 64, w, w).keep, [128, 128]);
    assert.deepEqual(resolvePrune({ keep: [90, 30], roundTo: 64 }, 64, w, w).keep, [64, 64]);
    assert.equal(resolvePrune({ ratio: 0.2 }, 64, w, w).roundTo, null);
    // rounding up to the full width of an already-multiple layer removes nothing: refused, not silently a no-op
    assert.throws(() => resolvePrune({ keep: 125, roundTo: 64 }, 64, [128], [128]), /removes no channels/);
    assert.throws(() => resolvePrune({ ratio: 0.2, roundTo: 8, allocation: "global" }, 64, w, w), /uniform allocation only/);
    // a bad request is reported as asked
    assert.throws(() => resolvePrune({ keep: 173, roundTo: 8 }, 64, w, w), /keep 173 channels/);
  });

  it("the two-stage plan rounds the final widths", () => {
    const cfg = parseConfig({ hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, tie_word_embeddings: true });
    const plain = planSdmprune(cfg, { target: 0.3 });
    const r = planSdmprune(cfg, { target: 0.3, roundTo: 8 });
    assert.equal(r.roundTo, 8);
    r.finalKeep.forEach((k, l) => {
      assert.equal(k % 8, 0);
      assert.ok(Math.abs(k - plain.finalKeep[l]) <= 4);
    });
    assert.ok(Math.abs(r.finalShare - plain.finalShare) < 0.05);
  });

  it("Session.prune records roundTo in the step and in pruning.json", async () => {
    await initEngine();
    const cfg = parseConfig({ hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 48, tie_word_embeddings: true });
    const s = Session.fromModel(CausalLM.fromTensors(cfg, randomTensors(cfg, 7, 0.2)));
    try {
      await s.score({ criterion: "magnitude" });
      const r = s.prune({ ratio: 0.3, roundTo: 8 }); // floor(24·0.7) = 16 → 16
      assert.deepEqual(r.widthsAfter, [16, 16, 16]);
      assert.equal(r.step.roundTo, 8);
      const rec = s.pruningRecord() as { history: { roundTo?: number }[] };
      assert.equal(rec.history[0].roundTo, 8);
      s.undo();
      const r2 = s.prune({ ratio: 0.45 }); // floor(24·0.55) = 13, no rounding
      assert.deepEqual(r2.widthsAfter, [13, 13, 13]);
      assert.equal(r2.step.roundTo, undefined);
    } finally {
      s.dispose();
    }
  });

  it("CLI prune --target --round-to prints the achieved share and saves multiples of N", async function () {
    requireShared(this);
    this.timeout(120_000);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-roundto-"));
    try {
      const r = await cli(["prune", "--model", STORIES260K(), "--target", "0.2", "--round-to", "8", "--criterion", "magnitude", "--out", out, "--force"]);
      assert.equal(r.code, 0, r.err);
      const rec = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8"));
      const widths: number[] = rec.current.intermediate_sizes;
      assert.ok(widths.every((w) => w % 8 === 0), `widths ${widths}`);
      assert.equal(rec.history[0].roundTo, 8);
      const share = (100 * (rec.original.params.total - rec.current.params.total)) / rec.original.params.total;
      assert.match(r.out, new RegExp(`achieved: ${share.toFixed(2)} % of all parameters removed \\(target 20.00 %\\), widths multiples of 8`));
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
