import * as fs from "node:fs";
import * as path from "node:path";
import { DataError } from "../../errors";

/**
 * The evaluation data folder: `dataDir` if given, else env SDMPRUNE_DATA, else `../shared/data` resolved from
 * the current directory (the layout of the project checkout next to the shared folder).
 */
export function resolveDataDir(dataDir?: string): string {
  return path.resolve(dataDir ?? process.env.SDMPRUNE_DATA ?? path.join("..", "shared", "data"));
}

function readFile(dir: string, rel: string): { file: string; text: string } {
  const file = path.join(dir, rel);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") {
      throw new DataError(`evaluation data file ${file} does not exist (data folder ${dir}; set dataDir or SDMPRUNE_DATA)`);
    }
    throw new DataError(`cannot read evaluation data file ${file}: ${(err as Error).message}`);
  }
  return { file, text };
}

/** Lines of a text file without the final empty piece; at most `limit` lines when given. */
export function readLines(dir: string, rel: string, limit?: number): { file: string; lines: string[] } {
  const { file, text } = readFile(dir, rel);
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return { file, lines: limit === undefined ? lines : lines.slice(0, limit) };
}

/** Parse the first `limit` non-blank lines of a JSONL file; a bad line is a DataError naming file and line. */
export function readJsonl<T = Record<string, unknown>>(dir: string, rel: string, limit?: number): { file: string; rows: { line: number; value: T }[] } {
  const { file, lines } = readLines(dir, rel);
  const rows: { line: number; value: T }[] = [];
  for (let i = 0; i < lines.length && (limit === undefined || rows.length < limit); i++) {
    if (lines[i].trim() === "") continue;
    try {
      rows.push({ line: i + 1, value: JSON.parse(lines[i]) as T });
    } catch (err) {
      throw new DataError(`${file}:${i + 1}: invalid JSON (${(err as Error).message})`);
    }
  }
  return { file, rows };
}

/** A required string field of a JSONL row. */
export function str(row: Record<string, unknown>, field: string, where: string): string {
  const v = row[field];
  if (typeof v !== "string") throw new DataError(`${where}: field "${field}" must be a string, got ${v === undefined ? "nothing" : JSON.stringify(v)}`);
  return v;
}

export function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new DataError(`limit must be a positive integer, got ${limit}`);
}
