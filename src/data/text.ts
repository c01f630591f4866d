import * as fs from "node:fs";
import { DataError } from "../errors";

/**
 * Plain-text corpora used for calibration and perplexity: reading files, TinyStories story ranges and the
 * WikiText-2 row protocol (docs/method.md, "Perplexity").
 */

/** Read a UTF-8 text file; a missing, unreadable or empty file is a DataError naming the path. */
export function readText(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT") throw new DataError(`text file ${file} does not exist`);
    if (code === "EISDIR") throw new DataError(`text file ${file} is a directory, expected a file`);
    throw new DataError(`cannot read text file ${file}: ${(err as Error).message}`);
  }
  if (text.trim().length === 0) throw new DataError(`text file ${file} is empty (expected text, got ${text.length} whitespace characters)`);
  return text;
}

/** The separator the TinyStories dumps use between stories (`text + "\n<|endoftext|>\n"` per story). */
export const TINYSTORIES_SEPARATOR = "\n<|endoftext|>\n";

/**
 * Split a TinyStories dump into stories. The file ends with the separator, so the last piece is empty and
 * is dropped; a dump without the trailing separator keeps its last story.
 */
export function splitTinyStories(text: string): string[] {
  const pieces = text.split(TINYSTORIES_SEPARATOR);
  if (pieces.length > 0 && pieces[pieces.length - 1].trim() === "") pieces.pop();
  if (pieces.length === 0) throw new DataError(`TinyStories text has no stories (expected pieces separated by ${JSON.stringify(TINYSTORIES_SEPARATOR)})`);
  // An empty piece would silently shift every later story index, so it is an error rather than skipped.
  const blank = pieces.findIndex((p) => p.trim() === "");
  if (blank >= 0) throw new DataError(`TinyStories text: story ${blank} (0-based) of ${pieces.length} is empty`);
  return pieces;
}

/**
 * A range of stories, **0-based and half-open** `[from, to)`: story indices from, from+1, …, to−1.
 * Issues and notes speak of "stories 1–200" (1-based, inclusive); convert those with `storyRange("1-200")`,
 * which gives `{ from: 0, to: 200 }`.
 */
export interface StoryRange {
  from: number;
  to: number;
}

/**
 * Parse a human range "A-B" (also "A–B" or "A..B"), **1-based and inclusive** as people write it
 * ("stories 1–200" = the first 200 stories), into the 0-based half-open range the code uses:
 * "1-200" → [0, 200), "500-999" → [499, 999).
 */
export function storyRange(spec: string): StoryRange {
  const m = /^\s*(\d+)\s*(?:-|–|\.\.)\s*(\d+)\s*$/.exec(spec);
  if (!m) throw new DataError(`story range ${JSON.stringify(spec)}: expected "FIRST-LAST" (1-based, inclusive), e.g. "1-200"`);
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first < 1 || last < first) throw new DataError(`story range ${JSON.stringify(spec)}: expected 1 <= FIRST <= LAST, got ${first}..${last}`);
  return { from: first - 1, to: last };
}

/** Select stories[from, to) (0-based, half-open); out-of-range bounds are a DataError, not a silent clamp. */
export function selectStories(stories: string[], from: number, to: number = stories.length): string[] {
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to <= from || to > stories.length) {
    throw new DataError(`story range [${from}, ${to}) (0-based, half-open) is invalid for ${stories.length} stories`);
  }
  return stories.slice(from, to);
}

/** Stories [from, to) (0-based, half-open) of a TinyStories dump file. */
export function tinyStories(file: string, from = 0, to?: number): string[] {
  const stories = splitTinyStories(readText(file));
  return selectStories(stories, from, to ?? stories.length);
}

/**
 * WikiText raw file → the Hugging Face dataset rows: the file's lines one-to-one; a whitespace-only line
 * becomes "", every other line keeps its trailing "\n" (docs/method.md, "Perplexity"). The file's final newline does not
 * start another row. CRLF files are read as LF so a converted copy gives the same rows.
 */
export function wikitextRows(raw: string): string[] {
  const text = raw.replace(/\r\n/g, "\n");
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => (l.trim() === "" ? "" : l + "\n"));
}

/** Join documents/rows the way the perplexity protocol does (LLM-Pruner: "\n\n".join(rows)). */
export function joinDocs(rows: string[]): string {
  return rows.join("\n\n");
}

/** The text of a WikiText raw file under the §10 protocol: rows joined with "\n\n". */
export function wikitextText(file: string): string {
  return joinDocs(wikitextRows(readText(file)));
}
