import type * as tf from "@tensorflow/tfjs";
import { intermediateSizes, withIntermediateSizes } from "./model/config";
import type { LayerWeights, CausalLM } from "./model/causal-lm";
import type { HostLayer } from "./model/weight-store";
import { sliceMlp } from "./prune";

/**
 * Who owns which weight tensor in a Session (owned by the Session; not part of the public API).
 *
 * The model as loaded (`original`) is kept, unmodified, for the whole session and owns every tensor the
 * current model shares with it. Pruning builds new MLP tensors by gathering from the current ones and shares
 * every other tensor; undoing re-gathers from the original with the channel map of the earlier state, which
 * reproduces those weights bit for bit (a gather copies values; gathering twice equals gathering once with the
 * composed indices). After recovery the current model's non-MLP tensors are its own too (`recovered`).
 */

type Mlp = Pick<LayerWeights, "gate_proj" | "up_proj" | "down_proj">;
const MLP_KEYS = ["gate_proj", "up_proj", "down_proj"] as const;

function mlpOf(model: CausalLM, l: number): Mlp {
  const lw = model.weights.layers[l];
  return { gate_proj: lw.gate_proj, up_proj: lw.up_proj, down_proj: lw.down_proj };
}

export class ModelState {
  private current_: CausalLM;
  /** Non-MLP tensors of a recovered model; MLP tensors are released like pruned ones. */
  private recoveredOwned: tf.Tensor[] = [];

  /** Takes ownership of `original`'s tensors. */
  constructor(readonly original: CausalLM) {
    this.current_ = original;
  }

  get current(): CausalLM {
    return this.current_;
  }

  /** True after adoptRecovered(): the current weights can no longer be derived from the original. */
  get recovered(): boolean {
    return this.recoveredOwned.length > 0;
  }

  /** Keep, per layer, the current MLP channels `kept` (ascending current indices; null = layer unchanged). */
  prune(kept: readonly (number[] | null)[]): void {
    if (this.current_.streamed) {
      // layer by layer, the original's MLP is given back right after it is sliced (spillOriginalMlp), so the host
      // holds the original and the pruned MLP of one layer at a time, not of all layers
      const next = kept.map((idx, l) => {
        if (!idx) return null;
        const part = this.sliceHostMlp(this.current_, l, idx);
        this.spillOriginalMlp(l);
        // packed halves on the backend (float16 on webgpu) are not collected: once released, nothing needs the
        // original's MLP, so it is freed as soon as its slice exists (the current model's own previous MLP, if
        // pruned before, is freed by replaceHostMlp)
        if (this.originalReleased) {
          const o = this.original.hostWeights!.layers[l];
          for (const k of MLP_KEYS) if (this.current_.hostWeights!.layers[l][k] === o[k]) o[k].dispose();
        }
        return part;
      });
      this.replaceHostMlp(next);
      return;
    }
    if (!this.originalReleased) {
      this.replaceMlp(kept.map((idx, l) => (idx ? sliceMlp(this.current_.weights.layers[l], idx) : null)));
      return;
    }
    // released: each layer's previous MLP is freed right after its slice is made, so the old and the new MLP
    // coexist for one layer at a time, not for the whole model
    this.replaceMlp(
      kept.map((idx, l) => {
        if (!idx) return null;
        const cur = this.current_.weights.layers[l];
        const part = sliceMlp(cur, idx);
        // the original's (when this layer was not pruned before) or the current model's own: no undo needs either
        for (const k of MLP_KEYS) cur[k].dispose();
        return part;
      }),
    );
  }

  /**
   * Rebuild the MLP of the layers in `layers` (true = rebuild) from the original with `maps` (per layer, the
   * original index of each channel to keep): the inverse of the pruning steps since that map.
   */
  restore(layers: readonly boolean[], maps: readonly number[][]): void {
    if (this.originalReleased) throw new Error("ModelState.restore: the original MLP weights were released");
    const origWidths = intermediateSizes(this.original.config);
    if (this.original.streamed) {
      this.replaceHostMlp(
        layers.map((touched, l) => {
          if (!touched) return null;
          const o = this.original.hostWeights!.layers[l];
          if (maps[l].length === origWidths[l]) return { gate_proj: o.gate_proj, up_proj: o.up_proj, down_proj: o.down_proj };
          return this.sliceHostMlp(this.original, l, maps[l]);
        }),
      );
      return;
    }
    this.replaceMlp(
      layers.map((touched, l) => {
        if (!touched) return null;
        if (maps[l].length === origWidths[l]) return mlpOf(this.original, l);
        return sliceMlp(this.original.weights.layers[l], maps[l]);
      }),
    );
  }

  /**
   * Dispose the original model's MLP tensors that the current model no longer shares (the layers pruning
   * replaced), for a run that will not undo: the original and the pruned MLP of every pruned layer are otherwise
   * both held. Called before pruning, each later prune() frees a layer's previous MLP as soon as its slice exists.
   * Afterwards the original cannot compute and restore() is refused. A streamed model read from its
   * file already gave its original MLP back while pruning (spillOriginalMlp); this only marks it.
   */
  releaseOriginalMlp(): void {
    if (this.originalReleased) return;
    this.originalReleased = true;
    this.original.disposeCaches();
    // not yet pruned: later prune() calls free the original's MLP layer by layer as they slice it
    if (this.current_ === this.original) return;
    if (this.original.streamed) {
      // packed halves on the backend the current model no longer shares (host and disk weights: nothing to free)
      const cur = this.current_.hostWeights!.layers;
      this.original.hostWeights!.layers.forEach((o, l) => {
        for (const k of MLP_KEYS) if (cur[l][k] !== o[k]) o[k].dispose();
      });
      return;
    }
    if (this.current_.streamed) return;
    this.current_.weights.layers.forEach((lw, l) => {
      const o = this.original.weights.layers[l];
      for (const k of MLP_KEYS) if (lw[k] !== o[k]) o[k].dispose();
    });
  }

