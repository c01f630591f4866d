import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { DataError, FormatError, NumericError, UsageError } from "../errors";
import { writeDirAtomic } from "../io/atomic";
import { readSafetensors, writeSafetensors } from "../io/safetensors";
import type { TensorMap } from "../io/tensors";
import { mixedLoss, type LossSpec } from "../loss";
import { layerParamName, type CausalLM, type ModelWeights } from "../model/causal-lm";
import { Progress } from "../progress";
import { Rng } from "../rng";
import { Table } from "../table";
import { defaultTopk, TeacherCache } from "../teacher";
import { loadModel } from "../model/load";
import { checkContext, type ResourceOptions } from "../resources";
import type { RunOptions, TextTokenizer } from "../types";
import { trainingWindows, type RecoverDataSpec } from "./data";
import { AdamW, globalNorm } from "./optimizer";
import { LoraAdapters, resolveLoraConfig, type LoraConfig } from "./lora";
import { checkSchedule, learningRate } from "./schedule";
import { readJsonFile } from "../io/json";

/**
 * The training loop behind recovery fine-tuning (after pruning) and the demo model (from scratch):
 * AdamW + cosine schedule with warm-up, global-norm gradient clipping, gradient accumulation, a seeded
 * data order, and CE / KD / mixed losses, with either LoRA adapters (base frozen) or full training.
 *
 * Determinism: everything random derives from `seed` by name and by step — the window order of each
 * epoch (`order:<epoch>`), LoRA init (`lora-init`) and dropout masks (`dropout:<step>:<micro>`) — so a run
 * resumed from a checkpoint replays exactly the batches and masks the uninterrupted run would have seen,
 * and, with float32 parameters and moments stored exactly, ends at the same weights.
 */
export type RecoverLoss = "ce" | "kd" | "mix";

/** The reference recipe's peak learning rate (docs/method.md, "Recovery"). */
export const DEFAULT_RECOVERY_LR = 1e-4;

export interface RecoverOptions extends RunOptions {
  /** Training windows (token ids, all of equal length ≥ 2). For kd/mix: the teacher cache's windows (default). */
  data?: number[][];
  steps: number;
  /** Peak learning rate (default 1e-4, docs/method.md "Recovery"). */
  lr?: number;
  /** Windows per micro-batch (default 4). */
  batch?: number;
  /** Micro-batches per optimizer step (default 1); gradients are averaged. */
  accumulate?: number;
  /** Linear warm-up steps (default 0, as the reference recipe, docs/method.md "Recovery"). */
  warmup?: number;
  /** Final learning rate as a fraction of lr (default 0). */
  minLrRatio?: number;
  /** Decoupled weight decay (default 0.05, docs/method.md "Recovery"); applied to matrices, not norms. */
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  /** Max global gradient norm (default 1; 0 disables clipping). */
  clip?: number;
  /** LoRA settings (r, alpha, dropout, targets); null = full fine-tuning of `trainable` parameters. */
  lora?: Partial<LoraConfig> | null;
  /** Full fine-tuning only: which parameters (Hugging Face names) train (default all). */
  trainable?: (name: string) => boolean;
  loss?: RecoverLoss;
  /** KD weight for "mix" (default 0.5); "kd" uses 1, "ce" 0. */
  alpha?: number;
  /** Teacher temperature τ (default 1). */
  temperature?: number;
  teacher?: TeacherCache | null;
  /** Seed of data order, LoRA init and dropout (default 0). */
  seed?: number;
  /** Directory for checkpoints (`<dir>/last`, replaced atomically). */
  checkpointDir?: string;
  /** Write a checkpoint every N steps (and at the end); default: only at the end when checkpointDir is set. */
  checkpointEvery?: number;
  /** Continue from `<checkpointDir>/last` when it exists (its options must match). */
  resume?: boolean;
}

export interface RecoverResult {
  /** The trained model (LoRA merged into the weights): new tensors, owned by the caller. */
  model: CausalLM;
  /** The LoRA adapters (owned by the caller), or null for full training. */
  adapters: LoraAdapters | null;
  /** Mean training loss of every completed step (including steps done before a resume). */
  losses: number[];
  steps: number;
  /** First step run in this call (> 0 after a resume). */
  startStep: number;
  /** Tokens processed in this call. */
  tokens: number;
  seconds: number;
  /** Trainable parameter count. */
  trainableParams: number;
  table(): Table;
}

