import * as tf from "@tensorflow/tfjs";
import { ConfigError, FormatError, UsageError } from "../errors";
import type { TensorMap } from "../io/tensors";
import type { LayerWeights, CausalLM, LoraBranch, ModelWeights, Projection } from "../model/causal-lm";
import { Rng } from "../rng";

/**
 * LoRA adapters (Hu et al.; PEFT conventions): for a target projection with weight W (internal [in, out]),
 *
 *     y = x·W + (α/r) · dropout(x)·A·B,     A [in, r] ~ U(−1/√in, 1/√in),  B [r, out] = 0
 *
 * so training starts exactly at the base model. PEFT stores lora_A.weight = Aᵀ [r, in] and
 * lora_B.weight = Bᵀ [out, r] (torch layout); we convert at save/load.
 *
 * Both forward paths run the model's own layer code:
 * - dropout = 0 (and always at evaluation): the effective weight W + (α/r)·A·B is formed inside the taped
 *   function and passed to `model.layer`; gradients reach A and B through the sum. This is exact, and it is
 *   the same computation as the merged model.
 * - dropout > 0 while training: PEFT's dropout is element-wise on the LoRA input x, which no weight can
 *   express, so the branches go to the model's linear seam (`LayerOptions.lora`), which computes
 *   x·W + s·(drop(x)·A)·B in every projection.
 */
export const LORA_TARGETS: Projection[] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const ATTN = new Set<Projection>(["q_proj", "k_proj", "v_proj", "o_proj"]);

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  targets: Projection[];
}

/** The reference recipe (docs/method.md, "Recovery"): r = 8, α = 16, dropout 0.05 on all seven projections. */
export const DEFAULT_LORA: LoraConfig = { r: 8, alpha: 16, dropout: 0.05, targets: LORA_TARGETS.slice() };

