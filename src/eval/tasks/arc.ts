import { DataError } from "../../errors";
import { sharedContextDoc } from "./choices";
import { checkLimit, readJsonl, str } from "./files";
import type { ChoiceDoc, TaskSpec } from "./types";

interface ArcRow {
  id?: string;
  question?: { stem?: unknown; choices?: { text?: unknown; label?: unknown }[] };
  answerKey?: unknown;
}

/**
 * AI2 format (ARC and OpenBookQA): the gold index is the position of `answerKey` among the choice labels,
 * which are "A".."E" or "1".."5"; items have 3 to 5 choices.
 */
export function loadAi2(dir: string, rel: string, limit: number | undefined, prefix: string, context: (stem: string) => string): ChoiceDoc[] {
  checkLimit(limit);
  const { file, rows } = readJsonl<ArcRow>(dir, rel, limit);
  return rows.map(({ line, value }, i) => {
    const where = `${file}:${line}`;
    const q = value.question;
    if (!q || typeof q !== "object" || !Array.isArray(q.choices) || q.choices.length < 2) {
      throw new DataError(`${where}: expected "question": {"stem", "choices": [{"text","label"}...]} with at least 2 choices`);
    }
    const stem = str(q as Record<string, unknown>, "stem", where);
    const texts = q.choices.map((c, k) => str(c as Record<string, unknown>, "text", `${where} choice ${k}`));
    const labels = q.choices.map((c, k) => str(c as Record<string, unknown>, "label", `${where} choice ${k}`));
    const key = str(value as Record<string, unknown>, "answerKey", where);
    const gold = labels.indexOf(key);
    if (gold < 0) throw new DataError(`${where}: answerKey ${JSON.stringify(key)} is not one of the choice labels ${JSON.stringify(labels)}`);
    return sharedContextDoc(typeof value.id === "string" ? value.id : `${prefix}-${i}`, context(stem), texts, gold);
  });
}

const arcContext = (stem: string) => `Question: ${stem}\nAnswer:`;

export const arcEasy: TaskSpec = {
  name: "arc_easy",
  metrics: ["acc", "acc_norm"],
  headline: "acc_norm",
  averaged: true,
  files: ["arc/ARC-Easy-Test.jsonl"],
  load: (dir, limit) => loadAi2(dir, "arc/ARC-Easy-Test.jsonl", limit, "arc_easy", arcContext),
};

export const arcChallenge: TaskSpec = {
  name: "arc_challenge",
  metrics: ["acc", "acc_norm"],
  headline: "acc_norm",
  averaged: true,
  files: ["arc/ARC-Challenge-Test.jsonl"],
  load: (dir, limit) => loadAi2(dir, "arc/ARC-Challenge-Test.jsonl", limit, "arc_challenge", arcContext),
};