interface Resolved {
  data: number[][];
  steps: number;
  lr: number;
  batch: number;
  accumulate: number;
  warmup: number;
  minLrRatio: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  clip: number;
  lora: LoraConfig | null;
  loss: RecoverLoss;
  alpha: number;
  temperature: number;
  seed: number;
}

const CHECKPOINT_FORMAT = "sdmprune-recover-checkpoint";

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v <= 0) throw new UsageError(`${what} must be a positive integer, got ${v}`);
  return v;
}

function resolve(model: CausalLM, o: RecoverOptions): Resolved {
  checkSchedule({ lr: o.lr ?? DEFAULT_RECOVERY_LR, steps: o.steps, warmup: o.warmup, minRatio: o.minLrRatio });
  const loss = o.loss ?? "ce";
  if (!["ce", "kd", "mix"].includes(loss)) throw new UsageError(`loss must be "ce", "kd" or "mix", got ${JSON.stringify(loss)}`);
  const alpha = loss === "ce" ? 0 : loss === "kd" ? 1 : (o.alpha ?? 0.5);
  if (!(alpha >= 0 && alpha <= 1)) throw new UsageError(`alpha must be in [0, 1], got ${alpha}`);
  const temperature = o.temperature ?? 1;
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new UsageError(`temperature must be > 0, got ${temperature}`);
  let data = o.data;
  if (loss !== "ce") {
    if (!o.teacher) throw new UsageError(`loss "${loss}" needs a teacher cache (teacher logits of the unpruned model)`);
    if (o.teacher.vocabSize !== model.config.vocab_size) {
      throw new UsageError(`teacher cache vocabulary ${o.teacher.vocabSize} differs from the model's ${model.config.vocab_size}`);
    }
    data ??= o.teacher.windows;
    o.teacher.checkWindows(data, 0, data.length);
  }
  if (!data || data.length === 0) throw new DataError("recovery needs training data: got no windows (empty text or file?)");
  const T = data[0].length;
  if (T < 2) throw new DataError(`training windows must hold at least 2 tokens, got ${T}`);
  const V = model.config.vocab_size;
  data.forEach((w, i) => {
    if (w.length !== T) throw new DataError(`training window ${i} has ${w.length} tokens, expected ${T} (all windows must have equal length)`);
    for (const t of w) if (!Number.isInteger(t) || t < 0 || t >= V) throw new DataError(`training window ${i}: token id ${t} is outside [0, ${V})`);
  });
  const batch = positiveInt(o.batch ?? 4, "batch");
  const accumulate = positiveInt(o.accumulate ?? 1, "accumulate");
  const clip = o.clip ?? 1;
  if (!(clip >= 0)) throw new UsageError(`clip must be ≥ 0 (0 = off), got ${clip}`);
  const lora = o.lora ? resolveLoraConfig(o.lora) : null;
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed)) throw new UsageError(`seed must be an integer, got ${seed}`);
  if (o.checkpointEvery !== undefined) positiveInt(o.checkpointEvery, "checkpointEvery");
  return {
    data,
    steps: o.steps,
    lr: o.lr ?? DEFAULT_RECOVERY_LR,
    batch,
    accumulate,
    warmup: o.warmup ?? 0,
    minLrRatio: o.minLrRatio ?? 0,
    weightDecay: o.weightDecay ?? 0.05,
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.999,
    clip,
    lora,
    loss,
    alpha,
    temperature,
    seed,
  };
}

