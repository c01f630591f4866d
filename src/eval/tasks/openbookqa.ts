import { loadAi2 } from "./arc";
import type { TaskSpec } from "./types";

/** OpenBookQA main test set: the question stem alone is the context (lm-eval `openbookqa`). */
export const openbookqa: TaskSpec = {
  name: "openbookqa",
  metrics: ["acc", "acc_norm"],
  headline: "acc_norm",
  averaged: true,
  files: ["openbookqa/Main/test.jsonl"],
  load: (dir, limit) => loadAi2(dir, "openbookqa/Main/test.jsonl", limit, "openbookqa", (stem) => stem),
};
