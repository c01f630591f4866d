import { DataError } from "../../errors";
import { checkLimit, readJsonl, str } from "./files";
import type { ChoiceDoc, TaskSpec } from "./types";

/**
 * lm-eval partial scoring: for each option, context = sentence up to "_" with the option substituted, and the
 * shared continuation = " " + the text after the blank (stripped). The option whose context gives the shared
 * continuation the higher log-likelihood wins (acc only).
 */
export function winograndeDoc(id: string, sentence: string, options: string[], gold: number, where = id): ChoiceDoc {
  const blank = sentence.indexOf("_");
  if (blank < 0) throw new DataError(`${where}: sentence has no "_" blank: ${JSON.stringify(sentence)}`);
  const continuation = " " + sentence.slice(blank + 1).trim();
  const contexts = options.map((o) => sentence.slice(0, blank) + o);
  return { kind: "choice", id, requests: contexts.map((context) => ({ context, continuation })), choices: contexts, gold };
}

export const winogrande: TaskSpec = {
  name: "winogrande",
  metrics: ["acc"],
  headline: "acc",
  averaged: true,
  files: ["winogrande/dev.jsonl"],
  load(dir, limit) {
    checkLimit(limit);
    const { file, rows } = readJsonl(dir, "winogrande/dev.jsonl", limit);
    return rows.map(({ line, value }, i) => {
      const where = `${file}:${line}`;
      const answer = str(value, "answer", where);
      if (answer !== "1" && answer !== "2") throw new DataError(`${where}: field "answer" must be "1" or "2", got ${JSON.stringify(answer)}`);
      const id = typeof value.qID === "string" ? value.qID : `winogrande-${i}`;
      return winograndeDoc(id, str(value, "sentence", where), [str(value, "option1", where), str(value, "option2", where)], Number(answer) - 1, where);
    });
  },
};
