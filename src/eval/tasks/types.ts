import type { LoglikelihoodRequest } from "../loglikelihood";

/**
 * A multiple-choice item: one loglikelihood request per choice. Most tasks share one context and vary the
 * continuation (" " + choice); WinoGrande's partial scoring varies the context and shares the continuation.
 */
export interface ChoiceDoc {
  kind: "choice";
  id: string;
  requests: LoglikelihoodRequest[];
  /**
   * The choice strings whose character length normalises acc_norm. As in lm-eval this is the choice text
   * itself, without the " " target delimiter that the continuation carries.
   */
  choices: string[];
  gold: number;
}

/** A target-word item (LAMBADA): context and the continuation that must be predicted greedily. */
export interface TargetDoc {
  kind: "target";
  id: string;
  context: string;
  target: string;
}

export type TaskDoc = ChoiceDoc | TargetDoc;

export type MetricName = "acc" | "acc_norm" | "ppl";

export interface TaskSpec {
  name: string;
  /** Metrics this task reports (lm-eval's list for the task). */
  metrics: MetricName[];
  /** The metric quoted in tables (METHOD.md §10: acc_norm where lm-eval has it, else acc). */
  headline: MetricName;
  /** Part of SDMPrune's table average (METHOD.md §10: HellaSwag is excluded, LAMBADA is not in the table). */
  averaged: boolean;
  /** Data files, relative to the data folder. */
  files: string[];
  /** Read the first `limit` items (all when undefined), as lm-eval's --limit does. */
  load(dataDir: string, limit?: number): TaskDoc[];
  /** Where the offline data or prompt differs from lm-eval. */
  note?: string;
}
