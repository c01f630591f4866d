import * as path from "node:path";
import { readDocuments } from "../data/documents";
import { joinDocs } from "../data/text";
import { evalWindows, validateWindows } from "../data/windows";
import { DataError } from "../errors";
import { exactlyOne, seqLenOption } from "../options";
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
  exactlyOne("recovery data", spec, ["text", "file", "windows"]);
  if (spec.windows !== undefined) {
    if (spec.windows.length === 0) throw new DataError("recovery data: no training windows given");
    return { windows: validateWindows(spec.windows, { vocabSize, source: "recovery windows" }), source: `${spec.windows.length} given windows` };
  }
  if (!tokenizer) throw new DataError("the model has no tokenizer, so training text cannot be tokenized; give token windows");
  const seqLen = seqLenOption(spec.seqLen);
  const { docs } = readDocuments(spec.file !== undefined ? { files: spec.file, stories: spec.stories } : { text: spec.text, stories: spec.stories }, { empty: "recovery data: the training text is empty" });
  let source = spec.file !== undefined ? path.basename(spec.file) : "text";
  if (spec.stories !== undefined) source += ` (stories ${spec.stories})`;
  const ids = tokenizer.encode(joinDocs(docs), { addBos: true });
  if (ids.length < seqLen) throw new DataError(`recovery data: ${ids.length} tokens, fewer than one window of ${seqLen}`);
  return { windows: evalWindows(ids, seqLen), source };
}
