import { UsageError } from "./errors";
import { Table } from "./table";
import type { Allocation, PruneAccounting } from "./prune";

/**
 * The pruning steps of a session and the map from current channel indices to the original model's.
 * Channel indices in the library always refer to the current model (docs/method.md, "Channel selection and slicing"); this is where they are
 * translated back, e.g. for `pruning.json`. Pure bookkeeping: the Session restores weights itself.
 */

export interface PruneStep {
  /** 1-based step number. */
  step: number;
  /** How the step was requested, e.g. "ratio 0.2 of original width (...)". */
  rule: string;
  /** Scores the selection used ("sd-taylor", "ce-taylor", ...) and their settings. */
  criterion: string | null;
  settings: Record<string, unknown>;
  samples: number;
  layers: [number, number];
  allocation: Allocation;
  widthsBefore: number[];
  widthsAfter: number[];
  /** Per layer: kept indices in the numbering BEFORE the step (ascending), or null if untouched. */
  kept: (number[] | null)[];
  accounting: PruneAccounting;
  /** Free text, e.g. "sdmprune stage 1". */
  label?: string;
  /** Kept counts were rounded to a multiple of this (PruneSpec.roundTo); absent when not rounded. */
  roundTo?: number;
  time: string;
}

export class PruneHistory {
  private readonly stack: PruneStep[] = [];
  /** maps[i][l][j] = original index of channel j of layer l after i steps. */
  private readonly maps: number[][][];

  constructor(readonly originalWidths: number[]) {
    this.maps = [originalWidths.map((w) => Array.from({ length: w }, (_, i) => i))];
  }

  get steps(): readonly PruneStep[] {
    return this.stack;
  }

  get length(): number {
    return this.stack.length;
  }

  /** Append a step; `kept` indices must be valid for the current widths. */
  push(step: Omit<PruneStep, "step" | "time">): PruneStep {
    const cur = this.maps[this.maps.length - 1];
    if (step.kept.length !== cur.length) throw new UsageError(`history: step has ${step.kept.length} layers, model has ${cur.length}`);
    const next = cur.map((m, l) => {
      const k = step.kept[l];
      if (!k) return m;
      return k.map((j) => {
        if (!Number.isInteger(j) || j < 0 || j >= m.length) throw new UsageError(`history: kept index ${j} out of range for layer ${l} of width ${m.length}`);
        return m[j];
      });
    });
    const full: PruneStep = { ...step, step: this.stack.length + 1, time: new Date().toISOString() };
    this.stack.push(full);
    this.maps.push(next);
    return full;
  }

  /** Remove and return the last step (undefined when there is none). */
  pop(): PruneStep | undefined {
    if (this.stack.length === 0) return undefined;
    this.maps.pop();
    return this.stack.pop();
  }

  /** Per layer: original index of each current channel (ascending). Copies. */
  originalIndices(): number[][] {
    return this.maps[this.maps.length - 1].map((m) => m.slice());
  }

  /** Original index of channel `index` of layer `layer` in the current model. */
  toOriginal(layer: number, index: number): number {
    const m = this.maps[this.maps.length - 1][layer];
    if (!m || !Number.isInteger(index) || index < 0 || index >= m.length) {
      throw new UsageError(`history: channel ${index} of layer ${layer} does not exist in the current model`);
    }
    return m[index];
  }

  /** Current widths per layer. */
  widths(): number[] {
    return this.maps[this.maps.length - 1].map((m) => m.length);
  }

  table(): Table {
    const rows = this.stack.map((s) => [
      s.step,
      s.label ? `${s.label}: ${s.rule}` : s.rule,
      s.criterion ?? "–",
      s.samples,
      `[${s.layers[0]}, ${s.layers[1]})`,
      s.allocation,
      s.accounting.channelsRemoved,
      s.accounting.paramsAfter,
      100 * s.accounting.mlpParamsRemovedShare,
      100 * s.accounting.totalParamsRemovedShare,
    ]);
    return new Table(
      ["step", "rule", "criterion", "samples", "layers", "allocation", "channels removed", "params after", "% MLP removed", "% model removed"],
      rows,
      { title: "Pruning history", digits: 2, notes: this.stack.length ? ["% columns are cumulative against the original model (tied embedding counted once)."] : ["(no pruning steps yet)"] },
    );
  }

  toJSON(): object[] {
    return this.stack.map((s) => ({ ...s }));
  }
}
