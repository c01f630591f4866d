import * as fs from "node:fs";
import { FormatError, ioError } from "../errors";

/** Parse the text of `file` as JSON; a syntax error is a FormatError naming the file. */
export function parseJsonText(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FormatError(`${file}: not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Read and parse a JSON file. A file that cannot be read is an IoError with its errno (not "invalid JSON"), one
 * that does not parse a FormatError: the two need different fixes from the user.
 */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw ioError(err, file, "read");
  }
  return parseJsonText(text, file);
}
