import { DataError, NumericError } from "./errors";
import { distribution, type Distribution } from "./stats";
import { zeroAblate, type Hooks } from "./model/hooks";
import type { CausalLM } from "./model/causal-lm";
import { Progress } from "./progress";
import { Table } from "./table";
import type { RunOptions } from "./types";

/**
 * Per-layer summaries researchers plot: how much the calibration loss rises when one layer's MLP (or its
 * attention) is switched off (residual only), and the distribution of each layer's channel scores. The
 * paper's observation to check: switching off an MLP hurts less than switching off attention.
 */

export interface SensitivityResult {
  /** Mean next-token CE (nats) of the intact model on the windows. */
  baseLoss: number;
  /** Loss with layer l's MLP switched off, and the increase over baseLoss. */
  mlpOffLoss: number[];
  mlpIncrease: number[];
  attentionOffLoss: number[];
  attentionIncrease: number[];
  /** Per-layer score distribution (null when no scores were given). */
  scores: Distribution[] | null;
  windows: number;
  tokens: number;
  table(): Table;
}

export interface SensitivityOptions extends RunOptions {
  /** Current channel scores per layer, summarised alongside. */
  scores?: ArrayLike<number>[] | null;
  /** Windows per forward batch (default 8). */
  batchSize?: number;
}

/** Mean CE over all predicted tokens of `windows` with the given per-layer options. */
function meanLoss(model: CausalLM, windows: number[][], hooks: Hooks | undefined, batch: number): { loss: number; tokens: number } {
  let sum = 0;
  let n = 0;
  for (let b = 0; b < windows.length; b += batch) {
    const lps = model.tokenLogProbs(windows.slice(b, b + batch), hooks ? { hooks } : undefined);
    for (const lp of lps) {
      for (let t = 0; t < lp.length; t++) sum -= lp[t];
      n += lp.length;
    }
  }
  return { loss: sum / n, tokens: n };
}

export async function layerSensitivity(model: CausalLM, windows: number[][], opts: SensitivityOptions = {}): Promise<SensitivityResult> {
  if (windows.length === 0) throw new DataError("sensitivity: no windows (calibrate first)");
  const L = model.config.num_hidden_layers;
  const batch = opts.batchSize ?? 8;
  const total = 2 * L + 1;
  const progress = new Progress(opts, "sensitivity", total);
  const step = async (hooks: Hooks | undefined, what: string): Promise<number> => {
    await progress.checkpoint(`sensitivity cancelled (${progress.done} of ${total} passes done)`);
    const r = meanLoss(model, windows, hooks, batch);
    if (!Number.isFinite(r.loss)) throw new NumericError(`sensitivity: loss is ${r.loss} with ${what}`);
    progress.advance(1, r.tokens, what);
    return r.loss;
  };
  const baseLoss = await step(undefined, "intact model");
  const mlpOffLoss: number[] = [];
  const attentionOffLoss: number[] = [];
  for (let l = 0; l < L; l++) {
    // a block switched off leaves the residual stream: its output replaced by zeros
    mlpOffLoss.push(await step({ [`layers.${l}.mlp.out`]: zeroAblate }, `layer ${l} MLP off`));
    attentionOffLoss.push(await step({ [`layers.${l}.attn.out`]: zeroAblate }, `layer ${l} attention off`));
  }
  const scores = opts.scores ? opts.scores.map((s) => distribution(s)) : null;
  const tokens = windows.reduce((a, w) => a + w.length - 1, 0);
  const mlpIncrease = mlpOffLoss.map((v) => v - baseLoss);
  const attentionIncrease = attentionOffLoss.map((v) => v - baseLoss);
  return {
    baseLoss,
    mlpOffLoss,
    mlpIncrease,
    attentionOffLoss,
    attentionIncrease,
    scores,
    windows: windows.length,
    tokens,
    table(): Table {
      const cols = ["layer", "Δloss MLP off", "Δloss attention off"];
      if (scores) cols.push("score min", "q1", "median", "q3", "max");
      const rows = mlpIncrease.map((m, l) => {
        const r: (number | string)[] = [l, m, attentionIncrease[l]];
        if (scores) r.push(scores[l].min, scores[l].q1, scores[l].median, scores[l].q3, scores[l].max);
        return r;
      });
      const mlpLess = mlpIncrease.filter((m, l) => m < attentionIncrease[l]).length;
      return new Table(cols, rows, {
        title: "Layer sensitivity",
        notes: [
          `base loss ${baseLoss.toFixed(4)} nats over ${tokens} predicted tokens (${windows.length} windows); Δloss = loss with the block switched off − base loss`,
          `MLP less sensitive than attention in ${mlpLess} of ${L} layers`,
        ],
      });
    },
  };
}