  /** True after releaseOriginalMlp(): the original model's pruned MLP weights are gone. */
  originalReleased = false;

  /** Make a recovered model (new tensors, now owned here) the current one; the previous current weights are released. */
  adoptRecovered(model: CausalLM): void {
    if (model.streamed || this.original.streamed) void this.original.weights; // recovery needs resident weights: refused with the reason
    this.releaseCurrent();
    const w = model.weights;
    // every non-MLP layer tensor (biases and extra norms included)
    this.recoveredOwned = [
      w.embed_tokens,
      w.norm,
      ...(w.lm_head ? [w.lm_head] : []),
      ...w.layers.flatMap((lw) => (Object.entries(lw) as [string, tf.Tensor][]).filter(([k]) => !(MLP_KEYS as readonly string[]).includes(k)).map(([, t]) => t)),
    ];
    this.current_ = model;
  }

  /** Release every tensor (the current model's own and the original). */
  dispose(): void {
    this.releaseCurrent();
    this.original.dispose();
  }

  /** Release what the current model owns beyond the original. */
  private releaseCurrent(): void {
    const old = this.current_;
    if (old !== this.original && old.streamed) {
      // host weights are garbage collected, packed halves on the backend are freed unless the original owns them;
      // the final norm belongs to the original
      old.hostWeights!.layers.forEach((lw, l) => this.releaseHostMlp(lw, l));
      old.disposeCaches();
    } else if (old !== this.original) {
      old.weights.layers.forEach((lw, l) => this.releaseMlp(lw, l));
      old.disposeCaches();
    }
    for (const t of this.recoveredOwned) t.dispose();
    this.recoveredOwned = [];
  }

  /** Dispose MLP tensors of layer l unless the original owns them. */
  private releaseMlp(lw: Mlp, l: number): void {
    const o = this.original.weights.layers[l];
    for (const k of MLP_KEYS) if (lw[k] !== o[k]) lw[k].dispose();
  }

  /** releaseMlp for a streamed model's layer: frees packed halves on the backend (a no-op for host and disk weights). */
  private releaseHostMlp(lw: HostLayer, l: number): void {
    const o = this.original.hostWeights!.layers[l];
    for (const k of MLP_KEYS) if (lw[k] !== o[k]) lw[k].dispose();
  }

  /**
   * A streamed model's MLP channels `idx` of layer l, sliced on the host (gate/up columns, down rows) and held as
   * the model holds its weights (float32 or float16); a layer read from disk stays there, read through the kept
   * channels (memory stays one layer while the pruned model scores, evaluates and is saved).
   */
  private sliceHostMlp(model: CausalLM, l: number, idx: number[]): HostLayer {
    const lw = model.hostWeights!.layers[l];
    const dtype = model.hostFloat;
    // a model reading its layers from disk keeps reading them there, through the kept channels
    const disk = model.weightsIn === "disk";
    return { gate_proj: lw.gate_proj.select(idx, 1, dtype, disk), up_proj: lw.up_proj.select(idx, 1, dtype, disk), down_proj: lw.down_proj.select(idx, 0, dtype, disk) };
  }

  /** replaceMlp for a streamed model: new host MLP weights for some layers, every other weight shared. */
  private replaceHostMlp(next: (HostLayer | null)[]): void {
    const old = this.current_;
    const layers = old.hostWeights!.layers.map((lw, l) => (next[l] ? { ...lw, ...next[l]! } : lw));
    const model = old.withHostLayers(layers);
    next.forEach((n, l) => {
      if (n) this.releaseHostMlp(old.hostWeights!.layers[l], l);
    });
    old.disposeCaches();
    this.current_ = model;
    const cur = model.hostWeights!.layers;
    const orig = this.original.hostWeights!.layers;
    orig.forEach((o, l) => {
      if (MLP_KEYS.some((k) => cur[l][k] !== o[k])) this.spillOriginalMlp(l);
    });
  }

  /**
   * A streamed original read from its file gives back the host memory of the MLP weights the current model no
   * longer uses (pruned layers): they are read from the checkpoint again if undo needs them (a checkpoint changed
   * since is refused there). Without this the original and the pruned MLP would both be held (about 1.5× the
   * MLP weights at a 20 % ratio).
   */
  private spillOriginalMlp(l: number): void {
    // Only the original's MLP of layer l, which the (new) current model does not use: the same values, read from
    // the checkpoint when needed. Where the current model still shares the layer record it reads them from there.
    const o = this.original.hostWeights!.layers[l];
    for (const k of MLP_KEYS) {
      if (o[k].where === "disk") continue;
      const s = o[k].spill();
      if (s) o[k] = s;
    }
  }

  /** Swap in new MLP tensors for some layers (null = keep); disposes replaced non-original tensors. */
  private replaceMlp(next: (Mlp | null)[]): void {
    const old = this.current_;
    const w = old.weights;
    const layers = w.layers.map((lw, l) => (next[l] ? { ...lw, ...next[l]! } : lw));
    const widths = layers.map((lw) => lw.gate_proj.shape[1]);
    const model = old.withWeights({ embed_tokens: w.embed_tokens, layers, norm: w.norm, lm_head: w.lm_head }, withIntermediateSizes(old.config, widths));
    next.forEach((n, l) => {
      if (n) this.releaseMlp(mlpOf(old, l), l);
    });
    // cached constants (RoPE tables, masks, transposed tied head) belong to the model object being replaced
    old.disposeCaches();
    this.current_ = model;
  }
}
