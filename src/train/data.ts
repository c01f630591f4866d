import * as path from "node:path";
import { joinDocs, readText, selectStories, splitTinyStories, storyRange, TINYSTORIES_SEPARATOR } from "../data/text";
import { evalWindows, validateWindows } from "../data/windows";
import { DataError, UsageError } from "../errors";
import type { TextTokenizer } from "../types";

/**
 * Training text → token windows for recovery: the documents (TinyStories dumps are split into stories,
 * optionally a 1-based story range) are joined with "\n\n", tokenized once with one BOS, and cut into
 * non-overlapping windows of seqLen tokens (remainder dropped), so every training token is used once per epoch.
 */
export interface RecoverDataSpec {
  text?: string;
  file?: string;
  /** 1-based inclusive story range of a TinyStories dump, e.g. "200-499". */
  stories?: string;
  /** Ready token windows (equal length). */
  windows?: number[][];
  /** Window length (default 128). */
  seqLen?: number;
}

export function trainingWindows(spec: RecoverDataSpec, tokenizer: TextTokenizer | null, vocabSize: number): { windows: number[][]; source: string } {
  const given = (["text", "file", "windows"] as const).filter((k) => spec[k] !== undefined);
  if (given.length !== 1) throw new UsageError(`recovery data: give exactly one of text, file, windows (got ${given.length ? given.join(", ") : "none"})`);
  if (spec.windows !== undefined) {
    if (spec.windows.length === 0) throw new DataError("recovery data: no training windows given");
    return { windows: validateWindows(spec.windows, { vocabSize, source: "recovery windows" }), source: `${spec.windows.length} given windows` };
  }
  if (!tokenizer) throw new DataError("the model has no tokenizer, so training text cannot be tokenized; give token windows");
  const seqLen = spec.seqLen ?? 128;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new UsageError(`seqLen must be an integer ≥ 2, got ${seqLen}`);
  let raw: string;
  let source: string;
  if (spec.file !== undefined) {
    raw = readText(spec.file);
    source = path.basename(spec.file);
  } else {
    raw = spec.text as string;
    if (typeof raw !== "string" || raw.trim() === "") throw new DataError("recovery data: the training text is empty");
    source = "text";
  }
  let docs = raw.includes(TINYSTORIES_SEPARATOR) ? splitTinyStories(raw) : [raw];
  if (spec.stories !== undefined) {
    const r = storyRange(spec.stories);
    docs = selectStories(docs, r.from, r.to);
    source += ` (stories ${spec.stories})`;
  }
  docs = docs.filter((d) => d.trim() !== "");
  if (docs.length === 0) throw new DataError("recovery data: the training text is empty");
  const ids = tokenizer.encode(joinDocs(docs), { addBos: true });
  if (ids.length < seqLen) throw new DataError(`recovery data: ${ids.length} tokens, fewer than one window of ${seqLen}`);
  return { windows: evalWindows(ids, seqLen), source };
}