export function resolveLoraConfig(partial: Partial<LoraConfig> = {}): LoraConfig {
  // a field given as undefined (a CLI flag not set) keeps its default
  const given = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) as Partial<LoraConfig>;
  const c: LoraConfig = { ...DEFAULT_LORA, ...given, targets: (given.targets ?? DEFAULT_LORA.targets).slice() };
  if (!Number.isInteger(c.r) || c.r < 1) throw new UsageError(`LoRA rank r must be a positive integer, got ${c.r}`);
  if (!(c.alpha > 0) || !Number.isFinite(c.alpha)) throw new UsageError(`LoRA alpha must be a positive number, got ${c.alpha}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new UsageError(`LoRA dropout must be in [0, 1), got ${c.dropout}`);
  if (c.targets.length === 0) throw new UsageError("LoRA needs at least one target projection");
  for (const t of c.targets) {
    if (!LORA_TARGETS.includes(t)) throw new UsageError(`unknown LoRA target "${t}", expected some of ${LORA_TARGETS.join(", ")}`);
  }
  c.targets = LORA_TARGETS.filter((t) => c.targets.includes(t));
  return c;
}

/** PEFT module path of a projection, e.g. `model.layers.3.self_attn.q_proj`. */
export function modulePath(l: number, p: Projection): string {
  return `model.layers.${l}.${ATTN.has(p) ? "self_attn" : "mlp"}.${p}`;
}

export class LoraAdapters {
  readonly config: LoraConfig;
  readonly numLayers: number;
  /** Keyed by modulePath(l, p). */
  readonly A = new Map<string, tf.Variable>();
  readonly B = new Map<string, tf.Variable>();

  private constructor(config: LoraConfig, numLayers: number) {
    this.config = config;
    this.numLayers = numLayers;
  }

  get scale(): number {
    return this.config.alpha / this.config.r;
  }

  /** Fresh adapters for `model` (A seeded, B zero); refuses a rank above min(in, out) of any target. */
  static create(model: CausalLM, config: Partial<LoraConfig>, seed: number): LoraAdapters {
    const cfg = resolveLoraConfig(config);
    checkRank(model, cfg);
    const ad = new LoraAdapters(cfg, model.config.num_hidden_layers);
    const rng = Rng.derive(seed, "lora-init");
    model.weights.layers.forEach((lw, l) => {
      for (const p of cfg.targets) {
        const [inp, out] = lw[p].shape;
        const bound = 1 / Math.sqrt(inp); // kaiming_uniform(a = √5), as PEFT/nn.Linear
        const a = new Float32Array(inp * cfg.r);
        for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
        ad.A.set(modulePath(l, p), tf.tidy(() => tf.variable(tf.tensor2d(a, [inp, cfg.r]), true)));
        ad.B.set(modulePath(l, p), tf.tidy(() => tf.variable(tf.zeros([cfg.r, out]), true)));
      }
    });
    return ad;
  }

  /** Trainable variables by name (`<module>.lora_A` / `<module>.lora_B`), in a fixed order. */
  variables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [k, a] of this.A) {
      out.set(`${k}.lora_A`, a);
      out.set(`${k}.lora_B`, this.B.get(k)!);
    }
    return out;
  }

  private branches(l: number): Partial<Record<Projection, LoraBranch>> {
    const out: Partial<Record<Projection, LoraBranch>> = {};
    for (const p of this.config.targets) {
      const k = modulePath(l, p);
      out[p] = { A: this.A.get(k)! as tf.Tensor2D, B: this.B.get(k)! as tf.Tensor2D };
    }
    return out;
  }

  /** Layer weights with W + s·A·B on the targets (differentiable in A and B; no tidy: call inside one). */
  effectiveLayer(model: CausalLM, l: number): LayerWeights {
    const lw = { ...model.weights.layers[l] };
    const br = this.branches(l);
    for (const p of this.config.targets) {
      const b = br[p]!;
      (lw as Record<Projection, tf.Tensor2D>)[p] = tf.add(lw[p], tf.mul(tf.matMul(b.A, b.B), this.scale)) as tf.Tensor2D;
    }
    return lw;
  }

  /**
   * Logits [B, T, V] of the adapted model. With `dropoutRng` and dropout > 0 the explicit path with fresh
   * element-wise masks is used (training); otherwise the merged-effective path (exact, evaluation).
   * `explicit` forces the unmerged x·W + s·(x·A)·B computation (without masks unless dropping out).
   */
  logits(model: CausalLM, ids: number[][], dropoutRng?: Rng, opts: { explicit?: boolean } = {}): tf.Tensor3D {
    this.checkModel(model);
    const Bn = ids.length;
    const T = ids[0].length;
    const V = model.config.vocab_size;
    let h = model.embed(tf.tensor2d(ids, [Bn, T], "int32"));
    const useDropout = !!dropoutRng && this.config.dropout > 0;
    for (let l = 0; l < this.numLayers; l++) {
      if (useDropout || opts.explicit) {
        const masks = useDropout ? this.dropoutMasks(model, l, Bn * T, dropoutRng!) : {};
        h = model.layer(l, h, Bn, T, undefined, { lora: { branches: this.branches(l), scale: this.scale, masks } });
      } else {
        h = model.layer(l, h, Bn, T, this.effectiveLayer(model, l));
      }
    }
    return model.head(h).reshape([Bn, T, V]);
  }

  /** Per-target inverted-dropout masks [N, in] drawn from `rng` (host-side, so a seed fixes them). */
  private dropoutMasks(model: CausalLM, l: number, N: number, rng: Rng): Partial<Record<Projection, tf.Tensor2D>> {
    const p = this.config.dropout;
    const keep = 1 / (1 - p);
    const out: Partial<Record<Projection, tf.Tensor2D>> = {};
    for (const proj of this.config.targets) {
      const inp = model.weights.layers[l][proj].shape[0];
      const m = new Float32Array(N * inp);
      for (let i = 0; i < m.length; i++) m[i] = rng.next() < p ? 0 : keep;
      out[proj] = tf.tensor2d(m, [N, inp]);
    }
    return out;
  }

  /** A new model with W + s·A·B folded into the weights (fresh tensors; `model` is untouched). */
  merge(model: CausalLM): CausalLM {
    this.checkModel(model);
    const w = model.weights;
    // (the cast: tidy's container type has no `null`, though it walks past a null lm_head fine)
    const merged = tf.tidy(() => {
      const layers = w.layers.map((_, l) => {
        const eff = this.effectiveLayer(model, l);
        const out = {} as Record<keyof LayerWeights, tf.Tensor>;
        for (const k of Object.keys(eff) as (keyof LayerWeights)[]) out[k] = eff[k] === w.layers[l][k] ? tf.clone(eff[k]!) : eff[k]!;
        return out as unknown as LayerWeights;
      });
      const mw: ModelWeights = { embed_tokens: tf.clone(w.embed_tokens), layers, norm: tf.clone(w.norm), lm_head: w.lm_head ? tf.clone(w.lm_head) : null };
      return mw as unknown as tf.TensorContainer;
    }) as unknown as ModelWeights;
    return model.withWeights(merged, model.config);
  }

  /** The adapters as PEFT tensors (torch layout): `base_model.model.<module>.lora_A.weight` [r, in], `lora_B.weight` [out, r]. */
  toPeft(): TensorMap {
    const out: TensorMap = new Map();
    for (const [k, a] of this.A) {
      const b = this.B.get(k)!;
      const [inp, r] = a.shape;
      const [, outDim] = b.shape;
      out.set(`base_model.model.${k}.lora_A.weight`, { shape: [r, inp], data: transpose(a.dataSync() as Float32Array, inp, r) });
      out.set(`base_model.model.${k}.lora_B.weight`, { shape: [outDim, r], data: transpose(b.dataSync() as Float32Array, r, outDim) });
    }
    return out;
  }

  /** Adapters from PEFT tensors for `model` (shapes checked against its projections). */
  static fromPeft(model: CausalLM, config: Partial<LoraConfig>, tensors: TensorMap, source = "adapter"): LoraAdapters {
    const cfg = resolveLoraConfig(config);
    checkRank(model, cfg);
    const ad = new LoraAdapters(cfg, model.config.num_hidden_layers);
    const expected = new Set<string>();
    try {
      model.weights.layers.forEach((lw, l) => {
        for (const p of cfg.targets) {
          const k = modulePath(l, p);
          const [inp, out] = lw[p].shape;
          const an = `base_model.model.${k}.lora_A.weight`;
          const bn = `base_model.model.${k}.lora_B.weight`;
          expected.add(an).add(bn);
          const a = tensors.get(an);
          const b = tensors.get(bn);
          if (!a) throw new FormatError(`${source}: tensor ${an} is missing`);
          if (!b) throw new FormatError(`${source}: tensor ${bn} is missing`);
          if (a.shape.length !== 2 || a.shape[0] !== cfg.r || a.shape[1] !== inp) throw new FormatError(`${source}: ${an} has shape [${a.shape}], expected [${cfg.r}, ${inp}]`);
          if (b.shape.length !== 2 || b.shape[0] !== out || b.shape[1] !== cfg.r) throw new FormatError(`${source}: ${bn} has shape [${b.shape}], expected [${out}, ${cfg.r}]`);
          ad.A.set(k, tf.tidy(() => tf.variable(tf.tensor2d(transpose(a.data, cfg.r, inp), [inp, cfg.r]), true)));
          ad.B.set(k, tf.tidy(() => tf.variable(tf.tensor2d(transpose(b.data, out, cfg.r), [cfg.r, out]), true)));
        }
      });
    } catch (e) {
      ad.dispose();
      throw e;
    }
    const extra = [...tensors.keys()].filter((n) => !expected.has(n));
    if (extra.length > 0) {
      ad.dispose();
      throw new FormatError(`${source}: unexpected tensors for target_modules [${cfg.targets}]: ${extra.slice(0, 3).join(", ")}${extra.length > 3 ? ", …" : ""}`);
    }
    return ad;
  }

  private checkModel(model: CausalLM): void {
    if (model.config.num_hidden_layers !== this.numLayers) {
      throw new ConfigError(`LoRA adapters are for ${this.numLayers} layers, the model has ${model.config.num_hidden_layers}`);
    }
    model.weights.layers.forEach((lw, l) => {
      for (const p of this.config.targets) {
        const k = modulePath(l, p);
        const [inp, out] = lw[p].shape;
        const a = this.A.get(k)!;
        const b = this.B.get(k)!;
        if (a.shape[0] !== inp || b.shape[1] !== out) {
          throw new ConfigError(`LoRA adapter ${k} is [${a.shape[0]}→${b.shape[1]}], the model's projection is [${inp}→${out}] (was the model pruned after the adapters were made?)`);
        }
      }
    });
  }

  dispose(): void {
    for (const v of this.A.values()) v.dispose();
    for (const v of this.B.values()) v.dispose();
    this.A.clear();
    this.B.clear();
  }
}

function checkRank(model: CausalLM, cfg: LoraConfig): void {
  model.weights.layers.forEach((lw, l) => {
    for (const p of cfg.targets) {
      const [inp, out] = lw[p].shape;
      if (cfg.r > Math.min(inp, out)) {
        throw new UsageError(`LoRA rank r = ${cfg.r} is larger than the projection ${modulePath(l, p)} allows (shape [${inp} → ${out}], rank ≤ ${Math.min(inp, out)})`);
      }
    }
  });
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}
