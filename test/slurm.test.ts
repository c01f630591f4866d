import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { batchingPays } from "../src/engine";
import { cli } from "./support/cli";
import { requireShared, sharedPath, STORIES260K } from "./support/shared";

const ROOT = path.join(__dirname, "..");

/** Why the Slurm recipe cannot run here, or null when a cluster answers and the CLI is built. */
function unavailable(): string | null {
  const s = spawnSync("sinfo", ["-h", "-o", "%T"], { encoding: "utf8" });
  if (s.error || s.status !== 0) return `sinfo does not work (${s.error ? s.error.message : s.stderr.trim()}); start a cluster with scripts/slurm/local-cluster.sh start`;
  if (!/idle|mixed|allocated/.test(s.stdout)) return `no Slurm node is up (sinfo: ${s.stdout.trim() || "nothing"})`;
  if (!fs.existsSync(path.join(ROOT, "dist", "cli", "main.js"))) return "dist/ is not built (node scripts/build.js): the jobs run bin/sdmprune.js";
  return null;
}

describe("Slurm job array (scripts/slurm): 4 scoring tasks + merge-and-prune job equal one process", function () {
  this.timeout(600000);
  let dir: string;

  before(function () {
    requireShared(this);
    const why = unavailable();
    if (why) {
      // CI starts a one-node cluster (.ci/run), so there a missing cluster is a failure, not a skip
      if (process.env.CI) throw new Error(`CI is set but the Slurm recipe cannot run: ${why}`);
      console.warn(`\n  SKIPPED (Slurm): ${why}\n`);
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-slurm-"));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it("submit.sh 4 OUT ... --then prune: the merged scores equal the one-process run and the pruned model is written", async () => {
    const model = STORIES260K();
    const text = sharedPath("data", "tinystories", "tinystories_valid_first1000.txt");
    const cal = ["--model", model, "--text", text, "--stories", "1-200", "--samples", "8", "--seq-len", "32", "--seed", "3"];
    const out = path.join(dir, "run");
    const pruned = path.join(dir, "pruned");
    const sub = spawnSync(path.join(ROOT, "scripts", "slurm", "submit.sh"), ["4", out, ...cal, "--then", "--model", model, "--ratio", "0.2", "--out", pruned], { encoding: "utf8" });
    assert.equal(sub.status, 0, sub.stderr);
    const m = /scoring array job (\d+) \(4 tasks\), merge job (\d+)/.exec(sub.stdout);
    assert.ok(m, sub.stdout);
    const [array, merge] = [m[1], m[2]];

    const one = path.join(dir, "one.json");
    const r = await cli(["scores", ...cal, "--out", one]);
    assert.equal(r.code, 0, r.err);

    const t0 = Date.now();
    for (;;) {
      const q = spawnSync("squeue", ["-h", "-j", `${array},${merge}`, "-o", "%i %T"], { encoding: "utf8" });
      if (q.status === 0 && q.stdout.trim() === "") break;
      if (Date.now() - t0 > 300000) throw new Error(`Slurm jobs still queued after 300 s:\n${q.stdout}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    const logs = () => fs.readdirSync(out).filter((f) => f.endsWith(".out")).map((f) => `--- ${f}\n${fs.readFileSync(path.join(out, f), "utf8")}`).join("\n");
    const merged = path.join(out, "scores.json");
    assert.ok(fs.existsSync(merged), `no ${merged}; job logs:\n${logs()}`);
    for (let i = 0; i < 4; i++) assert.equal(JSON.parse(fs.readFileSync(path.join(out, `shard-${i}.json`), "utf8")).samples, 2);

    const a = JSON.parse(fs.readFileSync(merged, "utf8"));
    const b = JSON.parse(fs.readFileSync(one, "utf8"));
    assert.equal(a.samples, 8);
    assert.deepEqual(a.windows, b.windows);
    if (batchingPays()) a.sums.flat().forEach((v: number, i: number) => assert.ok(Math.abs(v - b.sums.flat()[i]) <= 1e-5 * Math.abs(v)));
    else {
      assert.deepEqual(a.exactSums, b.exactSums);
      assert.deepEqual(a.scores, b.scores);
    }
    assert.ok(fs.existsSync(path.join(pruned, "pruning.json")), `no pruned model; job logs:\n${logs()}`);
  });
});
