import { DataError } from "../../errors";
import { checkLimit, readJsonl, str } from "./files";
import type { TargetDoc, TaskSpec } from "./types";

/**
 * lm-eval `lambada_openai`: context = the text before the last space-separated word, target = " " + that word.
 * Like lm-eval this splits on " " (not on any whitespace), so a final word after a newline stays attached.
 */
export function lambadaSplit(text: string): { context: string; target: string } {
  const cut = text.lastIndexOf(" ");
  if (cut < 0) throw new DataError(`LAMBADA text has no space to split off a target word: ${JSON.stringify(text.slice(0, 80))}`);
  return { context: text.slice(0, cut), target: " " + text.slice(cut + 1) };
}

export const lambada: TaskSpec = {
  name: "lambada_openai",
  aliases: ["lambada"],
  metrics: ["acc", "perplexity"],
  headline: "acc",
  averaged: false,
  files: ["lambada/lambada_test.jsonl"],
  note: "lambada_openai: acc = greedy match of every target token; perplexity = exp(−mean per-item target log-likelihood)",
  load(dir, limit) {
    checkLimit(limit);
    const { file, rows } = readJsonl(dir, "lambada/lambada_test.jsonl", limit);
    return rows.map(({ line, value }, i): TargetDoc => {
      const { context, target } = lambadaSplit(str(value, "text", `${file}:${line}`));
      return { kind: "target", id: `lambada_openai-${i}`, context, target };
    });
  },
};
