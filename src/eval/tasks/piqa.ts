import { DataError } from "../../errors";
import { sharedContextDoc } from "./choices";
import { checkLimit, readJsonl, readLines, str } from "./files";
import type { TaskSpec } from "./types";

/** PIQA validation (original release: valid.jsonl + valid-labels.lst, label i answers line i). */
export const piqa: TaskSpec = {
  name: "piqa",
  metrics: ["acc", "acc_norm"],
  headline: "acc_norm",
  averaged: true,
  files: ["piqa/valid.jsonl", "piqa/valid-labels.lst"],
  load(dir, limit) {
    checkLimit(limit);
    const { file, rows } = readJsonl(dir, "piqa/valid.jsonl", limit);
    const labels = readLines(dir, "piqa/valid-labels.lst");
    if (labels.lines.length < rows.length) throw new DataError(`${labels.file}: ${labels.lines.length} labels for ${rows.length} items of ${file}`);
    return rows.map(({ line, value }, i) => {
      const where = `${file}:${line}`;
      const gold = Number(labels.lines[i].trim());
      if (gold !== 0 && gold !== 1) throw new DataError(`${labels.file}:${i + 1}: expected label 0 or 1, got ${JSON.stringify(labels.lines[i])}`);
      const goal = str(value, "goal", where);
      return sharedContextDoc(`piqa-${i}`, `Question: ${goal}\nAnswer:`, [str(value, "sol1", where), str(value, "sol2", where)], gold);
    });
  },
};
