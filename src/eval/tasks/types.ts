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

/** lm-eval's metric names (lambada_openai reports `perplexity`). */
export type MetricName = "acc" | "acc_norm" | "perplexity";

export interface TaskSpec {
  /** lm-eval's task name. */
  name: string;
  /** Older sdmprune names accepted for this task. */
  aliases?: string[];
  /** Metrics this task reports (lm-eval's list for the task). */
  metrics: MetricName[];
  /** The metric quoted in tables (SDMPrune: acc_norm where lm-eval has it, else acc). */
  headline: MetricName;
  /** Part of SDMPrune's table average (SDMPrune: HellaSwag is excluded, LAMBADA is not in the table). */
  averaged: boolean;
  /** Data files, relative to the data folder. */
  files: string[];
  /** Read the first `limit` items (all when undefined), as lm-eval's --limit does. */
  load(dataDir: string, limit?: number): TaskDoc[];
  /** Where the offline data or prompt differs from lm-eval. */
  note?: string;
}
