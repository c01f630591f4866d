/**
 * Tab completion for the word before the cursor: command names, a command's options and fixed words,
 * and file paths where the command takes one.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { splitWords } from "./args";
import { SPECS, findSpec } from "./commands";

export interface Completion {
  /** Replace line[start, cursor) with one of the candidates. */
  start: number;
  candidates: string[];
  /** Longest common prefix of the candidates (what Tab inserts when several match). */
  common: string;
}

function commonPrefix(xs: string[]): string {
  if (xs.length === 0) return "";
  let p = xs[0];
  for (const x of xs) while (!x.startsWith(p)) p = p.slice(0, -1);
  return p;
}

function escapePath(p: string): string {
  return p.replace(/([\s'"\\])/g, "\\$1");
}

/** Entries of the directory named by `partial` that start with its last component (dirs end in "/"). */
export function completePath(partial: string, cwd: string): string[] {
  const expanded = partial.startsWith("~/") || partial === "~" ? path.join(os.homedir(), partial.slice(1)) : partial;
  const slash = partial.lastIndexOf("/");
  const dirPart = slash >= 0 ? partial.slice(0, slash + 1) : "";
  const base = slash >= 0 ? partial.slice(slash + 1) : partial;
  const expandedSlash = expanded.lastIndexOf("/");
  const dir = path.resolve(cwd, expandedSlash >= 0 ? expanded.slice(0, expandedSlash + 1) || "/" : ".");
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.name.startsWith(base) && (base.startsWith(".") || !e.name.startsWith(".")))
    .map((e) => {
      let isDir = e.isDirectory();
      if (e.isSymbolicLink()) {
        try {
          isDir = fs.statSync(path.join(dir, e.name)).isDirectory();
        } catch {
          isDir = false;
        }
      }
      return dirPart + e.name + (isDir ? "/" : "");
    })
    .sort();
}

/** Completion for `line` with the cursor at `cursor`; null when there is nothing to offer. */
export function complete(line: string, cursor: number, cwd: string = process.cwd()): Completion | null {
  const before = line.slice(0, cursor);
  let words;
  try {
    words = splitWords(before);
  } catch {
    return null; // inside an open quote: nothing sensible to complete
  }
  const atNewWord = before.length === 0 || /\s$/.test(before);
  const current = atNewWord ? { text: "", start: cursor, quoted: false } : words[words.length - 1];
  const previous = atNewWord ? words : words.slice(0, -1);
  const partial = current.text;
  let candidates: string[] = [];
  let isPath = false;
  if (previous.length === 0) {
    candidates = SPECS.flatMap((s) => [s.name, ...(s.aliases ?? [])]).filter((n) => n.startsWith(partial));
  } else {
    const spec = findSpec(previous[0].text);
    if (!spec) return null;
    const last = previous[previous.length - 1];
    const lastFlag = last && last.text.startsWith("--") ? spec.flags[last.text.slice(2)] : undefined;
    const positionals = previous.slice(1).filter((w, i, arr) => {
      if (w.text.startsWith("--")) return false;
      const prev = arr[i - 1];
      const f = prev && prev.text.startsWith("--") ? spec.flags[prev.text.slice(2)] : undefined;
      return !(f && f.type !== "bool");
    });
    if (lastFlag && lastFlag.type !== "bool") {
      if (lastFlag.path) isPath = true;
      else return null;
    } else if (partial.startsWith("-")) {
      candidates = Object.keys(spec.flags)
        .map((n) => `--${n}`)
        .filter((n) => n.startsWith(partial));
    } else if (spec.name === "help") {
      candidates = SPECS.map((s) => s.name).filter((n) => n.startsWith(partial));
    } else if (spec.name === "eval") {
      if (positionals.length > 0 && positionals[positionals.length - 1].text === "ppl") isPath = true;
      else if (positionals.length > 0 && positionals[positionals.length - 1].text === "tasks") return null;
      else candidates = ["ppl", "tasks"].filter((n) => n.startsWith(partial));
    } else if (spec.name === "scores") {
      if (positionals.length === 0) candidates = ["save", "load", "merge"].filter((n) => n.startsWith(partial));
      else isPath = true;
    } else if (spec.positional === "path") {
      isPath = positionals.length === 0;
    } else if (Array.isArray(spec.positional) && positionals.length === 0) {
      candidates = spec.positional.filter((n) => n.startsWith(partial));
    }
  }
  if (isPath) candidates = completePath(partial, cwd).map(escapePath);
  if (candidates.length === 0) return null;
  // A lone candidate that is a whole word gets a trailing space, so the next Tab moves on.
  if (candidates.length === 1 && !candidates[0].endsWith("/")) candidates = [candidates[0] + " "];
  return { start: current.start, candidates, common: commonPrefix(candidates) };
}
