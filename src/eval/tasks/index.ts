import { UsageError } from "../../errors";
import { arcChallenge, arcEasy } from "./arc";
import { boolq } from "./boolq";
import { hellaswag } from "./hellaswag";
import { lambada } from "./lambada";
import { openbookqa } from "./openbookqa";
import { piqa } from "./piqa";
import type { TaskSpec } from "./types";
import { winogrande } from "./winogrande";

export type { ChoiceDoc, MetricName, TargetDoc, TaskDoc, TaskSpec } from "./types";
export { resolveDataDir } from "./files";

/** Every task with offline data, in lm-eval's alphabetical order. */
export const TASKS: readonly TaskSpec[] = [arcChallenge, arcEasy, boolq, hellaswag, lambada, openbookqa, piqa, winogrande];

/** SDMPrune's zero-shot tasks that have offline data (docs/evaluation.md); lambada_openai is opt-in. */
export const DEFAULT_TASKS: readonly string[] = ["arc_challenge", "arc_easy", "boolq", "hellaswag", "openbookqa", "piqa", "winogrande"];

/** A task by lm-eval name or by an older sdmprune alias (`lambada` is `lambada_openai`). */
export function getTask(name: string): TaskSpec {
  const t = TASKS.find((x) => x.name === name || (x.aliases ?? []).includes(name));
  if (!t) throw new UsageError(`unknown task "${name}" (available: ${TASKS.map((x) => x.name).join(", ")})`);
  return t;
}
