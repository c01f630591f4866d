import * as tf from "@tensorflow/tfjs";
import { Rng } from "../rng";
import { magnitudeChannel, mlpGroup, take64, wandaChannel } from "./reduce";
import { runWindows } from "../progress";
import type { CriterionContext, CriterionImpl, ScoreSink } from "./types";

/** Data-free baselines: Σ|W| over the group, and seeded uniform random scores. */
export const magnitude: CriterionImpl = {
  async run(ctx: CriterionContext, sink: ScoreSink): Promise<void> {
    const m = ctx.model;
    sink(Array.from({ length: m.config.num_hidden_layers }, (_, l) => m.withLayer(l, (lw) => take64(magnitudeChannel(mlpGroup(lw))))), 0);
  },
};

export const random: CriterionImpl = {
  async run(ctx: CriterionContext, sink: ScoreSink): Promise<void> {
    const seed = ctx.settings.seed ?? 0;
    sink(
      Array.from({ length: ctx.model.config.num_hidden_layers }, (_, l) => {
        const rng = Rng.derive(seed, `random-criterion/layer${l}`);
        const out = new Float64Array(ctx.model.layerShapes(l).gate_proj[1]);
        for (let i = 0; i < out.length; i++) out[i] = rng.next();
        return out;
      }),
      0,
    );
  },
};

/**
 * Wanda (structured, grouped): |W| times the L2 norm of each weight's input over all calibration tokens
 * (gate/up: the post-norm hidden state, per hidden k; down: the intermediate activation, per channel i),
 * summed over the group. Squared norms are read at the hook points layers.N.mlp.in and layers.N.mlp.act.
 */
export const wanda: CriterionImpl = {
  async run(ctx: CriterionContext, sink: ScoreSink): Promise<void> {
    const { model, windows, from, count, opts, settings } = ctx;
    const T = settings.seqLen as number;
    const L = model.config.num_hidden_layers;
    const H = model.config.hidden_size;
    const sx = Array.from({ length: L }, () => new Float64Array(H));
    const sa = Array.from({ length: L }, (_, l) => new Float64Array(model.layerShapes(l).gate_proj[1]));
    const addInto = (dst: Float64Array, t: tf.Tensor) => {
      const d = tf.tidy(() => tf.sum(tf.square(t), 0)).dataSync();
      for (let i = 0; i < dst.length; i++) dst[i] += d[i];
    };
    await runWindows("score", from, count, T, opts, (w) => {
      tf.tidy(() => {
        let h = model.embed(tf.tensor2d([windows[w]], [1, T], "int32"));
        for (let l = 0; l < L; l++) {
          h = model.layer(l, h, 1, T, undefined, {
            hooks: {
              [`layers.${l}.mlp.in`]: (xn) => addInto(sx[l], xn),
              [`layers.${l}.mlp.act`]: (act) => addInto(sa[l], act),
            },
          });
        }
      });
    });
    const perLayer = Array.from({ length: L }, (_, l) =>
      model.withLayer(l, (lw) =>
        take64(
          wandaChannel(
            mlpGroup(lw),
            Float32Array.from(sx[l], Math.sqrt),
            Float32Array.from(sa[l], Math.sqrt),
          ),
        ),
      ),
    );
    sink(perLayer, count);
  },
};
