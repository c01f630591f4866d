import { DataError } from "../../errors";
import { sharedContextDoc } from "./choices";
import { checkLimit, readJsonl, str } from "./files";
import type { TaskSpec } from "./types";

/** SuperGLUE BoolQ validation; `label` is the string "true"/"false" in this file (booleans and 0/1 accepted too). */
export const boolq: TaskSpec = {
  name: "boolq",
  metrics: ["acc"],
  headline: "acc",
  averaged: true,
  files: ["boolq/val.jsonl"],
  load(dir, limit) {
    checkLimit(limit);
    const { file, rows } = readJsonl(dir, "boolq/val.jsonl", limit);
    return rows.map(({ line, value }, i) => {
      const where = `${file}:${line}`;
      const label = value.label;
      let gold: number;
      if (label === "true" || label === true || label === 1) gold = 1;
      else if (label === "false" || label === false || label === 0) gold = 0;
      else throw new DataError(`${where}: field "label" must be "true" or "false", got ${JSON.stringify(label)}`);
      const context = `${str(value, "passage", where)}\nQuestion: ${str(value, "question", where)}?\nAnswer:`;
      return sharedContextDoc(`boolq-${typeof value.idx === "number" ? value.idx : i}`, context, ["no", "yes"], gold);
    });
  },
};
