import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Session } from "../src/session";
import { llamaCppAvailable, speedTable } from "../src/speed";
import { cli } from "./support/cli";
import { requireShared, STORIES260K } from "./support/shared";

/** node-llama-cpp is an optional dependency: without it these tests skip, loudly (and fail under CI, where it is installed). */
async function requireLlamaCpp(ctx: Mocha.Context): Promise<void> {
  if (await llamaCppAvailable()) return;
  if (process.env.CI) throw new Error("node-llama-cpp is required under CI but cannot be loaded");
  console.warn("\n  !!! SKIPPING: node-llama-cpp (optional dependency) is not installed; speed tests need it !!!\n");
  ctx.skip();
}

const FAST = { prefill: 32, decode: 8, repeats: 2, threads: 1 };

describe("speed: llama.cpp through node-llama-cpp", function () {
  this.timeout(180_000);

  it("Session.speed times the pruned model against the original written the same way", async function () {
    requireShared(this);
    await requireLlamaCpp(this);
    const s = await Session.load(STORIES260K());
    try {
      await s.score({ criterion: "magnitude" });
      s.prune({ ratio: 0.5 });
      const t = await s.speed(FAST);
      const { pruned, baseline } = t.raw;
      assert.ok(baseline);
      for (const r of [pruned, baseline!]) {
        assert.ok(r.prefillTokensPerSecond > 0 && Number.isFinite(r.prefillTokensPerSecond));
        assert.ok(r.decodeTokensPerSecond > 0 && Number.isFinite(r.decodeTokensPerSecond));
        assert.equal(r.prefillRuns.length, 2);
        assert.equal(r.prefillTokens, 32);
        assert.ok(r.loadSeconds > 0);
      }
      // half the MLP channels gone: llama.cpp holds fewer weight bytes, by the MLP share of the f32 tensors
      const removedMlpBytes = 3 * s.config.hidden_size * (s.originalConfig.intermediate_size as number - (s.config.intermediate_size as number)) * s.config.num_hidden_layers * 4;
      assert.ok(Math.abs(baseline!.modelBytes - pruned.modelBytes - removedMlpBytes) < 0.02 * removedMlpBytes, `${baseline!.modelBytes} - ${pruned.modelBytes} vs ${removedMlpBytes}`);
      const decodeRow = t.rows.find((r) => String(r[0]).startsWith("decode tokens/s"))!;
      assert.equal(decodeRow[3], pruned.decodeTokensPerSecond / baseline!.decodeTokensPerSecond);
      assert.equal(s.history.raw.length, 1, "the session is untouched");
      const alone = await s.speed({ ...FAST, baseline: false });
      assert.equal(alone.raw.baseline, null);
      assert.deepEqual(alone.columns, ["measure", "value"]);
    } finally {
      s.dispose();
    }
  });

  it("CLI speed --json on stories260K and a pruned GGUF; a missing file is a clear error", async function () {
    requireShared(this);
    await requireLlamaCpp(this);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-speed-"));
    try {
      const p = await cli(["prune", "--model", STORIES260K(), "--ratio", "0.25", "--criterion", "magnitude", "--format", "gguf", "--out", out, "--force"]);
      assert.equal(p.code, 0, p.err);
      const gguf = path.join(out, "model.gguf");
      const r = await cli(["speed", "--model", gguf, "--baseline", STORIES260K(), "--prefill", "32", "--decode", "8", "--repeats", "1", "--threads", "1", "--json"]);
      assert.equal(r.code, 0, r.err);
      const j = JSON.parse(r.out);
      assert.equal(j.pruned.fileBytes, fs.statSync(gguf).size);
      assert.equal(j.baseline.fileBytes, fs.statSync(STORIES260K()).size);
      assert.equal(speedTable(j).rows.length, 6);
      const bad = await cli(["speed", "--model", path.join(out, "nope.gguf")]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.err, /nope\.gguf is not a file/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
