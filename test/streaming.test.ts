import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine, type BackendName } from "../src/engine";
import { UsageError } from "../src/errors";
import { floatToHalf, halfToFloat } from "../src/io/dtypes";
import { modelFingerprint } from "../src/importance/fingerprint";
import { parseConfig, type LlamaConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { writeModelFiles } from "../src/io/files";
import { loadModel, saveModel } from "../src/model/load";
import { randomTensors } from "../src/model/random";
import { Session } from "../src/session";
import { randomIds, relError } from "./reference/configs";
import { cli } from "./support/cli";
import { scoresOf } from "./support/scores";
import { requireShared, STORIES260K } from "./support/shared";

/**
 * Layer streaming (issue 20, docs/memory.md "Layer streaming"): a model whose weights stay outside the tensor
 * backend (weightsIn "host" or "disk") and come onto it one layer (and one head chunk) at a time computes what
 * the resident model computes, within float32 rounding (the head's log-sum-exp is accumulated across vocabulary
 * chunks); pruning slices host arrays to the same weights; float16 host storage stays within 1e-3 of float32;
 * and no tensor outlives a call. The vocabulary (600) spans three head chunks (256 rows each at least).
 */
const base = {
  vocab_size: 600,
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
};
const configs: [string, LlamaConfig][] = [
  ["tied", parseConfig({ ...base, tie_word_embeddings: true })],
  ["untied", parseConfig({ ...base, tie_word_embeddings: false })],
];

const backends: BackendName[] = ["cpu", "wasm"];
if (process.env.SDMPRUNE_BACKEND === "tensorflow") backends.push("tensorflow");

const T = 12;
const windows = [1, 2, 3].map((s) => randomIds(T, base.vocab_size, s));
const sd = { criterion: "sd-taylor" as const, alpha: 0.4, temperature: 0.5 };

for (const backend of backends) {
  for (const [kind, cfg] of configs) {
    describe(`layer streaming (${backend}, ${kind} head)`, function () {
      this.timeout(180_000);
      let resident: CausalLM;
      let host: CausalLM;
      let baseline = 0;

      before(async () => {
        await initEngine(backend);
        baseline = tf.memory().numTensors;
        const tensors = randomTensors(cfg, 11, 0.3);
        resident = CausalLM.fromTensors(cfg, tensors);
        host = CausalLM.fromTensors(cfg, tensors, "random", { weightsIn: "host" });
      });
      after(() => {
        resident.dispose();
        host.dispose();
        assert.equal(tf.memory().numTensors, baseline, "every tensor disposed");
      });

      it("holds only the final norm on the backend and says where its weights are", () => {
        assert.equal(host.weightsIn, "host");
        assert.ok(host.streamed && !resident.streamed);
        assert.equal(tf.memory().numTensors - baseline, resident.parameterNames().length + 1, "resident weights + the streamed model's norm");
        assert.throws(() => host.weights, (e: Error) => e instanceof UsageError && /streams its weights/.test(e.message));
        // scores files name the model they were computed on: the same whether its weights are streamed or not
        assert.deepEqual(modelFingerprint(host), modelFingerprint(resident));
      });

      it("gives the resident logits and token log-probabilities, leaving no tensor behind", () => {
        const check = () => {
          const a = resident.forward(windows);
          const b = host.forward(windows);
          const e = relError(a.dataSync(), b.dataSync());
          tf.dispose([a, b]);
          assert.ok(e.rel < 1e-5, `logits rel ${e.rel}`);
          const la = resident.tokenLogProbs(windows).flatMap((x) => Array.from(x));
          const lb = host.tokenLogProbs(windows).flatMap((x) => Array.from(x));
          assert.ok(relError(la, lb).rel < 1e-5, `log-probs rel ${relError(la, lb).rel}`);
          // generation streams each layer per step
          assert.deepEqual(host.generate([1, 2, 3], { maxNewTokens: 4, stopAtEos: false }), resident.generate([1, 2, 3], { maxNewTokens: 4, stopAtEos: false }));
        };
        check(); // builds the cached constants (RoPE tables, masks, the resident tied head)
        const before = tf.memory().numTensors;
        check();
        assert.equal(tf.memory().numTensors, before, "a streamed layer's tensors live only while it runs");
      });

      it("gives the resident sd-taylor scores (top-k teacher)", async () => {
        await scoresOf(host, windows, sd);
        const before = tf.memory().numTensors;
        const a = await scoresOf(resident, windows, sd);
        const b = await scoresOf(host, windows, sd);
        const e = relError(a, b);
        assert.ok(e.rel < 1e-5, `scores rel ${e.rel}`);
        assert.equal(tf.memory().numTensors, before);
      });

      it("float16 host storage: sd-taylor scores within 1e-3 (relative) of float32 at a trained model's weight scale", async () => {
        // scale 0.02 (the usual initialisation); the 0.3 of the other checks magnifies rounding through 3 layers
        const tensors = randomTensors(cfg, 11, 0.02);
        const full = CausalLM.fromTensors(cfg, tensors, "random", { weightsIn: "host" });
        const half = CausalLM.fromTensors(cfg, tensors, "random", { weightsIn: "host", hostFloat: "float16" });
        try {
          assert.equal(half.hostFloat, "float16");
          // saved as held: every value the float16 rounding of the original, in the Hugging Face layout
          const name = "model.layers.1.mlp.down_proj.weight";
          const saved = half.toTensors().get(name)!.data;
          const orig = tensors.get(name)!.data;
          assert.deepEqual(Array.from(saved), Array.from(orig, (v) => halfToFloat(floatToHalf(v))));
          const eh = relError(await scoresOf(full, windows, sd), await scoresOf(half, windows, sd));
          assert.ok(eh.rel < 1e-3 && eh.rel > 0, `float16 scores rel ${eh.rel}`);
        } finally {
          full.dispose();
          half.dispose();
        }
      });

      it("refuses what needs every weight resident, with the reason", async () => {
        assert.throws(
          () => host.gradients(windows.slice(0, 1), (z) => tf.sum(z) as tf.Scalar, (n) => n.includes("mlp")),
          (e: Error) => e instanceof UsageError && /weightsIn "host".*needs every weight resident/.test(e.message),
        );
        // the streamed head loss is sparse only: 8·(k+1) ≤ V (600 here), so top-80 and a full-vocabulary teacher are refused
        await assert.rejects(scoresOf(host, windows, sd, 80), (e: Error) => e instanceof UsageError && /a top-80 teacher: the sparse path needs 8·\(k\+1\) ≤ vocab_size 600.*smaller top-k/.test(e.message));
        await assert.rejects(scoresOf(host, windows, sd, 600), (e: Error) => e instanceof UsageError && /a full-vocabulary teacher/.test(e.message));
      });
    });
  }

  describe(`float16 host storage on stories260K (${backend})`, function () {
    this.timeout(120_000);
    it("sd-taylor scores within 1e-3 (relative) of float32", async function () {
      requireShared(this);
      await initEngine(backend);
      const file = STORIES260K();
      const full = (await loadModel(file, { weightsIn: "host" })).model;
      const half = (await loadModel(file, { weightsIn: "host", hostFloat: "float16" })).model;
      try {
        const w = [1, 2, 3, 4].map((s) => randomIds(64, full.config.vocab_size, s));
        // a sparse teacher (top 32): the streamed head loss needs 8·(k+1) ≤ V
        const e = relError(await scoresOf(full, w, sd, 32), await scoresOf(half, w, sd, 32));
        assert.ok(e.rel < 1e-3 && e.rel > 0, `float16 scores rel ${e.rel}`);
      } finally {
        full.dispose();
        half.dispose();
      }
    });
  });

  describe(`layer streaming through a Session, and from disk (${backend})`, function () {
    this.timeout(240_000);
    const cfg = configs[0][1];
    let dir: string;
    let baseline = 0;
    before(async () => {
      await initEngine(backend);
      baseline = tf.memory().numTensors;
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "sdm-stream-"));
      const m = CausalLM.fromTensors(cfg, randomTensors(cfg, 5, 0.3));
      await saveModel(path.join(dir, "model"), m, null, { format: "hf" });
      m.dispose();
    });
    after(() => {
      fs.rmSync(dir, { recursive: true, force: true });
      assert.equal(tf.memory().numTensors, baseline, "every tensor disposed");
    });

    it("scores, prunes, evaluates, undoes and saves as the resident model does; disk equals host", async () => {
      const src = path.join(dir, "model");
      const run = async (weightsIn: "heap" | "host" | "disk", hostFloat: "float32" | "float16" = "float32") => {
        const s = await Session.load(src, { backend, weightsIn, hostFloat: weightsIn === "heap" ? undefined : hostFloat });
        try {
          assert.equal(s.model.weightsIn, weightsIn);
          assert.equal(s.info().raw.weightsIn, weightsIn);
          await s.calibrate({ windows, topk: 8 });
          await s.score(sd);
          const scores = s.scores!.scores().flatMap((r) => Array.from(r));
          s.prune({ keep: 30 });
          const ppl = (await s.evaluate({ ppl: { windows, batchSize: 2 } })).raw.ppl!.ppl;
          const out = path.join(dir, `out-${weightsIn}-${hostFloat}`);
          await s.save(out, { format: "hf" });
          // streamed (host and disk weights are written chunk by chunk, src/io/tensor-stream.ts) in both formats
          // and output dtypes; and the same model written from whole arrays (no range reads): the same bytes
          const gguf = path.join(dir, `gguf-${weightsIn}-${hostFloat}`);
          await s.save(gguf, { format: "gguf", dtype: "f16" });
          if (weightsIn !== "heap") {
            const lazy = [...s.model.toTensors({ lazy: true })].filter(([k, t]) => k !== "model.norm.weight" && !t.readInto);
            assert.deepEqual(lazy.map(([k]) => k), [], "every streamed weight but the final norm (on the backend) is written in ranges");
          }
          const whole = path.join(dir, `whole-${weightsIn}-${hostFloat}`);
          const tensors = s.model.toTensors();
          assert.ok([...tensors.values()].every((t) => !t.readInto));
          await writeModelFiles(whole, { config: s.model.config, tensors, tokenizer: null }, { format: "hf" });
          s.undo();
          const undone = s.model.tokenLogProbs(windows.slice(0, 1))[0];
          const bytes = fs.readFileSync(path.join(out, "model.safetensors"));
          assert.ok(bytes.equals(fs.readFileSync(path.join(whole, "model.safetensors"))), `${weightsIn} ${hostFloat}: streamed save = whole-array save`);
          return { scores, ppl, bytes, gguf: fs.readFileSync(path.join(gguf, "model.gguf")), undone, widths: s.info().raw.widths };
        } finally {
          s.dispose();
        }
      };
      const heap = await run("heap");
      const host = await run("host");
      const disk = await run("disk");
      const host16 = await run("host", "float16");
      const disk16 = await run("disk", "float16");
      assert.ok(host16.bytes.equals(disk16.bytes), "float16 storage: disk saves what host saves");
      assert.ok(host16.gguf.equals(disk16.gguf));
      assert.ok(!host16.bytes.equals(host.bytes), "float16 storage rounds the saved values");
      assert.ok(heap.gguf.equals(host.gguf) && host.gguf.equals(disk.gguf), "GGUF f16 streamed = resident");
      assert.ok(relError(heap.scores, host.scores).rel < 1e-5);
      assert.deepEqual(host.scores, disk.scores, "disk reads the same values as host");
      assert.ok(Math.abs(heap.ppl - host.ppl) / heap.ppl < 1e-5, `ppl ${heap.ppl} vs ${host.ppl}`);
      assert.equal(host.ppl, disk.ppl);
      assert.ok(heap.bytes.equals(host.bytes), "the pruned model saved streamed is byte-identical to the resident one");
      assert.ok(host.bytes.equals(disk.bytes));
      assert.deepEqual(host.widths, [48, 48, 48], "undo restores the widths");
      assert.ok(relError(heap.undone, host.undone).rel < 1e-5);
      // the CLI: --offload gives the same perplexity; --offload-dtype without --offload is refused
      const wfile = path.join(dir, "w.json");
      fs.writeFileSync(wfile, JSON.stringify({ windows }));
      const viaCli = async (...extra: string[]) => cli(["ppl", "--model", src, "--windows", wfile, "--backend", backend, "--json", ...extra]);
      const rh = await viaCli();
      const rd = await viaCli("--offload", "disk");
      assert.equal(rd.code, 0, rd.err);
      assert.ok(Math.abs(JSON.parse(rh.out).ppl - JSON.parse(rd.out).ppl) / JSON.parse(rh.out).ppl < 1e-5);
      const bad = await viaCli("--offload-dtype", "f16");
      assert.equal(bad.code, 2);
      assert.match(bad.err, /--offload-dtype applies to offloaded weights/);
      // the disk model reads its layers from the file: a file changed afterwards is refused, never read silently
      const s = await Session.load(src, { backend, weightsIn: "disk" });
      try {
        const f = path.join(src, "model.safetensors");
        const st = fs.statSync(f);
        fs.utimesSync(f, st.atime, new Date(st.mtimeMs + 5000));
        assert.throws(() => s.model.tokenLogProbs(windows.slice(0, 1)), /changed after its header was read/);
      } finally {
        s.dispose();
      }
    });
  });
}
