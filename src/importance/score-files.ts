import * as fs from "node:fs";
import * as path from "node:path";
import { DataError, FormatError, UsageError } from "../errors";
import { writeContentAtomic } from "../io/atomic";
import { ImportanceScores } from "./scores";

/** Read and validate a scores file (FormatError naming the file and field; DataError when unreadable). */
export function readScoresFile(file: string): ImportanceScores {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    if ((e as { code?: string }).code) throw new DataError(`cannot read scores file ${file}: ${(e as Error).message}`);
    throw new FormatError(`scores file ${file} is not valid JSON: ${(e as Error).message}`);
  }
  return ImportanceScores.fromJSON(raw, file);
}

/** Write scores as JSON atomically (temporary file, fsync, rename). */
export async function writeScoresFile(file: string, scores: ImportanceScores): Promise<void> {
  const body = JSON.stringify(scores.toJSON());
  await writeContentAtomic(file, body);
}

/** Refuses a list that names one file twice (by real path, so "a.json" and "./a.json" are the same). */
export function checkDistinctFiles(files: readonly string[]): void {
  const seen = new Map<string, string>();
  for (const f of files) {
    let key: string;
    try {
      key = fs.realpathSync(f);
    } catch {
      key = path.resolve(f);
    }
    const first = seen.get(key);
    if (first !== undefined) throw new UsageError(`${f} is given twice${first !== f ? ` (also as ${first})` : ""}: its windows would be counted twice`);
    seen.set(key, f);
  }
}

/**
 * Exact sum of score files (ImportanceScores.merge, in the order given; the result does not depend on it).
 * Refuses the same file twice, other criteria, settings or models, version-1 files and shared windows.
 */
export function mergeScoreFiles(files: readonly string[]): ImportanceScores {
  if (files.length === 0) throw new UsageError("merge needs at least one scores file");
  checkDistinctFiles(files);
  const all = files.map(readScoresFile);
  // pairwise first, so an error names the two files involved
  for (let j = 1; j < all.length; j++) for (let i = 0; i < j; i++) all[i].checkMergeable(all[j], { a: files[i], b: files[j] });
  return all.slice(1).reduce((acc, s, k) => acc.merge(s, { a: files[0], b: files[k + 1] }), all[0]);
}
