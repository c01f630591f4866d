import { DataError } from "../../errors";
import { sharedContextDoc } from "./choices";
import { checkLimit, readLines } from "./files";
import type { TaskSpec } from "./types";

const FILE = "hellaswag/hellaswag_val_full.txt";

/**
 * HellaSwag validation in the llama.cpp `perplexity --hellaswag` format: 6 lines per item (context, gold index
 * 0–3, four endings). The context is `activity_label + ": " + ctx` with llama.cpp's tag clean-up, whereas lm-eval
 * uses `activity_label + ": " + ctx_a + " " + ctx_b.capitalize()` and removes every `[...]`; so contexts differ
 * slightly and acc/acc_norm are close to, not identical with, lm-eval's.
 */
export const hellaswag: TaskSpec = {
  name: "hellaswag",
  metrics: ["acc", "acc_norm"],
  headline: "acc_norm",
  averaged: false,
  files: [FILE],
  note: "hellaswag: llama.cpp text format; context preprocessing differs slightly from lm-eval (no ctx_b capitalisation)",
  load(dir, limit) {
    checkLimit(limit);
    const { file, lines } = readLines(dir, FILE, limit === undefined ? undefined : limit * 6);
    if (lines.length % 6 !== 0) throw new DataError(`${file}: ${lines.length} lines is not a multiple of 6 (context, gold, 4 endings per item)`);
    const docs = [];
    for (let i = 0; i < lines.length / 6; i++) {
      const at = i * 6;
      const gold = Number(lines[at + 1]);
      if (!/^[0-3]$/.test(lines[at + 1].trim())) throw new DataError(`${file}:${at + 2}: expected the gold index 0-3, got ${JSON.stringify(lines[at + 1])}`);
      docs.push(sharedContextDoc(`hellaswag-${i}`, lines[at], lines.slice(at + 2, at + 6), gold));
    }
    return docs;
  },
};
