import { DataError } from "../../errors";
import { sharedContextDoc } from "./choices";
import { checkLimit, readLines } from "./files";
import type { ChoiceDoc, TaskSpec } from "./types";

const FILE = "hellaswag/hellaswag_val_full.txt";

/** lm_eval/tasks/hellaswag/utils.py `preprocess`, step for step (one pass of each replacement, as Python's). */
export function hellaswagPreprocess(text: string): string {
  text = text.trim();
  text = text.split(" [title]").join(". ");
  text = text.replace(/\[.*?\]/g, "");
  text = text.split("  ").join(" ");
  return text;
}

/** Python str.capitalize(): first code point upper case, the rest lower case. */
export function pyCapitalize(s: string): string {
  const cps = [...s];
  if (cps.length === 0) return s;
  return cps[0].toUpperCase() + cps.slice(1).join("").toLowerCase();
}

/**
 * The HellaSwag context as lm-eval builds it, recovered from llama.cpp's text line
 * `activity_label: ctx_a ctx_b` (ctx_b in its original case). ctx_b is HellaSwag's unfinished last sentence
 * (ActivityNet items: "he", "the lady"); it starts after the last sentence end of the context, and it is empty
 * when the context ends a sentence (WikiHow items). lm-eval then uses
 * `preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())`.
 */
export function hellaswagSplit(line: string): { activityLabel: string; ctxA: string; ctxB: string } {
  const colon = line.indexOf(": ");
  if (colon < 0) return { activityLabel: "", ctxA: line, ctxB: "" };
  const activityLabel = line.slice(0, colon);
  const ctx = line.slice(colon + 2);
  if (/[.!?]["')\]]*$/.test(ctx)) return { activityLabel, ctxA: ctx, ctxB: "" };
  let cut = -1;
  for (const m of ctx.matchAll(/[.!?]["')\]]* /g)) cut = (m.index as number) + m[0].length;
  if (cut < 0) return { activityLabel, ctxA: "", ctxB: ctx };
  return { activityLabel, ctxA: ctx.slice(0, cut - 1), ctxB: ctx.slice(cut) };
}

export function hellaswagQuery(line: string): string {
  const { activityLabel, ctxA, ctxB } = hellaswagSplit(line);
  return hellaswagPreprocess(activityLabel + ": " + ctxA + " " + pyCapitalize(ctxB));
}

/**
 * HellaSwag validation in the llama.cpp `perplexity --hellaswag` format: 6 lines per item (context, gold index
 * 0–3, four endings). The context line is `activity_label: ctx` with ctx_a and ctx_b joined as they are; the
 * prompt scored is lm-eval's (hellaswagQuery): ctx_b re-split at the last sentence end and capitalised, then
 * lm-eval's preprocess on the query and on each ending.
 */
export const hellaswag: TaskSpec = {
  name: "hellaswag",
  metrics: ["acc", "acc_norm"],
  headline: "acc_norm",
  averaged: false,
  files: [FILE],
  note:
    "hellaswag: llama.cpp text format; prompt = lm-eval's activity_label + \": \" + ctx_a + \" \" + ctx_b.capitalize() with ctx_b recovered " +
    "as the text after the last sentence end (checked on the first 10 rows of the original jsonl; the text format's own tag clean-up may " +
    "still differ from lm-eval's on WikiHow rows)",
  load(dir, limit) {
    checkLimit(limit);
    const { file, lines } = readLines(dir, FILE, limit === undefined ? undefined : limit * 6);
    if (lines.length % 6 !== 0) throw new DataError(`${file}: ${lines.length} lines is not a multiple of 6 (context, gold, 4 endings per item)`);
    const docs: ChoiceDoc[] = [];
    for (let i = 0; i < lines.length / 6; i++) {
      const at = i * 6;
      const gold = Number(lines[at + 1]);
      if (!/^[0-3]$/.test(lines[at + 1].trim())) throw new DataError(`${file}:${at + 2}: expected the gold index 0-3, got ${JSON.stringify(lines[at + 1])}`);
      docs.push(sharedContextDoc(`hellaswag-${i}`, hellaswagQuery(lines[at]), lines.slice(at + 2, at + 6).map(hellaswagPreprocess), gold));
    }
    return docs;
  },
};