/** FNV-1a over the windows, so a checkpoint is never resumed on different data. */
function dataHash(data: number[][]): string {
  let h = 0x811c9dc5;
  for (const w of data) {
    for (const t of w) {
      h ^= t & 0xffff;
      h = Math.imul(h, 0x01000193) >>> 0;
      h ^= t >>> 16;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    h = Math.imul(h ^ 0xff, 0x01000193) >>> 0;
  }
  return `${data.length}x${data[0].length}:${h.toString(16)}`;
}

/** The options that must agree for a checkpoint to be resumed. */
function runKey(r: Resolved): Record<string, unknown> {
  const { data, ...rest } = r;
  return { ...rest, data: dataHash(data) };
}

/**
 * Window indices of micro-batch `micro` of optimizer step `step`. The stream of windows is the
 * concatenation of per-epoch permutations, each drawn from `order:<epoch>`; batches are consecutive slices.
 */
export function batchIndices(n: number, seed: number, batch: number, accumulate: number, step: number, micro: number): number[] {
  const out: number[] = [];
  const start = (step * accumulate + micro) * batch;
  let epoch = -1;
  let perm: number[] = [];
  for (let i = start; i < start + batch; i++) {
    const e = Math.floor(i / n);
    if (e !== epoch) {
      epoch = e;
      perm = Rng.derive(seed, `order:${e}`).shuffle(Array.from({ length: n }, (_, k) => k));
    }
    out.push(perm[i - e * n]);
  }
  return out;
}

/** Trainable state: LoRA adapters over a frozen base, or variables standing in for the model's parameters. */
interface Trainer {
  params: Map<string, tf.Variable>;
  /** Mean loss and gradients (by param name) of one micro-batch. */
  grads(windows: number[][], lossFn: (logits: tf.Tensor3D) => tf.Scalar, dropoutRng: Rng): { loss: number; grads: Map<string, tf.Tensor> };
  /** The resulting model (new tensors). */
  result(): CausalLM;
  adapters: LoraAdapters | null;
  dispose(): void;
}

function loraTrainer(model: CausalLM, cfg: LoraConfig, seed: number): Trainer {
  const adapters = LoraAdapters.create(model, cfg, seed);
  const params = adapters.variables();
  const names = [...params.keys()];
  const xs = names.map((n) => params.get(n)!);
  return {
    params,
    adapters,
    grads(windows, lossFn, dropoutRng) {
      const f = (): tf.Scalar => lossFn(adapters.logits(model, windows, dropoutRng));
      const { value, grads } = tf.tidy(() => tf.valueAndGrads(f)(xs));
      const loss = value.dataSync()[0];
      value.dispose();
      const map = new Map<string, tf.Tensor>();
      names.forEach((n, i) => map.set(n, grads[i]));
      if (!Number.isFinite(loss)) {
        tf.dispose(grads);
        throw new NumericError(`recovery: training loss is ${loss}`);
      }
      return { loss, grads: map };
    },
    result: () => adapters.merge(model),
    dispose() {
      /* adapters are handed to the caller */
    },
  };
}

function fullTrainer(model: CausalLM, trainable: (name: string) => boolean): Trainer {
  const names = model.parameterNames().filter(trainable);
  if (names.length === 0) throw new UsageError("full fine-tuning: the `trainable` selection matches no parameter");
  // Variables stand in for the selected parameters; the working model shares everything else with `model`.
  const params = new Map<string, tf.Variable>();
  for (const n of names) params.set(n, tf.variable(model.parameter(n), true));
  const pick = <T extends tf.Tensor>(n: string, t: T): T => (params.get(n) as unknown as T) ?? t;
  const w = model.weights;
  const cfg = model.config;
  const layerKeys = Object.keys(w.layers[0]) as (keyof ModelWeights["layers"][number])[];
  const weights: ModelWeights = {
    embed_tokens: pick("model.embed_tokens.weight", w.embed_tokens),
    norm: pick("model.norm.weight", w.norm),
    lm_head: w.lm_head ? pick("lm_head.weight", w.lm_head) : null,
    layers: w.layers.map((lw, l) => {
      const out = { ...lw };
      for (const k of layerKeys) (out as Record<string, tf.Tensor>)[k] = pick(layerParamName(l, k as keyof ModelWeights["layers"][number]), lw[k]!);
      return out;
    }),
  };
  // A fresh model object over the variables (cheap: no copy); its caches are its own.
  const work = model.withWeights(weights, cfg);
  return {
    params,
    adapters: null,
    grads(windows, lossFn) {
      return work.gradients(windows, lossFn, (n) => params.has(n));
    },
    result() {
      const cloned = tf.tidy(() => {
        const c: ModelWeights = {
          embed_tokens: tf.clone(weights.embed_tokens),
          norm: tf.clone(weights.norm),
          lm_head: weights.lm_head ? tf.clone(weights.lm_head) : null,
          layers: weights.layers.map((lw) => {
            const o = {} as Record<string, tf.Tensor>;
            for (const k of layerKeys) o[k] = tf.clone(lw[k]!);
            return o as unknown as ModelWeights["layers"][number];
          }),
        };
        return c as unknown as tf.TensorContainer;
      }) as unknown as ModelWeights;
      return model.withWeights(cloned, cfg);
    },
    dispose() {
      work.disposeCaches();
      for (const v of params.values()) v.dispose();
    },
  };
}

function hostParams(params: Map<string, tf.Variable>): TensorMap {
  const out: TensorMap = new Map();
  for (const [n, v] of params) out.set(`param/${n}`, { shape: v.shape.slice(), data: Float32Array.from(v.dataSync() as Float32Array) });
  return out;
}

interface CheckpointState {
  format: string;
  version: number;
  step: number;
  optimizerStep: number;
  losses: number[];
  run: Record<string, unknown>;
}

async function writeCheckpoint(dir: string, trainer: Trainer, opt: AdamW, r: Resolved, step: number, losses: number[]): Promise<void> {
  const tensors = hostParams(trainer.params);
  for (const [k, v] of opt.exportState()) tensors.set(k, v);
  const state: CheckpointState = { format: CHECKPOINT_FORMAT, version: 1, step, optimizerStep: opt.t, losses, run: runKey(r) };
  fs.mkdirSync(dir, { recursive: true });
  await writeDirAtomic(path.join(dir, "last"), true, async (tmp) => {
    writeSafetensors(path.join(tmp, "state.safetensors"), tensors, "f32", { format: "pt" });
    fs.writeFileSync(path.join(tmp, "state.json"), JSON.stringify(state) + "\n");
  });
}

function readCheckpoint(dir: string, trainer: Trainer, opt: AdamW, r: Resolved): { step: number; losses: number[] } | null {
  const last = path.join(dir, "last");
  const sj = path.join(last, "state.json");
  if (!fs.existsSync(sj)) return null;
  const state = readJsonFile(sj) as CheckpointState;
  if (state.format !== CHECKPOINT_FORMAT) throw new FormatError(`${sj}: field "format" must be "${CHECKPOINT_FORMAT}", got ${JSON.stringify(state.format)}`);
  const want = runKey(r);
  const diffs = Object.keys(want).filter((k) => JSON.stringify(want[k]) !== JSON.stringify(state.run?.[k]));
  if (diffs.length > 0) {
    throw new UsageError(
      `checkpoint ${last} was written by a run with different settings (${diffs.map((k) => `${k}: checkpoint ${JSON.stringify(state.run?.[k])} vs now ${JSON.stringify(want[k])}`).join("; ")}); use another checkpoint directory or resume: false`,
    );
  }
  const file = path.join(last, "state.safetensors");
  const tensors = readSafetensors(file);
  for (const [n, v] of trainer.params) {
    const h = tensors.get(`param/${n}`);
    if (!h) throw new FormatError(`${file}: parameter ${n} is missing`);
    if (h.shape.length !== v.shape.length || h.shape.some((d, i) => d !== v.shape[i])) {
      throw new FormatError(`${file}: parameter ${n} has shape [${h.shape}], expected [${v.shape}]`);
    }
    tf.tidy(() => v.assign(tf.tensor(h.data, h.shape, "float32")));
  }
  opt.importState(tensors, state.optimizerStep, file);
  return { step: state.step, losses: state.losses.slice() };
}

/**
 * Fine-tune `model` (left untouched) and return the trained model. See RecoverOptions for the knobs;
 * bad settings throw before any work (UsageError / DataError).
 */
export async function recover(model: CausalLM, opts: RecoverOptions): Promise<RecoverResult> {
  const r = resolve(model, opts);
  const T = r.data[0].length;
  const trainer = r.lora ? loraTrainer(model, r.lora, r.seed) : fullTrainer(model, opts.trainable ?? (() => true));
  const opt = new AdamW(trainer.params, { beta1: r.beta1, beta2: r.beta2, weightDecay: r.weightDecay });
  let ok = false;
  try {
    let startStep = 0;
    let losses: number[] = [];
    if (opts.resume && opts.checkpointDir) {
      const ck = readCheckpoint(opts.checkpointDir, trainer, opt, r);
      if (ck) {
        startStep = ck.step;
        losses = ck.losses;
      }
    }
    const spec: LossSpec = { alpha: r.alpha, temperature: r.temperature, B: r.batch, T };
    const teacher = r.alpha > 0 ? opts.teacher! : null;
    const lossFor = (idx: number[], windows: number[][]) => {
      let probs: tf.Tensor2D | null = null;
      let plogp = 0;
      if (teacher) {
        const V = teacher.vocabSize;
        const all = new Float32Array(idx.length * T * V);
        idx.forEach((w, b) => {
          const t = teacher.targets(w, 0, T, r.temperature);
          all.set(t.probs, b * T * V);
          plogp += t.plogp;
        });
        probs = tf.tensor2d(all, [idx.length * T, V]);
      }
      const fn = (logits: tf.Tensor3D): tf.Scalar => mixedLoss(logits, windows, probs, plogp, spec);
      return { fn, dispose: () => probs?.dispose() };
    };
    const t0 = Date.now();
    const progress = new Progress(opts, "recover", r.steps, startStep);
    const tokensPerStep = r.batch * r.accumulate * T;
    for (let step = startStep; step < r.steps; step++) {
      await progress.checkpoint(`recovery cancelled at step ${step} of ${r.steps}`);
      let sum: Map<string, tf.Tensor> | null = null;
      let lossSum = 0;
      for (let micro = 0; micro < r.accumulate; micro++) {
        const idx = batchIndices(r.data.length, r.seed, r.batch, r.accumulate, step, micro);
        const windows = idx.map((i) => r.data[i]);
        const lf = lossFor(idx, windows);
        let g: { loss: number; grads: Map<string, tf.Tensor> };
        try {
          g = trainer.grads(windows, lf.fn, Rng.derive(r.seed, `dropout:${step}:${micro}`));
        } finally {
          lf.dispose();
        }
        lossSum += g.loss;
        if (!sum) sum = g.grads;
        else {
          for (const [n, t] of g.grads) {
            const prev = sum.get(n)!;
            sum.set(n, tf.add(prev, t));
            prev.dispose();
            t.dispose();
          }
        }
      }
      const grads = sum!;
      if (r.accumulate > 1) {
        for (const [n, t] of grads) {
          grads.set(n, tf.div(t, r.accumulate));
          t.dispose();
        }
      }
      const norm = globalNorm(grads.values());
      if (!Number.isFinite(norm)) {
        tf.dispose([...grads.values()]);
        throw new NumericError(`recovery: gradient norm is ${norm} at step ${step}`);
      }
      if (r.clip > 0 && norm > r.clip) {
        const s = r.clip / norm;
        for (const [n, t] of grads) {
          grads.set(n, tf.mul(t, s));
          t.dispose();
        }
      }
      const lr = learningRate({ lr: r.lr, steps: r.steps, warmup: r.warmup, minRatio: r.minLrRatio }, step);
      opt.step(grads, lr);
      tf.dispose([...grads.values()]);
      const loss = lossSum / r.accumulate;
      losses.push(loss);
      const done = step + 1;
      if (opts.checkpointDir && ((opts.checkpointEvery && done % opts.checkpointEvery === 0) || done === r.steps)) {
        await writeCheckpoint(opts.checkpointDir, trainer, opt, r, done, losses);
      }
      progress.advance(1, tokensPerStep, `loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}  |g| ${norm.toFixed(3)}`);
    }
    const seconds = (Date.now() - t0) / 1000;
    const trained = trainer.result();
    let trainableParams = 0;
    for (const v of trainer.params.values()) trainableParams += v.size;
    ok = true;
    const result: RecoverResult = {
      model: trained,
      adapters: trainer.adapters,
      losses,
      steps: r.steps,
      startStep,
      tokens: progress.tokens,
      seconds,
      trainableParams,
      table: () => recoverTable(result, r),
    };
    return result;
  } finally {
    opt.dispose();
    trainer.dispose();
    if (!ok) trainer.adapters?.dispose();
  }
}

function recoverTable(res: RecoverResult, r: Resolved): Table {
  const first = res.losses.slice(0, Math.min(10, res.losses.length));
  const last = res.losses.slice(-Math.min(10, res.losses.length));
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
  return new Table(
    ["mode", "loss", "steps", "lr", "batch", "trainable params", "first-10 loss", "last-10 loss", "tokens/s"],
    [[
      r.lora ? `LoRA r=${r.lora.r} α=${r.lora.alpha} p=${r.lora.dropout}` : "full",
      r.loss === "mix" ? `mix α=${r.alpha} τ=${r.temperature}` : r.loss === "kd" ? `kd τ=${r.temperature}` : "ce",
      res.steps,
      r.lr,
      `${r.batch}×${r.accumulate}×${r.data[0].length}`,
      res.trainableParams,
      mean(first),
      mean(last),
      res.seconds > 0 ? Math.round(res.tokens / res.seconds) : null,
    ]],
    { title: "Recovery fine-tuning" },
  );
}

/** What `Session.recover` accepts: RecoverOptions with `data` as text/file/story range or windows. */
export interface SessionRecoverOptions extends Omit<RecoverOptions, "data" | "teacher">, Pick<ResourceOptions, "allowLonger"> {
  /** Training data: a text file path, token windows, or a spec ({ file, stories, seqLen } / { text } / { windows }). For kd/mix: default the calibration windows. */
  data?: string | number[][] | RecoverDataSpec;
  /**
   * Distil from another model (a .gguf file or Hugging Face directory, usually the unpruned original) instead
   * of the session's teacher cache: its predictions on the training windows are cached once (teacher.ts
   * defaultTopk), then it is released. `loss` then defaults by `alpha` (default 0.5): "kd" at 1, "ce" at 0,
   * else "mix". It must share the model's vocabulary.
   */
  teacher?: string;
}

/** What recoverWithData trained on, beside the RecoverResult. */
export interface RecoverData {
  /** The training data, named. */
  source: string;
  /** The loss used (with a teacher model: from alpha). */
  loss: RecoverLoss;
  /** Training windows and their length. */
  windows: number;
  seqLen: number;
}

/** The loss a KD weight means with an external teacher: "kd" at 1, "ce" at 0, "mix" between. */
export function lossForAlpha(alpha: number): RecoverLoss {
  if (!(alpha >= 0 && alpha <= 1)) throw new UsageError(`alpha must be in [0, 1], got ${alpha}`);
  return alpha === 1 ? "kd" : alpha === 0 ? "ce" : "mix";
}

/**
 * Recovery for a session's model: resolves `data` with the model's tokenizer, and for kd/mix uses the
 * session's teacher cache (teacher = the original model on the calibration windows; the data must then be
 * those windows, the default) or a cache built from the teacher model `opts.teacher`.
 */
export async function recoverWithData(
  model: CausalLM,
  tokenizer: TextTokenizer | null,
  sessionTeacher: TeacherCache | null,
  opts: SessionRecoverOptions,
): Promise<RecoverResult & RecoverData> {
  const external = opts.teacher !== undefined;
  const alpha = external ? opts.alpha ?? 0.5 : opts.alpha;
  const loss = opts.loss ?? (external ? lossForAlpha(alpha!) : "ce");
  let windows: number[][] | undefined;
  let source: string;
  if (external && opts.data === undefined) throw new UsageError(`recover: a teacher model (${opts.teacher}) needs data, the text its predictions are cached on`);
  if (opts.data === undefined) {
    if (loss === "ce" || !sessionTeacher) throw new UsageError(`recover: give data (a text file, { file, stories, seqLen }, or token windows)${loss !== "ce" ? "; for kd/mix calibrate() first so the session has a teacher cache" : ""}`);
    windows = sessionTeacher.windows;
    source = `${windows.length} calibration windows`;
  } else {
    const spec: RecoverDataSpec = typeof opts.data === "string" ? { file: opts.data } : Array.isArray(opts.data) ? { windows: opts.data } : opts.data;
    const r = trainingWindows(spec, tokenizer, model.config.vocab_size);
    windows = r.windows;
    source = r.source;
  }
  checkContext(windows[0].length, model.config.max_position_embeddings, "recover", opts);
  let teacher = sessionTeacher;
  if (external && loss !== "ce") {
    const t = (await loadModel(opts.teacher!)).model;
    try {
      if (t.config.vocab_size !== model.config.vocab_size) {
        throw new UsageError(`recover: the teacher model ${opts.teacher} has vocabulary ${t.config.vocab_size}, the student ${model.config.vocab_size}; they must share a tokenizer`);
      }
      teacher = await TeacherCache.build(t, windows, { topk: defaultTopk(model.config.vocab_size) }, { onProgress: opts.onProgress, signal: opts.signal });
    } finally {
      t.dispose();
    }
  }
  if (loss !== "ce" && !teacher) throw new UsageError(`recover: loss "${loss}" needs the session's teacher cache: calibrate() first`);
  const { teacher: _path, allowLonger: _allow, ...rest } = opts;
  const res = await recover(model, { ...rest, loss, alpha, data: windows, teacher: loss === "ce" ? null : teacher });
  return Object.assign(res, { source, loss, windows: windows.length, seqLen: windows[0].length });
}
