import * as tf from "@tensorflow/tfjs";
import { NumericError } from "../errors";
import { mixedLoss } from "../loss";
import { llmPrunerChannel, llmPrunerVectorChannel, mlpGroup, take64 } from "./reduce";
import { runWindows } from "../progress";
import type { CriterionContext, CriterionImpl, ScoreSink } from "./types";

const MLP_NAME = /\.mlp\.(gate|up|down)_proj\.weight$/;

/**
 * LLM-Pruner (docs/method.md, "LLM-Pruner baseline"): the gradient g of the batch-mean CE over all windows (|Σ_s| semantics),
 * then param_first salience W⊙g reduced per channel: element-wise Σ_k|·| ("llm-pruner") or
 * vectorised |Σ_k ·| ("llm-pruner-vector"), per module, modules summed (grouping "sum").
 * With equal window lengths the batch mean equals the mean of per-window means, so the gradient is
 * accumulated window by window (progress, cancellation, bounded memory) and scaled by 1/B.
 */
export const llmPruner: CriterionImpl = {
  async run(ctx: CriterionContext, sink: ScoreSink): Promise<void> {
    const { model, windows, from, count, opts, settings } = ctx;
    const T = settings.seqLen as number;
    const acc = new Map<string, tf.Tensor>();
    try {
      await runWindows("score", from, count, T, opts, (w) => {
        let res;
        try {
          res = model.gradients([windows[w]], (logits) => mixedLoss(logits, [windows[w]], null, 0, { alpha: 0, temperature: 1, B: 1, T }), (n) => MLP_NAME.test(n));
        } catch (e) {
          if (e instanceof NumericError) throw new NumericError(`${e.message} on sample ${w}`);
          throw e;
        }
        for (const [name, g] of res.grads) {
          const prev = acc.get(name);
          if (prev) {
            acc.set(name, tf.add(prev, g));
            prev.dispose();
            g.dispose();
          } else acc.set(name, g);
        }
        return `CE ${res.loss.toFixed(4)}`;
      });
      const reduce = opts.criterion === "llm-pruner-vector" ? llmPrunerVectorChannel : llmPrunerChannel;
      const perLayer = model.weights.layers.map((lw, l) => {
        const g = (k: string) => acc.get(`model.layers.${l}.mlp.${k}.weight`) as tf.Tensor2D;
        return take64(
          tf.tidy(() =>
            reduce(
              mlpGroup(lw),
              { gate: tf.div(g("gate_proj"), count), up: tf.div(g("up_proj"), count), down: tf.div(g("down_proj"), count) },
            ),
          ),
        );
      });
      sink(perLayer, count);
    } finally {
      for (const t of acc.values()) t.dispose();
    }
  },
};
